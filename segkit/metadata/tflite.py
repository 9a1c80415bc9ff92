"""The TFLite model structure (schema.fbs): checked end to end before the interpreter ever sees the bytes."""

from __future__ import annotations

import struct
from dataclasses import dataclass

from segkit.metadata import graph
from segkit.metadata.flatbuf import F32, I8, I32, U8, U32, U64, Reader, Table

# TensorType enum of schema.fbs, in value order.
DTYPES = (
    "float32", "float16", "int32", "uint8", "int64", "string", "bool", "int16", "complex64", "int8",
    "float64", "complex128", "uint64", "resource", "variant", "uint32", "uint16", "int4", "bfloat16", "int2", "uint4",
)  # fmt: skip
CUSTOM = 32  # BuiltinOperator.CUSTOM
MAX_OPERAND_BYTES = 1 << 12  # constants this small are kept for the graph rules (shapes, axes, sizes)


@dataclass(frozen=True)
class TensorInfo:
    """One tensor of a subgraph: name, shape, dtype name and per-tensor (scale, zero_point) when quantized."""

    name: str
    shape: tuple[int, ...]
    dtype: str
    quantization: tuple[float, int] | None


@dataclass(frozen=True)
class Subgraph:
    """The tensors of one subgraph and which of them are its inputs and outputs."""

    tensors: tuple[TensorInfo, ...]
    inputs: tuple[int, ...]
    outputs: tuple[int, ...]


@dataclass(frozen=True)
class TFLiteModel:
    """What segkit needs from the TFLite structure, read after every index and offset has been checked."""

    subgraphs: tuple[Subgraph, ...]
    custom_ops: tuple[str, ...]
    description: str | None
    metadata: tuple[tuple[str, bytes | None], ...]  # (name, buffer data) of each Model.metadata entry


def verify_model(model: bytes) -> TFLiteModel:
    """Raise ValueError naming the problem unless `model` is a sane TFLite flatbuffer (checked before the
    interpreter sees it: every table, vector, string, index and buffer range must lie inside the file, and every
    subgraph must pass the graph rules of `segkit.metadata.graph`).

    Returns the parsed structure, which `read_model_info` accepts so the file is not walked twice."""
    return parse_model(model)


def parse_model(model: bytes) -> TFLiteModel:
    """Walk the whole TFLite flatbuffer with bounds and index checks; ValueError on anything malformed."""
    if not isinstance(model, (bytes, bytearray, memoryview)):
        raise TypeError(f"model must be bytes, not {type(model).__name__}")
    model = bytes(model)
    if len(model) < 8:
        raise ValueError(f"not a TFLite model: {len(model)} bytes is too short (at least 8 needed)")
    if model[4:8] != b"TFL3":
        raise ValueError(f"not a TFLite model: file identifier is {model[4:8]!r} instead of b'TFL3'")
    r = Reader(model, "malformed TFLite model")
    root = r.root("Model")

    op_codes = root.tables(1, "operator_codes")
    custom_ops: list[str] = []
    codes: list[tuple[int, str | None]] = []
    for k, oc in enumerate(op_codes):
        code = max(int(oc.scalar(0, I8)), int(oc.scalar(3, I32)))  # deprecated_builtin_code vs builtin_code
        custom = oc.string(1)
        if code == CUSTOM:
            if not custom:
                r.fail(f"operator_codes[{k}] is CUSTOM but has no custom_code")
            if custom not in custom_ops:
                custom_ops.append(custom)
        codes.append((code, custom if code == CUSTOM else None))

    buffers = root.tables(4, "buffers")
    spans = [_buffer_span(r, b, len(model)) for b in buffers]

    sg_tables = root.tables(2, "subgraphs")
    if not sg_tables:
        r.fail("the model has no subgraphs")
    subgraphs = tuple(_subgraph(r, sg, codes, spans, len(model), k, len(sg_tables)) for k, sg in enumerate(sg_tables))

    for k, index in enumerate(root.scalars(5, I32) or ()):
        _check_index(r, int(index), len(buffers), f"metadata_buffer[{k}]")
    metadata = []
    for m in root.tables(6, "metadata"):
        index = int(m.scalar(1, U32))
        _check_index(r, index, len(buffers), f"{m.path}.buffer")
        metadata.append((m.string(0) or "", buffers[index].blob(0)))

    for sig in root.tables(7, "signature_defs"):
        sig.string(2)
        sub = int(sig.scalar(4, U32))
        _check_index(r, sub, len(subgraphs), f"{sig.path}.subgraph_index")
        for tm in sig.tables(0, "inputs") + sig.tables(1, "outputs"):
            tm.string(0)
            _check_index(r, int(tm.scalar(1, U32)), len(subgraphs[sub].tensors), f"{tm.path}.tensor_index")

    return TFLiteModel(subgraphs, tuple(custom_ops), root.string(3), tuple(metadata))


def _buffer_span(r: Reader, b: Table, size: int) -> tuple[int, int]:
    """(start, length) of a buffer's bytes in the file: its data vector, or the offset/size pair of a large model."""
    v = b.vector(0, 1)
    _check_range(r, b, 1, 2, size)
    if v is not None and v[1]:
        return v
    offset, length = int(b.scalar(1, U64)), int(b.scalar(2, U64))
    return (offset, length) if offset > 1 else (0, 0)


