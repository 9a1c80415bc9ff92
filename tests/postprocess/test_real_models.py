"""The shared models end to end at tensor size: LiteRT logits through ``Postprocessor`` versus MediaPipe's masks.

The image is exactly the tensor size, so MediaPipe's preprocessing is the identity and its masks are not resized;
the probe-model tests cover the resizing. For models without an activation MediaPipe's confidence masks are the
logits themselves, so the category mask is also checked on MediaPipe's own logits.
"""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image as PILImage

from segkit.postprocess import Postprocessor
from tests.conftest import load_rgb, model_path
from tests.postprocess.conftest import bits_differ

F32 = np.float32

# model, activation in its metadata, normalization (mean, std), 4-channel input, test image
MODELS = [
    ("selfie_segmenter.tflite", 0, (0.0, 255.0), False, "segmentation_input_rotation0.jpg"),
    ("selfie_segmenter_landscape.tflite", 0, (0.0, 255.0), False, "segmentation_input_rotation0.jpg"),
    ("hair_segmenter.tflite", 2, (0.0, 255.0), True, "segmentation_input_rotation0.jpg"),
    ("deeplabv3.tflite", 0, (127.5, 127.5), False, "cats_and_dogs.jpg"),
]


def _mediapipe(model: str, pixels: np.ndarray) -> tuple[list[np.ndarray], np.ndarray]:
    import mediapipe as mp
    from mediapipe.tasks.python.core.base_options import BaseOptions
    from mediapipe.tasks.python.vision import ImageSegmenter, ImageSegmenterOptions

    options = ImageSegmenterOptions(
        base_options=BaseOptions(model_asset_path=str(model_path(model))),
        output_confidence_masks=True,
        output_category_mask=True,
    )
    seg = ImageSegmenter.create_from_options(options)
    try:
        result = seg.segment(mp.Image(image_format=mp.ImageFormat.SRGB, data=np.ascontiguousarray(pixels)))
        conf = [np.array(m.numpy_view(), F32).reshape(pixels.shape[:2]) for m in result.confidence_masks]
        return conf, np.array(result.category_mask.numpy_view(), np.uint8).reshape(pixels.shape[:2])
    finally:
        seg.close()


def _litert(model: str, pixels: np.ndarray, mean: float, std: float, four: bool) -> np.ndarray:
    from ai_edge_litert.interpreter import Interpreter

    lo, hi = F32(F32(0 - mean) / F32(std)), F32(F32(255 - mean) / F32(std))
    x = np.multiply(pixels.astype(F32), F32(F32(hi - lo) / F32(255)), dtype=F32) + lo
    if four:  # MediaPipe zeroes the hair model's alpha channel
        x = np.concatenate([x, np.full((*x.shape[:2], 1), lo, F32)], axis=-1)
    it = Interpreter(model_path=str(model_path(model)))
    it.allocate_tensors()
    it.set_tensor(it.get_input_details()[0]["index"], x[None])
    it.invoke()
    return np.array(it.get_tensor(it.get_output_details()[-1]["index"])[0], F32)


@pytest.mark.parametrize(("model", "activation", "norm", "four", "image"), MODELS, ids=[m[0] for m in MODELS])
def test_real_model_masks_match_mediapipe(
    model: str, activation: int, norm: tuple[float, float], four: bool, image: str
) -> None:
    from ai_edge_litert.interpreter import Interpreter

    it = Interpreter(model_path=str(model_path(model)))
    h, w = (int(n) for n in it.get_input_details()[0]["shape"][1:3])
    pixels = np.asarray(PILImage.fromarray(load_rgb(image)).resize((w, h)), np.uint8)
    mp_conf, mp_cat = _mediapipe(model, pixels)
    logits = _litert(model, pixels, *norm, four)
    pp = Postprocessor(activation, logits.shape, num_threads=1)
    if activation == 0:  # MediaPipe's confidence masks are its logits
        theirs = np.stack(mp_conf, axis=-1)
        assert np.array_equal(pp.category_mask(theirs, w, h), mp_cat)
    conf, cat = pp.masks(logits, w, h)
    assert conf is not None and cat is not None and len(conf) == len(mp_conf)
    differing = sum(bits_differ(a, b) for a, b in zip(conf, mp_conf, strict=True))
    assert differing == 0, f"{model}: {differing} confidence values differ (LiteRT vs MediaPipe inference?)"
    assert np.array_equal(cat, mp_cat)
