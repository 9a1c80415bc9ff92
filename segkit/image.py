"""``Image`` and ``ImageFormat``: pixels plus their format, as in MediaPipe, backed by a numpy array.

Unlike MediaPipe's ctypes image, the data is copied with its strides respected (non-contiguous and Fortran-order
arrays keep their pixels), the channel count must match the format, and ``numpy_view()`` keeps the image alive.

Images are bounded by a pixel budget (``max_pixels()``; Pillow's decompression-bomb limit by default), checked for
files before they are decoded and for arrays before they are used: ``set_max_pixels(n)`` or the environment
variable ``SEGKIT_MAX_PIXELS`` change it.
"""

from __future__ import annotations

import enum
import os
from typing import TYPE_CHECKING, Any, TypeAlias, TypeVar

import numpy as np

if TYPE_CHECKING:
    import PIL.Image

MAX_PIXELS_ENV = "SEGKIT_MAX_PIXELS"
DEFAULT_MAX_PIXELS = 89_478_485  # Pillow's Image.MAX_IMAGE_PIXELS (decompression-bomb warning limit)
_max_pixels: int | None = None  # set_max_pixels' value; None: the environment variable or the default


def set_max_pixels(n: int | None) -> None:
    """Set the pixel budget (width x height) of every image segkit accepts; None restores the default.

    The budget bounds what a file or an array can make segkit allocate (masks are as large as the image). Files
    are also bounded by Pillow's own limit (twice ``PIL.Image.MAX_IMAGE_PIXELS``): raise both for larger files.
    """
    global _max_pixels
    if n is not None and (isinstance(n, bool) or not isinstance(n, int) or n < 1):
        raise ValueError(f"the pixel budget must be a positive int or None, got {n!r}")
    _max_pixels = n


def max_pixels() -> int:
    """The pixel budget: ``set_max_pixels``' value, else ``$SEGKIT_MAX_PIXELS``, else Pillow's default limit."""
    if _max_pixels is not None:
        return _max_pixels
    env = os.environ.get(MAX_PIXELS_ENV)
    if env:
        try:
            value = int(env)
        except ValueError:
            raise ValueError(f"{MAX_PIXELS_ENV}={env!r} is not a positive integer") from None
        if value < 1:
            raise ValueError(f"{MAX_PIXELS_ENV}={env!r} is not a positive integer")
        return value
    return DEFAULT_MAX_PIXELS


def check_pixels(width: int, height: int, what: str = "image") -> None:
    """Raise ValueError when a ``width`` x ``height`` image is above the pixel budget."""
    budget = max_pixels()
    if width * height > budget:
        raise ValueError(
            f"{what} of {width}x{height} = {width * height:,} pixels is above segkit's pixel budget of {budget:,} "
            f"(raise it with segkit.image.set_max_pixels(n) or {MAX_PIXELS_ENV})"
        )


def _memory_bytes() -> int:
    """Physical memory of this machine (16 GiB when the system does not say)."""
    try:
        return int(os.sysconf("SC_PHYS_PAGES")) * int(os.sysconf("SC_PAGE_SIZE"))
    except (AttributeError, ValueError, OSError):
        return 16 << 30


def check_mask_bytes(width: int, height: int, channels: int, *, confidence: bool, category: bool) -> None:
    """Raise ValueError before the masks of one ``width`` x ``height`` result are allocated when they would take
    more than half of this machine's memory (float32 confidence masks per channel, a uint8 category mask)."""
    need = width * height * ((4 * channels if confidence else 0) + (1 if category else 0))
    limit = _memory_bytes() // 2
    if need > limit:
        what = f"{channels} confidence mask(s)" if confidence else "a category mask"
        raise ValueError(
            f"the masks of a {width}x{height} image ({what}{' and a category mask' if confidence and category else ''}"
            f") need {need / 2**30:.1f} GiB, more than half of this machine's {2 * limit / 2**30:.1f} GiB; segment a "
            "smaller image" + (" or ask for the category mask only" if confidence else "")
        )


class ImageFormat(enum.IntEnum):
    """Pixel formats with MediaPipe's numbering."""

    UNKNOWN = 0
    SRGB = 1
    SRGBA = 2
    GRAY8 = 3
    GRAY16 = 4
    SRGB48 = 7
    SRGBA64 = 8
    VEC32F1 = 9
    SBGRA = 11
    VEC32F2 = 12
    VEC32F4 = 13


