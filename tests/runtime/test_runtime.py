"""The default (ai-edge-litert) runtime on the shared models: shapes, determinism, buffer reuse, threads, errors."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from segkit._common import available_cores
from segkit.runtime import Runtime, TensorSpec, VerifiedModel, open_runtime, read_model_file, verify
from segkit.runtime.interpreter import InterpreterRuntime
from tests.conftest import REPO, model_path

# (file, input shape, output shape) per shared/models/MANIFEST.md.
SHAPES = {
    "selfie_segmenter.tflite": ((1, 256, 256, 3), (1, 256, 256, 1)),
    "selfie_segmenter_landscape.tflite": ((1, 144, 256, 3), (1, 144, 256, 1)),
    "hair_segmenter.tflite": ((1, 512, 512, 4), (1, 512, 512, 2)),
    "deeplabv3.tflite": ((1, 257, 257, 3), (1, 257, 257, 21)),
    "deeplabv3_softmax_locales.tflite": ((1, 257, 257, 3), (1, 257, 257, 21)),
    "deeplabv3_without_metadata.tflite": ((1, 257, 257, 3), (1, 257, 257, 21)),
    "legacy/selfie_segmentation.tflite": ((1, 256, 256, 3), (1, 256, 256, 1)),
    "legacy/selfie_segmentation_landscape.tflite": ((1, 144, 256, 3), (1, 144, 256, 1)),
    "legacy/hair_segmentation.tflite": ((1, 512, 512, 4), (1, 512, 512, 2)),
    "legacy/1x256x256x3_softmax.tflite": ((1, 256, 256, 3), (1, 256, 256, 3)),
}


def _any_model() -> VerifiedModel:
    """A verified model for the fake interpreters, which never read it."""
    return verify(model_path("selfie_segmenter.tflite").read_bytes())


def _open(name: str, **kwargs: Any) -> Runtime:
    return open_runtime(read_model_file(model_path(name)), **kwargs)


def _input(rt: Runtime, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).random(rt.input_spec.shape, dtype=np.float32)


@pytest.mark.parametrize("name", sorted(SHAPES))
def test_model_loads_and_runs_with_manifest_shapes(name: str) -> None:
    rt = _open(name, num_threads=1)
    in_shape, out_shape = SHAPES[name]
    assert isinstance(rt, Runtime)
    assert rt.accelerator == "cpu"
    assert rt.input_spec.shape == in_shape and rt.input_spec.dtype == np.float32
    assert rt.input_spec.quantization is None
    assert [s.shape for s in rt.output_specs] == [out_shape]
    (out,) = rt.run(_input(rt, 0))
    assert out.shape == out_shape and out.dtype == np.float32 and np.isfinite(out).all()
    rt.close()


@pytest.mark.parametrize("name", ["selfie_segmenter.tflite", "hair_segmenter.tflite", "deeplabv3.tflite"])
def test_two_runs_give_identical_outputs(name: str) -> None:
    rt = _open(name)
    x = _input(rt, 1)
    first = [o.copy() for o in rt.run(x)]
    second = rt.run(x)
    for a, b in zip(first, second, strict=True):
        np.testing.assert_array_equal(a, b)


def test_selfie_output_is_a_probability() -> None:
    rt = _open("selfie_segmenter.tflite")
    (out,) = rt.run(_input(rt, 2))
    assert out.min() >= 0.0 and out.max() <= 1.0


def test_buffer_reuse_keeps_caller_copies_intact() -> None:
    rt = _open("selfie_segmenter_landscape.tflite")
    xa, xb = _input(rt, 3), _input(rt, 4) * 0.2
    out_a = rt.run(xa)[0]
    copy_a = out_a.copy()
    out_b = rt.run(xb)[0]
    assert out_b is out_a, "outputs are the runtime's reused buffers (valid until the next run)"
    assert not np.array_equal(copy_a, out_b)
    np.testing.assert_array_equal(rt.run(xa)[0], copy_a)


def test_input_array_is_not_modified_or_retained() -> None:
    rt = _open("selfie_segmenter.tflite")
    x = _input(rt, 5)
    before = x.copy()
    out = rt.run(x)[0].copy()
    x[...] = 0.0
    np.testing.assert_array_equal(rt.run(before)[0], out)


def _thread_count() -> int:
    return len(os.listdir("/proc/self/task"))


@pytest.mark.skipif(not os.path.isdir("/proc/self/task"), reason="needs Linux /proc to count threads")
@pytest.mark.parametrize("threads", [1, 2, 3])
def test_thread_count_is_honoured(threads: int) -> None:
    before = _thread_count()
    rt = _open("selfie_segmenter.tflite", num_threads=threads)
    rt.run(_input(rt, 6))
    assert isinstance(rt, InterpreterRuntime) and rt.num_threads == threads
    assert _thread_count() - before == threads - 1, "XNNPACK's pool has num_threads - 1 workers"
    rt.close()


def test_default_thread_count_is_all_cores() -> None:
    rt = _open("legacy/1x256x256x3_softmax.tflite")
    assert isinstance(rt, InterpreterRuntime) and rt.num_threads == available_cores() >= 1


@pytest.mark.parametrize("bad", [0, -1, 1.5, True, "2"])
def test_bad_thread_count_is_rejected(bad: Any) -> None:
    with pytest.raises(ValueError, match="num_threads"):
        _open("legacy/1x256x256x3_softmax.tflite", num_threads=bad)


@pytest.mark.parametrize(
    "tensor",
    [
        np.zeros((1, 256, 256, 4), np.float32),
        np.zeros((256, 256, 3), np.float32),
        np.zeros((1, 256, 256, 3), np.float64),
        np.zeros((1, 256, 256, 3), np.uint8),
        [[0.0]],
    ],
    ids=["channels", "no-batch", "float64", "uint8", "list"],
)
def test_run_rejects_wrong_input(tensor: Any) -> None:
    rt = _open("selfie_segmenter.tflite")
    with pytest.raises(ValueError, match=r"input tensor must be float32 \(1, 256, 256, 3\)"):
        rt.run(tensor)


def test_run_after_close_raises() -> None:
    rt = _open("legacy/1x256x256x3_softmax.tflite")
    x = _input(rt, 7)
    rt.close()
    rt.close()
    with pytest.raises(RuntimeError, match="closed"):
        rt.run(x)


def _bad_models() -> dict[str, bytes]:
    real = model_path("selfie_segmenter.tflite").read_bytes()
    png = b"\x89PNG\r\n\x1a\n" + bytes(64)
    return {
        "empty": b"",
        "truncated-header": real[:16],
        "truncated-half": real[: len(real) // 2],
        "random": np.random.default_rng(8).bytes(4096),
        "png": png,
        "text": b"not a model at all",
    }


@pytest.mark.parametrize("kind", ["empty", "truncated-header", "truncated-half", "random", "png", "text"])
def test_bad_bytes_raise_value_error(kind: str) -> None:
    with pytest.raises(ValueError):
        open_runtime(_bad_models()[kind])


@pytest.mark.slow
def test_corrupted_models_never_crash_the_process() -> None:
    """Byte flips in a tiny model: every variant must load or raise a Python exception, never kill the process."""
    script = textwrap.dedent(
        f"""
        import numpy as np
        from segkit.runtime import open_runtime
        real = open({str(model_path("legacy/1x256x256x3_softmax.tflite"))!r}, "rb").read()
        rng = np.random.default_rng(0)
        outcomes = set()
        for _ in range(200):
            data = bytearray(real)
            for i in rng.integers(0, len(data), 3):
                data[i] = int(rng.integers(0, 256))
            try:
                rt = open_runtime(bytes(data), num_threads=1)
                rt.run(np.zeros(rt.input_spec.shape, rt.input_spec.dtype))
                outcomes.add("ok")
            except (ValueError, RuntimeError) as e:
                outcomes.add(type(e).__name__ + ": " + str(e)[:40])
        print(sorted(outcomes))
        """
    )
    done = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]


def test_missing_file_has_mediapipe_message(tmp_path: Any) -> None:
    missing = tmp_path / "nope.tflite"
    with pytest.raises(FileNotFoundError) as e:
        read_model_file(missing)
    assert str(e.value) == f"Unable to open file at {missing}"
    with pytest.raises(FileNotFoundError, match=r"^Unable to open file at rel/missing.tflite$"):
        read_model_file("rel/missing.tflite")


def test_read_model_file_returns_the_bytes() -> None:
    path = model_path("legacy/1x256x256x3_softmax.tflite")
    assert read_model_file(path) == path.read_bytes()
    assert read_model_file(str(path)) == path.read_bytes()


@pytest.mark.parametrize("kwargs", [{"delegate": "tpu"}, {"backend": "onnx"}, {"gpu_precision": "int8"}])
def test_unknown_delegate_or_backend(kwargs: dict[str, str]) -> None:
    with pytest.raises(ValueError, match="must be one of"):
        _open("legacy/1x256x256x3_softmax.tflite", **kwargs)


def test_explicit_litert_backend() -> None:
    rt = _open("deeplabv3.tflite", backend="litert", num_threads=1)
    assert rt.output_specs[0].shape == (1, 257, 257, 21)


def test_tflite_backend_refuses_custom_ops_with_a_clear_error() -> None:
    """The custom-op check runs before tflite-runtime is imported, so it is testable in every venv."""
    from segkit.runtime import verify
    from segkit.runtime.loader import _tflite_interpreter

    with pytest.raises(RuntimeError, match=r"MaxPoolingWithArgmax2D.*pip install ai-edge-litert"):
        _tflite_interpreter(verify(model_path("hair_segmenter.tflite").read_bytes()))


def test_tflite_backend_missing_is_an_import_error() -> None:
    pytest.importorskip("ai_edge_litert")
    try:
        import tflite_runtime  # noqa: F401  # pyright: ignore[reportMissingImports]  # optional extra
    except ImportError:
        with pytest.raises(ImportError, match="tflite-runtime"):
            _open("deeplabv3.tflite", backend="tflite")
    else:
        pytest.skip("tflite-runtime is installed here")


def test_interpreter_prepare_errors_become_runtime_errors() -> None:
    class Failing:
        def __init__(self, **kwargs: Any) -> None:
            pass

        def allocate_tensors(self) -> None:
            raise RuntimeError("Encountered unresolved custom op: Foo. Node number 3 (Foo) failed to prepare.")

    with pytest.raises(RuntimeError, match=r"^test-backend could not prepare the model: .*unresolved custom op: Foo"):
        InterpreterRuntime(Failing, _any_model(), 1, "test-backend")


def test_tensor_spec_is_frozen() -> None:
    spec = TensorSpec("x", (1, 2), np.dtype(np.float32), None)
    field = "name"  # set by name: a frozen field's assignment is itself a type error
    with pytest.raises(AttributeError):
        setattr(spec, field, "y")


# --- zero-copy outputs: arrays over the interpreter's own buffers, safe to keep -----------------------------------


def _fresh_output(name: str, x: np.ndarray) -> np.ndarray:
    """The model's output for ``x`` from a plain LiteRT interpreter (copied out), as the reference."""
    from ai_edge_litert.interpreter import Interpreter

    it = Interpreter(model_path=str(model_path(name)), num_threads=1)
    it.allocate_tensors()
    it.set_tensor(it.get_input_details()[0]["index"], x)
    it.invoke()
    return np.array(it.get_tensor(it.get_output_details()[-1]["index"]))


