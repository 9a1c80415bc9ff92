"""Inputs, the two libraries behind one call shape, segkit's stage hooks and the output agreement check."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parent.parent
TESTDATA = REPO.parent / "shared" / "testdata"

# name -> (output_confidence_masks, output_category_mask)
CONFIGS: dict[str, tuple[bool, bool]] = {"conf": (True, False), "cat": (False, True), "both": (True, True)}
CONFIG_TITLES = {"conf": "confidence masks only", "cat": "category mask only", "both": "both masks"}


def model_dir() -> Path:
    """The shared models' folder: ``$SEGKIT_MODEL_DIR`` or ../shared/models."""
    return Path(os.environ.get("SEGKIT_MODEL_DIR", REPO.parent / "shared" / "models")).resolve()


def resolve_model(name: str) -> Path:
    """A model name (with or without ``.tflite``) in the model folder, or a path; FileNotFoundError if absent."""
    path = Path(name)
    if not path.is_file():
        path = model_dir() / (name if name.endswith(".tflite") else name + ".tflite")
    if not path.is_file():
        raise FileNotFoundError(f"model {name!r} not found (looked at {path}; set SEGKIT_MODEL_DIR)")
    return path


def make_input(width: int, height: int) -> tuple[np.ndarray, str]:
    """A real photo center-cropped to the aspect ratio and resized: astronaut.png up to 640 wide, else cat_large."""
    from PIL import Image as PILImage

    source = "astronaut.png" if max(width, height) <= 640 else "cat_large.jpg"
    with PILImage.open(TESTDATA / source) as im:
        im = im.convert("RGB")
        sw, sh = im.size
        scale = min(sw / width, sh / height)
        cw, ch = round(width * scale), round(height * scale)
        left, top = (sw - cw) // 2, (sh - ch) // 2
        im = im.crop((left, top, left + cw, top + ch)).resize((width, height), PILImage.Resampling.BICUBIC)
        return np.ascontiguousarray(np.asarray(im)), f"{source} crop {cw}x{ch} -> {width}x{height}"


@dataclass
class Masks:
    """A result's masks as arrays (category mask squeezed to (H, W))."""

    confidence: list[np.ndarray] | None
    category: np.ndarray | None


def access(result: Any) -> Masks:
    """What a user does after segment(): ``numpy_view()`` on every mask of the result."""
    conf = result.confidence_masks
    cat = result.category_mask
    return Masks(
        [m.numpy_view() for m in conf] if conf is not None else None,
        cat.numpy_view() if cat is not None else None,
    )


class Lib:
    """One library's segmenter for one configuration, with a timed call."""

    name: str
    seg: Any
    image: Any

    def call(self) -> tuple[float, float, float]:
        """One ``segment()``: seconds for the call alone, including ``numpy_view()`` of every mask, and CPU seconds.

        The CPU time is the whole process's (every thread) over the call with access.
        """
        c0 = time.process_time()
        t0 = time.perf_counter()
        result = self.seg.segment(self.image)
        t1 = time.perf_counter()
        access(result)
        t2 = time.perf_counter()
        return t1 - t0, t2 - t0, time.process_time() - c0

    def masks(self) -> Masks:
        """One result's masks, copied (so a later call cannot change them)."""
        m = access(self.seg.segment(self.image))
        return Masks(
            [np.array(c, copy=True) for c in m.confidence] if m.confidence is not None else None,
            np.array(m.category, copy=True).reshape(m.category.shape[:2]) if m.category is not None else None,
        )

    def close(self) -> None:
        """Frees the segmenter."""
        self.seg.close()


class SegkitLib(Lib):
    """segkit's ImageSegmenter."""

    name = "segkit"

    def __init__(
        self, model: Path, conf: bool, cat: bool, threads: int | None, delegate: str, gpu_precision: str
    ) -> None:
        """Creates the segmenter; ``delegate`` is "cpu" or "gpu"."""
        import segkit

        base = segkit.BaseOptions(
            model_asset_path=str(model),
            delegate=segkit.BaseOptions.Delegate.GPU if delegate == "gpu" else segkit.BaseOptions.Delegate.CPU,
            gpu_precision="fp32" if gpu_precision == "fp32" else "fp16",
        )
        options = segkit.ImageSegmenterOptions(
            base_options=base, output_confidence_masks=conf, output_category_mask=cat, num_threads=threads
        )
        self.seg = segkit.ImageSegmenter.create_from_options(options)
        self._image_type = segkit.Image, segkit.ImageFormat.SRGB

    def set_image(self, pixels: np.ndarray) -> None:
        """The input for later calls, wrapped once outside the timed region."""
        cls, fmt = self._image_type
        self.image = cls(fmt, pixels)