CHANNELS = {
    ImageFormat.SRGB: 3,
    ImageFormat.SRGBA: 4,
    ImageFormat.SBGRA: 4,
    ImageFormat.GRAY8: 1,
    ImageFormat.GRAY16: 1,
    ImageFormat.SRGB48: 3,
    ImageFormat.SRGBA64: 4,
    ImageFormat.VEC32F1: 1,
    ImageFormat.VEC32F2: 2,
    ImageFormat.VEC32F4: 4,
}

_FORMATS_BY_DTYPE = {
    np.dtype(np.uint8): (ImageFormat.GRAY8, ImageFormat.SRGB, ImageFormat.SRGBA, ImageFormat.SBGRA),
    np.dtype(np.uint16): (ImageFormat.GRAY16, ImageFormat.SRGB48, ImageFormat.SRGBA64),
    np.dtype(np.float32): (ImageFormat.VEC32F1, ImageFormat.VEC32F2, ImageFormat.VEC32F4),
}
_DTYPE_NAMES = {np.dtype(np.uint8): "uint8_t", np.dtype(np.uint16): "uint16_t", np.dtype(np.float32): "float"}


def _or_list(formats: tuple[ImageFormat, ...]) -> str:
    names = [f.name for f in formats]
    return ", ".join(names[:-1]) + ", or " + names[-1]


def _checked(image_format: ImageFormat | int, data: np.ndarray) -> tuple[ImageFormat, np.ndarray]:
    """The format and the (H, W, C) array, after MediaPipe's checks and segkit's channel and size checks."""
    data = np.asarray(data)
    if data.ndim not in (2, 3):
        raise ValueError(f"Unsupported number of dimensions:{data.ndim}")
    formats = _FORMATS_BY_DTYPE.get(data.dtype)
    if formats is None:
        raise ValueError(f"Unsupported numpy data type: {data.dtype}")
    try:
        fmt = ImageFormat(image_format)
    except ValueError:
        raise ValueError(f"Unsupported image format: {image_format}") from None
    if fmt not in formats:
        raise ValueError(
            f"Unsupported image format: {fmt.name} (expected {_or_list(formats)} for {_DTYPE_NAMES[data.dtype]} data)"
        )
    channels = CHANNELS[fmt]
    if data.ndim == 2:
        data = data[:, :, None]
    if data.shape[2] != channels:
        raise ValueError(f"image format {fmt.name} has {channels} channel(s), but the array has shape {data.shape}")
    if data.shape[0] == 0 or data.shape[1] == 0:
        raise ValueError(f"image is empty: array shape {data.shape}")
    check_pixels(int(data.shape[1]), int(data.shape[0]))
    return fmt, data


_ImageT = TypeVar("_ImageT", bound="Image")


