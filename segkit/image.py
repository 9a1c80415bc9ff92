"""``Image`` and ``ImageFormat``: pixels plus their format, as in MediaPipe, backed by a numpy array.

Unlike MediaPipe's ctypes image, the data is copied with its strides respected (non-contiguous and Fortran-order
arrays keep their pixels), the channel count must match the format, and ``numpy_view()`` keeps the image alive.
"""

from __future__ import annotations

import enum
import os
from typing import Any, Union

import numpy as np


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
    return fmt, data


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
    def _wrap(cls, image_format: ImageFormat, data: np.ndarray) -> Image:
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
        """Decodes an image file at its own channel count (GRAY8, SRGB or SRGBA), applying its EXIF orientation."""
        from PIL import Image as PILImage
        from PIL import ImageOps, UnidentifiedImageError

        path = os.fspath(file_name)
        if not os.path.isfile(path):
            raise FileNotFoundError(f"Can't find file: {path}")
        try:
            with PILImage.open(path) as pil:
                pil = ImageOps.exif_transpose(pil)
                return from_pil(pil)
        except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
            raise RuntimeError(f"Failed to load image from file: {path} ({exc})") from exc

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


def from_pil(pil: Any) -> Image:
    """An :class:`Image` from a ``PIL.Image``: L -> GRAY8, I;16 -> GRAY16, RGBA/LA/transparent P -> SRGBA, else SRGB.

    ``np.asarray`` of a PIL image is already a new array that nobody else holds, so it is wrapped, not copied again.
    """
    mode = pil.mode
    if mode == "L":
        return Image._borrow(ImageFormat.GRAY8, np.asarray(pil))
    if mode.startswith("I;16"):
        return Image._borrow(ImageFormat.GRAY16, np.asarray(pil).astype(np.uint16))
    if mode in ("RGBA", "LA", "PA") or (mode == "P" and "transparency" in pil.info):
        return Image._borrow(ImageFormat.SRGBA, np.asarray(pil.convert("RGBA")))
    return Image._borrow(ImageFormat.SRGB, np.asarray(pil.convert("RGB")))


ImageLike = Union[Image, np.ndarray, Any]


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