class MediaPipeLib(Lib):
    """MediaPipe 1.2.2's ImageSegmenter (CPU; its thread count cannot be set from Python)."""

    name = "mediapipe"

    def __init__(self, model: Path, conf: bool, cat: bool) -> None:
        """Creates the segmenter."""
        from mediapipe.tasks.python import BaseOptions, vision

        options = vision.ImageSegmenterOptions(
            base_options=BaseOptions(model_asset_path=str(model)),
            output_confidence_masks=conf,
            output_category_mask=cat,
        )
        self.seg = vision.ImageSegmenter.create_from_options(options)

    def set_image(self, pixels: np.ndarray) -> None:
        """The input for later calls, wrapped once outside the timed region."""
        from mediapipe.tasks.python.vision.core.image import Image, ImageFormat

        self.image = Image(image_format=ImageFormat.SRGB, data=pixels)


STAGES = ("pre", "invoke", "post")


class _Timed:
    """Stands in for one of segkit's stage objects: delegates everything, adds the time of some calls to a sink."""

    def __init__(
        self, target: Any, sink: dict[str, float], labels: dict[str, str], capture: list[Any] | None = None
    ) -> None:
        self._target, self._sink, self._labels, self._capture = target, sink, labels, capture

    def _timed(self, fn: Callable[..., Any], label: str) -> Callable[..., Any]:
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            t0 = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                self._sink[label] = self._sink.get(label, 0.0) + time.perf_counter() - t0

        return wrapper

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        result = self._timed(self._target, self._labels["__call__"])(*args, **kwargs)
        if self._capture is not None:
            self._capture[:] = [result]
        return result

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._target, name)
        return self._timed(attr, self._labels[name]) if name in self._labels else attr


@dataclass
class Breakdown:
    """Per-run seconds of segkit's stages inside ``segment()``, and of the raw invoke alone right after it."""

    total: list[float] = field(default_factory=list)
    raw_invoke: list[float] = field(default_factory=list)
    stages: dict[str, list[float]] = field(default_factory=lambda: {s: [] for s in (*STAGES, "other")})


def breakdown(lib: SegkitLib, runs: int) -> Breakdown:
    """Times segkit's stages (hooked on the segmenter's ``_pre``, ``_runtime`` and ``_post``) and the raw invoke.

    Each run is one hooked ``segment()`` (plus ``numpy_view()`` access), then ``_runtime.run(tensor)`` alone on
    the tensor that run produced: the floor any pipeline pays. "other" is the rest of ``segment()``: input
    checks, color conversion, dequantization, result wrapping.
    """
    seg = lib.seg
    sink: dict[str, float] = {}
    captured: list[np.ndarray] = []
    pre, rt, post = seg._pre, seg._runtime, seg._post
    seg._pre = _Timed(pre, sink, {"__call__": "pre"}, captured)
    seg._runtime = _Timed(rt, sink, {"run": "invoke"})
    seg._post = _Timed(post, sink, {"masks": "post"})
    out = Breakdown()
    try:
        for _ in range(runs):
            sink.clear()
            _, total, _ = lib.call()
            out.total.append(total)
            for s in STAGES:
                out.stages[s].append(sink.get(s, 0.0))
            out.stages["other"].append(total - sum(sink.values()))
            tensor = captured[0]
            t0 = time.perf_counter()
            rt.run(tensor)
            out.raw_invoke.append(time.perf_counter() - t0)
    finally:
        seg._pre, seg._runtime, seg._post = pre, rt, post
    return out


@dataclass
class Agreement:
    """segkit vs MediaPipe on one result: category agreement in % and the largest confidence difference."""

    category_pct: float | None
    conf_max_diff: float | None
    note: str = ""

    def ok(self, min_pct: float = 99.9, max_diff: float = 1e-3) -> bool:
        """Within the hard floor."""
        if self.note:
            return False
        pct_ok = self.category_pct is None or self.category_pct >= min_pct
        diff_ok = self.conf_max_diff is None or self.conf_max_diff <= max_diff
        return pct_ok and diff_ok

    def text(self) -> str:
        """Short form for the table."""
        if self.note:
            return self.note
        parts = []
        if self.category_pct is not None:
            parts.append(f"cat {self.category_pct:.3f}%")
        if self.conf_max_diff is not None:
            parts.append(f"|d| {self.conf_max_diff:.1e}")
        return " ".join(parts)


def agreement(a: Masks, b: Masks) -> Agreement:
    """Compares two results' masks (shapes, category labels, confidence values)."""
    pct = diff = None
    if (a.category is None) != (b.category is None) or (a.confidence is None) != (b.confidence is None):
        return Agreement(None, None, "different masks returned")
    if a.category is not None and b.category is not None:
        if a.category.shape != b.category.shape:
            return Agreement(None, None, f"category shape {a.category.shape} vs {b.category.shape}")
        pct = 100.0 * float(np.mean(a.category == b.category))
    if a.confidence is not None and b.confidence is not None:
        if len(a.confidence) != len(b.confidence):
            return Agreement(None, None, f"{len(a.confidence)} vs {len(b.confidence)} confidence masks")
        diff = 0.0
        for x, y in zip(a.confidence, b.confidence, strict=True):
            x, y = x.reshape(x.shape[:2]), y.reshape(y.shape[:2])
            if x.shape != y.shape:
                return Agreement(None, None, f"confidence shape {x.shape} vs {y.shape}")
            diff = max(diff, float(np.max(np.abs(x.astype(np.float64) - y))))
    return Agreement(pct, diff)