class Image:
    """An image: an immutable (H, W, C) array of uint8, uint16 or float32 pixels and its :class:`ImageFormat`."""

    __slots__ = ("_data", "_format")

    def __init__(self, image_format: ImageFormat | int, data: np.ndarray) -> None:
        """Copies ``data`` ((H, W) or (H, W, C), C matching ``image_format``) into a new image."""
        fmt, data = _checked(image_format, data)
        copy = np.array(data, order="C", copy=True)
        copy.flags.writeable = False
        self._data = copy
        self._format = fmt

    @classmethod
    def _borrow(cls, image_format: ImageFormat | int, data: np.ndarray) -> Image:
        """An image over a read-only view of ``data``, checked as the constructor checks it but not copied: for a
        caller's array that segkit reads only during one synchronous call."""
        fmt, data = _checked(image_format, data)
        view = data.view()
        view.flags.writeable = False
        image = cls.__new__(cls)
        image._data = view
        image._format = fmt
        return image

    @classmethod
    def _wrap(cls: type[_ImageT], image_format: ImageFormat, data: np.ndarray) -> _ImageT:
        """An image over ``data`` without a copy; for arrays segkit made and hands over (the result masks)."""
        image = cls.__new__(cls)
        if data.ndim == 2:
            data = data[:, :, None]
        data.flags.writeable = False
        image._data = data
        image._format = image_format
        return image

    @classmethod
    def create_from_file(cls, file_name: str | os.PathLike[str]) -> Image:
        """Decodes an image file at its own channel count, applying its EXIF orientation (see ``from_pil``).

        A missing file (or one that is not a regular file) raises MediaPipe's FileNotFoundError; every failure to
        decode it (corrupt or truncated data, an unknown format, a size above the pixel budget, a mode segkit
        cannot represent, running out of memory) raises RuntimeError("Failed to load image from file: PATH (why)"),
        MediaPipe's exception type.
        """
        from PIL import Image as PILImage
        from PIL import ImageOps

        path = os.fspath(file_name)
        if not os.path.isfile(path):
            raise FileNotFoundError(f"Can't find file: {path}")
        try:
            with PILImage.open(path) as pil:
                width, height = pil.size
                check_pixels(width, height, what="the image")
                file_format = pil.format
                pil = ImageOps.exif_transpose(pil)
                return _as_stb_loads(pil, file_format)
        except Exception as exc:  # Pillow's decoders raise nearly anything on corrupt data; all mean the same here
            reason = str(exc).strip() or "no reason given"
            raise RuntimeError(f"Failed to load image from file: {path} ({type(exc).__name__}: {reason})") from exc

    @property
    def width(self) -> int:
        return int(self._data.shape[1])

    @property
    def height(self) -> int:
        return int(self._data.shape[0])

    @property
    def channels(self) -> int:
        return int(self._data.shape[2])

    @property
    def image_format(self) -> ImageFormat:
        return self._format

    @property
    def step(self) -> int:
        """Bytes per row."""
        return int(self._data.strides[0])

    def numpy_view(self) -> np.ndarray:
        """The pixels as a read-only (H, W, C) array (3-D even for one channel, as MediaPipe returns)."""
        return self._data

    def uses_gpu(self) -> bool:
        return False

    def is_aligned(self, alignment_boundary: int) -> bool:
        """Whether the pixels' address and row size (``step``) are both multiples of ``alignment_boundary``, a power
        of two (MediaPipe aborts the process on any other value; this raises ValueError)."""
        if isinstance(alignment_boundary, bool) or not isinstance(alignment_boundary, int):
            raise TypeError(f"alignment_boundary must be an int, got {type(alignment_boundary).__name__}")
        if alignment_boundary < 1 or alignment_boundary & (alignment_boundary - 1):
            raise ValueError(f"alignment_boundary must be a power of two, got {alignment_boundary}")
        address = int(self._data.__array_interface__["data"][0])
        return address % alignment_boundary == 0 and self.step % alignment_boundary == 0

    def is_contiguous(self) -> bool:
        return True

    def is_empty(self) -> bool:
        return self._data.size == 0

    def __getitem__(self, index: tuple[int, ...]) -> Any:
        """``image[row, col]`` for one-channel images, ``image[row, col, channel]`` for any."""
        if len(index) == 2 and self.channels != 1:
            raise ValueError("Invalid index dimension: 2 (expected 2 or 3)")
        if len(index) == 2:
            index = (*index, 0)
        if len(index) != 3:
            raise ValueError(f"Invalid index dimension: {len(index)} (expected 2 or 3)")
        return self._data[index].item()

    def __repr__(self) -> str:
        return f"Image({self._format.name}, {self.width}x{self.height})"


def from_array(data: np.ndarray, copy: bool = True) -> Image:
    """An :class:`Image` from an array, its format inferred from dtype and channels (1: gray, 3: RGB, 4: RGBA).

    ``copy=False`` wraps a read-only view instead, for a caller that uses the image only while ``data`` is unchanged.
    """
    data = np.asarray(data)
    if data.ndim == 2:
        channels = 1
    elif data.ndim == 3:
        channels = data.shape[2]
    else:
        raise ValueError(f"expected an (H, W) or (H, W, C) array, got shape {data.shape}")
    by_channels = {
        np.dtype(np.uint8): {1: ImageFormat.GRAY8, 3: ImageFormat.SRGB, 4: ImageFormat.SRGBA},
        np.dtype(np.uint16): {1: ImageFormat.GRAY16, 3: ImageFormat.SRGB48, 4: ImageFormat.SRGBA64},
        np.dtype(np.float32): {1: ImageFormat.VEC32F1, 2: ImageFormat.VEC32F2, 4: ImageFormat.VEC32F4},
    }
    table = by_channels.get(data.dtype)
    if table is None:
        raise TypeError(f"unsupported array dtype {data.dtype}: expected uint8, uint16 or float32")
    fmt = table.get(channels)
    if fmt is None:
        raise ValueError(f"unsupported channel count {channels} for a {data.dtype} array of shape {data.shape}")
    return Image(fmt, data) if copy else Image._borrow(fmt, data)


