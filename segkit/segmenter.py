"""``ImageSegmenter``: MediaPipe's Image Segmenter task, wired from segkit's stages.

image -> ``preprocess`` -> ``runtime`` -> ``postprocess`` -> :class:`ImageSegmenterResult`. This module checks
options and inputs (with MediaPipe's messages), reads the model once, and keeps the running-mode machinery; the
math lives in the stages.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import threading
import weakref
from collections.abc import Callable
from typing import Any

import numpy as np

from segkit import metadata, modes, postprocess, preprocess, runtime
from segkit.image import Image, ImageFormat, ImageLike, as_image, check_mask_bytes
from segkit.options import (
    BaseOptions,
    ImageProcessingOptions,
    ImageSegmenterOptions,
    RunningMode,
)
from segkit.result import CategoryMask, ConfidenceMask, ImageSegmenterResult

_log = logging.getLogger("segkit")

_NO_MODEL = (
    "ExternalFile must specify at least one of 'file_content', 'file_name', 'file_pointer_meta' or "
    "'file_descriptor_meta'."
)
_CLOSED = "ImageSegmenter is closed: create a new one to segment more images"
_NEED_NORMALIZATION = (
    "Input tensor has type float32: it requires specifying NormalizationOptions metadata to preprocess input images."
)


def _load_model(base: BaseOptions) -> bytes:
    """The model bytes from ``BaseOptions``; the buffer wins over the path, as in MediaPipe."""
    buffer = base.model_asset_buffer
    if buffer is not None and not isinstance(buffer, (bytes, bytearray, memoryview)):
        raise TypeError(f"model_asset_buffer must be bytes, got {type(buffer).__name__}")
    if buffer:
        return bytes(buffer)
    if base.model_asset_path:
        return runtime.read_model_file(base.model_asset_path)
    raise ValueError(_NO_MODEL)


def _input_spec(info: metadata.ModelInfo, options: ImageSegmenterOptions) -> preprocess.InputSpec:
    """The input tensor's geometry and normalization, checked as MediaPipe checks them at creation."""
    if info.num_subgraphs != 1:
        raise RuntimeError("Segmentation tflite models are assumed to have a single subgraph.")
    if len(info.inputs) != 1:
        raise ValueError("Image tflite models are assumed to have a single input.")
    tensor = info.inputs[0]
    if len(tensor.shape) != 4:
        raise ValueError(
            "Expect segmentation model has input image tensor to be 4 dims. Got input tensor with dims: "
            f"{len(tensor.shape)}"
        )
    _, height, width, channels = tensor.shape
    if channels not in (3, 4):
        raise ValueError(
            f"Expect segmentation model has input image tensor with channels = 3 or 4. Get channel = {channels}"
        )
    if tensor.dtype not in ("uint8", "float32"):
        raise ValueError(
            f"Type mismatch for input tensor {tensor.name}. Requested one of these types: uint8/float32, "
            f"got {tensor.dtype}."
        )
    if tensor.shape[0] != 1 or height <= 0 or width <= 0:
        raise ValueError(f"input tensor {tensor.name} has an unsupported shape {tensor.shape}")
    if info.color_space not in (None, "RGB"):
        raise ValueError(f"input tensor {tensor.name} has color space {info.color_space}; only RGB is supported")
    mean = std = None
    if tensor.dtype == "float32" or channels == 4:
        mean, std = _normalization(info, options)
    # MediaPipe has no "hair model" flag: its legacy 4-channel path recognises the hair model by its second label
    # and feeds it a zero alpha channel (where the previous mask would go); so does segkit.
    hair = len(info.labels) == 2 and info.labels[1] == "hair"
    return preprocess.InputSpec(
        height=height, width=width, channels=channels, dtype=tensor.dtype, mean=mean, std=std, zero_alpha=hair
    )


def _normalization(info: metadata.ModelInfo, options: ImageSegmenterOptions) -> tuple[float, float]:
    """(mean, std) from the metadata's NormalizationOptions, or the explicit override in the options.

    The zero-std check is ``InputSpec``'s (MediaPipe's RuntimeError and text)."""
    values_mean: tuple[float, ...]
    values_std: tuple[float, ...]
    if options.normalization is not None:
        mean, std = (float(v) for v in options.normalization)
        values_mean, values_std = (mean,), (std,)
    elif info.normalization is None:
        # FileNotFoundError, not ValueError: MediaPipe reports the missing metadata as kNotFound, which its Python
        # wrapper raises as FileNotFoundError; code catching MediaPipe's exception keeps working.
        raise FileNotFoundError(_NEED_NORMALIZATION)
    else:
        values_mean, values_std = info.normalization.mean, info.normalization.std
    if len(values_mean) not in (1, 3) or len(values_std) != len(values_mean):
        raise ValueError(
            f"NormalizationOptions: only 1 or 3 mean and std values are supported, got {len(values_mean)}."
        )
    if len(set(values_mean)) > 1 or len(set(values_std)) > 1:
        raise NotImplementedError("Per-channel image normalization is not available.")
    return values_mean[0], values_std[0]


