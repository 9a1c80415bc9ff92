"""Random logits and size cases shared by the postprocess tests that compare two code paths bit for bit."""

from __future__ import annotations

import numpy as np

F32 = np.float32
SPECIAL_VALUES = np.array([np.inf, -np.inf, np.nan, 3e38, -3e38, 1e-40], F32)


def random_logits(rng: np.random.Generator, h: int, w: int, c: int, special: bool) -> np.ndarray:
    """(h, w, c) float32 logits around 0; with ``special``, ~2% are inf, NaN, near FLT_MAX or subnormal."""
    k = rng.normal(0, 4, (h, w, c)).astype(F32)
    if special:
        mask = rng.random(k.shape) < 0.02
        k[mask] = rng.choice(SPECIAL_VALUES, int(mask.sum()))
    return k


def size_cases(n: int, seed: int, same_size_every: int = 0) -> list[tuple[int, int, int, int, int, bool]]:
    """``n`` cases (h, w, channels, out_h, out_w, special): every 7th an exact 2x shrink (the area path), every
    ``same_size_every``-th (if set) the same size (activation only), every 3rd with special values."""
    rng = np.random.default_rng(seed)
    cases = []
    for i in range(n):
        h, w = (int(v) for v in rng.integers(1, 40, 2))
        c = int(rng.choice([1, 2, 3, 5, 21]))
        oh, ow = (int(v) for v in rng.integers(1, 90, 2))
        if i % 7 == 0:
            oh, ow = max(1, h // 2), max(1, w // 2)
        if same_size_every and i % same_size_every == 0:
            oh, ow = h, w
        cases.append((h, w, c, oh, ow, i % 3 == 0))
    return cases
