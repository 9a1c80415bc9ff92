"""Visual effects driven by segmentation masks: pure functions on numpy arrays.

Every effect takes a uint8 RGB or RGBA image and a mask and returns a new uint8 array; inputs are never modified.
A mask is a soft alpha: a float confidence mask in [0, 1], a bool mask, or an 8-bit alpha mask (0..255), shaped
(H, W) or (H, W, 1). MediaPipe's selfie *category* mask marks the person with 0, so pass ``category_mask == 0``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Union

import numpy as np
from PIL import Image as PILImage
from PIL import ImageColor, ImageDraw, ImageFont

__all__ = [
    "Color",
    "TemporalSmoother",
    "blur_background",
    "cutout",
    "legend",
    "mask_to_alpha",
    "overlay",
    "palette_colors",
    "parse_color",
    "recolor",
    "refine_mask",
    "replace_background",
]

Color = Union[str, Sequence[int]]
"""A color: a Pillow color string ("#ff8800", "#f80", "teal", "rgb(1,2,3)") or an (r, g, b) sequence of 0..255."""

_RANGE_TOLERANCE = 1e-3


# --- validation -----------------------------------------------------------------------------------------------------


def _check_image(image: object, name: str = "image") -> np.ndarray:
    """The image itself if it is a uint8 (H, W, 3|4) array; TypeError/ValueError naming the problem otherwise."""
    if not isinstance(image, np.ndarray):
        raise TypeError(f"{name} must be a numpy array, got {type(image).__name__}")
    if image.dtype != np.uint8:
        raise TypeError(f"{name} must have dtype uint8, got {image.dtype}")
    if image.ndim != 3 or image.shape[2] not in (3, 4):
        raise ValueError(f"{name} must have shape (H, W, 3) or (H, W, 4), got {image.shape}")
    if image.shape[0] == 0 or image.shape[1] == 0:
        raise ValueError(f"{name} is empty: shape {image.shape}")
    return image


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


def mask_to_alpha(mask: np.ndarray, shape: tuple[int, int] | None = None, name: str = "mask") -> np.ndarray:
    """A mask as a fresh float32 (H, W) alpha in [0, 1], checked against the image ``shape`` (H, W) when given.

    float masks are used as they are (values outside [0, 1] beyond rounding noise are rejected: raw logits need a
    sigmoid or softmax first), bool masks give 0 or 1, uint8 masks are 8-bit alpha (divided by 255).
    """
    if not isinstance(mask, np.ndarray):
        raise TypeError(f"{name} must be a numpy array, got {type(mask).__name__}")
    if mask.ndim == 3 and mask.shape[2] == 1:
        mask = mask[:, :, 0]
    if mask.ndim != 2:
        raise ValueError(f"{name} must have shape (H, W) or (H, W, 1), got {mask.shape}")
    if shape is not None and mask.shape != tuple(shape):
        raise ValueError(f"{name} has size {mask.shape[1]}x{mask.shape[0]} but the image is {shape[1]}x{shape[0]}")
    if mask.dtype == np.bool_:
        return mask.astype(np.float32)
    if mask.dtype == np.uint8:
        return mask.astype(np.float32) / np.float32(255.0)
    if not np.issubdtype(mask.dtype, np.floating):
        raise TypeError(f"{name} must be float (confidence), bool or uint8 (8-bit alpha), got {mask.dtype}")
    alpha = mask.astype(np.float32)
    if alpha.size and not np.isfinite(alpha).all():
        raise ValueError(f"{name} contains NaN or infinite values")
    if alpha.size and (alpha.min() < -_RANGE_TOLERANCE or alpha.max() > 1 + _RANGE_TOLERANCE):
        raise ValueError(
            f"{name} values must lie in [0, 1], got {float(alpha.min()):.3g}..{float(alpha.max()):.3g} "
            "(raw logits? apply a sigmoid or softmax first)"
        )
    return np.clip(alpha, 0.0, 1.0, out=alpha)


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


def _finish(rgb: np.ndarray, image: np.ndarray) -> np.ndarray:
    """Float RGB rounded back to uint8, with the image's alpha channel (if any) carried through unchanged."""
    out = np.empty(image.shape, np.uint8)
    np.clip(np.rint(rgb), 0, 255, out=rgb)
    out[:, :, :3] = rgb
    if image.shape[2] == 4:
        out[:, :, 3] = image[:, :, 3]
    return out


# --- blurring -------------------------------------------------------------------------------------------------------


