"""Visual effects driven by segmentation masks, fast enough for 720p video on two cores.

Every effect takes an image (uint8 RGB/RGBA numpy array, segkit ``Image`` or PIL image) and a mask, and returns a
new uint8 numpy array; inputs are never modified. The mask may be anything ``subject_mask`` accepts, including the
``ImageSegmenterResult`` itself, so the subject is chosen by one rule everywhere:

- a **result**: its confidence masks. One mask (the selfie models) is the person's probability; several masks are
  per-category scores, softmax-ed when the model emits raw logits (DeepLab), and the subject is ``categories``
  (indices or label names; default: everything but category 0 / "background", which for the hair model is the
  hair). Without confidence masks the category mask is used (see below). ``labels=`` (or ``segmenter=``) names
  the categories; ``segmenter=`` also gives the model's activation, so no value-range check is needed.
- a **segkit Image**: VEC32F1 is a probability; GRAY8 is a category mask, where MediaPipe's selfie convention
  (values only 0 and 255, 0 = person) is read as such, and any other category mask gives ``categories``
  (default: every non-zero category).
- a **numpy array** or **PIL image**: float (``F``) is a probability in [0, 1]; bool (``1``) is 0/1; a 2-D uint8
  array (``L``) is 8-bit alpha (255 = subject). An (H, W, 1) uint8 array is what
  ``result.category_mask.numpy_view()`` looks like (class indices; for a selfie model 0 = person): without
  ``categories=`` it is refused with a message saying what to pass instead, never misread as alpha or inverted;
  with ``categories=`` those classes are the subject (for any integer category mask).

A mask of a different size than the image (e.g. at the model's resolution) is upsampled once (bilinear).

Edges: along the mask's soft edge the image's pixels mix subject and old background, which shows as a light fringe
after ``replace_background`` or ``cutout``; both estimate the subject's colors there by default
(``estimate_colors=True``). ``refine`` ("none" by default, "feather", "guided") reshapes the mask itself.

Speed: the work is done at the resolution the result needs (the background blur runs on a 1/8-size image at sigma 15,
the edge-color estimate on 8x8 blocks, the guided refinement on a quarter-size grid) in Pillow's C paths, which
release the GIL; full-size passes are split over two threads for images of 500,000 pixels or more (below that the
handoff costs more than it saves). The output bits do not depend on the
thread count.
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import numpy as np
from PIL import Image as PILImage
from PIL import ImageColor, ImageDraw, ImageFilter, ImageFont

from segkit._common import is_index, rgbx_canvas
from segkit.image import Image, ImageFormat
from segkit.result import ImageSegmenterResult

if TYPE_CHECKING:
    from segkit.segmenter import ImageSegmenter

__all__ = [
    "DEFAULT_PALETTE",
    "Color",
    "ImageInput",
    "MaskInput",
    "TemporalSmoother",
    "blur_background",
    "cutout",
    "fit_background",
    "legend",
    "mask_to_alpha",
    "overlay",
    "palette_colors",
    "parse_color",
    "recolor",
    "refine_mask",
    "replace_background",
    "set_num_threads",
    "subject_mask",
    "thread_limit",
]

Color = str | Sequence[int]
"""A color: a Pillow color string ("#ff8800", "#f80", "teal", "rgb(1,2,3)") or an (r, g, b) sequence of 0..255."""

ImageInput = np.ndarray | Image | PILImage.Image
"""An image: a uint8 (H, W, 3|4) numpy array, a segkit ``Image`` (SRGB, SRGBA, GRAY8) or a PIL image."""

MaskInput = ImageSegmenterResult | Image | np.ndarray | PILImage.Image
"""A mask: a segmentation result, a segkit mask ``Image``, a numpy array or a PIL image (see the module docs)."""

CategorySpec = int | str | Sequence[int | str]
"""Subject categories: an index, a label name, or a sequence of them."""

_RANGE_TOLERANCE = 1e-3
_SPLIT_PIXELS = 500_000  # below this a second thread costs more than it saves: 640x480 runs on one (measured)
_REFINE_CHOICES = ("none", "feather", "guided")


# --- threads --------------------------------------------------------------------------------------------------------

_pool_lock = threading.Lock()
_pool: ThreadPoolExecutor | None = None
_threads = 2


def _forget_pool_after_fork() -> None:
    """A forked child has no copy of the helper thread: start a fresh pool there instead of waiting on a dead one."""
    global _pool, _pool_lock
    _pool = None
    _pool_lock = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_pool_after_fork)


def set_num_threads(count: int) -> None:
    """How many threads the effects may use for full-size passes (1 = calling thread only; default 2)."""
    global _threads
    if isinstance(count, bool) or not isinstance(count, int) or count < 1:
        raise ValueError(f"thread count must be an int >= 1, got {count!r}")
    _threads = min(count, 2)


_local = threading.local()


@contextmanager
def thread_limit(count: int) -> Iterator[None]:
    """Within the block, effects called from this thread use at most ``count`` threads (the global setting elsewhere).

    For a caller whose own threads already keep the cores busy, as a video pipeline's do: there a second effects
    thread only contends for them (720p video measured 5-8% faster with effects on one thread).
    """
    if isinstance(count, bool) or not isinstance(count, int) or count < 1:
        raise ValueError(f"thread count must be an int >= 1, got {count!r}")
    outer = getattr(_local, "limit", None)
    _local.limit = count if outer is None else min(outer, count)
    try:
        yield
    finally:
        _local.limit = outer


def _thread_count() -> int:
    """The threads an effect called from this thread may use."""
    limit = getattr(_local, "limit", None)
    return _threads if limit is None else min(_threads, limit)


def _split_rows(
    height: int, width: int, work: Callable[[int, int], None], threshold: int = _SPLIT_PIXELS, step: int = 1
) -> None:
    """Runs ``work(top, bottom)`` over the rows, split in two halves on two threads for large images (the split on
    a multiple of ``step``).

    ``work`` must compute each output row from the inputs alone, so the result is the same for any split.
    """
    middle = height // 2 // step * step
    if _thread_count() < 2 or height * width < threshold or middle == 0:
        work(0, height)
        return
    _in_parallel(lambda: work(middle, height), lambda: work(0, middle))


def _in_parallel(background_work: Callable[[], None], work: Callable[[], None]) -> None:
    """Runs ``background_work`` on the helper thread while ``work`` runs on this one (in order with one thread)."""
    if _thread_count() < 2:
        background_work()
        work()
        return
    future = _helper().submit(background_work)
    work()
    future.result()


def _side_by_side(pixels: int, background_work: Callable[[], None], work: Callable[[], None]) -> None:
    """``_in_parallel`` for an image of that many pixels when it is large enough to gain from it, else in order."""
    if pixels >= _SPLIT_PIXELS:
        _in_parallel(background_work, work)
    else:
        background_work()
        work()


def _helper() -> ThreadPoolExecutor:
    """The effects' one helper thread, started on first use."""
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="segkit-effects")
        return _pool


def _rows(image: PILImage.Image, top: int, bottom: int) -> PILImage.Image:
    """Rows ``top:bottom`` of an image to read from: the image itself when that is all of it (a crop copies)."""
    return image if top == 0 and bottom == image.height else image.crop((0, top, image.width, bottom))


# --- validation and conversion --------------------------------------------------------------------------------------


def _check_fraction(value: object, name: str) -> float:
    """``value`` as a float in [0, 1]; ValueError naming it otherwise."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{name} must be a number in [0, 1], got {value!r}")
    if not 0.0 <= float(value) <= 1.0:
        raise ValueError(f"{name} must lie in [0, 1], got {value!r}")
    return float(value)


def _check_nonnegative(value: object, name: str) -> float:
    """``value`` as a finite float >= 0; ValueError naming it otherwise."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{name} must be a number >= 0, got {value!r}")
    if not np.isfinite(value) or value < 0:
        raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
    return float(value)


def _pixels(image: object, name: str = "image") -> np.ndarray:
    """The image as a uint8 (H, W, 3|4) array (a view where possible); TypeError/ValueError naming the problem."""
    if isinstance(image, PILImage.Image):
        mode = "RGBA" if image.mode in ("RGBA", "LA", "PA", "RGBa") or "transparency" in image.info else "RGB"
        array = np.asarray(image.convert(mode) if image.mode != mode else image)
    elif isinstance(image, Image):
        array = image.numpy_view()
        if image.image_format == ImageFormat.GRAY8:
            array = np.repeat(array.reshape(array.shape[:2])[:, :, None], 3, axis=2)
        elif image.image_format not in (ImageFormat.SRGB, ImageFormat.SRGBA):
            raise ValueError(f"{name} must be an SRGB, SRGBA or GRAY8 Image, got {image.image_format.name}")
    elif isinstance(image, np.ndarray):
        array = image
    else:
        raise TypeError(f"{name} must be a numpy array, a segkit Image or a PIL image, got {type(image).__name__}")
    if array.dtype != np.uint8:
        raise TypeError(f"{name} must have dtype uint8, got {array.dtype}")
    if array.ndim != 3 or array.shape[2] not in (3, 4):
        raise ValueError(f"{name} must have shape (H, W, 3) or (H, W, 4), got {array.shape}")
    if array.shape[0] == 0 or array.shape[1] == 0:
        raise ValueError(f"{name} is empty: shape {array.shape}")
    return array


def _rgb_pil(pixels: np.ndarray) -> PILImage.Image:
    """The RGB channels of a uint8 image as a PIL image."""
    return PILImage.fromarray(np.ascontiguousarray(pixels[:, :, :3]), "RGB")


def _with_alpha(rgb: np.ndarray, pixels: np.ndarray) -> np.ndarray:
    """``rgb`` with the input image's alpha channel appended when it had one."""
    if pixels.shape[2] == 3:
        return rgb
    out = np.empty(pixels.shape, np.uint8)
    out[:, :, :3] = rgb
    out[:, :, 3] = pixels[:, :, 3]
    return out


def parse_color(color: Color, name: str = "color") -> tuple[int, int, int]:
    """An (r, g, b) tuple of ints from a Pillow color string or a sequence of three 0..255 ints."""
    if isinstance(color, str):
        try:
            rgb = ImageColor.getrgb(color)
        except ValueError:
            hint = "use '#rrggbb', '#rgb', a name such as 'teal', or r,g,b"
            raise ValueError(f"{name} {color!r} is not a color: {hint}") from None
        return int(rgb[0]), int(rgb[1]), int(rgb[2])
    if isinstance(color, (Sequence, np.ndarray)) and len(color) == 3:
        values = [int(c) for c in color if isinstance(c, (int, np.integer)) and not isinstance(c, bool)]
        if len(values) == 3 and all(0 <= c <= 255 for c in values):
            return values[0], values[1], values[2]
    raise ValueError(f"{name} {color!r} is not a color: use '#rrggbb', '#rgb', a name, or (r, g, b) ints in 0..255")


