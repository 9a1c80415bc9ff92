"""Shortcuts must equal the general code bit for bit: two-channel softmax, few-channel transpose."""

from __future__ import annotations

import numpy as np
import pytest

import segkit.postprocess.activation as activation
from segkit.postprocess import Postprocessor, softmax

F32 = np.float32


def _general_softmax(x: np.ndarray, monkeypatch: pytest.MonkeyPatch) -> np.ndarray:
    with monkeypatch.context() as m:
        m.setattr(activation, "_softmax2", lambda x, out: False)
        return softmax(x)


@pytest.mark.parametrize("special", ["none", "ties", "far", "inf", "nan", "huge", "zeros"])
def test_two_channel_softmax_equals_the_general_one(special: str, monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(len(special))
    x = rng.normal(0, 6, (2, 37, 41)).astype(F32)
    if special == "ties":
        x[1, ::2] = x[0, ::2]
    elif special == "far":  # exp underflows to 0 and to subnormals
        x[1] = x[0] + rng.choice(np.array([-120, -95, -88, 88, 95, 120], F32), x[0].shape)
    elif special == "zeros":
        x[0, :5], x[1, :5] = F32(0.0), F32(-0.0)
    elif special != "none":
        value = {"inf": np.inf, "nan": np.nan, "huge": 3e38}[special]
        mask = rng.random(x.shape) < 0.1
        x[mask] = F32(value) * rng.choice([-1, 1], int(mask.sum())).astype(F32)
    with np.errstate(all="ignore"):
        got = softmax(x)
    want = _general_softmax(x, monkeypatch)
    assert np.array_equal(got.view(np.uint32), want.view(np.uint32))


@pytest.mark.parametrize("c", [1, 2, 4, 5, 21])
def test_channels_first_copy_is_a_transpose(c: int) -> None:
    k = np.random.default_rng(c).normal(0, 1, (13, 17, c)).astype(F32)
    pp = Postprocessor(0, k.shape, num_threads=1)
    assert np.array_equal(pp._channels_first(k), k.transpose(2, 0, 1))
    assert np.array_equal(pp._channels_first(k[None]), k.transpose(2, 0, 1))