def _box_sum(x: np.ndarray, radius: int, axis: int) -> np.ndarray:
    """Sum over a window of 2*radius+1 along ``axis`` with zeros outside (cumulative sums: O(1) per pixel)."""
    n = x.shape[axis]
    pad = [(0, 0)] * x.ndim
    pad[axis] = (radius + 1, radius)
    c = np.cumsum(np.pad(x, pad), axis=axis, dtype=np.float64)
    hi = [slice(None)] * x.ndim
    lo = [slice(None)] * x.ndim
    hi[axis] = slice(2 * radius + 1, 2 * radius + 1 + n)
    lo[axis] = slice(0, n)
    return (c[tuple(hi)] - c[tuple(lo)]).astype(np.float32)


def _gauss_sum(x: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian-weighted sums over the first two axes, approximated by three box passes per axis (zero outside)."""
    radius = int(round((np.sqrt(4.0 * sigma * sigma + 1.0) - 1.0) / 2.0))
    if radius < 1:
        return x.astype(np.float32)
    for axis in (0, 1):
        for _ in range(3):
            x = _box_sum(x, radius, axis)
    return x


def _box_mean(x: np.ndarray, radius: int) -> np.ndarray:
    """Mean over a (2r+1)^2 window, normalised at the borders by the number of pixels inside the image."""
    ones = np.ones(x.shape[:2] + (1,) * (x.ndim - 2), np.float32)
    count = _box_sum(_box_sum(ones, radius, 0), radius, 1)
    return _box_sum(_box_sum(x, radius, 0), radius, 1) / count


def blur_background(image: np.ndarray, mask: np.ndarray, strength: float = 15.0) -> np.ndarray:
    """Blur everything outside the mask (Gaussian, ``strength`` = sigma in pixels); the masked subject stays sharp.

    The blur is mask-aware (normalised convolution of the background only), so the subject's colors do not bleed
    into the blurred background as a halo.
    """
    img = _check_image(image)
    alpha = mask_to_alpha(mask, img.shape[:2])
    sigma = _check_nonnegative(strength, "strength")
    if sigma == 0:
        return img.copy()
    rgb = img[:, :, :3].astype(np.float32)
    weight = (1.0 - alpha)[:, :, None]
    summed = _gauss_sum(np.concatenate([rgb * weight, weight], axis=2), sigma)
    total = summed[:, :, 3:]
    blurred = np.where(total > 1e-4, summed[:, :, :3] / np.maximum(total, 1e-4), rgb)
    a = alpha[:, :, None]
    return _finish(rgb * a + blurred * (1.0 - a), img)


# --- compositing ----------------------------------------------------------------------------------------------------


def _fit(background: np.ndarray, width: int, height: int) -> np.ndarray:
    """``background`` scaled to cover width x height and centre-cropped (no bars, aspect ratio kept)."""
    bh, bw = background.shape[:2]
    scale = max(width / bw, height / bh)
    sw, sh = max(width, round(bw * scale)), max(height, round(bh * scale))
    left, top = (sw - width) // 2, (sh - height) // 2
    pil = PILImage.fromarray(np.ascontiguousarray(background[:, :, :3]))
    pil = pil.resize((sw, sh), PILImage.Resampling.LANCZOS, box=None)
    return np.asarray(pil.crop((left, top, left + width, top + height)))


def replace_background(image: np.ndarray, mask: np.ndarray, background: np.ndarray | Color) -> np.ndarray:
    """Put the masked subject on a new ``background``: an image (scaled to cover and centre-cropped) or a color."""
    img = _check_image(image)
    alpha = mask_to_alpha(mask, img.shape[:2])[:, :, None]
    h, w = img.shape[:2]
    if isinstance(background, np.ndarray) and background.ndim == 3:
        bg = _check_image(background, "background")
        bg_rgb = (bg[:, :, :3] if bg.shape[:2] == (h, w) else _fit(bg, w, h)).astype(np.float32)
    else:
        bg_rgb = np.asarray(parse_color(background, "background"), np.float32)  # type: ignore[arg-type]
    rgb = img[:, :, :3].astype(np.float32)
    return _finish(rgb * alpha + bg_rgb * (1.0 - alpha), img)


def cutout(image: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """The image as RGBA with alpha = round(mask * 255) (times the image's own alpha, if it has one)."""
    img = _check_image(image)
    alpha = mask_to_alpha(mask, img.shape[:2])
    if img.shape[2] == 4:
        alpha = alpha * (img[:, :, 3].astype(np.float32) / np.float32(255.0))
    out = np.empty(img.shape[:2] + (4,), np.uint8)
    out[:, :, :3] = img[:, :, :3]
    out[:, :, 3] = np.clip(np.rint(alpha * 255.0), 0, 255)
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


def _srgb_to_oklab(rgb: np.ndarray) -> np.ndarray:
    """(N, 3) uint8 sRGB to (N, 3) float64 OKLab (Björn Ottosson's definition)."""
    c = rgb.astype(np.float64) / 255.0
    linear = np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)
    return np.cbrt(linear @ _LMS_FROM_LINEAR.T) @ _LAB_FROM_LMS.T


def _oklab_to_srgb(lab: np.ndarray) -> np.ndarray:
    """(N, 3) OKLab to (N, 3) float sRGB in 0..255 (clipped into gamut)."""
    linear = np.clip((lab @ _LMS_FROM_LAB.T) ** 3 @ _LINEAR_FROM_LMS.T, 0.0, 1.0)
    c = np.where(linear <= 0.0031308, linear * 12.92, 1.055 * linear ** (1 / 2.4) - 0.055)
    return c * 255.0


def recolor(image: np.ndarray, mask: np.ndarray, color: Color, strength: float = 0.8) -> np.ndarray:
    """Tint the masked region (hair) toward ``color`` while keeping its shading; pixels with mask 0 stay bit-identical.

    Works in OKLab: lightness L is kept exactly, so highlights and shadows survive, and only hue and chroma (a, b) move
    toward the target's. OKLab is used over CIELab or HSL because its hue stays constant as chroma changes (no blue to
    purple drift) and L tracks perceived lightness. The target chroma is scaled by min(1, L / L_target) so dark strands
    get a dark version of the color instead of an out-of-gamut glow. ``strength`` (0..1) times the mask blends it in.
    """
    img = _check_image(image)
    alpha = mask_to_alpha(mask, img.shape[:2])
    amount = _check_fraction(strength, "strength")
    target = _srgb_to_oklab(np.asarray([parse_color(color)], np.uint8))[0]
    out = img.copy()
    weight = alpha * np.float32(amount)
    rows, cols = np.nonzero(weight > 0)
    if rows.size == 0:
        return out
    lab = _srgb_to_oklab(img[rows, cols, :3])
    chroma_scale = np.clip(lab[:, 0] / max(target[0], 1e-6), 0.0, 1.0)
    target_ab = target[None, 1:] * chroma_scale[:, None]
    w = weight[rows, cols].astype(np.float64)[:, None]
    lab[:, 1:] += w * (target_ab - lab[:, 1:])
    out[rows, cols, :3] = np.clip(np.rint(_oklab_to_srgb(lab)), 0, 255).astype(np.uint8)
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


def _check_categories(category_mask: np.ndarray) -> np.ndarray:
    """A category mask as an (H, W) integer array; TypeError/ValueError naming the problem otherwise."""
    if not isinstance(category_mask, np.ndarray):
        raise TypeError(f"category_mask must be a numpy array, got {type(category_mask).__name__}")
    if category_mask.ndim == 3 and category_mask.shape[2] == 1:
        category_mask = category_mask[:, :, 0]
    if category_mask.ndim != 2:
        raise ValueError(f"category_mask must have shape (H, W) or (H, W, 1), got {category_mask.shape}")
    if not np.issubdtype(category_mask.dtype, np.integer) or category_mask.dtype.itemsize > 2:
        raise TypeError(f"category_mask must be uint8 (or a small integer type), got {category_mask.dtype}")
    if category_mask.size and category_mask.min() < 0:
        raise ValueError("category_mask contains negative categories")
    return category_mask


def legend(
    labels: Sequence[str],
    palette: Sequence[Color | None] | np.ndarray | None = None,
    categories: Sequence[int] | None = None,
) -> np.ndarray:
    """A uint8 RGB legend image: one row per category (a color swatch and its name), in Pillow's default font.

    ``categories`` picks which indices to list (default: every label that has a color).
    """
    colors = palette_colors(palette)
    if isinstance(labels, str) or not all(isinstance(s, str) for s in labels):
        raise TypeError(f"labels must be a sequence of str, got {labels!r}")
    if categories is None:
        categories = [i for i in range(len(labels)) if i < len(colors) and colors[i] is not None]
    rows = [(int(i), labels[i] if 0 <= i < len(labels) else str(i)) for i in categories]
    font = ImageFont.load_default()
    line, pad, swatch = 16, 4, 12
    width = 2 * pad + swatch + pad + max((int(font.getlength(text)) for _, text in rows), default=0)
    height = 2 * pad + line * max(len(rows), 1)
    canvas = PILImage.new("RGB", (max(width, 2 * pad + swatch), height), (32, 32, 32))
    draw = ImageDraw.Draw(canvas)
    for row, (index, text) in enumerate(rows):
        y = pad + row * line
        color = colors[index] if index < len(colors) else None
        draw.rectangle((pad, y + 2, pad + swatch, y + 2 + swatch), fill=color or (32, 32, 32), outline=(255, 255, 255))
        draw.text((2 * pad + swatch, y + 2), text, fill=(255, 255, 255), font=font)
    return np.asarray(canvas)


def overlay(
    image: np.ndarray,
    category_mask: np.ndarray,
    palette: Sequence[Color | None] | np.ndarray | None = None,
    alpha: float = 0.5,
    labels: Sequence[str] | None = None,
) -> np.ndarray:
    """Tint each pixel with its category's palette color at opacity ``alpha``; None colors stay untouched.

    With ``labels``, a legend of the categories present is drawn in the top-left corner.
    """
    img = _check_image(image)
    categories = _check_categories(category_mask)
    if categories.shape != img.shape[:2]:
        raise ValueError(
            f"category_mask has size {categories.shape[1]}x{categories.shape[0]} "
            f"but the image is {img.shape[1]}x{img.shape[0]}"
        )
    opacity = _check_fraction(alpha, "alpha")
    colors = palette_colors(palette)
    present = [int(c) for c in np.unique(categories)]
    if present and present[-1] >= len(colors):
        raise ValueError(f"category_mask has category {present[-1]} but the palette has only {len(colors)} colors")
    lut = np.zeros((len(colors), 3), np.float32)
    painted = np.zeros(len(colors), np.float32)
    for i, color in enumerate(colors):
        if color is not None:
            lut[i], painted[i] = color, opacity
    a = painted[categories][:, :, None]
    out = _finish(img[:, :, :3].astype(np.float32) * (1.0 - a) + lut[categories] * a, img)
    if labels is not None:
        shown = [c for c in present if colors[c] is not None]
        box = legend(labels, colors, shown)[: out.shape[0] - 4, : out.shape[1] - 4]
        if box.size:
            h, w = box.shape[:2]
            out[4 : 4 + h, 4 : 4 + w, :3] = box
    return out


# --- mask refinement ------------------------------------------------------------------------------------------------


def refine_mask(
    mask: np.ndarray,
    image: np.ndarray | None = None,
    radius: int = 4,
    method: str = "feather",
    eps: float = 1e-3,
) -> np.ndarray:
    """Soften or edge-align a mask; float32 (H, W) in [0, 1].

    ``feather`` is a Gaussian blur (sigma = radius / 2) that softens hard edges; ``guided`` is He et al.'s guided
    filter with the grayscale ``image`` as guide, which snaps a coarse mask to the image's edges (hair, fingers).
    """
    if method not in ("feather", "guided"):
        raise ValueError(f"method must be 'feather' or 'guided', got {method!r}")
    if isinstance(radius, bool) or not isinstance(radius, (int, np.integer)) or radius < 0:
        raise ValueError(f"radius must be an int >= 0, got {radius!r}")
    alpha = mask_to_alpha(mask, None if image is None else _check_image(image).shape[:2])
    if radius == 0:
        return alpha
    if method == "feather":
        summed = _gauss_sum(np.stack([alpha, np.ones_like(alpha)], axis=2), radius / 2.0)
        return np.clip(summed[:, :, 0] / summed[:, :, 1], 0.0, 1.0)
    if image is None:
        raise ValueError("method='guided' needs the image as guide")
    regularization = _check_nonnegative(eps, "eps")
    guide = (image[:, :, :3].astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)) / 255.0
    stack = np.stack([guide, alpha, guide * alpha, guide * guide], axis=2)
    mean_i, mean_p, mean_ip, mean_ii = np.moveaxis(_box_mean(stack, int(radius)), 2, 0)
    a = (mean_ip - mean_i * mean_p) / (mean_ii - mean_i * mean_i + regularization)
    b = mean_p - a * mean_i
    mean_a, mean_b = np.moveaxis(_box_mean(np.stack([a, b], axis=2), int(radius)), 2, 0)
    return np.clip(mean_a * guide + mean_b, 0.0, 1.0).astype(np.float32)


class TemporalSmoother:
    """Exponential moving average of a video's masks, reset on large motion so fast moves do not leave ghosts.

    ``weight`` is the share of the newest mask (1 = no smoothing); when the mean absolute difference between the new
    mask and the running average exceeds ``reset_threshold`` (a scene cut or a fast move), the average restarts.
    """

    def __init__(self, weight: float = 0.5, reset_threshold: float = 0.1) -> None:
        self.weight = _check_fraction(weight, "weight")
        self.reset_threshold = _check_fraction(reset_threshold, "reset_threshold")
        self._state: np.ndarray | None = None

    def reset(self) -> None:
        """Forget the running average (call between unrelated clips)."""
        self._state = None

    def __call__(self, mask: np.ndarray) -> np.ndarray:
        """The smoothed alpha for this frame's mask, float32 (H, W) in [0, 1] (a fresh array)."""
        alpha = mask_to_alpha(mask)
        state = self._state
        if state is None or state.shape != alpha.shape or float(np.abs(alpha - state).mean()) > self.reset_threshold:
            self._state = alpha
        else:
            state += np.float32(self.weight) * (alpha - state)
        return self._state.copy()
