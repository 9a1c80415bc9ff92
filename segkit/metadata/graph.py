"""The graph rules TFLite's verifier, interpreter builder and op kernels apply, checked before LiteRT sees a model.

A flatbuffer can be well formed and still crash the interpreter: an operator reading a tensor nothing produces,
a constant whose buffer is shorter than its shape, a stride of zero, a declared shape the kernels trust when
they size their buffers. This module checks, per subgraph:

* every operator input is optional (-1), a constant (a buffer with data), a graph input, a variable, or the
  output of an earlier operator (MediaPipe: "Input tensor N to op M is not produced"); every operator output is
  a real, non-constant tensor produced once; the subgraph outputs exist;
* every constant's buffer holds exactly shape x dtype bytes ("Tensor X requires N bytes, but is allocated with
  M bytes buffer");
* tensor ranks, dimensions and the arena (the bytes of every non-constant tensor) are bounded;
* for the operators segmentation models use, options are sane (paddings, strides, dilations, filter sizes,
  axes) and the output shape each operator computes from its inputs equals the shape the file declares, so a
  kernel sizing a buffer from either gets the same answer. Other operators are checked only by the generic rules.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import NoReturn

from segkit.metadata.flatbuf import F32, I8, I32, U8, Reader, Table

MAX_RANK = 8
MAX_DIMENSION = 1 << 20  # elements along one axis
MAX_ARENA_BYTES = 1 << 30  # every non-constant tensor of a subgraph together (1 GiB)
MAX_KERNEL = 1 << 10  # strides, dilations and pool filter sizes

# TensorType value -> bytes per element (None: not a fixed-size type; packed 4/2-bit types are handled apart).
ELEMENT_BYTES: dict[int, int | None] = {
    0: 4, 1: 2, 2: 4, 3: 1, 4: 8, 5: None, 6: 1, 7: 2, 8: 8, 9: 1, 10: 8, 11: 16, 12: 8, 13: None, 14: None,
    15: 4, 16: 2, 17: None, 18: 2, 19: None, 20: None,
}  # fmt: skip
PACKED_BITS = {17: 4, 19: 2, 20: 4}  # int4, int2, uint4
FLOAT32, FLOAT16, INT32, UINT8, INT64, INT8, INT16 = 0, 1, 2, 3, 4, 9, 7

# BuiltinOperator values (schema.fbs).
ADD, AVERAGE_POOL_2D, CONCATENATION, CONV_2D, DEPTHWISE_CONV_2D, DEQUANTIZE = 0, 1, 2, 3, 4, 6
LOGISTIC, MAX_POOL_2D, MUL, RELU, RELU_N1_TO_1, RELU6, RESHAPE, RESIZE_BILINEAR = 14, 17, 18, 19, 20, 21, 22, 23
SOFTMAX, TANH, CUSTOM, MEAN, SUB, DIV, PRELU, SLICE = 25, 28, 32, 40, 41, 42, 54, 65
RESIZE_NEAREST_NEIGHBOR, QUANTIZE, HARD_SWISH = 97, 114, 117
CALL, IF, WHILE, CALL_ONCE = 31, 118, 119, 129
# Operators that run other subgraphs: BuiltinOptions member and the fields holding subgraph indices.
SUBGRAPH_OPS = {CALL: (16, (0,)), IF: (92, (0, 1)), WHILE: (93, (0, 1)), CALL_ONCE: (103, (0,))}
# BuiltinOptions union members (schema.fbs).
CONV_OPTIONS, DEPTHWISE_OPTIONS, POOL_OPTIONS, CONCAT_OPTIONS, RESIZE_OPTIONS = 1, 2, 5, 10, 15
REDUCER_OPTIONS, RESIZE_NN_OPTIONS = 27, 74
SAME, VALID = 0, 1  # Padding enum of schema.fbs; MediaPipe's custom ops use TfLitePadding (1 same, 2 valid)

Shape = tuple[int, ...]


@dataclass(frozen=True)
class Tensor:
    """What the graph rules need from one tensor."""

    name: str
    shape: Shape
    dtype: int
    constant: bool  # a buffer with data
    data: bytes | None  # the constant's bytes, when small enough to be an operand (shapes, axes, sizes)
    nbytes: int  # the constant's buffer size
    variable: bool


@dataclass(frozen=True)
class Operator:
    """What the graph rules need from one operator."""

    code: int  # BuiltinOperator
    custom: str | None
    inputs: tuple[int, ...]
    outputs: tuple[int, ...]
    options_type: int
    options: Table | None
    custom_options: bytes | None


def element_bytes(dtype: int, count: int) -> int | None:
    """Bytes that `count` elements of TensorType `dtype` occupy, or None for types without a fixed size."""
    if dtype in PACKED_BITS:
        return (count * PACKED_BITS[dtype] + 7) // 8
    size = ELEMENT_BYTES.get(dtype)
    return None if size is None else size * count


def check_subgraph(
    r: Reader,
    path: str,
    tensors: Sequence[Tensor],
    ops: Sequence[Operator],
    inputs: Sequence[int],
    outputs: Sequence[int],
    index: int = 0,
    n_subgraphs: int = 1,
) -> None:
    """Apply every rule of the module docstring to subgraph `index` of `n_subgraphs`; ValueError (via `r.fail`) on
    the first broken one."""
    arena = 0
    for k, t in enumerate(tensors):
        what = f"{path}.tensors[{k}] ({t.name!r})"
        if len(t.shape) > MAX_RANK:
            r.fail(f"{what}: rank {len(t.shape)} is above the limit of {MAX_RANK}")
        if any(d > MAX_DIMENSION for d in t.shape):
            r.fail(f"{what}: shape {list(t.shape)} has a dimension above the limit of {MAX_DIMENSION}")
        count = math.prod(t.shape)
        need = element_bytes(t.dtype, count)
        if t.constant:
            if need is None:
                r.fail(f"{what}: a constant of this tensor type is not supported")
            if need != t.nbytes:
                r.fail(f"{what}: Tensor requires {need} bytes, but is allocated with {t.nbytes} bytes buffer")
        else:
            arena += need if need is not None else 0
    if arena > MAX_ARENA_BYTES:
        r.fail(f"{path}: its tensors need {arena} bytes, above the limit of {MAX_ARENA_BYTES} bytes")

    available = [t.constant or t.variable for t in tensors]
    for i in inputs:
        available[i] = True
    for m, op in enumerate(ops):
        what = f"{path}.operators[{m}]"
        for i in op.inputs:
            if i >= 0 and not available[i]:
                r.fail(f"{what}: Input tensor {i} to op {m} is not produced (no constant, graph input or earlier op)")
        if not op.outputs:
            r.fail(f"{what}: the operator has no outputs")
        for i in op.outputs:
            if i < 0:
                r.fail(f"{what}: output index {i} is not a tensor")
            if available[i]:
                r.fail(f"{what}: output tensor {i} is already a constant, a graph input or another op's output")
            available[i] = True
        if op.code in SUBGRAPH_OPS:
            _check_callees(r, what, op, index, n_subgraphs)
        _check_operator(r, what, tensors, op)
    for k, i in enumerate(outputs):
        if not available[i]:
            r.fail(f"{path}.outputs[{k}]: Output tensor {i} is not produced")


def _check_callees(r: Reader, what: str, op: Operator, index: int, n_subgraphs: int) -> None:
    """Control flow may only run later subgraphs: an index out of range or a call back into this subgraph (or an
    earlier one, so a cycle) would crash or recurse without end in the interpreter."""
    expected, fields = SUBGRAPH_OPS[op.code]
    if op.options is None or op.options_type != expected:
        r.fail(f"{what}: a control-flow operator without its options")
    for f in fields:
        callee = int(op.options.scalar(f, I32))
        if not index < callee < n_subgraphs:
            r.fail(
                f"{what}: calls subgraph {callee}; only later subgraphs ({index + 1}..{n_subgraphs - 1}) may be called"
            )


def _check_operator(r: Reader, what: str, tensors: Sequence[Tensor], op: Operator) -> None:
    """Options and computed output shapes of the operators with a rule in `_RULES`."""
    rule = _CUSTOM_RULES.get(op.custom or "") if op.code == CUSTOM else _RULES.get(op.code)
    if rule is None:
        return
    arity, check = rule
    n_in = len(op.inputs)
    if not arity[0] <= n_in <= arity[1] or len(op.outputs) != arity[2]:
        r.fail(f"{what}: {n_in} inputs and {len(op.outputs)} outputs do not fit this operator")
    ins = [tensors[i] if i >= 0 else None for i in op.inputs]
    if any(t is None for t in ins[: arity[0]]):
        r.fail(f"{what}: a required input is missing (-1)")
    got = check(_Op(r, what, op, ins, tensors))
    out = tensors[op.outputs[0]]
    if got is not None and got != out.shape:
        r.fail(f"{what}: the operator computes shape {list(got)} but its output tensor declares {list(out.shape)}")


class _Op:
    """One operator being checked: its input tensors and option readers that fail with its path."""

    def __init__(self, r: Reader, what: str, op: Operator, ins: list[Tensor | None], tensors: Sequence[Tensor]):
        self.r, self.what, self.op, self.ins, self.tensors = r, what, op, ins, tensors

    def fail(self, message: str) -> NoReturn:
        self.r.fail(f"{self.what}: {message}")

    def tensor(self, k: int) -> Tensor:
        """Input `k`, which must be present (not the optional -1)."""
        t = self.ins[k]
        if t is None:
            self.fail(f"input {k} is missing (-1)")
        return t

    def shape(self, k: int, rank: int | None = None) -> Shape:
        t = self.tensor(k)
        if rank is not None and len(t.shape) != rank:
            self.fail(f"input {k} has shape {list(t.shape)}, expected rank {rank}")
        return t.shape

    def dtype(self, k: int) -> int:
        return self.tensor(k).dtype

    def out_dtype(self) -> int:
        return self.tensors[self.op.outputs[0]].dtype

    def options(self, expected: int) -> Table | None:
        """The builtin options table, checked to be of the union member `expected` (None: absent, defaults)."""
        if self.op.options is not None and self.op.options_type != expected:
            self.fail(f"builtin options of type {self.op.options_type} do not belong to this operator")
        return self.op.options

    def ints(self, k: int) -> tuple[int, ...] | None:
        """The values of constant int32/int64 input `k`, or None when it is not a constant."""
        t = self.ins[k] if k < len(self.ins) else None
        if t is None or not t.constant:
            return None
        if t.dtype not in (INT32, INT64) or t.data is None or len(t.shape) > 1:
            self.fail(f"input {k} must be a small 1-D int32 or int64 constant")
        assert t.data is not None
        size = 4 if t.dtype == INT32 else 8
        return struct.unpack_from(f"<{len(t.data) // size}{'i' if size == 4 else 'q'}", t.data)

    def same_dtype(self, *ks: int) -> None:
        out = self.out_dtype()
        for k in ks:
            if self.ins[k] is not None and self.dtype(k) != out:
                self.fail(f"input {k} and the output have different tensor types ({self.dtype(k)} vs {out})")

    def positive(self, name: str, value: int, limit: int = MAX_KERNEL) -> int:
        if not 1 <= value <= limit:
            self.fail(f"{name} = {value} is out of range (1..{limit})")
        return value


def _window(o: _Op, n: int, filt: int, stride: int, dilation: int, padding: int) -> int:
    """Output size of a conv/pool window along one axis (TFLite's ComputeOutSize)."""
    effective = (filt - 1) * dilation + 1
    if padding == SAME:
        return (n + stride - 1) // stride
    if padding == VALID:
        if n < effective:
            o.fail(f"a window of {effective} does not fit an input of {n} (VALID padding)")
        return (n - effective + stride) // stride
    o.fail(f"padding {padding} is not SAME or VALID")


def _unary(o: _Op) -> Shape:
    o.same_dtype(0)
    return o.shape(0)


def _dequantize(o: _Op) -> Shape:
    if o.dtype(0) not in (FLOAT16, INT8, UINT8, INT16) or o.out_dtype() != FLOAT32:
        o.fail("DEQUANTIZE takes float16/int8/uint8/int16 and gives float32")
    return o.shape(0)


def _broadcast(o: _Op) -> Shape:
    o.same_dtype(0, 1)
    a, b = o.shape(0), o.shape(1)
    n = max(len(a), len(b))
    a, b = (1,) * (n - len(a)) + a, (1,) * (n - len(b)) + b
    out = []
    for x, y in zip(a, b, strict=True):
        if x != y and 1 not in (x, y):
            o.fail(f"input shapes {list(o.shape(0))} and {list(o.shape(1))} do not broadcast")
        out.append(y if x == 1 else x)
    return tuple(out)


def _prelu(o: _Op) -> Shape:
    return _broadcast(o)


def _float_weights(o: _Op) -> None:
    """Float convolutions need float32 filters and biases (float16 weights come through DEQUANTIZE)."""
    if o.dtype(0) == FLOAT32:
        o.same_dtype(0)
        for k in range(1, len(o.ins)):
            if o.ins[k] is not None and o.dtype(k) != FLOAT32:
                o.fail(f"input {k} must be float32 like the input")


def _bias(o: _Op, channels: int) -> None:
    if len(o.ins) > 2 and o.ins[2] is not None and o.shape(2) != (channels,):
        o.fail(f"bias shape {list(o.shape(2))} does not match the {channels} output channels")


def _conv(o: _Op) -> Shape:
    t = o.options(CONV_OPTIONS)
    padding = int(t.scalar(0, I8)) if t else 0
    sw, sh = (int(t.scalar(1, I32)), int(t.scalar(2, I32))) if t else (0, 0)
    dw, dh = (int(t.scalar(4, I32, 1)), int(t.scalar(5, I32, 1))) if t else (1, 1)
    for name, v in (("stride_w", sw), ("stride_h", sh), ("dilation_w_factor", dw), ("dilation_h_factor", dh)):
        o.positive(name, v)
    n, h, w, c = o.shape(0, 4)
    co, kh, kw, ci = o.shape(1, 4)
    if ci < 1 or c % ci:
        o.fail(f"filter input depth {ci} does not divide the input's {c} channels")
    o.positive("filter height", kh)
    o.positive("filter width", kw)
    _float_weights(o)
    _bias(o, co)
    return n, _window(o, h, kh, sh, dh, padding), _window(o, w, kw, sw, dw, padding), co


def _depthwise(o: _Op) -> Shape:
    t = o.options(DEPTHWISE_OPTIONS)
    padding = int(t.scalar(0, I8)) if t else 0
    sw, sh = (int(t.scalar(1, I32)), int(t.scalar(2, I32))) if t else (0, 0)
    dw, dh = (int(t.scalar(5, I32, 1)), int(t.scalar(6, I32, 1))) if t else (1, 1)
    for name, v in (("stride_w", sw), ("stride_h", sh), ("dilation_w_factor", dw), ("dilation_h_factor", dh)):
        o.positive(name, v)
    n, h, w, c = o.shape(0, 4)
    one, kh, kw, co = o.shape(1, 4)
    if one != 1 or c < 1 or co % c:
        o.fail(f"depthwise filter shape {list(o.shape(1))} does not fit the input's {c} channels")
    o.positive("filter height", kh)
    o.positive("filter width", kw)
    _float_weights(o)
    _bias(o, co)
    return n, _window(o, h, kh, sh, dh, padding), _window(o, w, kw, sw, dw, padding), co


def _pool(o: _Op) -> Shape:
    t = o.options(POOL_OPTIONS)
    padding = int(t.scalar(0, I8)) if t else 0
    values = [int(t.scalar(f, I32)) if t else 0 for f in (1, 2, 3, 4)]
    sw, sh, fw, fh = (
        o.positive(name, v) for name, v in zip(("stride_w", "stride_h", "filter_w", "filter_h"), values, strict=True)
    )
    o.same_dtype(0)
    n, h, w, c = o.shape(0, 4)
    return n, _window(o, h, fh, sh, 1, padding), _window(o, w, fw, sw, 1, padding), c


def _custom_params(o: _Op, count: int) -> tuple[int, ...]:
    """The leading int32 fields of a MediaPipe custom op's options struct (TfLitePoolParams / TransposeConv)."""
    data = o.op.custom_options or b""
    if len(data) < 4 * count:
        o.fail(f"custom options hold {len(data)} bytes, {4 * count} needed")
    values = struct.unpack_from(f"<{count}i", data)
    if values[0] not in (1, 2):
        o.fail(f"padding {values[0]} is not SAME (1) or VALID (2)")
    for v in values[1:]:
        o.positive("a stride or filter size", v)
    return values


def _max_pool_argmax(o: _Op) -> Shape:
    padding, sw, sh, fw, fh = _custom_params(o, 5)
    n, h, w, c = o.shape(0, 4)
    pad = SAME if padding == 1 else VALID
    shape = n, _window(o, h, fh, sh, 1, pad), _window(o, w, fw, sw, 1, pad), c
    if o.tensors[o.op.outputs[1]].shape != shape:
        o.fail(f"the indices output declares {list(o.tensors[o.op.outputs[1]].shape)}, expected {list(shape)}")
    return shape


def _unpool(o: _Op) -> Shape:
    padding, sw, sh, fw, fh = _custom_params(o, 5)
    n, h, w, c = o.shape(0, 4)
    if o.shape(1) != o.shape(0):
        o.fail(f"indices shape {list(o.shape(1))} differs from the input's {list(o.shape(0))}")
    if padding == 1:
        return n, h * sh, w * sw, c
    return n, (h - 1) * sh + fh, (w - 1) * sw + fw, c


def _transpose_conv_bias(o: _Op) -> Shape:
    padding, sw, sh = _custom_params(o, 3)
    n, h, w, c = o.shape(0, 4)
    co, kh, kw, ci = o.shape(1, 4)
    if ci != c:
        o.fail(f"filter input depth {ci} differs from the input's {c} channels")
    o.positive("filter height", kh)
    o.positive("filter width", kw)
    _float_weights(o)
    _bias(o, co)
    if padding == 1:
        return n, h * sh, w * sw, co
    return n, (h - 1) * sh + kh, (w - 1) * sw + kw, co


def _concat(o: _Op) -> Shape:
    t = o.options(CONCAT_OPTIONS)
    axis = int(t.scalar(0, I32)) if t else 0
    first = o.shape(0)
    if not -len(first) <= axis < len(first):
        o.fail(f"axis {axis} is out of range for rank {len(first)}")
    axis %= len(first)
    total = 0
    for k in range(len(o.ins)):
        s = o.shape(k)
        if len(s) != len(first) or any(a != b for j, (a, b) in enumerate(zip(s, first, strict=True)) if j != axis):
            o.fail(f"input {k} shape {list(s)} does not concatenate with {list(first)} on axis {axis}")
        total += s[axis]
    o.same_dtype(*range(len(o.ins)))
    return (*first[:axis], total, *first[axis + 1 :])


def _resize(o: _Op) -> Shape | None:
    o.options(RESIZE_OPTIONS if o.op.code == RESIZE_BILINEAR else RESIZE_NN_OPTIONS)
    n, _, _, c = o.shape(0, 4)
    o.same_dtype(0)
    size = o.ints(1)
    if size is None:
        return None  # a computed size: only the generic bounds apply
    if len(size) != 2:
        o.fail(f"the size input holds {len(size)} values, expected 2")
    return n, o.positive("new height", size[0], MAX_DIMENSION), o.positive("new width", size[1], MAX_DIMENSION), c


def _mean(o: _Op) -> Shape | None:
    t = o.options(REDUCER_OPTIONS)
    keep = bool(t.scalar(0, U8)) if t else False
    shape = o.shape(0)
    axes = o.ints(1)
    o.same_dtype(0)
    if axes is None:
        return None
    picked = set()
    for a in axes:
        if not -len(shape) <= a < len(shape):
            o.fail(f"axis {a} is out of range for rank {len(shape)}")
        picked.add(a % len(shape))
    if keep:
        return tuple(1 if j in picked else d for j, d in enumerate(shape))
    return tuple(d for j, d in enumerate(shape) if j not in picked)


def _reshape(o: _Op) -> Shape | None:
    o.same_dtype(0)
    out = o.tensors[o.op.outputs[0]].shape
    if math.prod(out) != math.prod(o.shape(0)):
        o.fail(f"reshape of {list(o.shape(0))} into {list(out)} changes the element count")
    return None


def _softmax(o: _Op) -> Shape:
    t = o.op.options
    if t is not None and o.op.options_type == 9 and not math.isfinite(float(t.scalar(0, F32, 1.0))):
        o.fail("softmax beta is not finite")
    return _unary(o)


def _slice(o: _Op) -> Shape | None:
    o.same_dtype(0)
    shape = o.shape(0)
    begin, size = o.ints(1), o.ints(2)
    if begin is None or size is None:
        return None
    if len(begin) != len(shape) or len(size) != len(shape):
        o.fail(f"begin {list(begin)} and size {list(size)} do not match rank {len(shape)}")
    out = []
    for b, s, d in zip(begin, size, shape, strict=True):
        end = d if s == -1 else b + s
        if not 0 <= b <= end <= d or s < -1:
            o.fail(f"slice begin {list(begin)} size {list(size)} is outside the input's {list(shape)}")
        out.append(end - b)
    return tuple(out)


Rule = tuple[tuple[int, int, int], Callable[[_Op], "Shape | None"]]  # (min inputs, max inputs, outputs), check
_UNARY: Rule = ((1, 1, 1), _unary)
_RULES: dict[int, Rule] = {
    ADD: ((2, 2, 1), _broadcast),
    SUB: ((2, 2, 1), _broadcast),
    MUL: ((2, 2, 1), _broadcast),
    DIV: ((2, 2, 1), _broadcast),
    PRELU: ((2, 2, 1), _prelu),
    AVERAGE_POOL_2D: ((1, 1, 1), _pool),
    MAX_POOL_2D: ((1, 1, 1), _pool),
    CONCATENATION: ((1, 1 << 16, 1), _concat),
    # TFLite's conv kernel refuses a missing bias, and its depthwise path crashed without one: both need it.
    CONV_2D: ((3, 3, 1), _conv),
    DEPTHWISE_CONV_2D: ((3, 3, 1), _depthwise),
    DEQUANTIZE: ((1, 1, 1), _dequantize),
    LOGISTIC: _UNARY,
    RELU: _UNARY,
    RELU6: _UNARY,
    RELU_N1_TO_1: _UNARY,
    TANH: _UNARY,
    HARD_SWISH: _UNARY,
    SOFTMAX: ((1, 1, 1), _softmax),
    RESHAPE: ((1, 2, 1), _reshape),
    RESIZE_BILINEAR: ((2, 2, 1), _resize),
    RESIZE_NEAREST_NEIGHBOR: ((2, 2, 1), _resize),
    MEAN: ((2, 2, 1), _mean),
    SLICE: ((3, 3, 1), _slice),
}
_CUSTOM_RULES: dict[str, Rule] = {
    "Convolution2DTransposeBias": ((3, 3, 1), _transpose_conv_bias),
    "MaxPoolingWithArgmax2D": ((1, 1, 2), _max_pool_argmax),
    "MaxUnpooling2D": ((2, 2, 1), _unpool),
}
