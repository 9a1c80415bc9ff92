"""The option types of MediaPipe's Tasks API, with the same names, fields, defaults and order.

segkit's own additions come after MediaPipe's fields and have defaults, so code written for MediaPipe (positional
or keyword) builds the same objects here.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from segkit.image import Image
    from segkit.result import ImageSegmenterResult


class VisionTaskRunningMode(enum.Enum):
    """How the segmenter is fed: still images, decoded video frames, or a live feed with a callback.

    MediaPipe's name (so ``str(mode)`` reads ``VisionTaskRunningMode.VIDEO`` as there); ``RunningMode`` is the
    alias both MediaPipe's ``vision`` module and segkit use in code."""

    IMAGE = "IMAGE"
    VIDEO = "VIDEO"
    LIVE_STREAM = "LIVE_STREAM"


RunningMode = VisionTaskRunningMode


@dataclasses.dataclass
class BaseOptions:
    """Where the model comes from (a path or its bytes; the buffer wins when both are set) and where it runs.

    ``gpu_precision`` and ``gpu_fallback`` are segkit's: the GPU accelerator computes in fp16 unless "fp32" is
    asked for, and with ``gpu_fallback=True`` a GPU that cannot start falls back to the CPU with one warning
    instead of raising.
    """

    class Delegate(enum.IntEnum):
        """The accelerator; ``None`` and ``DEFAULT`` mean the CPU, as in MediaPipe."""

        DEFAULT = 0
        CPU = 1
        GPU = 2

    model_asset_path: str | None = None
    model_asset_buffer: bytes | bytearray | memoryview | None = None
    delegate: Delegate | None = None
    gpu_precision: Literal["fp16", "fp32"] = "fp16"
    gpu_fallback: bool = False


@dataclasses.dataclass
class RectF:
    """A normalized rectangle; MediaPipe's positional order is left, top, bottom, right."""

    left: float
    top: float
    bottom: float
    right: float


@dataclasses.dataclass
class Rect:
    """A rectangle in pixels (MediaPipe's ``containers.rect.Rect``; the segmenter itself takes no region)."""

    left: int
    top: int
    bottom: int
    right: int


@dataclasses.dataclass
class NormalizedRect:
    """A rotated rectangle in normalized coordinates (MediaPipe's ``containers.rect.NormalizedRect``)."""

    x_center: float
    y_center: float
    width: float
    height: float
    rotation: float = 0.0
    rect_id: int | None = None


@dataclasses.dataclass
class ImageProcessingOptions:
    """Per-call options: a region of interest (which this task rejects, as MediaPipe does) and a rotation.

    ``rotation_degrees`` is clockwise and must be a multiple of 90.
    """

    region_of_interest: RectF | None = None
    rotation_degrees: int = 0


ResultCallback = Callable[["ImageSegmenterResult", "Image", int], Any]


@dataclasses.dataclass
class ImageSegmenterOptions:
    """Options of an :class:`~segkit.ImageSegmenter`; MediaPipe's fields first, then segkit's.

    segkit's additions:
      display_names_locale: the locale of ``ImageSegmenter.display_names`` (MediaPipe's Python API ignores it).
      num_threads: interpreter threads; ``None`` means every core.
      output_upright: with a 90/270 rotation, return masks in the rotated (upright) frame, height and width
        swapped, instead of MediaPipe's stretch back to the input's size.
      normalization: ``(mean, std)`` for float models whose metadata has no NormalizationOptions (MediaPipe
        refuses those models; the legacy ones in MediaPipe's history need it).
      hair_mask_feedback: for the hair model in VIDEO and LIVE_STREAM mode, feed the previous frame's hair mask
        as the 4th input channel, as the legacy MediaPipe graph did (MediaPipe Tasks feeds zeros).
    """

    base_options: BaseOptions
    running_mode: RunningMode = RunningMode.IMAGE
    output_confidence_masks: bool = True
    output_category_mask: bool = False
    result_callback: ResultCallback | None = None
    display_names_locale: str = "en"
    num_threads: int | None = None
    output_upright: bool = False
    normalization: tuple[float, float] | None = None
    hair_mask_feedback: bool = False
