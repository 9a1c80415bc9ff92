"""The graph rules of segkit.metadata.graph: each mutant that crashed or exhausted LiteRT is refused up front."""

from __future__ import annotations

import re
import struct
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from typing import Any

import pytest

from segkit.metadata import graph, verify_model
from segkit.metadata.flatbuf import I32, U8, U32, Reader, Table
from tests.conftest import MODELS_WITH_METADATA, model_path
from tests.metadata.helpers import load
from tests.metadata.test_models import STRUCTURE


def root(model: bytes) -> Table:
    return Reader(model, "test").root("Model")


def ops(model: bytes) -> list[Table]:
    return root(model).tables(2, "sg")[0].tables(3, "op")


def op_code(model: bytes, op: Table) -> tuple[int, str | None]:
    oc = root(model).tables(1, "oc")[int(op.scalar(0, U32))]
    return max(int(oc.scalar(0, U8)), int(oc.scalar(3, I32))), oc.string(1)


def first_op(model: bytes, code: int, custom: str | None = None) -> tuple[int, Table]:
    for k, op in enumerate(ops(model)):
        if op_code(model, op) == (code, custom):
            return k, op
    raise AssertionError(f"no operator {code} {custom} in the model")


def put_i32(model: bytes, pos: int, value: int) -> bytes:
    out = bytearray(model)
    struct.pack_into("<i", out, pos, value)
    return bytes(out)


def vector_element(t: Table, field: int, k: int) -> int:
    v = t.vector(field, 4)
    assert v is not None and k < v[1]
    return v[0] + 4 * k


def field_pos(t: Table, field: int, size: int = 4) -> int:
    p = t._field(field, size)
    assert p is not None, f"field {field} is stored in this table"
    return p


def refused(model: bytes, pattern: str) -> None:
    with pytest.raises(ValueError, match=pattern):
        verify_model(model)


@pytest.mark.parametrize("name", sorted(STRUCTURE))
def test_every_shared_model_passes(name: str) -> None:
    verify_model(load(name))


def test_builtin_numbers_match_the_schema() -> None:
    from mediapipe.tasks.metadata import schema_py_generated as tfl

    op, options = tfl.BuiltinOperator, tfl.BuiltinOptions
    names = ("ADD", "CONV_2D", "DEPTHWISE_CONV_2D", "DEQUANTIZE", "RESHAPE", "RESIZE_BILINEAR", "MEAN", "SLICE",
             "HARD_SWISH", "PRELU", "CONCATENATION", "AVERAGE_POOL_2D", "SOFTMAX", "CUSTOM", "QUANTIZE")  # fmt: skip
    for name in names:
        assert getattr(graph, name) == getattr(op, name), name
    assert (
        options.Conv2DOptions, options.DepthwiseConv2DOptions, options.Pool2DOptions,
    ) == (graph.CONV_OPTIONS, graph.DEPTHWISE_OPTIONS, graph.POOL_OPTIONS)  # fmt: skip
    assert (
        options.ConcatenationOptions, options.ResizeBilinearOptions, options.ReducerOptions,
    ) == (graph.CONCAT_OPTIONS, graph.RESIZE_OPTIONS, graph.REDUCER_OPTIONS)  # fmt: skip
    assert graph.ELEMENT_BYTES[tfl.TensorType.FLOAT16] == 2 and graph.ELEMENT_BYTES[tfl.TensorType.INT64] == 8


REPRODUCER = """
import struct, sys
import numpy as np
import segkit
data = bytearray(open(sys.argv[1], "rb").read())
struct.pack_into("<i", data, int(sys.argv[2]), int(sys.argv[3]))
options = segkit.ImageSegmenterOptions(base_options=segkit.BaseOptions(model_asset_buffer=bytes(data)))
try:
    with segkit.ImageSegmenter.create_from_options(options) as s:
        s.segment(np.zeros((8, 8, 3), np.uint8))
except ValueError as e:
    print("ValueError:", e)
"""