def _check_processing_options(options: ImageProcessingOptions | None) -> int:
    """The rotation in degrees, after MediaPipe's checks (rotation first, then region of interest)."""
    if options is None:
        return 0
    rotation = options.rotation_degrees
    if isinstance(rotation, bool) or not isinstance(rotation, (int, np.integer)):
        raise TypeError(f"rotation_degrees must be an int, got {type(rotation).__name__}")
    if rotation % 90 != 0:
        raise ValueError("Expected rotation to be a multiple of 90°.")
    if options.region_of_interest is not None:
        raise ValueError("This task doesn't support region-of-interest.")
    return int(rotation)


def _mask_shape(shape: tuple[int, ...]) -> tuple[int, int, int]:
    """(h, w, C) of the mask output, which MediaPipe accepts as [h, w], [h, w, C] or [1, h, w, C]."""
    if len(shape) == 4 and shape[0] == 1:
        return shape[1], shape[2], shape[3]
    if len(shape) == 3:
        return shape[0], shape[1], shape[2]
    if len(shape) == 2:
        return shape[0], shape[1], 1
    raise ValueError(
        f"unsupported segmentation output shape {tuple(shape)}: expected [h, w], [h, w, C] or [1, h, w, C]"
    )


_LiveItem = tuple[Image, int, "ImageSegmenter"]  # frame, rotation, and the segmenter it keeps alive while queued


def _weak_callbacks(
    segmenter: ImageSegmenter,
) -> tuple[Callable[[_LiveItem], ImageSegmenterResult], Callable[[ImageSegmenterResult, _LiveItem, int], None]]:
    """The LIVE_STREAM worker's process/deliver callbacks, holding the segmenter weakly: an idle worker thread
    then does not keep a dropped, unclosed segmenter (and its interpreter) alive until the thread times out.
    Each queued frame holds its segmenter (the item's last element), so frames already submitted are delivered."""
    ref = weakref.ref(segmenter)

    def process(item: _LiveItem) -> ImageSegmenterResult:
        owner = ref()
        if owner is None:
            raise RuntimeError(_CLOSED)
        return owner._process_item(item)

    def deliver(result: ImageSegmenterResult, item: _LiveItem, timestamp_ms: int) -> None:
        owner = ref()
        if owner is not None:
            owner._deliver(result, item, timestamp_ms)

    return process, deliver


def _log_drop(timestamp_ms: int) -> None:
    _log.debug("live stream frame at timestamp %d ms dropped: the worker was busy", timestamp_ms)


