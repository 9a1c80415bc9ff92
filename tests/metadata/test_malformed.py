"""Malformed input: a clear ValueError, never a crash, a hang or another exception (hand-made and fuzzed)."""

from __future__ import annotations

import os
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from segkit.metadata import Activation, InvalidActivationError, read_model_info, verify_model
from tests.metadata.helpers import activation_pos, load, metadata_region, zip_start

TIME_LIMIT_S = 1.0
FUZZ = settings(deadline=None, max_examples=120, suppress_health_check=[HealthCheck.too_slow])
Edits = st.lists(st.tuples(st.integers(0, 2**31), st.integers(0, 255)), min_size=1, max_size=8)


def only_value_error(model: bytes) -> None:
    """verify_model and read_model_info either succeed or raise ValueError, quickly."""
    start = time.perf_counter()
    for fn in (verify_model, read_model_info):
        try:
            fn(model)
        except ValueError as e:
            assert str(e)
    assert time.perf_counter() - start < TIME_LIMIT_S


def edit(model: bytes, edits: list[tuple[int, int]], lo: int = 0, hi: int | None = None) -> bytes:
    """The model with bytes at positions in [lo, hi) set to the given values."""
    hi = len(model) if hi is None else hi
    out = bytearray(model)
    for pos, value in edits:
        out[lo + pos % (hi - lo)] = value
    return bytes(out)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "too short"),
        (b"TFL3", "too short"),
        (
            b"\x89PNG\r\n\x1a\n" + bytes(64),
            r"^not a TFLite model: file identifier is b'\\r\\n\\x1a\\n' instead of b'TFL3'$",
        ),
        (b"\x00" * 4 + b"TFL3", "root offset|vtable"),
        (b"\xff\xff\x00\x00TFL3" + bytes(32), "outside"),
    ],
)
def test_not_a_model(data: bytes, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        verify_model(data)
    with pytest.raises(ValueError, match=message):
        read_model_info(data)


def test_truncated_models() -> None:
    for name in ("legacy/1x256x256x3_softmax.tflite", "selfie_segmenter.tflite"):
        model = load(name)
        for cut in (8, 100, len(model) // 2):
            with pytest.raises(ValueError):
                verify_model(model[:cut])


def test_wrong_metadata_identifier() -> None:
    model = load("selfie_segmenter.tflite")
    start, _ = metadata_region(model)
    bad = model[: start + 4] + b"M002" + model[start + 8 :]
    with pytest.raises(ValueError, match=r"^Invalid metadata schema version: expected M001, got M002$"):
        read_model_info(bad)
    verify_model(bad)  # the TFLite structure itself is fine


@pytest.mark.parametrize(
    ("value", "expected"), [(0, Activation.NONE), (1, Activation.SIGMOID), (2, Activation.SOFTMAX)]
)
def test_activation_values(value: int, expected: Activation) -> None:
    model = load("hair_segmenter.tflite")
    pos = activation_pos(model)
    assert read_model_info(model[:pos] + bytes([value]) + model[pos + 1 :]).activation is expected


def test_invalid_activation() -> None:
    model = load("hair_segmenter.tflite")
    pos = activation_pos(model)
    bad = model[:pos] + bytes([3]) + model[pos + 1 :]
    with pytest.raises(
        RuntimeError, match=r"^Invalid activation type found in CustomMetadata of ImageSegmenterOptions type\.$"
    ):
        read_model_info(bad)
    with pytest.raises(ValueError):
        read_model_info(bad)
    assert issubclass(InvalidActivationError, ValueError) and issubclass(InvalidActivationError, RuntimeError)


def test_broken_zip_directory_means_no_files() -> None:
    model = load("selfie_segmenter.tflite")
    eocd = model.rfind(b"PK\x05\x06")
    broken = model[:eocd] + b"XX" + model[eocd + 2 :]
    with pytest.raises(ValueError, match=r"No associated file with name: labels\.txt"):
        read_model_info(broken)


def test_corrupt_zip_member() -> None:
    model = load("deeplabv3.tflite")
    start = zip_start(model)
    data = model.find(b"background", start)  # stored (uncompressed) member: flipping it breaks the CRC
    assert data > start
    with pytest.raises(ValueError, match=r"cannot read 'labelmap\.txt'"):
        read_model_info(model[:data] + b"B" + model[data + 1 :])


@FUZZ
@given(edits=Edits)
def test_fuzz_small_model_structure(edits: list[tuple[int, int]]) -> None:
    only_value_error(edit(load("legacy/1x256x256x3_softmax.tflite"), edits))


@FUZZ
@given(cut=st.integers(0, 840))
def test_fuzz_truncation(cut: int) -> None:
    only_value_error(load("legacy/1x256x256x3_softmax.tflite")[:cut])
    model = load("selfie_segmenter.tflite")
    only_value_error(model[: cut * len(model) // 840])


@FUZZ
@given(edits=Edits, name=st.sampled_from(["selfie_segmenter.tflite", "hair_segmenter.tflite"]))
def test_fuzz_whole_model(edits: list[tuple[int, int]], name: str) -> None:
    only_value_error(edit(load(name), edits))


@FUZZ
@given(edits=Edits, name=st.sampled_from(["selfie_segmenter.tflite", "deeplabv3_softmax_locales.tflite"]))
def test_fuzz_metadata_buffer(edits: list[tuple[int, int]], name: str) -> None:
    model = load(name)
    only_value_error(edit(model, edits, *metadata_region(model)))


@FUZZ
@given(edits=Edits, name=st.sampled_from(["deeplabv3.tflite", "deeplabv3_softmax_locales.tflite"]))
def test_fuzz_appended_zip(edits: list[tuple[int, int]], name: str) -> None:
    model = load(name)
    only_value_error(edit(model, edits, zip_start(model)))


@FUZZ
@given(data=st.binary(max_size=512), tfl3=st.booleans())
def test_fuzz_random_bytes(data: bytes, tfl3: bool) -> None:
    if tfl3 and len(data) >= 8:
        data = data[:4] + b"TFL3" + data[8:]
    only_value_error(data)
    only_value_error(os.urandom(len(data)))
