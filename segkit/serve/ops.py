"""What each endpoint computes from a segmentation result: the subject's mask, the effect, the category summary.

Pure functions on arrays over ``segkit.effects``; the same options as the command line (``--categories``,
``--refine``, ``--strength``, ...), with bad values reported as ApiError 400 naming the parameter.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from segkit import ImageSegmenter, ImageSegmenterResult, effects
from segkit._common import is_index
from segkit.serve.images import ApiError

DEFAULT_STRENGTH = {"blur": 15.0, "recolor": 0.8}
SHOWN_CHARS = 60  # how much of a client's value an error message echoes back
_MAX_COLOR_CHARS = 64  # longer than any color Pillow names or parses


@dataclass(frozen=True)
class EffectOptions:
    """One request's effect parameters, named as the CLI's options."""

    effect: str
    categories: str | None = None
    refine: str = "none"
    refine_radius: int = 4
    strength: float | None = None
    background: str | np.ndarray = "#00b140"
    color: str = "#b03060"
    alpha: float = 0.5
    legend: bool = True


def category_map(result: ImageSegmenterResult, names: Sequence[str]) -> tuple[np.ndarray, list[str]]:
    """The category mask as (H, W) uint8 indices into the returned names (for the legend).

    A one-class model (selfie) marks its subject with 0 and the rest with 255 (MediaPipe's convention); that
    becomes 0 = background, 1 = the subject, so every model's map reads the same way.
    """
    if result.category_mask is None:
        raise RuntimeError("the segmenter returned no category mask")
    category = np.asarray(result.category_mask.numpy_view())[:, :, 0]
    if len(names) == 1:
        return (category == 0).astype(np.uint8), ["background", names[0]]
    return category, list(names)


def category_list(spec: str | None) -> list[str] | None:
    """The ``categories`` parameter (label names or indices, comma-separated) as a list; None for the default."""
    if spec is None:
        return None
    items = [s.strip() for s in spec.split(",") if s.strip()]
    if not items:
        raise ApiError(400, "categories is empty: give label names or indices, comma-separated")
    return items


def check_options(options: EffectOptions, labels: Sequence[str]) -> None:
    """The parameters that can be checked before any work is done; ApiError 400 naming the first bad one."""
    if options.effect == "recolor" and options.strength is not None and not 0.0 <= options.strength <= 1.0:
        raise ApiError(400, f"strength must lie in [0, 1] for recolor, got {options.strength}")
    try:
        if options.effect == "recolor":
            parse_color(options.color, "color")
        if options.effect == "replace" and isinstance(options.background, str):
            parse_color(options.background, "background")
    except ValueError as e:
        raise ApiError(400, str(e)) from None
    lowered = [label.lower() for label in labels]
    for item in category_list(options.categories) or ():
        if not (is_index(item) and int(item) < max(len(labels), 1)) and item.lower() not in lowered:
            raise ApiError(400, f"category {shown(item)} is not a class of this model; its labels: {', '.join(labels)}")


def shown(value: str) -> str:
    """``value`` quoted for an error message, cut to SHOWN_CHARS characters (a client's value can be 60 KB)."""
    if len(value) <= SHOWN_CHARS:
        return repr(value)
    return f"{value[:SHOWN_CHARS]!r}... ({len(value)} characters)"


def clipped(text: str) -> str:
    """``text`` (already formatted, e.g. a repr) cut to SHOWN_CHARS characters for an error message."""
    return text if len(text) <= SHOWN_CHARS else f"{text[:SHOWN_CHARS]}... ({len(text)} characters)"


def parse_color(value: str, name: str) -> tuple[int, int, int]:
    """A color parameter ('#rrggbb', a name, or 'r,g,b') as (r, g, b); ValueError naming the parameter otherwise."""
    if len(value) > _MAX_COLOR_CHARS:
        hint = "use '#rrggbb', '#rgb', a name such as 'teal', or r,g,b"
        raise ValueError(f"{name} {shown(value)} is not a color: {hint}")
    parts = value.split(",")
    if len(parts) == 3 and all(is_index(p.strip()) for p in parts):
        return effects.parse_color(tuple(int(p) for p in parts), name)
    return effects.parse_color(value, name)


def subject_alpha(
    pixels: np.ndarray, result: ImageSegmenterResult, segmenter: ImageSegmenter, options: EffectOptions
) -> np.ndarray:
    """The subject's soft mask (the library's one rule, ``effects.subject_mask``), refined as asked."""
    alpha = effects.subject_mask(result, categories=category_list(options.categories), segmenter=segmenter)
    if options.refine != "none":
        alpha = effects.refine_mask(alpha, pixels, radius=options.refine_radius, method=options.refine)
    return alpha


def apply_effect(
    pixels: np.ndarray, result: ImageSegmenterResult, segmenter: ImageSegmenter, options: EffectOptions
) -> np.ndarray:
    """The output pixels of ``options.effect`` for one image, called as ``segkit <effect>`` calls the effects."""
    if options.effect == "overlay":
        _, names = category_map(result, display_labels(segmenter))
        return effects.overlay(pixels, result, alpha=options.alpha, labels=names if options.legend else None)
    alpha = subject_alpha(pixels, result, segmenter, options)
    if options.effect == "mask":
        return to_u8(alpha)
    if options.effect == "blur":
        return effects.blur_background(pixels, alpha, strength=_strength(options))
    if options.effect == "replace":
        background = options.background
        fill = background if isinstance(background, np.ndarray) else parse_color(background, "background")
        return effects.replace_background(pixels, alpha, fill)
    if options.effect == "cutout":
        return effects.cutout(pixels, alpha)
    if options.effect == "recolor":
        return effects.recolor(pixels, alpha, parse_color(options.color, "color"), strength=_strength(options))
    raise ApiError(404, f"unknown effect {options.effect!r}")


def to_u8(alpha: np.ndarray) -> np.ndarray:
    """A float alpha in [0, 1] as an 8-bit (H, W) mask (255 = subject)."""
    out: np.ndarray = np.rint(np.clip(alpha, 0.0, 1.0) * 255.0).astype(np.uint8)
    return out


def display_labels(segmenter: ImageSegmenter) -> list[str]:
    """The names shown for each category: display names, else labels, else the channel index."""
    labels, display = segmenter.labels, segmenter.display_names
    names = [d or label for d, label in zip(display, labels, strict=False)] if display else list(labels)
    count = int(segmenter.model_info.outputs[-1].shape[-1])
    return names if len(names) == count else [str(i) for i in range(count)]


def _strength(options: EffectOptions) -> float:
    return DEFAULT_STRENGTH[options.effect] if options.strength is None else options.strength


def palette_hex(index: int) -> str | None:
    """The overlay palette's color of category ``index`` as '#rrggbb' (None: left uncolored)."""
    palette = effects.palette_colors(None)
    color = palette[index] if index < len(palette) else None
    return None if color is None else "#{:02x}{:02x}{:02x}".format(*color)


def categories_present(category: np.ndarray, names: Sequence[str]) -> list[dict[str, object]]:
    """Each category found in the map: index, label, overlay color and the fraction of pixels it covers."""
    counts = np.bincount(category.ravel(), minlength=len(names))
    total = max(int(category.size), 1)
    return [
        {
            "index": i,
            "label": names[i] if i < len(names) else str(i),
            "color": palette_hex(i),
            "fraction": round(int(n) / total, 4),
        }
        for i, n in enumerate(counts)
        if n
    ]
