"""Untrusted image bytes in, checked pixels out (and back to bytes): the server's decoding limits live here."""

from __future__ import annotations

import io
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
from PIL import Image as PILImage
from PIL import ImageOps, UnidentifiedImageError

from segkit.batch import rgb8

OUTPUT_FORMATS = {"png": ("PNG", "image/png"), "jpeg": ("JPEG", "image/jpeg"), "webp": ("WEBP", "image/webp")}
_INPUT_TO_OUTPUT = {"PNG": "png", "JPEG": "jpeg", "MPO": "jpeg", "WEBP": "webp"}
# The formats an upload may have: raster formats Pillow decodes itself. Not EPS/PS, whose plugin runs Ghostscript
# on the file (an outside program on untrusted input), nor formats no camera or browser sends.
INPUT_FORMATS = ("PNG", "JPEG", "MPO", "WEBP", "GIF", "BMP", "TIFF", "ICO", "PPM", "TGA", "AVIF")
# The largest width or height each output format can hold (libjpeg's 65500, libwebp's 16383; PNG's is 2**31 - 1).
MAX_SIDE = {"jpeg": 65500, "webp": 16383}
# Where an empty upload was expected to come from, by its name.
_EXPECTED_AT = {
    "file": "as multipart field 'file' or as the body",
    "background": "as multipart field 'background'",
    "frame": "after the frame's JSON header",
}


class ApiError(Exception):
    """An expected failure with its HTTP status, a message for the client and extra response headers."""

    def __init__(self, status: int, message: str, headers: Mapping[str, str] | None = None) -> None:
        super().__init__(f"{status}: {message}")
        self.status = status
        self.message = message
        self.headers = dict(headers or {})


@dataclass(frozen=True)
class Decoded:
    """A decoded upload: RGB pixels (EXIF rotation applied) and the output format that matches the input's."""

    pixels: np.ndarray
    source_format: str


def decode_image(data: bytes, max_pixels: int, name: str = "file") -> Decoded:
    """``data`` as uint8 RGB pixels; ApiError 400 (empty, garbage, truncated) or 413 (too many pixels) otherwise.

    The pixel count is read from the header and checked before anything is decoded, so a decompression bomb (a
    small file that decodes to gigabytes) is refused without allocating its pixels.
    """
    if not data:
        where = _EXPECTED_AT.get(name, f"as multipart field {name!r}")
        raise ApiError(400, f"{name} is empty: send the image bytes {where}")
    try:
        with PILImage.open(io.BytesIO(data), formats=_available(INPUT_FORMATS)) as im:
            width, height = im.size
            if width * height > max_pixels:
                raise ApiError(413, f"{name} is {width}x{height} = {width * height} pixels; the limit is {max_pixels}")
            if width == 0 or height == 0:
                raise ApiError(400, f"{name} has no pixels ({width}x{height})")
            source = _INPUT_TO_OUTPUT.get(im.format or "", "png")
            im.load()
            upright = ImageOps.exif_transpose(im)
            try:
                pixels = rgb8(upright)
            except ValueError as e:  # float, Lab or beyond-16-bit pixels: refused rather than clipped
                raise ApiError(400, f"{name} cannot be used: {e}") from None
    except UnidentifiedImageError:
        accepted = ", ".join(_available(INPUT_FORMATS))
        raise ApiError(400, f"{name} is not an image in an accepted format ({accepted})") from None
    except PILImage.DecompressionBombError as e:
        raise ApiError(413, f"{name} is a decompression bomb: {e}") from None
    except ApiError:
        raise
    except Exception as e:  # Pillow's plugins raise many types on corrupt files (struct.error, IndexError, ...)
        raise ApiError(400, f"{name} cannot be decoded: {type(e).__name__}: {e}") from None
    return Decoded(pixels, source)


def _available(formats: tuple[str, ...]) -> tuple[str, ...]:
    """The formats this Pillow build can open (AVIF, for one, depends on how it was built)."""
    PILImage.init()
    return tuple(f for f in formats if f in PILImage.OPEN)


def check_output_size(
    width: int, height: int, fmt: str, what: str = "the output", advice: str = "use format=png"
) -> None:
    """ApiError 400 when ``fmt`` cannot hold a ``width`` x ``height`` image (JPEG and WebP limit each side)."""
    limit = MAX_SIDE.get(fmt)
    if limit is not None and max(width, height) > limit:
        raise ApiError(
            400, f"{what} would be {width}x{height}, but format {fmt!r} holds at most {limit} px per side: {advice}"
        )


def output_format(requested: str, source_format: str, needs_alpha: bool) -> str:
    """The output format key: ``requested`` unless "auto" (the input's format; PNG when transparency is needed)."""
    if requested == "auto":
        if needs_alpha and source_format == "jpeg":
            return "png"
        return source_format
    if requested not in OUTPUT_FORMATS:
        raise ApiError(400, f"format {requested!r} is not one of auto, {', '.join(OUTPUT_FORMATS)}")
    if needs_alpha and requested == "jpeg":
        raise ApiError(400, "format 'jpeg' cannot hold the transparency of a cutout: use png or webp")
    return requested


def encode_image(pixels: np.ndarray, fmt: str, quality: int = 90) -> tuple[bytes, str]:
    """Pixels (gray, RGB or RGBA uint8) as file bytes in ``fmt`` and its media type; PNG uses fast compression."""
    pil_format, media_type = OUTPUT_FORMATS[fmt]
    check_output_size(int(pixels.shape[1]), int(pixels.shape[0]), fmt)
    array = pixels[:, :, 0] if pixels.ndim == 3 and pixels.shape[2] == 1 else pixels
    buffer = io.BytesIO()
    image = PILImage.fromarray(np.ascontiguousarray(array))
    if pil_format == "PNG":
        image.save(buffer, format="PNG", compress_level=1)
    elif pil_format == "JPEG":
        image.save(buffer, format="JPEG", quality=quality)
    else:
        image.save(buffer, format="WEBP", quality=quality, lossless=False)
    return buffer.getvalue(), media_type