@pytest.mark.parametrize("name", ["selfie_segmenter.tflite", "deeplabv3.tflite"])
def test_outputs_are_the_interpreters_buffers_without_a_copy(name: str) -> None:
    rt = _open(name, num_threads=1)
    x = _input(rt, 10)
    (out,) = rt.run(x)
    assert isinstance(rt, InterpreterRuntime)
    live = rt._output_views[-1]()
    assert np.shares_memory(out, live), "no copy: the returned array is the interpreter's output tensor"
    del live
    assert out.flags.writeable and out.flags.c_contiguous
    np.testing.assert_array_equal(out, _fresh_output(name, x))


def test_two_runs_in_a_row_and_a_caller_that_copies() -> None:
    name = "selfie_segmenter_landscape.tflite"
    rt = _open(name, num_threads=1)
    xa, xb = _input(rt, 11), _input(rt, 12) * 0.3
    a = rt.run(xa)[0].copy()
    b = rt.run(xb)[0].copy()
    np.testing.assert_array_equal(a, _fresh_output(name, xa))
    np.testing.assert_array_equal(b, _fresh_output(name, xb))
    assert not np.array_equal(a, b)


def test_a_caller_that_keeps_the_array_never_blocks_the_next_run() -> None:
    """LiteRT's own ``tensor()`` views make ``invoke()`` raise while alive; the runtime's arrays must not."""
    name = "selfie_segmenter_landscape.tflite"
    rt = _open(name, num_threads=1)
    xa, xb = _input(rt, 13), _input(rt, 14) * 0.3
    kept = rt.run(xa)[0]
    part = kept[0, 10:20]  # a view of it, kept too
    assert isinstance(rt, InterpreterRuntime) and rt._interpreter is not None
    assert rt._interpreter._safe_to_run(), "no array pins LiteRT's wrapper (invoke() would refuse to run)"
    (now,) = rt.run(xb)  # must not raise
    expected_b = _fresh_output(name, xb)
    np.testing.assert_array_equal(now, expected_b)
    np.testing.assert_array_equal(kept, expected_b)  # documented: the next run overwrites what was kept
    np.testing.assert_array_equal(part, expected_b[0, 10:20])