# --- the subject's mask ---------------------------------------------------------------------------------------------

_SELFIE_HINT = (
    "pass the result itself (effects.subject_mask(result)), the result's category_mask Image, "
    "or `category_mask == 0` (the selfie person) as a bool array"
)


def _plane(array: np.ndarray, name: str) -> np.ndarray:
    """An (H, W) or (H, W, 1) array as (H, W) (a view)."""
    if array.ndim == 3 and array.shape[2] == 1:
        return array[:, :, 0]
    if array.ndim != 2:
        raise ValueError(f"{name} must have shape (H, W) or (H, W, 1), got {array.shape}")
    return array


def _checked_float(plane: np.ndarray, name: str) -> np.ndarray:
    """A float mask as float32 in [0, 1] (a view when it already is); ValueError for NaN or logits."""
    alpha = plane if plane.dtype == np.float32 else plane.astype(np.float32)
    if alpha.size:
        low, high = float(alpha.min()), float(alpha.max())
        if not (np.isfinite(low) and np.isfinite(high)):
            raise ValueError(f"{name} contains NaN or infinite values")
        if low < -_RANGE_TOLERANCE or high > 1 + _RANGE_TOLERANCE:
            raise ValueError(
                f"{name} values must lie in [0, 1], got {low:.3g}..{high:.3g} "
                "(raw logits? pass the segmentation result, or apply a sigmoid or softmax first)"
            )
        if low < 0 or high > 1:
            alpha = np.clip(alpha, 0.0, 1.0)
    return alpha


def _category_indices(categories: CategorySpec | None, labels: Sequence[str] | None, count: int | None) -> list[int]:
    """Subject category indices from indices and/or label names (case-insensitive); ValueError naming a bad one."""
    if categories is None:
        return []
    items: Sequence[int | str] = [categories] if isinstance(categories, (int, str)) else categories
    lowered = [label.lower() for label in labels] if labels is not None else None
    indices = []
    for item in items:
        if isinstance(item, str) and not is_index(item.strip()):
            if lowered is None:
                raise ValueError(f"category {item!r} is a name: pass labels= or segmenter= so it can be found")
            if item.lower() not in lowered:
                raise ValueError(
                    f"category {item!r} is not a label of this model; its labels: {', '.join(labels or [])}"
                )
            indices.append(lowered.index(item.lower()))
            continue
        if isinstance(item, bool) or not isinstance(item, (int, np.integer, str)):
            raise TypeError(f"categories must be indices or label names, got {item!r}")
        index = int(item)
        if index < 0 or (count is not None and index >= count):
            raise ValueError(f"category {index} is out of range: the model has {count} categories")
        indices.append(index)
    if not indices:
        raise ValueError("categories is empty: give at least one index or label name")
    return sorted(set(indices))


def _activation_name(activation: object) -> str | None:
    """'none' | 'sigmoid' | 'softmax' from a string, MediaPipe's Activation enum or its int value; None if unknown."""
    if activation is None:
        return None
    if isinstance(activation, str):
        name = activation.lower()
    elif isinstance(activation, (int, np.integer)):
        name = {0: "none", 1: "sigmoid", 2: "softmax"}.get(int(activation), "")
    else:
        name = str(getattr(activation, "name", "")).lower()
    if name not in ("none", "sigmoid", "softmax"):
        raise ValueError(f"activation must be 'none', 'sigmoid' or 'softmax', got {activation!r}")
    return name


def _result_alpha(
    result: ImageSegmenterResult,
    indices: list[int] | None,
    labels: Sequence[str] | None,
    activation: str | None,
) -> np.ndarray:
    """The subject's float32 alpha from a result (a view of the mask for one-mask models)."""
    masks = result.confidence_masks
    if not masks:
        if result.category_mask is None:
            raise ValueError("the result has neither confidence masks nor a category mask")
        selfie = labels is not None and len(labels) == 1
        return _category_alpha(_plane(result.category_mask.numpy_view(), "category_mask"), indices, selfie)
    planes = [_plane(m.numpy_view(), "confidence mask") for m in masks]
    if len(planes) == 1:
        if indices and indices != [0]:
            raise ValueError(f"this model has one category (the person); categories {indices} do not exist")
        plane = planes[0]
        if activation == "sigmoid" or (activation is None and _out_of_unit_range(plane)):
            return np.asarray(1.0 / (1.0 + np.exp(-plane)), np.float32)
        return plane
    if labels is not None and len(labels) != len(planes):
        raise ValueError(f"labels has {len(labels)} names but the result has {len(planes)} confidence masks")
    for index in indices or []:
        if index >= len(planes):
            raise ValueError(f"category {index} is out of range: the result has {len(planes)} confidence masks")
    logits = activation == "none" or (activation is None and any(_out_of_unit_range(p) for p in planes))
    if logits:
        return _softmax_share(planes, indices)
    if not indices and len(planes) == 2:
        return planes[1]
    if not indices:
        return np.clip(1.0 - planes[0], 0.0, 1.0)
    if len(indices) == 1:
        return planes[indices[0]]
    total = np.zeros(planes[0].shape, np.float32)
    for index in indices:
        total += planes[index]
    return np.clip(total, 0.0, 1.0, out=total)


def _out_of_unit_range(plane: np.ndarray) -> bool:
    """Whether a confidence mask holds values outside [0, 1] (raw logits rather than probabilities)."""
    return bool(plane.size) and (float(plane.min()) < -_RANGE_TOLERANCE or float(plane.max()) > 1 + _RANGE_TOLERANCE)


def _softmax_share(planes: list[np.ndarray], indices: list[int] | None) -> np.ndarray:
    """The softmax probability mass of ``indices`` (default: all but category 0) from per-category logits."""
    peak = planes[0].copy()
    for plane in planes[1:]:
        np.maximum(peak, plane, out=peak)
    chosen = set(indices) if indices else set(range(1, len(planes)))
    total = np.zeros(peak.shape, np.float32)
    share = np.zeros(peak.shape, np.float32)
    scratch = np.empty(peak.shape, np.float32)
    for index, plane in enumerate(planes):
        np.subtract(plane, peak, out=scratch)
        np.exp(scratch, out=scratch)
        total += scratch
        if index in chosen:
            share += scratch
    share /= total
    return np.clip(share, 0.0, 1.0, out=share)


def _selfie_convention(plane: np.ndarray) -> bool:
    """Whether a category mask holds only 0 and 255, with some 255: MediaPipe's selfie mask (0 = person)."""
    if not plane.size or int(plane.max()) != 255:
        return False
    return not np.count_nonzero((plane != 0) & (plane != 255))


def _category_alpha(plane: np.ndarray, indices: list[int] | None, selfie: bool | None) -> np.ndarray:
    """A category mask as 0/1 float32 alpha; MediaPipe's selfie convention (0 and 255 only: 0 = person) is honored."""
    if not np.issubdtype(plane.dtype, np.integer):
        raise TypeError(f"a category mask must be an integer array, got {plane.dtype}")
    if selfie or (selfie is None and _selfie_convention(plane)):
        if indices and indices != [0]:
            raise ValueError(f"a selfie category mask has one category (the person); categories {indices} do not exist")
        return np.asarray(plane == 0, np.float32)
    if not indices:
        return np.asarray(plane != 0, np.float32)
    return np.isin(plane, indices).astype(np.float32)


def _resolve(
    source: object,
    categories: CategorySpec | None = None,
    labels: Sequence[str] | None = None,
    activation: object = None,
    segmenter: ImageSegmenter | None = None,
    name: str = "mask",
) -> np.ndarray:
    """The subject's float32 (h, w) alpha in [0, 1] at the mask's own size; may be a read-only view."""
    if segmenter is not None:
        labels = list(segmenter.labels) if labels is None else labels
        activation = segmenter.model_info.activation if activation is None else activation
    labels = labels or None  # a model without metadata has no labels: its categories are its channel indices
    act = _activation_name(activation)
    if isinstance(source, ImageSegmenterResult):
        count = len(source.confidence_masks) if source.confidence_masks else None
        indices = _category_indices(categories, labels, count) or None
        return _result_alpha(source, indices, labels, act)
    indices = _category_indices(categories, labels, None) or None
    if isinstance(source, Image):
        plane = _plane(source.numpy_view(), name)
        if source.image_format == ImageFormat.GRAY8:
            return _category_alpha(plane, indices, None if labels is None else len(labels) == 1)
        if source.image_format == ImageFormat.VEC32F1:
            return _checked_float(plane, name)
        raise ValueError(
            f"{name} Image must be VEC32F1 (confidence) or GRAY8 (category), got {source.image_format.name}"
        )
    if isinstance(source, PILImage.Image):
        if source.mode not in ("L", "1", "F"):
            raise ValueError(f"{name} PIL image must have mode L (8-bit alpha), 1 or F, got {source.mode}")
        source = np.asarray(source)
    if not isinstance(source, np.ndarray):
        kind = type(source).__name__
        raise TypeError(
            f"{name} must be a segmentation result, a segkit Image, a numpy array or a PIL image, got {kind}"
        )
    if indices is not None:
        return _category_alpha(_plane(source, name), indices, None)
    return _array_alpha(source, name)


def _array_alpha(array: np.ndarray, name: str) -> np.ndarray:
    """A numpy mask as float32 alpha by the documented dtype rules (refusing a category mask's view as-is)."""
    plane = _plane(array, name)
    if plane.dtype == np.bool_:
        return plane.astype(np.float32)
    if plane.dtype == np.uint8:
        if array.ndim == 3:
            raise ValueError(
                f"{name} is a uint8 (H, W, 1) array, the shape of a result's category_mask.numpy_view(), which holds "
                f"class indices (for the selfie models 0 marks the person, not the background), not alpha: "
                f"{_SELFIE_HINT}; or give categories= to pick classes from it. An 8-bit alpha mask is (H, W)"
            )
        scaled: np.ndarray = np.asarray(plane, np.float32) * np.float32(1 / 255)
        return scaled
    if np.issubdtype(plane.dtype, np.floating):
        return _checked_float(plane, name)
    raise TypeError(f"{name} must be float (confidence), bool or uint8 (8-bit alpha), got {plane.dtype}")