_REFUSED_MODES = {
    "LAB": "CIELAB pixels have no faithful conversion here; convert the image to RGB first",
}


def from_pil(pil: Any) -> Image:
    """An :class:`Image` from a ``PIL.Image``: L/1 -> GRAY8, I;16 (and 32-bit I within 0..65535) -> GRAY16,
    F -> VEC32F1, RGBA/LA/PA/transparent P -> SRGBA, the other color modes -> SRGB.

    Modes that cannot be represented faithfully are refused with ValueError instead of being clipped (a 32-bit
    integer image with values outside 0..65535, LAB). ``np.asarray`` of a PIL image is already a new array that
    nobody else holds, so it is wrapped, not copied again.
    """
    mode = pil.mode
    width, height = pil.size
    check_pixels(width, height)
    if mode in _REFUSED_MODES:
        raise ValueError(f"unsupported image mode {mode}: {_REFUSED_MODES[mode]}")
    if mode == "L":
        return Image._borrow(ImageFormat.GRAY8, np.asarray(pil))
    if mode == "1":
        return Image._borrow(ImageFormat.GRAY8, np.asarray(pil.convert("L")))
    if mode.startswith("I;16"):
        return Image._borrow(ImageFormat.GRAY16, np.asarray(pil).astype(np.uint16))
    if mode == "I":
        values = np.asarray(pil)
        if values.size and (int(values.min()) < 0 or int(values.max()) > 0xFFFF):
            raise ValueError(
                f"unsupported image mode I: 32-bit values {int(values.min())}..{int(values.max())} do not fit 16 bits"
            )
        return Image._borrow(ImageFormat.GRAY16, values.astype(np.uint16))
    if mode == "F":
        return Image._borrow(ImageFormat.VEC32F1, np.asarray(pil, dtype=np.float32))
    if mode in ("RGBA", "LA", "PA") or (mode == "P" and "transparency" in pil.info):
        return Image._borrow(ImageFormat.SRGBA, np.asarray(pil.convert("RGBA")))
    return Image._borrow(ImageFormat.SRGB, np.asarray(pil.convert("RGB")))


def _as_stb_loads(pil: Any, file_format: str | None) -> Image:
    """A decoded file as MediaPipe's ``create_from_file`` (stb_image) gives it, where that differs from
    :func:`from_pil`: a 16-bit gray PNG as GRAY8 (the high byte, as stb_image keeps it), a GIF as SRGBA (stb_image
    always reads GIFs with 4 channels)."""
    if file_format == "PNG" and (pil.mode == "I" or pil.mode.startswith("I;16")):
        high = np.asarray(pil).astype(np.uint16) >> 8  # a 16-bit file holds 0..65535
        return Image._borrow(ImageFormat.GRAY8, high.astype(np.uint8))
    if file_format == "GIF":
        return Image._borrow(ImageFormat.SRGBA, np.asarray(pil.convert("RGBA")))
    return from_pil(pil)


# What the segmenter and the effects accept (a PIL image is converted; PIL itself is imported only when used).
ImageLike: TypeAlias = "Image | np.ndarray | PIL.Image.Image"


def as_image(obj: ImageLike, copy: bool = True) -> Image:
    """Accepts an :class:`Image`, a numpy array or a ``PIL.Image`` and returns an :class:`Image`.

    ``copy=False``: a numpy array is wrapped, not copied (for synchronous calls that drop the image on return).
    """
    if isinstance(obj, Image):
        return obj
    if isinstance(obj, np.ndarray):
        return from_array(obj, copy=copy)
    if hasattr(obj, "mode") and hasattr(obj, "getbands"):
        return from_pil(obj)
    raise TypeError(f"expected a segkit.Image, a numpy array or a PIL image, got {type(obj).__name__}")