@pytest.mark.parametrize(
    ("offset", "value", "message"),
    [
        (219292, -1, r"operators\[202\]: output index -1 is not a tensor"),  # SIGSEGV in AllocateTensors before
        (235596, 65535, r"operators\[242\]: the operator computes shape \[1, 2, 2, 16\] but its output tensor "
         r"declares \[65535, 2, 2, 16\]"),  # ~17 GB at invoke before
    ],
)  # fmt: skip
def test_issue_reproducers_in_a_child_process(offset: int, value: int, message: str) -> None:
    run = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(REPRODUCER), str(model_path("selfie_segmenter.tflite")), str(offset),
         str(value)],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert run.returncode == 0, f"exit {run.returncode}: {run.stderr[-2000:]}"
    assert run.stdout.startswith("ValueError: The model is not a valid Flatbuffer buffer: malformed TFLite model")
    assert re.search(message, run.stdout), run.stdout


def test_input_not_produced() -> None:
    model = load("selfie_segmenter.tflite")
    k, op = first_op(model, graph.CONV_2D)
    later = ops(model)[-1]
    produced_last = later.scalars(2, I32)
    assert produced_last is not None
    bad = put_i32(model, vector_element(op, 1, 0), int(produced_last[0]))
    refused(bad, rf"Input tensor {int(produced_last[0])} to op {k} is not produced")


def rebuilt(model: bytes, edit: Callable[[Any], None]) -> bytes:
    """The model unpacked with the schema classes of the mediapipe wheel, edited by `edit`, packed again."""
    import flatbuffers
    from mediapipe.tasks.metadata import schema_py_generated as tfl

    m = tfl.ModelT.InitFromObj(tfl.Model.GetRootAsModel(model, 0))
    edit(m)
    b = flatbuffers.Builder(len(model) + 1024)
    b.Finish(m.Pack(b), file_identifier=b"TFL3")
    return bytes(b.Output())


def test_output_produced_twice_or_constant() -> None:
    model = load("deeplabv3.tflite")
    op = next(op for k, op in enumerate(ops(model)) if k > 0 and op_code(model, op) == (graph.CONV_2D, None))
    first_out = ops(model)[0].scalars(2, I32)
    assert first_out is not None
    refused(put_i32(model, vector_element(op, 2, 0), int(first_out[0])), "already a constant, a graph input")
    weight = op.scalars(1, I32)
    assert weight is not None
    refused(put_i32(model, vector_element(op, 2, 0), int(weight[1])), "already a constant")


def test_graph_output_not_produced() -> None:
    from mediapipe.tasks.metadata import schema_py_generated as tfl

    def dangling_output(m: Any) -> None:
        t = tfl.TensorT()
        t.shape, t.type, t.buffer, t.name = [1, 4], tfl.TensorType.FLOAT32, 0, "dangling"
        m.subgraphs[0].tensors.append(t)
        m.subgraphs[0].outputs = [len(m.subgraphs[0].tensors) - 1]

    model = load("legacy/1x256x256x3_softmax.tflite")
    verify_model(rebuilt(model, lambda m: None))
    refused(rebuilt(model, dangling_output), r"outputs\[0\]: Output tensor 2 is not produced")


def test_constant_buffer_size_must_match_the_shape() -> None:
    model = load("deeplabv3.tflite")
    _, op = first_op(model, graph.CONV_2D)
    filt = op.scalars(1, I32)
    assert filt is not None
    tensor = root(model).tables(2, "sg")[0].tables(0, "t")[int(filt[1])]
    shape = tensor.scalars(0, I32)
    assert shape is not None
    bad = put_i32(model, vector_element(tensor, 0, 0), int(shape[0]) + 1)
    refused(bad, r"Tensor requires \d+ bytes, but is allocated with \d+ bytes buffer")


def test_dimension_and_arena_bounds() -> None:
    model = load("legacy/1x256x256x3_softmax.tflite")
    sg = root(model).tables(2, "sg")[0]
    inputs = sg.scalars(1, I32)
    assert inputs is not None
    tensor = sg.tables(0, "t")[int(inputs[0])]
    refused(put_i32(model, vector_element(tensor, 0, 1), graph.MAX_DIMENSION + 1), "above the limit of")
    huge = put_i32(put_i32(model, vector_element(tensor, 0, 1), 60000), vector_element(tensor, 0, 2), 60000)
    refused(huge, r"tensors need \d+ bytes, above the limit")