def _resize_plane(plane: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """A float32 plane resized (bilinear, Pillow) to ``shape`` (H, W); the plane itself when already that size."""
    if plane.shape == shape:
        return plane
    pil = PILImage.fromarray(np.ascontiguousarray(plane, np.float32), "F")
    return np.asarray(pil.resize((shape[1], shape[0]), PILImage.Resampling.BILINEAR))


def subject_mask(
    source: MaskInput,
    *,
    categories: CategorySpec | None = None,
    shape: tuple[int, int] | None = None,
    labels: Sequence[str] | None = None,
    activation: object = None,
    segmenter: ImageSegmenter | None = None,
) -> np.ndarray:
    """The subject's soft mask: a new float32 (H, W) alpha in [0, 1], subject = 1, by the rules in the module docs.

    ``categories``: indices or label names of the subject (default: everything but category 0 / "background";
    for the selfie models, the person). ``labels``: the model's label names (``segmenter.labels``), needed for names
    and to tell a one-class model's category mask. ``activation``: "none" | "sigmoid" | "softmax" (the model's
    ``SEGMENTER_METADATA``); without it (or ``segmenter``), confidence masks outside [0, 1] are read as logits.
    ``shape``: (H, W) to upsample the mask to (bilinear), e.g. the image's size.
    """
    alpha = _resolve(source, categories, labels, activation, segmenter)
    if shape is not None:
        if len(shape) != 2 or min(int(shape[0]), int(shape[1])) < 1:
            raise ValueError(f"shape must be (height, width) of positive ints, got {shape!r}")
        alpha = _resize_plane(alpha, (int(shape[0]), int(shape[1])))
    return np.array(alpha, np.float32, order="C", copy=True)


def mask_to_alpha(mask: MaskInput, shape: tuple[int, int] | None = None, name: str = "mask") -> np.ndarray:
    """A mask as a new float32 (H, W) alpha; ``shape`` (H, W) given: the mask must already have that size.

    Unlike ``subject_mask(shape=...)`` this never resizes: it is the strict check for callers that expect a mask
    of the image's size.
    """
    alpha = _resolve(mask, name=name)
    if shape is not None and alpha.shape != tuple(shape):
        raise ValueError(f"{name} has size {alpha.shape[1]}x{alpha.shape[0]} but the image is {shape[1]}x{shape[0]}")
    return np.array(alpha, np.float32, order="C", copy=True)


def _alpha_u8(alpha: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """A float alpha as rounded 8-bit alpha of the image's size (upsampled once when smaller or larger).

    ``alpha`` lies in [0, 1] within ``_RANGE_TOLERANCE``, as ``_resolve`` gives it, so no clip is needed.
    """
    if alpha.shape != shape:
        alpha = _resize_plane(alpha, shape)
    out = np.empty(shape, np.uint8)
    _split_rows(shape[0], shape[1], lambda top, bottom: _round_alpha(alpha[top:bottom], out[top:bottom]))
    return out


def _round_alpha(alpha: np.ndarray, out: np.ndarray) -> None:
    """Float alpha (in [0, 1] within ``_RANGE_TOLERANCE``) rounded to 8 bits into ``out``: alpha * 255 + 0.5 lies in
    [0.24, 255.76], so the cast's truncation rounds it, with no clip."""
    np.add(alpha * np.float32(255.0), np.float32(0.5), out=out, casting="unsafe")


def _alpha_for(pixels: np.ndarray, mask: object, refine: str) -> np.ndarray:
    """The subject's 8-bit alpha at the (checked) image's size, refined as asked."""
    if refine not in _REFINE_CHOICES:
        raise ValueError(f"refine must be one of {', '.join(_REFINE_CHOICES)}, got {refine!r}")
    alpha = _resolve(mask)
    shape = (pixels.shape[0], pixels.shape[1])
    if refine == "guided":
        return _guided_u8(pixels, alpha, _default_radius(shape), 1e-3)
    if refine == "feather":
        return _alpha_u8(_feather(_resize_plane(alpha, shape), _default_radius(shape) / 2.0), shape)
    return _alpha_u8(alpha, shape)


def _default_radius(shape: tuple[int, int]) -> int:
    """The refinement radius for an image: ~1.1% of its shorter side (8 px at 720p), at least 4.

    It must exceed the width of the mask's soft edge, which a 256x256 model stretched over the image sets.
    """
    return max(4, round(min(shape) / 90))


# --- blurring -------------------------------------------------------------------------------------------------------


def _scale_for(sigma: float) -> int:
    """The downscale factor a Gaussian of ``sigma`` tolerates: the blur is computed at 1/factor size."""
    if sigma >= 12:
        return 8
    if sigma >= 8:
        return 4
    if sigma >= 4:
        return 2
    return 1


def blur_background(image: ImageInput, mask: MaskInput, strength: float = 15.0, *, refine: str = "none") -> np.ndarray:
    """Blur everything outside the subject (Gaussian, ``strength`` = sigma in pixels); the subject stays sharp.

    The blur is mask-aware (a normalized convolution of the background only: blur(image * (1 - a)) / blur(1 - a)),
    so the subject's colors do not bleed into the blurred background as a halo. It runs on a 1/8-size image for
    sigma >= 12 (>= 8: quarter, >= 4: half size) and is upsampled once; the composite with the sharp subject is full
    size.
    """
    pixels = _pixels(image)
    sigma = _check_nonnegative(strength, "strength")
    alpha = _alpha_for(pixels, mask, refine)
    if sigma == 0:
        return np.array(pixels, copy=True)
    height, width = alpha.shape
    factor = _scale_for(sigma)
    colors = _subject_pixels(pixels, None)  # the output: the blurred background is pasted over its background
    weight = np.subtract(np.uint8(255), alpha)
    means: dict[int, tuple[PILImage.Image, PILImage.Image]] = {}

    def average(top: int, bottom: int) -> None:  # top is a multiple of the factor, so the halves reduce alike
        # Normalized convolution: color * w and w = 1 - alpha are averaged down separately, blurred together as
        # premultiplied RGBa and divided at the small size, so no subject color leaks out. Where the division
        # differs from a full-size one (w ~ 0), the sharp subject covers it. When the blur runs at 1/2 size or less,
        # the product is made of one pixel of each 2x2 (its color times its own weight, so still no subject color):
        # a quarter of the full-size paste, the same PSNR against the exact blur (the tests' photos: within 0.9 dB).
        step = 2 if factor > 1 else 1
        rows_weight = PILImage.fromarray(np.ascontiguousarray(weight[top:bottom:step, ::step]), "L")
        sampled = np.ascontiguousarray(_packed(colors[top:bottom])[::step, ::step])
        product = PILImage.new("RGBX", (sampled.shape[1], sampled.shape[0]))
        product.paste(rgbx_canvas(sampled.view(np.uint8).reshape(*sampled.shape, 4)), (0, 0), rows_weight)
        left = factor // step  # the reduction still to do
        means[top] = (product.reduce(left), rows_weight.reduce(left)) if left > 1 else (product, rows_weight)

    _split_rows(height, width, average, step=factor)
    parts = [means[top] for top in sorted(means)]
    product = PILImage.fromarray(np.concatenate([np.asarray(p) for p, _ in parts]), "RGBX")
    weights = PILImage.fromarray(np.concatenate([np.asarray(w) for _, w in parts]), "L")
    blurred = PILImage.merge("RGBa", (*product.split()[:3], weights)).filter(ImageFilter.GaussianBlur(sigma / factor))
    background = blurred.convert("RGB").convert("RGBX")
    half_w, half = -(-width // 2), factor / 2
    middle = height // 4 * 2  # even: the two halves' half-size rows meet on a whole row

    def paste(top: int, bottom: int) -> None:  # top is 0 or middle
        size = (width, bottom - top)
        if factor > 1:
            # Interpolated to half size, then repeated 2x2: a smooth field cannot tell it from a full bilinear
            # upsample. Always in the same two halves of rows (Pillow's rounding depends on the box), each on its
            # own thread when there are two: the half-size interpolation is 1.6 ms of a 720p blur.
            rows = -(-bottom // 2) - top // 2
            box = (0.0, top / 2 / half, half_w / half, (top // 2 + rows) / half)
            part = background.resize((half_w, rows), PILImage.Resampling.BILINEAR, box=box)
            part = part.resize(size, PILImage.Resampling.NEAREST, box=(0.0, 0.0, width / 2, (bottom - top) / 2))
        else:
            part = background.crop((0, top, width, bottom))
        rgbx_canvas(colors[top:bottom]).paste(part, (0, 0), PILImage.fromarray(weight[top:bottom], "L"))

    def work(top: int, bottom: int) -> None:
        for first, last in ((0, middle), (middle, height)):
            if max(top, first) < min(bottom, last):
                paste(first, last)

    _split_rows(height, width, work, step=max(1, middle))
    return _with_alpha(_rgb(colors), pixels)


# --- compositing ----------------------------------------------------------------------------------------------------


def fit_background(background: ImageInput, width: int, height: int) -> np.ndarray:
    """``background`` scaled to cover width x height and centre-cropped (no bars, aspect ratio kept), uint8 RGB.

    ``replace_background`` does this itself for a background of another size; a video calls it once instead.
    """
    bg = _pixels(background, "background")
    bh, bw = bg.shape[:2]
    if (bh, bw) == (height, width):
        return np.ascontiguousarray(bg[:, :, :3])
    scale = max(width / bw, height / bh)
    sw, sh = max(width, round(bw * scale)), max(height, round(bh * scale))
    left, top = (sw - width) // 2, (sh - height) // 2
    # Only the part that is kept is resampled (the crop as a box in the background's own pixels): a 1x3000 strip
    # behind a 600x400 image would otherwise be scaled to 600x1,800,000 first.
    x_scale, y_scale = sw / bw, sh / bh
    box = (left / x_scale, top / y_scale, (left + width) / x_scale, (top + height) / y_scale)
    return np.asarray(_rgb_pil(bg).resize((width, height), PILImage.Resampling.LANCZOS, box=box))


_KEEP_FROM = 0.6  # at alpha <= this the edge color is all estimate; at _KEEP_TO and above, all image
_KEEP_TO = 1.0


def _weights(values: np.ndarray) -> np.ndarray:
    """8-bit weights (uint8, indexed by 8-bit alpha) from values in [0, 1]."""
    return np.clip(np.rint(values * 255.0), 0, 255).astype(np.uint8)


_LEVELS = np.arange(256) / 255.0
_KEEP = np.clip((_LEVELS - _KEEP_FROM) / (_KEEP_TO - _KEEP_FROM), 0.0, 1.0)
_IMAGE_WEIGHTS = _weights(_LEVELS * _KEEP / (1 - _LEVELS * (1 - _KEEP)))
"""m(a) = a k / (1 - a (1 - k)): the image's weight over the background in the first of two pastes."""
_ESTIMATE_WEIGHTS = _weights(_LEVELS * (1 - _KEEP))
"""a (1 - k): the estimate's weight in the second, so that the two give
a * (k * image + (1 - k) * estimate) + (1 - a) * background; the first does not wait for the estimate."""
_ESTIMATE_SHARES = _weights(1 - _KEEP)
"""1 - k: the estimate's share in a cutout's colors."""
_ALL_ESTIMATE = int(np.flatnonzero(_ESTIMATE_SHARES == 255).max())
"""The highest alpha whose cutout color is all estimate (153); above it, up to 254, image and estimate mix."""
_ESTIMATE_FROM = 0.85
"""Blocks whose mean alpha is below this give no color to the estimate: they may hold some of the old background."""
_BLOCK_WEIGHTS = (np.clip((_LEVELS - _ESTIMATE_FROM) / (1 - _ESTIMATE_FROM), 0.0, 1.0) ** 2).astype(np.float32)
_ESTIMATE_SCALE = 8  # the estimate is computed on 8x8 blocks; the colors it gives are used on a quarter-size grid
_TRUSTED_WEIGHT = np.float32(0.05)  # a cell with this much confident weight is trusted over the coarser cells
_FIELD_SHIFT = 2
_FIELD_STEP = 1 << _FIELD_SHIFT  # the estimated colors are interpolated on a grid of this step in pixels (4)


def _blur_axis(x: np.ndarray, axis: int) -> np.ndarray:
    """``x`` blurred along ``axis`` by the binomial taps [0.5, 1, 0.5] (zero outside): sigma 0.71 blocks, 6 px, in
    four array passes, each over whole rows (no transposed, strided reads). Unnormalized, as the normalized
    convolution divides it out; the centre tap is 1, so a cell's weight keeps the scale ``_TRUSTED_WEIGHT`` was set
    for."""
    shape = list(x.shape)
    shape[axis] += 2
    padded = np.zeros(shape, np.float32)
    inner = [slice(None)] * x.ndim
    inner[axis] = slice(1, -1)
    padded[tuple(inner)] = x
    inner[axis] = slice(None, -2)
    out: np.ndarray = padded[tuple(inner)]
    inner[axis] = slice(2, None)
    out = out + padded[tuple(inner)]
    out *= np.float32(0.5)
    out += x
    return out


def _pull_push(weighted: np.ndarray) -> np.ndarray | None:
    """Colors (3, h, w) from premultiplied colors and weights (4, h, w), holes filled from coarser levels.

    Pull: 2x2 sums down to one cell. Push: from the top down, each cell keeps its own color as far as its weight
    is trusted and takes its parent's for the rest, so a cell far from any weight gets the nearest ones' color.
    None when there is no weight at all. Few, whole-level array ops: on these small levels each op's fixed cost
    is most of the time.
    """
    levels = [weighted]
    while max(levels[-1].shape[1:]) > 1:
        level = levels[-1]
        height, width = level.shape[1:]
        if height % 2 or width % 2:  # a zero row or column (no weight) makes the pairs whole
            even = np.zeros((4, height + height % 2, width + width % 2), np.float32)
            even[:, :height, :width] = level
            level = even
        pairs = level[:, 0::2] + level[:, 1::2]
        levels.append(pairs[:, :, 0::2] + pairs[:, :, 1::2])
    top = levels.pop()
    if not top[3, 0, 0] > 0:
        return None
    colors: np.ndarray = top[:3] / top[3]
    for level in reversed(levels):
        height, width = level.shape[1:]
        weight = level[3]
        # (P + parent * (max(w, t) - w)) / max(w, t): the own color P / w at share min(w / t, 1), the parent's after
        room = np.maximum(weight, _TRUSTED_WEIGHT)
        inherited = colors.repeat(2, axis=1).repeat(2, axis=2)[:, :height, :width]
        inherited *= room - weight
        inherited += level[:3]
        inherited /= room
        colors = inherited
    return colors


def _samples(plane: np.ndarray, mode: str, rawmode: str, rows: int, columns: int) -> PILImage.Image:
    """Every fourth pixel across and down of a uint8 plane (H, W) or image (H, W, C), from its pixels 2, 6, 10, ...
    (or its last, for a plane under 3 pixels), as a ``rows`` x ``columns`` Pillow image; samples past the plane's end
    repeat its last ones.

    Pillow reads the rows in strides as it decodes them and picks the columns by a nearest-neighbour affine map, so
    only the samples are touched (numpy's strided copy of 3-byte pixels, and its edge pad, cost four times more).
    """
    height, width = plane.shape[:2]
    step = _ESTIMATE_SCALE // 2
    top, left = min(step // 2, height - 1), min(step // 2, width - 1)
    taken_rows, taken_columns = len(range(top, height, step)), len(range(left, width, step))
    source = np.ascontiguousarray(plane)  # a view already, for a whole image
    strided = PILImage.frombytes(mode, (width, taken_rows), source[top:], "raw", rawmode, source.strides[0] * step, 1)
    affine = (step, 0, left - step // 2, 0, 1, 0)  # column x samples step * (x + 1/2) + left - step / 2
    part = strided.transform((columns, rows), PILImage.Transform.AFFINE, affine, PILImage.Resampling.NEAREST)
    if taken_rows == rows and taken_columns == columns:
        return part
    padded = np.array(part)
    padded[taken_rows:] = padded[taken_rows - 1]
    padded[:, taken_columns:] = padded[:, taken_columns - 1 : taken_columns]
    return PILImage.fromarray(padded, mode)


def _block_means(pixels: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """Approximate 8x8 block means of an (H, W, 3|4) uint8 image's colors, with the alpha's as the fourth channel:
    (ceil(H / 8), ceil(W / 8), 4) uint8 from four samples per block (its pixels 2 and 6 across and down; blocks
    past the image's end repeat its last samples).

    A sixteenth of the pixels (``_samples``): a full reduce read them all at six times the cost, for a field that is
    blurred over blocks anyway. Read from the image itself, so it needs no full-size copy made first.
    """
    height, width = alpha.shape
    rows, columns = -(-height // _ESTIMATE_SCALE) * 2, -(-width // _ESTIMATE_SCALE) * 2
    rawmode = "RGB" if pixels.shape[2] == 3 else "RGBX"
    colors = _samples(pixels, "RGB", rawmode, rows, columns).reduce(2)
    means = np.empty((rows // 2, columns // 2, 4), np.uint8)
    means[:, :, :3] = np.asarray(colors)
    means[:, :, 3] = np.asarray(_samples(alpha, "L", "L", rows, columns).reduce(2))
    return means


def _estimate_source(blocks: np.ndarray) -> np.ndarray | None:
    """The subject's colors spread outward, at 1/8 size, as (3, h, w) float32: a normalized binomial convolution
    (sigma 6 px) of 8x8 block colors, weighted by how surely each block is all subject (mean alpha 0.85 -> 0,
    1 -> 1, squared).

    Near the edge it is the color of the nearby confident subject, free of the old background: blocks on the edge,
    whose colors mix both, weigh nothing. Beyond the blur's reach (a block), a pull-push pyramid fills in the
    nearest confident subject's color. ``blocks`` are ``_block_means``. None when no block is confidently subject:
    nothing to estimate from.
    """
    weight = _BLOCK_WEIGHTS[blocks[:, :, 3]]
    weighted = np.empty((4, *weight.shape), np.float32)  # channels first
    np.multiply(np.moveaxis(blocks[:, :, :3], 2, 0), weight, out=weighted[:3])
    weighted[3] = weight
    return _pull_push(_blur_axis(_blur_axis(weighted, 2), 1))


_LANES = np.uint64(0x0001000100010001)
"""One in each 16-bit lane of a uint64: a pixel's four channels side by side, so one integer op serves all four."""


def _estimate_field(colors: np.ndarray, height: int, width: int) -> np.ndarray:
    """The estimate (``_estimate_source``) on a quarter-size grid, packed RGBX (uint32, ceil(H / 4) x ceil(W / 4)),
    each cell standing for 4x4 pixels (a smooth field: a tenth of the cost of a full-size upsample).

    Bilinear at twice the size, Pillow's pixel centres (weights 3/4 and 1/4 across and down, edges clamped), exact
    to the rounding: each pixel widened to four 16-bit lanes of a uint64, where 16 * 255 cannot carry from one
    channel into the next (a fifth of the cost of Pillow's resize, whose 4-channel resampling loop is generic).
    ``colors`` (3, h, w) float32 is clipped to 0..255 in place.
    """
    rows, columns = colors.shape[1:]
    lanes = np.empty((rows + 2, columns, 4), np.uint16)
    np.clip(colors, 0.0, 255.0, out=colors)
    for channel in range(3):
        np.add(colors[channel], np.float32(0.5), out=lanes[1:-1, :, channel], casting="unsafe")  # rounded
    lanes[1:-1, :, 3] = 255
    lanes[0], lanes[-1] = lanes[1], lanes[-2]
    wide = lanes.view(np.uint64)[:, :, 0]
    centre = wide[1:-1] * np.uint64(3)
    down = np.empty((rows, 2, columns + 2), np.uint64)  # 2i: 3 x[i] + x[i - 1]; 2i + 1: 3 x[i] + x[i + 1]
    np.add(centre, wide[:-2], out=down[:, 0, 1:-1])
    np.add(centre, wide[2:], out=down[:, 1, 1:-1])
    down = down.reshape(2 * rows, columns + 2)
    down[:, 0], down[:, -1] = down[:, 1], down[:, -2]
    centre = down[:, 1:-1] * np.uint64(3)
    across = np.empty((2 * rows, columns, 2), np.uint64)
    np.add(centre, down[:, :-2], out=across[:, :, 0])
    np.add(centre, down[:, 2:], out=across[:, :, 1])
    across += _LANES * np.uint64(8)  # (9 a + 3 b + 3 c + d + 8) / 16, rounded
    across >>= np.uint64(4)
    across &= _LANES * np.uint64(255)  # drops the bits shifted in from the next lane
    grid = across.view(np.uint16).reshape(2 * rows, 2 * columns, 4).astype(np.uint8)
    grid_h, grid_w = -(-height // _FIELD_STEP), -(-width // _FIELD_STEP)
    return _packed(np.ascontiguousarray(grid[:grid_h, :grid_w]))


def _estimate_grid(pixels: np.ndarray, alpha: np.ndarray) -> np.ndarray | None:
    """The estimate's field (``_estimate_field``) for an image and its 8-bit alpha: the helper's share of an effect
    while the calling thread copies the image; None with no confident subject."""
    colors = _estimate_source(_block_means(pixels, alpha))
    return None if colors is None else _estimate_field(colors, alpha.shape[0], alpha.shape[1])


def _cells_at(indices: np.ndarray, width: int) -> np.ndarray:
    """The field cells (flat indices into the quarter-size grid) of the given ascending flat pixel indices of an
    image ``width`` wide.

    In int32 where they fit (every image under 2**31 pixels): its division and shifts run at three times int64's
    speed (the 170K soft pixels of a 720p selfie: 0.84 -> 0.28 ms).
    """
    small = not indices.size or int(indices[-1]) <= np.iinfo(np.int32).max
    kind: type[np.signedinteger[Any]] = np.int32 if small else np.int64
    flat = indices.astype(kind)
    rows: np.ndarray = flat // kind(width)
    flat -= rows * kind(width)  # the columns
    rows >>= _FIELD_SHIFT
    rows *= kind(-(-width // _FIELD_STEP))
    flat >>= _FIELD_SHIFT
    rows += flat
    return rows


def _estimate_at(grid: np.ndarray, indices: np.ndarray, width: int) -> np.ndarray:
    """The estimate's packed colors at the given flat pixel indices of an image ``width`` wide."""
    return np.take(grid.reshape(-1), _cells_at(indices, width))


def _packed(array: np.ndarray) -> np.ndarray:
    """A C-contiguous (H, W, 4) uint8 array's pixels as (H, W) uint32, sharing its memory."""
    packed: np.ndarray = array.view(np.uint32)[:, :, 0]
    return packed


def _edge(alpha: np.ndarray, low: int, high: int) -> np.ndarray:
    """The flat indices, in order, of the pixels with ``low <= alpha <= high``: along a mask's soft edge, a small
    share of the image, so that what only they need is done on them alone."""
    return np.flatnonzero((alpha - np.uint8(low)) <= high - low)


_STRIP = 1 << 17
"""Gathered pixels per step. Few large steps: each numpy or Pillow call releases the interpreter lock for long, so
two threads' halves run side by side (720p replace with 16K-pixel steps: 6.5-6.9 ms on one thread, slower split;
with 128K: 5.6 ms split). Fewer bytes than the image's, and a dedicated worker keeps them mapped (``batch``)."""


def _paste_gathered(base: np.ndarray, top: np.ndarray, weight: np.ndarray) -> None:
    """Pillow's masked paste of packed pixels ``top`` over ``base`` (in place), with 8-bit ``weight``: the same
    arithmetic as a paste of whole images, on pixels gathered from anywhere into one row."""
    mask = PILImage.frombuffer("L", (base.size, 1), weight, "raw", "L", 0, 1)
    over = rgbx_canvas(top.view(np.uint8).reshape(1, -1, 4))
    rgbx_canvas(base.view(np.uint8).reshape(1, -1, 4)).paste(over, (0, 0), mask)


def _in_steps(first: int, last: int, work: Callable[[int, int], None]) -> None:
    """Runs ``work(start, end)`` over ``first:last`` in steps of at most ``_STRIP`` gathered pixels."""
    for start in range(first, last, _STRIP):
        work(start, min(start + _STRIP, last))


def _split_items(count: int, work: Callable[[int, int], None]) -> None:
    """``_in_steps`` over ``count`` gathered pixels, in two halves on two threads when there are many."""
    _split_rows(count, 1, lambda first, last: _in_steps(first, last, work), threshold=_SPLIT_PIXELS // 8)


_BAND = 1 << 17
"""Pixels per band of ``_rgb``: a few large conversions. Small ones pay a fresh buffer each, and split over two
threads they wait on each other's interpreter lock (measured at 720p on 2 cores: 60 bands 0.98 ms, split 1.9 ms;
7 bands 0.61 ms)."""


def _rgb(rgbx: np.ndarray) -> np.ndarray:
    """An (H, W, 4) array's first three channels as a new (H, W, 3) array, by Pillow in a few bands on this
    thread (one large ``tobytes`` of the whole image costs more: its buffer is a fresh allocation each time)."""
    height, width = rgbx.shape[:2]
    out = np.empty((height, width, 3), np.uint8)
    band = max(1, _BAND // width)
    for start in range(0, height, band):
        end = min(start + band, height)
        out[start:end] = np.frombuffer(rgbx_canvas(rgbx[start:end]).tobytes("raw", "RGB"), np.uint8).reshape(
            end - start, width, 3
        )
    return out


_GATHERED_SHARES = {"replace": 0.25, "cutout": 0.5}
"""Above this share of the image's pixels, an effect's edge is mixed in whole rows instead: gathering then costs
more than it saves (measured at 720p: replace breaks even at ~30% of the pixels soft, cutout beyond 40%)."""


def _gathered(edge: np.ndarray, pixels: int, effect: str) -> bool:
    """Whether the edge's pixels are few enough to be mixed gathered rather than in whole rows."""
    return edge.size <= _GATHERED_SHARES[effect] * pixels


def _weight_image(alpha: np.ndarray, weights: np.ndarray | None) -> PILImage.Image:
    """Rows of 8-bit alpha as a Pillow "L" mask, mapped through ``weights`` (a 256-entry table) when given."""
    mask = PILImage.fromarray(alpha, "L")
    return mask if weights is None else mask.point(weights.tolist())


def _field_cells(grid: np.ndarray, top: int, bottom: int, width: int) -> np.ndarray:
    """The grid rows covering pixel rows ``top:bottom`` (``top`` a multiple of the field's step), each repeated to
    the image's ``width``: packed colors, one row per ``_FIELD_STEP`` pixel rows."""
    return np.repeat(grid[top // _FIELD_STEP : -(-bottom // _FIELD_STEP)], _FIELD_STEP, axis=1)[:, :width]


def _estimate_rows(grid: np.ndarray, top: int, bottom: int, width: int) -> np.ndarray:
    """Rows ``top:bottom`` (``top`` a multiple of the field's step) of the full-size estimate, (h, W, 4) uint8."""
    rows = np.repeat(_field_cells(grid, top, bottom, width), _FIELD_STEP, axis=0)[: bottom - top]
    return np.ascontiguousarray(rows).view(np.uint8).reshape(bottom - top, width, 4)


def _copy_pixels(pixels: np.ndarray, out: np.ndarray, top: int, bottom: int) -> None:
    """Rows ``top:bottom`` of an (H, W, 3|4) uint8 image into (H, W, 4) ``out``, by Pillow (its fourth byte the
    image's own or 255: for an effect that writes its alpha last, or reads it elsewhere)."""
    rows = np.ascontiguousarray(pixels[top:bottom])  # no copy for rows of a C-contiguous image
    rgbx_canvas(out[top:bottom]).frombytes(rows, "raw", "RGB" if pixels.shape[2] == 3 else "RGBX")


def _subject_pixels(pixels: np.ndarray, alpha: np.ndarray | None) -> np.ndarray:
    """The image's colors as (H, W, 4) uint8, written by Pillow, with ``alpha`` as the fourth channel when given
    (else the raw copy's: for an effect that writes its alpha last, or reads it from ``alpha``)."""
    height, width = pixels.shape[:2]
    out = np.empty((height, width, 4), np.uint8)

    def work(top: int, bottom: int) -> None:
        _copy_pixels(pixels, out, top, bottom)
        if alpha is not None:
            rgbx_canvas(out[top:bottom]).frombytes(alpha[top:bottom], "raw", "X")

    _split_rows(height, width, work)
    return out


def replace_background(
    image: ImageInput,
    mask: MaskInput,
    background: ImageInput | Color,
    *,
    refine: str = "none",
    estimate_colors: bool = True,
) -> np.ndarray:
    """Put the subject on a new ``background``: an image (scaled to cover and centre-cropped) or a color.

    ``estimate_colors`` (default) removes the light fringe around hair and shoulders: the image's pixels along the
    mask's soft edge are a mix of subject and old background, so there the subject's color is estimated from the
    nearby confident subject (a 1/8-size normalized convolution) instead. ``refine`` ("none", "feather",
    "guided") reshapes the mask itself first.
    """
    pixels = _pixels(image)
    height, width = pixels.shape[:2]
    if isinstance(background, (np.ndarray, Image, PILImage.Image)):
        fitted = fit_background(background, width, height)

        def fill(rows: PILImage.Image, top: int, bottom: int) -> None:
            rows.frombytes(fitted[top:bottom], "raw", "RGB")

    else:
        color = (*parse_color(background, "background"), 255)

        def fill(rows: PILImage.Image, top: int, bottom: int) -> None:
            rows.paste(color, (0, 0, width, bottom - top))

    alpha = _alpha_for(pixels, mask, refine)
    subject = np.empty((height, width, 4), np.uint8)  # its fourth byte is never read: the alpha comes from ``alpha``
    backdrop = np.empty((height, width, 4), np.uint8)
    grids: list[np.ndarray | None] = []
    edges: list[np.ndarray] = []

    def lay(top: int, bottom: int) -> None:  # the image's copy, the background, and the opaque subject over it
        _copy_pixels(pixels, subject, top, bottom)
        fill(rgbx_canvas(backdrop[top:bottom]), top, bottom)
        np.copyto(_packed(backdrop[top:bottom]), _packed(subject[top:bottom]), where=alpha[top:bottom] == 255)

    def lay_and_find() -> None:
        lay(0, height)
        edges.append(_edge(alpha, 1, 254))

    if estimate_colors:  # the estimate is made on the helper thread meanwhile, from the image itself
        _side_by_side(height * width, lambda: grids.append(_estimate_grid(pixels, alpha)), lay_and_find)
    else:
        _split_rows(height, width, lay)
        edges.append(_edge(alpha, 1, 254))
    grid, edge = grids[0] if grids else None, edges[0]
    pixels_of_subject, alphas = _packed(subject).reshape(-1), alpha.reshape(-1)
    packed_backdrop = _packed(backdrop).reshape(-1)

    def mix(first: int, last: int) -> None:
        # The soft edge only: out = a * (k * image + (1 - k) * estimate) + (1 - a) * background as two pastes, the
        # image's (weight a k / (1 - a (1 - k))) and the estimate's (weight a (1 - k)); plainly a * image without.
        indices = edge[first:last]
        edge_alpha = np.take(alphas, indices)
        mixed = np.take(packed_backdrop, indices)
        subject_colors = np.take(pixels_of_subject, indices)
        if not estimate_colors:
            _paste_gathered(mixed, subject_colors, edge_alpha)
        else:
            _paste_gathered(mixed, subject_colors, np.take(_IMAGE_WEIGHTS, edge_alpha))
            # with no confident subject anywhere there is no estimate: the image's own colors, a plain composite
            second = subject_colors if grid is None else _estimate_at(grid, indices, width)
            _paste_gathered(mixed, second, np.take(_ESTIMATE_WEIGHTS, edge_alpha))
        packed_backdrop[indices] = mixed

    def mix_rows(top: int, bottom: int) -> None:  # the same pastes on whole rows, for a mask soft nearly everywhere
        rows, edge_alpha = rgbx_canvas(backdrop[top:bottom]), alpha[top:bottom]
        subject_rows = rgbx_canvas(subject[top:bottom])
        if not estimate_colors:
            rows.paste(subject_rows, (0, 0), _weight_image(edge_alpha, None))
        else:
            rows.paste(subject_rows, (0, 0), _weight_image(edge_alpha, _IMAGE_WEIGHTS))
            second = subject_rows if grid is None else rgbx_canvas(_estimate_rows(grid, top, bottom, width))
            rows.paste(second, (0, 0), _weight_image(edge_alpha, _ESTIMATE_WEIGHTS))

    if _gathered(edge, alpha.size, "replace"):
        _split_items(edge.size, mix)
    else:
        _split_rows(height, width, mix_rows, step=_FIELD_STEP)
    return _with_alpha(_rgb(backdrop), pixels)


def cutout(image: ImageInput, mask: MaskInput, *, refine: str = "none", estimate_colors: bool = True) -> np.ndarray:
    """The image as RGBA with the subject's 8-bit alpha (times the image's own alpha, if it has one).

    ``estimate_colors`` (default) gives the semi-transparent edge pixels the estimated subject color, as for
    ``replace_background``, so the cutout shows no fringe of the old background wherever it is placed; pixels with
    alpha 1 keep the image's color. ``refine`` as for ``replace_background``.
    """
    pixels = _pixels(image)
    alpha = _alpha_for(pixels, mask, refine)
    if pixels.shape[2] == 4:
        product = alpha.astype(np.uint16) * pixels[:, :, 3]
        product += 127
        alpha = (product // 255).astype(np.uint8)
    if not estimate_colors:
        return _subject_pixels(pixels, alpha)
    height, width = alpha.shape
    out = np.empty((height, width, 4), np.uint8)
    colors = _packed(out)
    flat, alphas = colors.reshape(-1), alpha.reshape(-1)
    grids: list[np.ndarray | None] = []
    edges: list[tuple[np.ndarray, ...]] = []

    def copy_and_find() -> None:  # meanwhile: the image's copy, the pixels mixing image and estimate, their parts
        _copy_pixels(pixels, out, 0, height)
        mixed = _edge(alpha, _ALL_ESTIMATE + 1, 254)
        if not _gathered(mixed, alpha.size, "cutout"):
            return
        shares = np.take(_ESTIMATE_SHARES, np.take(alphas, mixed))
        edges.append((mixed, np.take(flat, mixed), _cells_at(mixed, width), shares))

    _side_by_side(height * width, lambda: grids.append(_estimate_grid(pixels, alpha)), copy_and_find)
    grid = grids[0]

    def write_alpha(top: int, bottom: int) -> None:
        rgbx_canvas(out[top:bottom]).frombytes(alpha[top:bottom], "raw", "X")

    if grid is None:  # no confident subject anywhere: the image's own colors
        _split_rows(height, width, write_alpha)
        return out
    if not edges:  # a mask soft nearly everywhere: the estimate pasted on whole rows

        def paste_rows(top: int, bottom: int) -> None:
            rows = rgbx_canvas(out[top:bottom])
            shares = _weight_image(alpha[top:bottom], _ESTIMATE_SHARES)
            rows.paste(rgbx_canvas(_estimate_rows(grid, top, bottom, width)), (0, 0), shares)
            write_alpha(top, bottom)

        _split_rows(height, width, paste_rows, step=_FIELD_STEP)
        return out
    ((mixed, image_colors, cells, shares),) = edges
    cells_of_grid = grid.reshape(-1)

    def mix(first: int, last: int) -> None:  # image and estimate by the share
        mixed_colors = image_colors[first:last]
        _paste_gathered(mixed_colors, np.take(cells_of_grid, cells[first:last]), shares[first:last])
        flat[mixed[first:last]] = mixed_colors

    def copy_estimate(top: int, bottom: int) -> None:  # top is a multiple of the field's step
        step = _FIELD_STEP
        field = _field_cells(grid, top, bottom, width)
        whole = alpha[top:bottom] <= _ALL_ESTIMATE
        split = top + (bottom - top) // step * step
        np.copyto(
            colors[top:split].reshape(-1, step, width),
            field[: (split - top) // step, None],
            where=whole[: split - top].reshape(-1, step, width),
        )
        if split < bottom:
            np.copyto(colors[split:bottom], field[-1], where=whole[split - top :])

    # Three kinds of pixel, each written once: opaque ones keep the image's color (already there), those at or below
    # _ALL_ESTIMATE take the estimate's whole (masked copies of whole rows, on the helper thread), and the few between
    # are mixed (gathered, on this one: small steps gain nothing from a split). The alpha goes in last: the copies and
    # mixes write the fourth byte too.
    _side_by_side(height * width, lambda: copy_estimate(0, height), lambda: _in_steps(0, mixed.size, mix))
    _split_rows(height, width, write_alpha)
    return out


# --- recoloring (OKLab) ---------------------------------------------------------------------------------------------

_LMS_FROM_LINEAR = np.array(
    [[0.4122214708, 0.5363325363, 0.0514459929], [0.2119034982, 0.6806995451, 0.1073969566],
     [0.0883024619, 0.2817188376, 0.6299787005]], np.float64)  # fmt: skip
_LAB_FROM_LMS = np.array(
    [[0.2104542553, 0.7936177850, -0.0040720468], [1.9779984951, -2.4285922050, 0.4505937099],
     [0.0259040371, 0.7827717662, -0.8086757660]], np.float64)  # fmt: skip
_LMS_FROM_LAB = np.linalg.inv(_LAB_FROM_LMS)
_LINEAR_FROM_LMS = np.linalg.inv(_LMS_FROM_LINEAR)
_LINEAR_LUT = np.where(
    np.arange(256) / 255.0 <= 0.04045, np.arange(256) / 255.0 / 12.92, ((np.arange(256) / 255.0 + 0.055) / 1.055) ** 2.4
).astype(np.float32)
"""sRGB level -> linear light (exact to float32 for every 8-bit value)."""
_SRGB_STEPS = 1 << 16
_SRGB_LUT = np.clip(
    np.rint(
        255.0
        * np.where(
            (t := np.arange(_SRGB_STEPS + 1) / _SRGB_STEPS) <= 0.0031308, t * 12.92, 1.055 * t ** (1 / 2.4) - 0.055
        )
    ),
    0,
    255,
).astype(np.uint8)
"""Linear light in 1/65536 steps -> rounded sRGB level (within one level of the exact curve, usually equal)."""


_F32 = np.float32
_MATRICES = {
    name: matrix.astype(np.float32)
    for name, matrix in (
        ("lms_from_linear", _LMS_FROM_LINEAR),
        ("lab_from_lms", _LAB_FROM_LMS),
        ("lms_from_lab", _LMS_FROM_LAB),
        ("linear_from_lms", _LINEAR_FROM_LMS),
    )
}


def _mix(matrix: str, x: np.ndarray, out: np.ndarray) -> np.ndarray:
    """``_MATRICES[matrix] @ x`` into ``out`` for (3, N) float32 channels, by ``einsum``: numpy's own loop, a separate
    multiply and add per term (so the same bits for any N and any split, unlike BLAS's ``@``, and no BLAS threads),
    3.5x faster than a multiply and an add per term and channel."""
    mixed: np.ndarray = np.einsum("ij,jn->in", _MATRICES[matrix], x, out=out)
    return mixed


def _oklab(rgb: np.ndarray, lab: np.ndarray, scratch: np.ndarray) -> np.ndarray:
    """(3, N) uint8 sRGB channels to float32 OKLab (L, a, b) in ``lab`` ((3, N); ``scratch`` the same, overwritten)
    (Björn Ottosson's definition)."""
    lms = _mix("lms_from_linear", np.take(_LINEAR_LUT, rgb, out=lab), scratch)
    np.cbrt(lms, out=lms)
    return _mix("lab_from_lms", lms, lab)


def _srgb_to_oklab(rgb: np.ndarray) -> np.ndarray:
    """(N, 3) uint8 sRGB to (N, 3) float32 OKLab."""
    buffers = np.empty((2, 3, len(rgb)), np.float32)
    return np.ascontiguousarray(_oklab(rgb.T, buffers[0], buffers[1]).T)


def _oklab_to_srgb(lab: np.ndarray, scratch: np.ndarray) -> np.ndarray:
    """(3, N) float32 OKLab (overwritten, as is ``scratch``) to (3, N) uint8 sRGB (clipped into gamut, rounded
    through a 65536-step table)."""
    roots = _mix("lms_from_lab", lab, scratch)
    cubes = np.multiply(roots, roots, out=lab)
    cubes *= roots
    linear = _mix("linear_from_lms", cubes, scratch)
    np.clip(linear, 0.0, 1.0, out=linear)
    linear *= _F32(_SRGB_STEPS)
    linear += _F32(0.5)
    steps = lab.view(np.int32)
    np.copyto(steps, linear, casting="unsafe")  # truncation, as astype
    out: np.ndarray = np.take(_SRGB_LUT, steps)
    return out


_OKLAB_CHUNK = 1 << 15
"""Pixels per step of ``_recolor_in_place``: its two float32 buffers (768 KB) stay in cache and are reused, where
whole-size ones (7 MB for a 720p frame's hair) were page-faulted afresh each call and read from memory each step:
a video frame's 304K hair pixels 14.6 -> 6.9 ms, the same bits (every step is element-wise)."""


def _recolor_in_place(rgb: np.ndarray, weight: np.ndarray, target: np.ndarray) -> None:
    """Pixels ((3, N) uint8 channels, overwritten) with their OKLab (a, b) moved toward the target's by ``weight``
    (L kept), in steps of ``_OKLAB_CHUNK``."""
    count = rgb.shape[1]
    buffers = np.empty((2, 3, min(count, _OKLAB_CHUNK)), np.float32)
    for start in range(0, count, _OKLAB_CHUNK):
        end = min(start + _OKLAB_CHUNK, count)
        lab, scratch = buffers[0, :, : end - start], buffers[1, :, : end - start]
        _oklab(rgb[:, start:end], lab, scratch)
        lightness, a, b = lab[0], lab[1], lab[2]
        chroma_scale = np.clip(lightness / _F32(max(float(target[0]), 1e-6)), 0.0, 1.0)
        part = weight[start:end]
        a += part * (chroma_scale * _F32(target[1]) - a)
        b += part * (chroma_scale * _F32(target[2]) - b)
        rgb[:, start:end] = _oklab_to_srgb(lab, scratch)


_MIN_TINT = 3
"""The smallest 8-bit weight ``recolor`` applies: a weight of 1 or 2 (< 1%) is the mask's noise, not hair."""


def recolor(image: ImageInput, mask: MaskInput, color: Color, strength: float = 0.8) -> np.ndarray:
    """Tint the subject (hair) toward ``color`` while keeping its shading.

    Works in OKLab: lightness L is kept, so highlights and shadows survive, and only hue and chroma (a, b) move
    toward the target's. OKLab is used over CIELab or HSL because its hue stays constant as chroma changes (no blue to
    purple drift) and L tracks perceived lightness. The target chroma is scaled by min(1, L / L_target) so dark strands
    get a dark version of the color instead of an out-of-gamut glow. The weight is the 8-bit alpha times ``strength``
    (0..1), rounded to 1/255; weights under ``_MIN_TINT`` / 255 (about 1%: the model's noise in the mask's far tail,
    up to a third of a hair mask's nonzero pixels, each of which it would move by at most 3 levels) leave a pixel
    bit-identical, and only the others are converted (float32 per channel, table lookups for the sRGB curve, split
    over two threads when many).
    """
    pixels = _pixels(image)
    amount = _check_fraction(strength, "strength")
    target = _srgb_to_oklab(np.asarray([parse_color(color)], np.uint8))[0]
    shape = (pixels.shape[0], pixels.shape[1])
    plane = _resize_plane(_resolve(mask), shape).reshape(-1)
    out = np.array(pixels, copy=True, order="C")
    levels = np.rint(np.arange(256) * amount).astype(np.uint8)
    levels[levels < _MIN_TINT] = 0
    tinted = np.flatnonzero(levels)
    if tinted.size == 0:
        return out
    # The 8-bit alpha only where it can tint: float alphas above (first - 1) / 255 are a superset of those whose
    # rounded 8-bit value reaches the first tinting level (half a level of margin), so the full-size mask is read
    # once, in one comparison (the 8-bit alpha and its weights of every pixel cost four passes).
    candidates = np.flatnonzero(plane > _F32((int(tinted[0]) - 1) / 255))
    alpha8 = np.empty(candidates.size, np.uint8)
    _round_alpha(np.take(plane, candidates), alpha8)
    weight8 = np.take(levels, alpha8)
    keep = weight8 != 0
    where, weight8 = candidates[keep], weight8[keep]
    if where.size == 0:
        return out
    channels = pixels.shape[2]
    items = out.reshape(-1, channels).view(np.dtype((np.void, channels)))[:, 0]  # whole pixels: one gather, one put
    gathered = np.take(items, where).view(np.uint8).reshape(-1, channels)
    weight = weight8.astype(np.float32) * _F32(1 / 255)

    def work(first: int, last: int) -> None:
        _recolor_in_place(gathered[first:last, :3].T, weight[first:last], target)

    _split_rows(where.size, 1, work, threshold=50_000)
    items[where] = gathered.view(items.dtype)[:, 0]
    return out


# --- category overlays ----------------------------------------------------------------------------------------------


def _voc_colormap(n: int = 256) -> list[tuple[int, int, int]]:
    """The PASCAL VOC color map (bit-interleaved class index): person is (192, 128, 128), as in most demos."""
    colors = []
    for index in range(n):
        r = g = b = 0
        c = index
        for shift in range(7, -1, -1):
            r |= ((c >> 0) & 1) << shift
            g |= ((c >> 1) & 1) << shift
            b |= ((c >> 2) & 1) << shift
            c >>= 3
        colors.append((r, g, b))
    return colors


DEFAULT_PALETTE: tuple[tuple[int, int, int] | None, ...] = (None, *_voc_colormap()[1:])
"""Category colors by index: 0 (background) is left uncolored (None), the rest follow the PASCAL VOC map."""


def palette_colors(palette: Sequence[Color | None] | np.ndarray | None) -> list[tuple[int, int, int] | None]:
    """A palette as a list of (r, g, b) or None (category left uncolored); ``None`` gives ``DEFAULT_PALETTE``."""
    if palette is None:
        return list(DEFAULT_PALETTE)
    if isinstance(palette, np.ndarray):
        if palette.ndim != 2 or palette.shape[1] != 3:
            raise ValueError(f"palette array must have shape (N, 3), got {palette.shape}")
        palette = [tuple(int(v) for v in row) for row in palette]
    if isinstance(palette, (str, bytes)) or not isinstance(palette, Sequence) or len(palette) == 0:
        raise ValueError(f"palette must be a non-empty sequence of colors, got {palette!r}")
    return [None if c is None else parse_color(c, f"palette[{i}]") for i, c in enumerate(palette)]


def _category_map(source: object, labels: Sequence[str] | None) -> np.ndarray:
    """The per-pixel category (H, W) uint8 of an overlay's mask input; selfie masks become 0 = background, 1 = person.

    A result gives its category mask (or the argmax of its confidence masks); a float/bool mask gives 1 where the
    subject's alpha is >= 0.5.
    """
    selfie = None if labels is None else len(labels) == 1
    if isinstance(source, ImageSegmenterResult):
        if source.category_mask is not None:
            source = source.category_mask
        elif source.confidence_masks:
            planes = [_plane(m.numpy_view(), "confidence mask") for m in source.confidence_masks]
            if len(planes) == 1:
                return (planes[0] >= 0.5).astype(np.uint8)
            return np.asarray(np.argmax(np.stack(planes, axis=2), axis=2), np.uint8)
        else:
            raise ValueError("the result has neither confidence masks nor a category mask")
    if isinstance(source, Image):
        if source.image_format != ImageFormat.GRAY8:
            return (_resolve(source) >= 0.5).astype(np.uint8)
        source = source.numpy_view()
    elif isinstance(source, PILImage.Image):
        source = np.asarray(source)
    if not isinstance(source, np.ndarray):
        raise TypeError(f"category_mask must be a result, a segkit Image, a numpy array or a PIL image, got {source!r}")
    plane = _plane(source, "category_mask")
    if plane.dtype == np.bool_ or np.issubdtype(plane.dtype, np.floating):
        return (_array_alpha(plane, "category_mask") >= 0.5).astype(np.uint8)
    if not np.issubdtype(plane.dtype, np.integer) or plane.dtype.itemsize > 2:
        raise TypeError(f"category_mask must be uint8 (or a small integer type), got {plane.dtype}")
    if np.issubdtype(plane.dtype, np.signedinteger) and plane.size and int(plane.min()) < 0:
        raise ValueError("category_mask contains negative categories")
    if selfie is None:
        selfie = _selfie_convention(plane)
    if selfie:
        return np.asarray(plane == 0, np.uint8)
    if plane.dtype != np.uint8:
        if plane.size and int(plane.max()) > 255:
            raise ValueError(f"category_mask has category {int(plane.max())}; at most 255 categories are supported")
        return plane.astype(np.uint8)
    return plane


def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    """Pillow's default font at ``size`` pixels (its scalable version when FreeType is available)."""
    try:
        return ImageFont.load_default(size=size)
    except (ImportError, OSError, TypeError):
        return ImageFont.load_default()


def legend(
    labels: Sequence[str],
    palette: Sequence[Color | None] | np.ndarray | None = None,
    categories: Sequence[int] | None = None,
    *,
    text_size: int = 12,
) -> np.ndarray:
    """A uint8 RGB legend image: one row per category (a color swatch and its name) in Pillow's default font.

    ``categories`` picks which indices to list (default: every label that has a color); ``text_size`` is the font's
    size in pixels (``overlay`` derives it from the image height).
    """
    colors = palette_colors(palette)
    names = _label_names(labels)
    if isinstance(text_size, bool) or not isinstance(text_size, int) or not 4 <= text_size <= 512:
        raise ValueError(f"text_size must be an int in 4..512, got {text_size!r}")
    if categories is None:
        categories = [i for i in range(len(labels)) if i < len(colors) and colors[i] is not None]
    return np.array(_legend_box(names, tuple(colors), tuple(int(i) for i in categories), text_size))


def _label_names(labels: Sequence[str]) -> tuple[str, ...]:
    """A legend's labels as a tuple of str; TypeError for anything else (a lone string included)."""
    if isinstance(labels, str) or not all(isinstance(s, str) for s in labels):
        raise TypeError(f"labels must be a sequence of str, got {labels!r}")
    return tuple(labels)


_LegendKey = tuple[tuple[str, ...], tuple[tuple[int, int, int] | None, ...], tuple[int, ...], int]
_legends: OrderedDict[_LegendKey, np.ndarray] = OrderedDict()
_legends_lock = threading.Lock()
_LEGEND_BYTES = 16 << 20
"""Legends kept drawn, in bytes at most (a quarter of it at most for one legend: a giant image's is drawn each time)."""


def _legend_box(
    labels: tuple[str, ...],
    colors: tuple[tuple[int, int, int] | None, ...],
    categories: tuple[int, ...],
    text_size: int,
) -> np.ndarray:
    """``legend``'s drawing (read-only), for checked arguments, kept for the next calls: a video's frames show the
    same categories, and drawing the text costs 5 ms a 720p frame. Least recently used ones go first."""
    key = (labels, colors, categories, text_size)
    with _legends_lock:
        box = _legends.get(key)
        if box is not None:
            _legends.move_to_end(key)
            return box
    box = _draw_legend(labels, colors, categories, text_size)
    if box.nbytes <= _LEGEND_BYTES // 4:
        with _legends_lock:
            _legends[key] = box
            while sum(kept.nbytes for kept in _legends.values()) > _LEGEND_BYTES:
                _legends.popitem(last=False)
    return box


def _draw_legend(
    labels: tuple[str, ...],
    colors: tuple[tuple[int, int, int] | None, ...],
    categories: tuple[int, ...],
    text_size: int,
) -> np.ndarray:
    """The legend's rows drawn: a swatch and a name for each of ``categories``, as a read-only (h, w, 3) array."""
    rows = [(i, labels[i] if 0 <= i < len(labels) else str(i)) for i in categories]
    font = _font(text_size)
    pad = max(2, text_size // 3)
    swatch = text_size
    line = text_size + pad
    width = 3 * pad + swatch + max((int(font.getlength(text)) for _, text in rows), default=0)
    height = pad + line * max(len(rows), 1)
    canvas = PILImage.new("RGB", (max(width, 2 * pad + swatch), height), (32, 32, 32))
    draw = ImageDraw.Draw(canvas)
    for row, (index, text) in enumerate(rows):
        y = pad + row * line
        color = colors[index] if index < len(colors) else None
        draw.rectangle((pad, y, pad + swatch, y + swatch), fill=color or (32, 32, 32), outline=(255, 255, 255))
        draw.text((2 * pad + swatch, y + swatch // 2), text, fill=(255, 255, 255), font=font, anchor="lm")
    return np.asarray(canvas)


def overlay(
    image: ImageInput,
    category_mask: MaskInput,
    palette: Sequence[Color | None] | np.ndarray | None = None,
    alpha: float = 0.5,
    labels: Sequence[str] | None = None,
) -> np.ndarray:
    """Tint each pixel with its category's palette color at opacity ``alpha``; None colors stay untouched.

    ``category_mask`` is a category mask (array, GRAY8 Image, PIL L) or a result (its category mask; the selfie
    convention 0 = person is turned into 0 = background, 1 = person) or a soft mask (>= 0.5 = category 1). With
    ``labels``, a legend of the categories present is drawn in the top-left corner, its text ~1/40 of the image
    height.
    """
    pixels = _pixels(image)
    opacity = _check_fraction(alpha, "alpha")
    categories = _category_map(category_mask, labels)
    height, width = pixels.shape[:2]
    if categories.shape != (height, width):
        raise ValueError(
            f"category_mask has size {categories.shape[1]}x{categories.shape[0]} but the image is {width}x{height}"
        )
    colors = palette_colors(palette)
    index = PILImage.fromarray(np.ascontiguousarray(categories), "L")
    present: list[int] = []
    if labels is not None:  # the categories present, for the legend: Pillow's histogram (numpy's bincount: 1.7x)
        present = [int(c) for c in np.flatnonzero(index.histogram())]
        highest = present[-1] if present else 0
    else:  # only the highest matters: numpy's max (0.01 ms at 720p)
        highest = int(categories.max())
    if highest >= len(colors):
        raise ValueError(f"category_mask has category {highest} but the palette has only {len(colors)} colors")
    flat_palette = [0] * 768
    weights = [0] * 256
    level = round(opacity * 255)
    for i, color in enumerate(colors[:256]):
        if color is not None:
            flat_palette[3 * i : 3 * i + 3] = color
            weights[i] = level
    painted = index.copy()
    painted.putpalette(flat_palette)
    tint = painted.convert("RGB")
    amount = index.point(weights)
    out = np.empty((height, width, 3), np.uint8)
    rgb = _rgb_pil(pixels)

    def work(top: int, bottom: int) -> None:
        part = rgb.crop((0, top, width, bottom))
        part.paste(_rows(tint, top, bottom), (0, 0), _rows(amount, top, bottom))
        out[top:bottom] = np.asarray(part)

    _split_rows(height, width, work)
    if labels is not None:
        shown = tuple(c for c in present if c < len(colors) and colors[c] is not None)
        box = _legend_box(_label_names(labels), tuple(colors), shown, max(10, round(height / 40)))
        box = box[: max(0, height - 4), : max(0, width - 4)]  # the 4 px margin can be all of a tiny image
        if box.size:
            bh, bw = box.shape[:2]
            out[4 : 4 + bh, 4 : 4 + bw] = box
    return _with_alpha(out, pixels)


# --- mask refinement ------------------------------------------------------------------------------------------------


def _box_mean(x: np.ndarray, radius: int) -> np.ndarray:
    """Mean over a (2r+1)^2 window of a float32 (h, w) or (h, w, c) array, normalised at the borders.

    Sums of 2r+1 shifted slices per axis: for the small radii of the subsampled grid this beats cumulative sums.
    """
    out = np.asarray(x, np.float32)
    for axis in (0, 1):
        n = out.shape[axis]
        pad = [(0, 0)] * out.ndim
        pad[axis] = (radius, radius)
        padded = np.pad(out, pad)
        total = np.zeros(out.shape, np.float32)
        index: list[slice] = [slice(None)] * out.ndim
        for shift in range(2 * radius + 1):
            index[axis] = slice(shift, shift + n)
            total += padded[tuple(index)]
        positions = np.arange(n)
        count = (np.minimum(positions + radius, n - 1) - np.maximum(positions - radius, 0) + 1).astype(np.float32)
        shape = [1] * out.ndim
        shape[axis] = n
        total /= count.reshape(shape)
        out = total
    return out


def _guided_u8(pixels: np.ndarray, alpha: np.ndarray, radius: int, eps: float) -> np.ndarray:
    """He and Sun's fast guided filter of ``alpha`` with the image's luma as guide, as 8-bit alpha of image size.

    The filter's linear coefficients are computed on a grid 1/4 the size (radius / 4), upsampled once, and applied
    to the full-size guide: q = A * I + B. The guide may only sharpen the edge: on the background side (alpha < 0.5)
    it can lower alpha, on the subject side raise it. Where subject and background have similar luma the unconstrained
    filter spreads the mask outward, a glow of the old background around the subject; the constraint keeps the part
    of the filter that removes the fringe and drops the part that makes the glow.
    """
    height, width = pixels.shape[:2]
    factor = 4 if radius >= 4 and min(height, width) >= 16 else 1
    gray = _rgb_pil(pixels).convert("L")
    # The grid's cells are factor x factor pixels (partial at the far edges), so the upsample below maps rows at
    # exactly 1 / factor and gives the same bits however the rows are split between threads.
    guide = np.asarray(gray.reduce(factor), np.float32) * np.float32(1 / 255)
    small_h, small_w = guide.shape
    mask_pil = PILImage.fromarray(np.ascontiguousarray(alpha, np.float32), "F")
    if alpha.shape != (height, width):
        mask_small = mask_pil.resize((small_w, small_h), PILImage.Resampling.BILINEAR)
    else:
        mask_small = mask_pil.reduce(factor)
    p = np.asarray(mask_small, np.float32)
    r = max(1, radius // factor)
    means = _box_mean(np.stack([guide, p, guide * p, guide * guide], axis=2), r)
    mean_i, mean_p, mean_ip, mean_ii = (means[:, :, k] for k in range(4))
    a = (mean_ip - mean_i * mean_p) / (mean_ii - mean_i * mean_i + np.float32(eps))
    b = mean_p - a * mean_i
    coeffs = _box_mean(np.stack([a, b], axis=2), r)
    # q * 255 = A * I255 + 255 * B, with I255 the 8-bit luma.
    a_small = PILImage.fromarray(np.ascontiguousarray(coeffs[:, :, 0]), "F")
    b_small = PILImage.fromarray(np.ascontiguousarray(coeffs[:, :, 1] * np.float32(255.0)), "F")
    luma = np.asarray(gray)
    original = _alpha_u8(alpha, (height, width))
    out = np.empty((height, width), np.uint8)

    def work(top: int, bottom: int) -> None:
        size = (width, bottom - top)
        region = (0.0, top / factor, width / factor, bottom / factor)
        a_up = np.asarray(a_small.resize(size, PILImage.Resampling.BILINEAR, box=region))
        b_up = np.asarray(b_small.resize(size, PILImage.Resampling.BILINEAR, box=region))
        q = a_up * luma[top:bottom]
        q += b_up
        q += np.float32(0.5)
        np.clip(q, 0.0, 255.0, out=q)
        refined = out[top:bottom]
        refined[...] = q
        before = original[top:bottom]
        background_side = before < 128
        np.minimum(refined, before, out=refined, where=background_side)
        np.maximum(refined, before, out=refined, where=~background_side)

    _split_rows(height, width, work)
    return out


def _feather(alpha: np.ndarray, sigma: float) -> np.ndarray:
    """A float alpha blurred by a Gaussian of ``sigma`` (Pillow's, on the 8-bit alpha)."""
    shape = (alpha.shape[0], alpha.shape[1])
    blurred = PILImage.fromarray(_alpha_u8(alpha, shape), "L").filter(ImageFilter.GaussianBlur(sigma))
    feathered: np.ndarray = np.asarray(blurred, np.float32) * np.float32(1 / 255)
    return feathered


def refine_mask(
    mask: MaskInput,
    image: ImageInput | None = None,
    radius: int = 4,
    method: str = "feather",
    eps: float = 1e-3,
) -> np.ndarray:
    """Soften or edge-align a mask; float32 (H, W) in [0, 1] (the image's size when an image is given).

    ``feather`` is a Gaussian blur (sigma = radius / 2) that softens hard edges; ``guided`` is He and Sun's fast
    guided filter with the image's luma as guide, which snaps a coarse mask to the image's edges (hair, fingers).
    """
    if method not in ("feather", "guided"):
        raise ValueError(f"method must be 'feather' or 'guided', got {method!r}")
    if isinstance(radius, bool) or not isinstance(radius, (int, np.integer)) or radius < 0:
        raise ValueError(f"radius must be an int >= 0, got {radius!r}")
    alpha = _resolve(mask)
    pixels = None if image is None else _pixels(image)
    if pixels is not None:
        alpha = _resize_plane(alpha, (pixels.shape[0], pixels.shape[1]))
    if radius == 0:
        return np.array(alpha, np.float32, copy=True)
    if method == "feather":
        return _feather(alpha, radius / 2.0)
    if pixels is None:
        raise ValueError("method='guided' needs the image as guide")
    regularization = _check_nonnegative(eps, "eps")
    refined: np.ndarray = np.asarray(_guided_u8(pixels, alpha, int(radius), regularization), np.float32)
    refined *= np.float32(1 / 255)
    return refined


class TemporalSmoother:
    """Exponential moving average of a video's masks, reset on large motion so fast moves do not leave ghosts.

    ``weight`` is the share of the newest mask (1 = no smoothing); when the mean absolute difference between the new
    mask and the running average exceeds ``reset_threshold`` (a scene cut or a fast move), the average restarts.
    The mask may be anything ``subject_mask`` accepts (pass the result and ``categories``/``labels`` as for it).
    """

    def __init__(self, weight: float = 0.5, reset_threshold: float = 0.1) -> None:
        self.weight = _check_fraction(weight, "weight")
        self.reset_threshold = _check_fraction(reset_threshold, "reset_threshold")
        self._state: np.ndarray | None = None

    def reset(self) -> None:
        """Forget the running average (call between unrelated clips)."""
        self._state = None

    def __call__(self, mask: MaskInput, **subject: Any) -> np.ndarray:
        """The smoothed alpha for this frame's mask, float32 (H, W) in [0, 1] (a fresh array)."""
        alpha = _resolve(mask, **subject)
        state = self._state
        if state is None or state.shape != alpha.shape or float(np.abs(alpha - state).mean()) > self.reset_threshold:
            self._state = np.array(alpha, np.float32, copy=True)
        else:
            state += np.float32(self.weight) * (alpha - state)
            return np.array(state, copy=True)
        return np.array(self._state, copy=True)
