"""Times ``Postprocessor`` on real model outputs: ``.venv/bin/python -m tests.postprocess.bench_postprocess``.

The logits come from running the shared models through LiteRT on a shared test image (a plain PIL resize to
the tensor size is enough here), so the category-mask pruning sees realistic class maps.
"""

from __future__ import annotations

import argparse
import functools
import time
from collections.abc import Callable

import numpy as np

from segkit.postprocess import Postprocessor
from tests.conftest import load_rgb, model_path

# (label, model, activation, 4-channel input, mean, std, test image)
CONFIGS = (
    ("selfie 1ch 256x256", "selfie_segmenter.tflite", 0, False, 0.0, 255.0, "segmentation_input_rotation0.jpg"),
    ("hair 2ch 512x512", "hair_segmenter.tflite", 2, True, 0.0, 255.0, "segmentation_input_rotation0.jpg"),
    ("deeplab 21ch 257x257", "deeplabv3.tflite", 0, False, 127.5, 127.5, "cats_and_dogs.jpg"),
)
SIZES = ((640, 480), (1280, 720))


def model_logits(model: str, four: bool, mean: float, std: float, image: str) -> np.ndarray:
    """The model's mask output ``(h, w, C)`` for a test image stretched to the input size."""
    from ai_edge_litert.interpreter import Interpreter
    from PIL import Image as PILImage

    it = Interpreter(model_path=str(model_path(model)), num_threads=1)
    it.allocate_tensors()
    inp = it.get_input_details()[0]
    h, w = (int(n) for n in inp["shape"][1:3])
    pixels = np.asarray(PILImage.fromarray(load_rgb(image)).resize((w, h)), np.float32)
    x = (pixels - np.float32(mean)) / np.float32(std)
    if four:
        x = np.concatenate([x, np.zeros_like(x[..., :1])], axis=-1)
    it.set_tensor(inp["index"], x[None].astype(np.float32))
    it.invoke()
    return np.array(it.get_tensor(it.get_output_details()[-1]["index"])[0])


def median_ms(fn: Callable[[], object], repeats: int, hold: bool = False) -> float:
    """Median of ``repeats`` timed calls after two warm-ups, in milliseconds (the machine is shared).

    ``hold``: keep the previous result alive during each call, as ``r = pp.masks(...)`` in a loop does.
    """
    kept = [fn(), fn()]
    times = []
    for _ in range(repeats):
        if not hold:
            kept.clear()
        t = time.perf_counter()
        r = fn()
        times.append(time.perf_counter() - t)
        kept[:] = [r]
        del r
    return float(np.median(times)) * 1e3


def main() -> None:
    """Print median confidence-only, category-only and both-mask timings per model and output size."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=25)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--hold", action="store_true", help="keep the previous result alive during each call")
    parser.add_argument("--only", default="", help="run only configurations whose label contains this")
    args = parser.parse_args()
    for label, model, act, four, mean, std, image in CONFIGS:
        if args.only not in label:
            continue
        logits = model_logits(model, four, mean, std, image)
        pp = Postprocessor(act, logits.shape, num_threads=args.threads)
        for width, height in SIZES:
            conf = median_ms(functools.partial(pp.confidence_masks, logits, width, height), args.repeats, args.hold)
            cat = median_ms(functools.partial(pp.category_mask, logits, width, height), args.repeats, args.hold)
            both = median_ms(functools.partial(pp.masks, logits, width, height), args.repeats, args.hold)
            times = f"confidence {conf:6.2f} ms  category {cat:6.2f} ms  both {both:6.2f} ms"
            print(f"{label:22s} {width}x{height}: {times}")
        pp.close()


if __name__ == "__main__":
    main()