class ImageSegmenter:
    """Segments images into per-category confidence masks and a category mask, as MediaPipe's task does.

    Running modes (``ImageSegmenterOptions.running_mode``), as in MediaPipe:

    * IMAGE: :meth:`segment`. VIDEO: :meth:`segment_for_video`, timestamps strictly increasing.
      LIVE_STREAM: :meth:`segment_async` returns at once; ``result_callback(result, output_image, timestamp_ms)``
      runs on a worker thread, in timestamp order. ``output_image`` is the input image (same size and format).
      While the worker is busy a new frame waits in a single slot, replacing (dropping) the frame waiting there:
      at most one frame in flight and one waiting, as MediaPipe's flow limiter. Dropped frames get no callback;
      :attr:`live_stream_stats` counts them.
    * Calling another mode's method raises MediaPipe's ValueError. Per-call checks run in MediaPipe's order:
      rotation, region of interest, running mode, then (segkit) closed, then the timestamp.

    Errors in LIVE_STREAM mode (beyond MediaPipe, which only logs them and then refuses every later call): an
    exception from processing a frame (e.g. an image the pipeline rejects) or raised by ``result_callback`` is
    logged with its traceback on the ``segkit`` logger and re-raised to the caller by the next
    :meth:`segment_async` (that frame is then not queued and its timestamp not used, so the call can be
    retried) or, when no call comes, by :meth:`close`. Only the first error not yet raised is kept; the
    segmenter stays usable.

    Closing: :meth:`close` (or leaving a ``with`` block) processes and delivers the frames in flight and waiting,
    joins the worker thread, frees the interpreter, and re-raises a pending error. Called from inside
    ``result_callback`` it returns at once: the waiting frame, if any, is dropped and no callback runs after the
    current one. Idempotent; any segment call afterwards raises RuntimeError. An unclosed segmenter is freed by
    the garbage collector; its worker thread ends by itself after 0.5 s without frames.

    Thread safety: one segmenter may be shared by several threads in any mode. The pipeline (interpreter and
    the reused pre/postprocessing buffers) runs under one lock, so calls are serialized and results never mixed
    up. One lock rather than one interpreter per thread: LiteRT's interpreter is not thread-safe, and each
    invocation already uses every core through XNNPACK's threads, so parallel calls would not be faster, only
    use more memory. VIDEO calls are also ordered: a frame is processed in the order its timestamp was accepted.

    ``hair_mask_feedback`` (segkit option, hair model, VIDEO/LIVE_STREAM only, default off so outputs match
    MediaPipe's) feeds the previous frame's hair mask as the 4th input channel, in buffers reused across frames.
    """

    def __init__(self, options: ImageSegmenterOptions) -> None:
        """Use :meth:`create_from_options` or :meth:`create_from_model_path`."""
        modes.check_callback(options.running_mode, options.result_callback)
        if not options.output_confidence_masks and not options.output_category_mask:
            raise ValueError("At least one of `output_confidence_masks` and `output_category_mask` must be set.")
        self._closed = True
        self._released = True
        # A copy, as MediaPipe takes its options into the graph at creation: changing the caller's object afterwards
        # (one options object reused for a second segmenter) must not change this one. The running mode becomes
        # segkit's enum whatever form it came in (a string, MediaPipe's own enum).
        options = dataclasses.replace(
            options,
            base_options=dataclasses.replace(options.base_options),
            running_mode=RunningMode(modes.mode_key(options.running_mode)),
        )
        self._options = options
        content = _load_model(options.base_options)
        try:
            model = runtime.verify(content)  # the one walk of the file: metadata and runtime reuse it
        except ValueError as exc:
            raise ValueError(f"The model is not a valid Flatbuffer buffer: {exc}") from exc
        info = metadata.read_model_info(model.content, model.structure)
        spec = _input_spec(info, options)
        if not 1 <= len(info.outputs) <= 2:
            raise ValueError(f"Expect input tensor vector of size 1 or 2, but size={len(info.outputs)}")
        self._info = info
        self._labels = list(info.labels)
        self._display_names = list(info.display_names(options.display_names_locale))
        self._runtime = runtime.open_runtime(
            model,
            num_threads=options.num_threads,
            delegate="gpu" if options.base_options.delegate == BaseOptions.Delegate.GPU else "cpu",
            gpu_precision=options.base_options.gpu_precision,
            gpu_fallback=options.base_options.gpu_fallback,
        )
        try:
            mask = self._runtime.output_specs[-1]
            self._quantization = mask.quantization if mask.dtype != np.float32 else None
            self._spec = spec
            self._pre: preprocess.Preprocessor | None = preprocess.Preprocessor(spec)
            self._post = postprocess.Postprocessor(
                int(info.activation), _mask_shape(mask.shape), num_threads=options.num_threads
            )
        except BaseException:
            self._runtime.close()
            raise
        mode = options.running_mode
        self._feedback = options.hair_mask_feedback and spec.zero_alpha and mode != RunningMode.IMAGE
        self._has_previous = False  # hair feedback: the previous frame's mask is in _feedback_rgba's alpha
        self._feedback_rgba: np.ndarray | None = None  # (H, W, 4) uint8, reused while the frame size holds
        self._feedback_tmp: np.ndarray | None = None  # (H, W) float32 scratch for the alpha
        self._lock = threading.Lock()  # the pipeline: interpreter and reused buffers
        self._close_lock = threading.Lock()  # makes exactly one close() the first
        self._video_lock = threading.Lock()  # VIDEO: accept a timestamp and process its frame as one step
        self._timestamps = modes.TimestampGuard() if mode == RunningMode.VIDEO else None
        self._worker: modes.LiveStreamWorker[_LiveItem, ImageSegmenterResult] | None = None
        if mode == RunningMode.LIVE_STREAM:
            self._worker = modes.LiveStreamWorker(*_weak_callbacks(self), on_drop=_log_drop)
        self._released = False
        self._closed = False

    @classmethod
    def create_from_model_path(cls, model_path: str | os.PathLike[str]) -> ImageSegmenter:
        """An IMAGE-mode segmenter with default options for the model at ``model_path``."""
        return cls(ImageSegmenterOptions(base_options=BaseOptions(model_asset_path=os.fspath(model_path))))

    @classmethod
    def create_from_options(cls, options: ImageSegmenterOptions) -> ImageSegmenter:
        """A segmenter for ``options``."""
        return cls(options)

    @property
    def labels(self) -> list[str]:
        """The category names from the model's label file, in output-channel order (empty without metadata)."""
        return list(self._labels)

    @property
    def display_names(self) -> list[str]:
        """The categories' display names in ``display_names_locale`` (MediaPipe's Python API has none)."""
        return list(self._display_names)

    @property
    def accelerator(self) -> str:
        """Where the model actually runs: ``"cpu"`` or ``"gpu"``."""
        return self._runtime.accelerator

    @property
    def model_info(self) -> metadata.ModelInfo:
        """Everything read from the model file."""
        return self._info

    @property
    def live_stream_stats(self) -> modes.WorkerStats | None:
        """LIVE_STREAM counters (frames submitted, delivered, dropped, failed, outstanding); None in other modes."""
        return self._worker.stats if self._worker is not None else None

    def segment(
        self, image: ImageLike, image_processing_options: ImageProcessingOptions | None = None
    ) -> ImageSegmenterResult:
        """Segments one image (IMAGE mode). Accepts an :class:`Image`, a numpy array or a PIL image."""
        rotation = self._check_call(image_processing_options, RunningMode.IMAGE)
        return self._process(as_image(image, copy=False), rotation)

    def segment_for_video(
        self,
        image: ImageLike,
        timestamp_ms: int,
        image_processing_options: ImageProcessingOptions | None = None,
    ) -> ImageSegmenterResult:
        """Segments one video frame (VIDEO mode); ``timestamp_ms`` must be above the last accepted one.

        ValueError("Input timestamp must be monotonically increasing.") otherwise, as MediaPipe; a rejected
        timestamp is not remembered. The frame is processed (and its timestamp used) even when it then fails.
        """
        rotation = self._check_call(image_processing_options, RunningMode.VIDEO)
        frame = as_image(image, copy=False)
        assert self._timestamps is not None
        with self._video_lock:
            self._timestamps.accept(timestamp_ms)
            return self._process(frame, rotation)

    def segment_async(
        self,
        image: ImageLike,
        timestamp_ms: int,
        image_processing_options: ImageProcessingOptions | None = None,
    ) -> None:
        """Queues one live frame (LIVE_STREAM mode) and returns at once, never blocking on the worker.

        The result reaches ``result_callback(result, image, timestamp_ms)`` on a worker thread. When the worker
        is busy the frame waits, replacing an older waiting frame, which is dropped. Raises, in order: MediaPipe's
        rotation/ROI/mode errors, RuntimeError when closed, the timestamp error, then the first pending error
        from an earlier frame or callback (this frame is then not queued; its timestamp stays free).
        """
        rotation = self._check_call(image_processing_options, RunningMode.LIVE_STREAM)
        frame = as_image(image)
        assert self._worker is not None
        try:
            self._worker.submit((frame, rotation, self), timestamp_ms)
        except modes.WorkerClosedError:
            raise RuntimeError(_CLOSED) from None

    def close(self) -> None:
        """Finishes the live frames in flight and waiting, stops the worker and frees the interpreter.

        Re-raises a pending LIVE_STREAM error (see the class docstring). Idempotent: a later call only joins the
        worker and raises errors not yet raised. From inside ``result_callback`` it drops the waiting frame and
        returns without joining; the worker thread ends when the callback returns.
        """
        self._shutdown(drain=True, timeout=None)

    def __enter__(self) -> ImageSegmenter:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __del__(self) -> None:
        # Never raises, never waits long. The worker thread holds a reference to this object while it runs, so
        # by the time the collector gets here the thread has nothing left to do (the timeout is only a guard).
        # No module globals here (contextlib.suppress was one): at interpreter exit they may already be None.
        try:
            self._shutdown(drain=False, timeout=1.0, raise_errors=False)
        except BaseException:  # a finalizer must not raise
            return

    def _shutdown(self, drain: bool, timeout: float | None, raise_errors: bool = True) -> None:
        close_lock = getattr(self, "_close_lock", None)
        if close_lock is None:  # __init__ failed before anything needed freeing
            return
        with close_lock:
            first = not self._closed
            self._closed = True
        worker = self._worker
        if worker is not None and worker.on_worker_thread():
            # Inside result_callback: this frame is already processed; drop the waiting one so the interpreter
            # is not needed again, and free it now. The thread exits once the callback returns; a later close()
            # from another thread joins it.
            if first:
                worker.close(drain=False)
                self._release()
            return
        try:
            if worker is not None:
                try:
                    worker.close(drain=drain, timeout=timeout)
                except TimeoutError:
                    return  # the worker may still use the interpreter: leave it to the garbage collector
                except Exception:
                    if raise_errors:
                        raise
                    _log.debug("pending live stream error dropped by the finalizer", exc_info=True)
        finally:
            if first and (worker is None or not worker.running):
                self._release()

    def _release(self) -> None:
        """Frees the interpreter and the postprocessor's resources, once no frame can run any more."""
        with self._lock:
            if self._released:
                return
            self._released = True
            self._feedback_rgba = self._feedback_tmp = None
            self._pre = None  # its sampling plans and buffers; a closed LIVE_STREAM segmenter may wait for the GC
            try:
                self._runtime.close()
            finally:
                self._post.close()

    def _check_call(self, options: ImageProcessingOptions | None, mode: RunningMode) -> int:
        """MediaPipe's per-call checks in its order: rotation, region of interest, running mode; then closed."""
        rotation = _check_processing_options(options)
        modes.check_mode(mode, self._options.running_mode)
        if self._closed:
            raise RuntimeError(_CLOSED)
        return rotation

    def _process_item(self, item: _LiveItem) -> ImageSegmenterResult:
        return self._process(item[0], item[1])

    def _deliver(self, result: ImageSegmenterResult, item: _LiveItem, timestamp_ms: int) -> None:
        callback = self._options.result_callback
        assert callback is not None
        callback(result, item[0], timestamp_ms)

    def _feedback_pixels(self, pixels: np.ndarray) -> np.ndarray | None:
        """RGBA pixels whose alpha is the previous frame's hair mask, in a reused buffer; None without one."""
        rgba = self._feedback_rgba
        if not self._has_previous or rgba is None or rgba.shape[:2] != pixels.shape[:2]:
            return None
        np.copyto(rgba[:, :, :3], pixels[:, :, :3])
        return rgba

    def _keep_feedback(self, mask: np.ndarray) -> None:
        """Stores the mask as the next frame's alpha, in buffers reused while the frame size holds."""
        shape = mask.shape[:2]
        if self._feedback_rgba is None or self._feedback_rgba.shape[:2] != shape:
            self._feedback_rgba = np.empty((*shape, 4), np.uint8)
            self._feedback_tmp = np.empty(shape, np.float32)
        postprocess.to_alpha(mask.reshape(shape), out=self._feedback_rgba[:, :, 3], scratch=self._feedback_tmp)
        self._has_previous = True

    def _process(self, image: Image, rotation: int) -> ImageSegmenterResult:
        """One image through the stages, under the lock that guards the shared buffers and interpreter."""
        opts = self._options
        width, height = image.width, image.height
        # Only 3-channel models rotate their input (MediaPipe's 4-channel path ignores the rotation), so only
        # their masks are in the rotated frame and can be returned upright.
        if opts.output_upright and rotation % 180 != 0 and self._spec.channels == 3:
            width, height = height, width
        channels, wants_confidence = self._post.tensor_shape[2], opts.output_confidence_masks or self._feedback
        check_mask_bytes(width, height, channels, confidence=wants_confidence, category=opts.output_category_mask)
        pixels = preprocess.to_pixels(image.numpy_view(), image.image_format, self._spec.channels)
        with self._lock:
            pre = self._pre
            if self._released or pre is None:
                raise RuntimeError(_CLOSED)
            feedback = self._feedback_pixels(pixels) if self._feedback else None
            tensor = pre(feedback, rotation, keep_alpha=True) if feedback is not None else pre(pixels, rotation)
            logits = self._runtime.run(tensor)[-1]
            if self._quantization is not None:
                logits = postprocess.dequantize(logits, *self._quantization)
            confidence, category = self._post.masks(
                logits,
                width,
                height,
                confidence=opts.output_confidence_masks or self._feedback,
                category=opts.output_category_mask,
            )
            if self._feedback and confidence is not None:
                self._keep_feedback(confidence[-1])
        return ImageSegmenterResult(
            confidence_masks=(
                [ConfidenceMask._wrap(ImageFormat.VEC32F1, m) for m in confidence]
                if confidence is not None and opts.output_confidence_masks
                else None
            ),
            category_mask=CategoryMask._wrap(ImageFormat.GRAY8, category) if category is not None else None,
        )
