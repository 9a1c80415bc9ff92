"""Bit-exactness of ``Postprocessor`` against mediapipe==1.2.2, driven through probe models.

Every case compares all confidence masks as float32 bit patterns and the category mask byte for byte.
"""

from __future__ import annotations

import functools

import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from segkit.postprocess import Postprocessor
from tests.postprocess.conftest import Oracle, Probe, bits_differ

# Probe models run through mediapipe for every drawn case: the slow tier.
pytestmark = pytest.mark.slow

# (mean, std): logits in [0, 255], [-1, 1], [0, 1] (crosses the 0.5 cut), [-10, 10], [-255, 255] (sigmoid
# saturates to equal values, so SIGMOID argmax ties).
NORMALIZATIONS = ((0.0, 1.0), (127.5, 127.5), (0.0, 255.0), (127.5, 12.75), (127.5, 0.5))


@functools.lru_cache(maxsize=64)
def _postprocessor(activation: int, shape: tuple[int, int, int], threads: int) -> Postprocessor:
    return Postprocessor(activation, shape, num_threads=threads)


def check(oracle: Oracle, probe: Probe, pixels: np.ndarray, threads: int = 1) -> None:
    """Assert segkit's masks equal MediaPipe's for ``pixels`` through ``probe``."""
    mp = oracle.run(probe, pixels)
    th, tw = probe.tensor_hwc[:2]
    logits = probe.logits(pixels)
    pp = _postprocessor(probe.activation, probe.output_hwc, threads)
    conf, cat = pp.masks(logits, tw, th)
    assert conf is not None and cat is not None
    assert len(conf) == len(mp.confidence) == probe.output_hwc[2]
    for c, (ours, theirs) in enumerate(zip(conf, mp.confidence, strict=True)):
        assert ours.dtype == np.float32 and ours.shape == (th, tw)
        assert bits_differ(ours, theirs) == 0, f"{probe}: confidence mask {c} differs in {bits_differ(ours, theirs)} px"
    assert cat.dtype == np.uint8 and cat.shape == (th, tw)
    assert np.array_equal(cat, mp.category), f"{probe}: category mask differs in {int((cat != mp.category).sum())} px"
    alone = pp.category_mask(logits, tw, th)
    assert np.array_equal(alone, cat)


@st.composite
def cases(draw: st.DrawFn) -> tuple[Probe, np.ndarray]:
    """A probe (any resize ratio, 1-21 channels, any activation and logit range) and an image for it."""
    area2x = draw(st.integers(0, 7)) == 0
    ch = 4 if area2x else draw(st.sampled_from((3, 3, 4)))
    th, tw = draw(st.integers(2, 96)), draw(st.integers(2, 96))
    if area2x:
        out = (2 * th, 2 * tw, 1)
    else:
        c = draw(st.sampled_from((1, 1, 2, 2, 3, 5, 8, 21)))
        room = th * tw * ch // c
        if room < 1:
            c, room = 1, th * tw * ch
        h = draw(st.integers(1, min(room, 3 * th)))
        w = draw(st.integers(1, min(room // h, 3 * tw)))
        out = (h, w, c)
    mean, std = draw(st.sampled_from(NORMALIZATIONS))
    probe = Probe((th, tw, ch), out, mean, std, draw(st.integers(0, 2)))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    style = draw(st.sampled_from(("uniform", "few", "smooth")))
    if style == "uniform":
        pixels = rng.integers(0, 256, (th, tw, ch), dtype=np.uint8)
    elif style == "few":  # few distinct values: exact ties between channels and with the 0.5 cut
        pixels = rng.choice(np.array([0, 127, 128, 255], np.uint8), (th, tw, ch))
    else:  # smooth ramps: long runs of near-equal logits, like real class maps
        yy, xx = np.mgrid[0:th, 0:tw]
        base = (yy * 255 // max(th - 1, 1) + xx * 255 // max(tw - 1, 1)) // 2
        pixels = np.clip(base[..., None] + rng.integers(-3, 4, (th, tw, ch)), 0, 255).astype(np.uint8)
    return probe, pixels


@settings(deadline=None, max_examples=120, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(case=cases())
@example(case=(Probe((16, 12, 3), (8, 8, 1), 127.5, 12.75, 0), np.arange(576, dtype=np.uint8).reshape(16, 12, 3)))
def test_random_probes_match_mediapipe(oracle: Oracle, case: tuple[Probe, np.ndarray]) -> None:
    check(oracle, *case)


# Real-model-like logit grids at typical output sizes: (tensor = image size, logits, activation, normalization)
LARGE = [
    ((480, 640, 3), (256, 256, 1), 0, (0.0, 255.0)),  # selfie-like, sigmoid already in the graph
    ((480, 640, 3), (144, 256, 1), 1, (127.5, 12.75)),  # landscape selfie, SIGMOID
    ((480, 640, 3), (512, 512, 2), 2, (127.5, 12.75)),  # hair-like, downscale, SOFTMAX
    ((480, 640, 3), (200, 200, 21), 0, (127.5, 12.75)),  # deeplab-like, NONE
    ((240, 320, 4), (480, 640, 1), 0, (127.5, 12.75)),  # exact 2x shrink: OpenCV's area path
    ((720, 1280, 3), (257, 257, 21), 0, (127.5, 12.75)),  # deeplab at 720p
    ((720, 1280, 3), (512, 512, 2), 2, (127.5, 0.5)),  # hair at 720p, large logits
    ((720, 1280, 3), (256, 256, 1), 1, (127.5, 127.5)),  # selfie at 720p, SIGMOID
]


@pytest.mark.parametrize(("tensor", "logits", "activation", "norm"), LARGE, ids=[f"{t[1]}to{t[0]}" for t in LARGE])
def test_large_outputs_match_mediapipe(
    oracle: Oracle,
    tensor: tuple[int, int, int],
    logits: tuple[int, int, int],
    activation: int,
    norm: tuple[float, float],
) -> None:
    rng = np.random.default_rng(sum(tensor) + sum(logits))
    th, tw, ch = tensor
    yy, xx = np.mgrid[0:th, 0:tw]
    blobs = (np.sin(yy / 37.0) * np.cos(xx / 23.0) * 120 + 128).astype(np.int16)[..., None]
    pixels = np.clip(blobs + rng.integers(-40, 41, (th, tw, ch)), 0, 255).astype(np.uint8)
    probe = Probe(tensor, logits, norm[0], norm[1], activation)
    check(oracle, probe, pixels, threads=3)


@pytest.mark.parametrize("activation", [0, 1, 2])
def test_argmax_ties_take_the_first_channel(oracle: Oracle, activation: int) -> None:
    """Channels holding equal logits: MediaPipe's first-maximum rule decides every pixel."""
    th, tw = 12, 10
    probe = Probe((th, tw, 3), (6, 5, 4), 0.0, 1.0, activation)
    groups = [7, 7, 3, 3, 9, 9, 9, 9, 2, 9, 9, 2, 5, 1, 5, 1, 0, 0, 0, 0, 3, 8, 8, 8]
    pixels = np.resize(np.array(groups, np.uint8), (th, tw, 3))
    check(oracle, probe, pixels)