def test_outputs_held_in_a_traceback_do_not_break_later_runs() -> None:
    rt = _open("selfie_segmenter.tflite", num_threads=1)
    x = _input(rt, 15)
    errors = []

    def failing_consumer() -> None:
        logits = rt.run(x)[0]  # noqa: F841 - kept alive by the traceback's frame
        raise ValueError("postprocessing failed")

    try:
        failing_consumer()
    except ValueError as e:
        errors.append(e)  # as the live-stream worker keeps a pending error
    assert errors[0].__traceback__ is not None
    np.testing.assert_array_equal(rt.run(x)[0], _fresh_output("selfie_segmenter.tflite", x))


def test_kept_outputs_stay_readable_after_close() -> None:
    rt = _open("selfie_segmenter.tflite", num_threads=1)
    x = _input(rt, 16)
    out = rt.run(x)[0]
    expected = out.copy()
    rt.close()
    import gc

    gc.collect()
    np.testing.assert_array_equal(out, expected)  # the interpreter lives as long as the array
    with pytest.raises(RuntimeError, match="closed"):
        rt.run(x)


class _MovingInterpreter:
    """A fake TFLite interpreter: output tensors optionally dynamic, or moving to a new buffer on each invoke."""

    def __init__(self, *, dynamic: bool = False, moves: bool = False, **kwargs: Any) -> None:
        self.dynamic, self.moves = dynamic, moves
        self.x = np.zeros((1, 4, 4, 3), np.float32)
        self.y = np.zeros((1, 4, 4, 2), np.float32)
        self.invokes = 0

    def allocate_tensors(self) -> None:
        pass

    def get_input_details(self) -> list[dict[str, Any]]:
        return [{"name": "in", "index": 0, "shape": np.array(self.x.shape), "dtype": np.float32}]

    def get_output_details(self) -> list[dict[str, Any]]:
        signature = np.array([1, -1, -1, 2]) if self.dynamic else np.array(self.y.shape)
        shape = np.array(self.y.shape)
        return [{"name": "out", "index": 1, "shape": shape, "shape_signature": signature, "dtype": np.float32}]

    def tensor(self, index: int) -> Callable[[], np.ndarray]:
        return (lambda: self.x) if index == 0 else (lambda: self.y)

    def invoke(self) -> None:
        self.invokes += 1
        if self.moves:
            self.y = np.empty_like(self.y)
        self.y[...] = self.x[..., :2] + self.invokes


@pytest.mark.parametrize("kind", ["static", "dynamic", "moves"])
def test_buffers_that_may_move_are_copied(kind: str) -> None:
    def cls(**kwargs: Any) -> _MovingInterpreter:
        return _MovingInterpreter(dynamic=kind == "dynamic", moves=kind == "moves", **kwargs)

    rt = InterpreterRuntime(cls, _any_model(), 1, "fake")
    x = np.arange(48, dtype=np.float32).reshape(1, 4, 4, 3)
    first = rt.run(x)[0]
    first_copy = first.copy()
    second = rt.run(x)[0]
    np.testing.assert_array_equal(first_copy, x[..., :2] + 1)
    np.testing.assert_array_equal(second, x[..., :2] + 2)
    assert second is first
    fake = rt._interpreter
    assert fake is not None
    assert np.shares_memory(second, fake.y) == (kind == "static")