def _subgraph(
    r: Reader,
    sg: Table,
    codes: list[tuple[int, str | None]],
    spans: list[tuple[int, int]],
    size: int,
    index: int,
    n_subgraphs: int,
) -> Subgraph:
    """One subgraph: tensors, inputs/outputs and operators, every index and graph rule checked."""
    parsed = [_tensor(r, t, spans) for t in sg.tables(0, "tensors")]
    tensors = tuple(info for info, _ in parsed)
    n = len(tensors)
    inputs = _indices(r, sg, 1, n, f"{sg.path}.inputs", optional=False)
    outputs = _indices(r, sg, 2, n, f"{sg.path}.outputs", optional=False)
    ops = []
    for op in sg.tables(3, "operators"):
        opcode = int(op.scalar(0, U32))
        _check_index(r, opcode, len(codes), f"{op.path}.opcode_index")
        op_inputs = _indices(r, op, 1, n, f"{op.path}.inputs", optional=True)
        op_outputs = _indices(r, op, 2, n, f"{op.path}.outputs", optional=True)
        _indices(r, op, 8, n, f"{op.path}.intermediates", optional=True)
        op.vector(7, 1)
        options = op.table(4, "builtin_options")
        op.table(12, "builtin_options_2")
        _check_range(r, op, 9, 10, size)
        code, custom = codes[opcode]
        ops.append(graph.Operator(code, custom, op_inputs, op_outputs, int(op.scalar(3, U8)), options, op.blob(5)))
    sg.string(4)
    graph.check_subgraph(r, sg.path, [t for _, t in parsed], ops, inputs, outputs, index, n_subgraphs)
    return Subgraph(tensors, inputs, outputs)


def _tensor(r: Reader, t: Table, spans: list[tuple[int, int]]) -> tuple[TensorInfo, graph.Tensor]:
    """One tensor, with its type, buffer index, shape and quantization checked."""
    shape = tuple(int(d) for d in t.scalars(0, I32) or ())
    if any(d < 0 for d in shape):
        r.fail(f"{t.path}: shape {list(shape)} has a negative dimension")
    t.scalars(7, I32)
    dtype = int(t.scalar(1, I8))
    if not 0 <= dtype < len(DTYPES):
        r.fail(f"{t.path}: unknown tensor type {dtype}")
    buffer = int(t.scalar(2, U32))
    _check_index(r, buffer, len(spans), f"{t.path}.buffer")
    if t.table(6, "sparsity") is not None:
        r.fail(f"{t.path}: sparse tensors are not supported")
    quantization = None
    q = t.table(4, "quantization")
    if q is not None:
        q.scalars(0, F32)
        q.scalars(1, F32)
        q.table(5, "details")
        scale = q.scalars(2, F32) or ()
        zero_point = _i64s(q, 3)
        axis = int(q.scalar(6, I32))
        if zero_point and len(zero_point) != len(scale):
            r.fail(f"{t.path}: {len(scale)} quantization scales but {len(zero_point)} zero points")
        if len(scale) > 1 and not (0 <= axis < len(shape) and shape[axis] == len(scale)):
            r.fail(f"{t.path}: {len(scale)} per-channel scales do not match axis {axis} of shape {list(shape)}")
        if scale:
            quantization = (float(scale[0]), int(zero_point[0]) if zero_point else 0)
    start, length = spans[buffer] if buffer else (0, 0)
    name = t.string(3) or ""
    data = bytes(r.buf[start : start + length]) if 0 < length <= MAX_OPERAND_BYTES else None
    raw = graph.Tensor(name, shape, dtype, length > 0, data, length, bool(t.scalar(5, U8)))
    return TensorInfo(name, shape, DTYPES[dtype], quantization), raw


def _i64s(t: Table, field: int) -> tuple[int, ...]:
    """A [long] vector field (() when absent)."""
    v = t.vector(field, 8)
    return () if v is None else struct.unpack_from(f"<{v[1]}q", t.r.buf, v[0])


def _indices(r: Reader, t: Table, field: int, n: int, what: str, *, optional: bool) -> tuple[int, ...]:
    """A vector of tensor indices, each in [0, n) (or -1 for an optional operator input)."""
    out = tuple(int(i) for i in t.scalars(field, I32) or ())
    for k, i in enumerate(out):
        if not (0 <= i < n or (optional and i == -1)):
            r.fail(f"{what}[{k}] = {i} is out of range ({n} tensors)")
    return out


def _check_index(r: Reader, index: int, n: int, what: str) -> None:
    """Fail unless 0 <= index < n."""
    if not 0 <= index < n:
        r.fail(f"{what} = {index} is out of range (0..{n - 1})")


def _check_range(r: Reader, t: Table, offset_field: int, size_field: int, size: int) -> None:
    """Fail unless the (offset, size) pair of a >2GB-style buffer lies inside the file."""
    offset, length = int(t.scalar(offset_field, U64)), int(t.scalar(size_field, U64))
    if (offset or length) and offset + length > size:
        r.fail(f"{t.path}: data range {offset}+{length} lies outside the {size}-byte file")