@pytest.mark.parametrize(("field", "value"), [(1, 0), (2, -3), (4, 0), (5, 1 << 20), (0, 7)])
def test_conv_options(field: int, value: int) -> None:
    model = load("hair_segmenter.tflite")
    size = 4 if field else 1
    stored = [
        o
        for op in ops(model)
        if op_code(model, op) == (graph.CONV_2D, None) and (o := op.table(4, "options")) is not None
        if o._field(field, size) is not None
    ]
    if not stored:
        pytest.fail(f"no CONV_2D of the hair model stores field {field}")
    pos = field_pos(stored[0], field, size)
    bad = bytearray(model)
    if field == 0:
        bad[pos] = value
    else:
        struct.pack_into("<i", bad, pos, value)
    refused(bytes(bad), r"out of range|not SAME or VALID|computes shape")


def test_options_of_another_operator_are_refused() -> None:
    model = load("deeplabv3.tflite")
    _, op = first_op(model, graph.CONV_2D)
    bad = bytearray(model)
    bad[field_pos(op, 3, 1)] = graph.POOL_OPTIONS
    refused(bytes(bad), "do not belong to this operator")


def test_resize_size_constant() -> None:
    model = load("deeplabv3.tflite")
    _, op = first_op(model, graph.RESIZE_BILINEAR)
    size_index = op.scalars(1, I32)
    assert size_index is not None
    tensor = root(model).tables(2, "sg")[0].tables(0, "t")[int(size_index[1])]
    buffer = root(model).tables(4, "b")[int(tensor.scalar(2, U32))]
    data = buffer.vector(0, 1)
    assert data is not None and data[1] == 8
    refused(put_i32(model, data[0], 65535 * 64), r"new height = \d+ is out of range")
    refused(put_i32(model, data[0], 0), r"new height = 0 is out of range")


def test_custom_op_options() -> None:
    model = load("hair_segmenter.tflite")
    _, op = first_op(model, graph.CUSTOM, "Convolution2DTransposeBias")
    custom = op.vector(5, 1)
    assert custom is not None and custom[1] >= 12
    refused(put_i32(model, custom[0] + 4, 0), r"a stride or filter size = 0 is out of range")
    refused(put_i32(model, custom[0], 5), r"padding 5 is not SAME \(1\) or VALID \(2\)")
    refused(put_i32(model, custom[0] - 4, 4), r"custom options hold 4 bytes, 12 needed")
    _, pool = first_op(model, graph.CUSTOM, "MaxPoolingWithArgmax2D")
    custom = pool.vector(5, 1)
    assert custom is not None
    refused(put_i32(model, custom[0] + 12, 1 << 16), r"out of range \(1\.\.1024\)")


def test_wrong_arity_and_dtype() -> None:
    model = load("selfie_segmenter.tflite")
    _, op = first_op(model, graph.DEQUANTIZE)
    out = op.scalars(2, I32)
    assert out is not None
    weights = op.scalars(1, I32)
    assert weights is not None
    tensor = root(model).tables(2, "sg")[0].tables(0, "t")[int(weights[0])]
    bad = bytearray(model)
    assert bad[field_pos(tensor, 1, 1)] == 1  # FLOAT16
    bad[field_pos(tensor, 1, 1)] = 16  # UINT16: the same buffer size
    refused(bytes(bad), "DEQUANTIZE takes float16/int8/uint8/int16 and gives float32")
    _, add = first_op(model, graph.ADD)
    inputs = add.vector(1, 4)
    assert inputs is not None
    refused(put_i32(model, inputs[0] - 4, 1), "1 inputs and 1 outputs do not fit this operator")


@pytest.mark.parametrize("name", MODELS_WITH_METADATA)
def test_verification_is_quick(name: str) -> None:
    model = load(name)
    start = time.perf_counter()
    verify_model(model)
    assert time.perf_counter() - start < 0.5


