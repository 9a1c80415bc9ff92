"""``ImageSegmenterResult``: the masks of one call, as MediaPipe returns them."""

from __future__ import annotations

import dataclasses

from segkit.image import Image


@dataclasses.dataclass
class ImageSegmenterResult:
    """Confidence masks (one VEC32F1 image per category) and the category mask (GRAY8); ``None`` if not asked for.

    ``numpy_view()`` of a mask is a read-only (H, W, 1) array.
    """

    confidence_masks: list[Image] | None = None
    category_mask: Image | None = None
