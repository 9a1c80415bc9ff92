"""``ImageSegmenterResult``: the masks of one call, as MediaPipe returns them, typed so user code checks cleanly.

A field is ``None`` only when the options did not ask for that kind of mask, which the type checker cannot see.
Following typeshed's rule for such values (``_typeshed.MaybeNone``), the fields are typed ``X | MaybeNone``:
``result.confidence_masks[0]`` type-checks without a None test, and the mask types still carry their dtype.
``confidence_arrays()`` and ``category_array()`` are the strict accessors: typed arrays, or a clear error.
"""

from __future__ import annotations

import dataclasses
from typing import Any, TypeAlias

import numpy as np
import numpy.typing as npt

from segkit.image import Image

# A None the type checker should not force a test for (typeshed's ``MaybeNone``): see the module docstring.
MaybeNone: TypeAlias = Any


class ConfidenceMask(Image):
    """One category's confidence mask: a VEC32F1 image whose ``numpy_view()`` is float32 (H, W, 1) in [0, 1]."""

    __slots__ = ()

    def numpy_view(self) -> npt.NDArray[np.float32]:
        """The confidences as a read-only float32 (H, W, 1) array."""
        return self._data


class CategoryMask(Image):
    """The category mask: a GRAY8 image whose ``numpy_view()`` is uint8 (H, W, 1), a category index per pixel."""

    __slots__ = ()

    def numpy_view(self) -> npt.NDArray[np.uint8]:
        """The category indices as a read-only uint8 (H, W, 1) array."""
        return self._data


@dataclasses.dataclass
class ImageSegmenterResult:
    """Confidence masks (one VEC32F1 image per category) and the category mask (GRAY8); ``None`` if not asked for.

    ``numpy_view()`` of a mask is a read-only (H, W, 1) array.
    """

    confidence_masks: list[ConfidenceMask] | MaybeNone = None
    category_mask: CategoryMask | MaybeNone = None

    def confidence_arrays(self) -> list[npt.NDArray[np.float32]]:
        """Each category's confidences, float32 (H, W, 1); ValueError if confidence masks were not asked for."""
        masks: list[ConfidenceMask] | None = self.confidence_masks
        if masks is None:
            raise ValueError("no confidence masks: create the segmenter with output_confidence_masks=True")
        return [m.numpy_view() for m in masks]

    def category_array(self) -> npt.NDArray[np.uint8]:
        """The category index per pixel, uint8 (H, W, 1); ValueError if the category mask was not asked for."""
        mask: CategoryMask | None = self.category_mask
        if mask is None:
            raise ValueError("no category mask: create the segmenter with output_category_mask=True")
        return mask.numpy_view()