@pytest.mark.parametrize(("cond", "body", "ok"), [(0, 1, False), (1, 5, False), (1, 1, True)])
def test_control_flow_may_only_call_later_subgraphs(cond: int, body: int, ok: bool) -> None:
    from mediapipe.tasks.metadata import schema_py_generated as tfl

    def with_while(m: Any) -> None:
        code = tfl.OperatorCodeT()
        code.deprecatedBuiltinCode = code.builtinCode = tfl.BuiltinOperator.WHILE
        code.version = 1
        m.operatorCodes.append(code)
        sg = m.subgraphs[0]
        out = tfl.TensorT()
        out.shape, out.type, out.buffer, out.name = list(sg.tensors[sg.outputs[0]].shape), 0, 0, "looped"
        sg.tensors.append(out)
        op = tfl.OperatorT()
        op.opcodeIndex = len(m.operatorCodes) - 1
        op.inputs, op.outputs = [sg.outputs[0]], [len(sg.tensors) - 1]
        op.builtinOptionsType = tfl.BuiltinOptions.WhileOptions
        op.builtinOptions = tfl.WhileOptionsT()
        op.builtinOptions.condSubgraphIndex, op.builtinOptions.bodySubgraphIndex = cond, body
        sg.operators.append(op)
        m.subgraphs.append(tfl.SubGraphT.InitFromObj(tfl.SubGraph.GetRootAs(_packed_subgraph(sg), 0)))

    model = rebuilt(load("legacy/1x256x256x3_softmax.tflite"), with_while)
    if ok:
        verify_model(model)
    else:
        refused(model, r"calls subgraph \d+; only later subgraphs \(1\.\.1\) may be called")


def _packed_subgraph(sg: Any) -> bytes:
    """A copy of a subgraph (without its last, WHILE, operator) as a flatbuffer, to append as subgraph 1."""
    import flatbuffers

    ops, tensors = sg.operators, sg.tensors
    sg.operators, sg.tensors = ops[:-1], tensors[:-1]
    b = flatbuffers.Builder(1024)
    b.Finish(sg.Pack(b))
    sg.operators, sg.tensors = ops, tensors
    return bytes(b.Output())


@pytest.mark.parametrize("code", [graph.CONV_2D, graph.DEPTHWISE_CONV_2D])
def test_convolutions_need_their_bias(code: int) -> None:
    model = load("deeplabv3.tflite")
    _, op = first_op(model, code)
    inputs = op.vector(1, 4)
    assert inputs is not None and inputs[1] == 3
    # the inputs vector's length word: 2 instead of 3 (a DEPTHWISE_CONV_2D without bias crashed at invoke, SIGSEGV)
    refused(put_i32(model, inputs[0] - 4, 2), "2 inputs and 1 outputs do not fit this operator")
    refused(put_i32(model, vector_element(op, 1, 2), -1), r"a required input is missing \(-1\)")


def test_slice_with_int64_operands() -> None:
    import numpy as np
    from mediapipe.tasks.metadata import schema_py_generated as tfl

    from tests.modelbuilder import probe_model

    def as_int64(begin: tuple[int, int], size: tuple[int, int]) -> Callable[[Any], None]:
        def edit(m: Any) -> None:
            sg = m.subgraphs[0]
            for t in sg.tensors:
                if t.name in (b"begin", b"size"):
                    t.type = tfl.TensorType.INT64
                    values = begin if t.name == b"begin" else size
                    m.buffers[t.buffer].data = list(np.asarray(values, "<i8").tobytes())

        return edit

    model = probe_model((4, 4, 3), (4, 4, 1), with_metadata=False)  # reshape, slice (0, 0) + (1, 16), reshape
    verify_model(rebuilt(model, as_int64((0, 0), (1, 16))))
    refused(rebuilt(model, as_int64((0, 40), (1, 16))), r"slice begin \[0, 40\] size \[1, 16\] is outside")


def test_missing_input_of_a_variadic_operator_is_a_value_error() -> None:
    model = load("deeplabv3.tflite")
    _, op = first_op(model, graph.CONCATENATION)
    refused(put_i32(model, vector_element(op, 1, 1), -1), r"input 1 is missing \(-1\)")  # was an AssertionError
