"""Tiny TFLite models with MediaPipe metadata, built in tests to probe the pipeline.

A *probe* model reshapes (and, where the element counts differ, slices) its input tensor into its output tensor,
so each preprocessed tensor value comes back unchanged as a logit. With normalization mean 0 and std 1 the logits
are the warped uint8 pixels; with other mean/std they are any float values a test wants to feed postprocessing.
Built with the flatbuffer classes generated from the TFLite and metadata schemas that ship in the ``mediapipe``
wheel (a test-only dependency).
"""

from __future__ import annotations

import io
import math
import zipfile
from collections.abc import Sequence

import flatbuffers
import numpy as np
from mediapipe.tasks.metadata import metadata_schema_py_generated as md
from mediapipe.tasks.metadata import schema_py_generated as tfl

_TENSOR_TYPE = {"float32": tfl.TensorType.FLOAT32, "uint8": tfl.TensorType.UINT8, "int32": tfl.TensorType.INT32}


def _segmenter_options(activation: int) -> bytes:
    """An ``ImageSegmenterOptions`` flatbuffer (identifier V001) holding ``activation``."""
    b = flatbuffers.Builder(64)
    version = b.CreateString("1.0.0")
    b.StartObject(2)
    b.PrependInt8Slot(0, activation, 0)
    b.PrependUOffsetTRelativeSlot(1, version, 0)
    b.Finish(b.EndObject(), file_identifier=b"V001")
    return bytes(b.Output())


def _metadata(
    mean: Sequence[float] | None,
    std: Sequence[float] | None,
    activation: int | None,
    label_files: Sequence[tuple[str, str | None]],
) -> bytes:
    """A ``ModelMetadata`` flatbuffer (identifier M001) like MediaPipe's image segmenter writer makes."""
    image = md.ContentT()
    image.contentPropertiesType = md.ContentProperties.ImageProperties
    image.contentProperties = md.ImagePropertiesT()
    image.contentProperties.colorSpace = md.ColorSpaceType.RGB
    inp = md.TensorMetadataT()
    inp.name = "image"
    inp.content = image
    if mean is not None and std is not None:
        unit = md.ProcessUnitT()
        unit.optionsType = md.ProcessUnitOptions.NormalizationOptions
        unit.options = md.NormalizationOptionsT()
        unit.options.mean = [float(m) for m in mean]
        unit.options.std = [float(s) for s in std]
        inp.processUnits = [unit]
    out = md.TensorMetadataT()
    out.name = "segmentation_masks"
    files = []
    for name, locale in label_files:
        f = md.AssociatedFileT()
        f.name = name
        f.type = md.AssociatedFileType.TENSOR_AXIS_LABELS
        f.locale = locale
        files.append(f)
    out.associatedFiles = files or None
    sub = md.SubGraphMetadataT()
    sub.inputTensorMetadata = [inp]
    sub.outputTensorMetadata = [out]
    if activation is not None:
        custom = md.CustomMetadataT()
        custom.name = "SEGMENTER_METADATA"
        custom.data = list(_segmenter_options(activation))
        sub.customMetadata = [custom]
    meta = md.ModelMetadataT()
    meta.name = "ImageSegmenter"
    meta.version = "1"
    meta.minParserVersion = "1.0.0"
    meta.subgraphMetadata = [sub]
    b = flatbuffers.Builder(1024)
    b.Finish(meta.Pack(b), file_identifier=b"M001")
    return bytes(b.Output())


def _tensor(shape: Sequence[int], dtype: str, buffer: int, name: str) -> tfl.TensorT:
    t = tfl.TensorT()
    t.shape = list(shape)
    t.type = _TENSOR_TYPE[dtype]
    t.buffer = buffer
    t.name = name
    if dtype == "uint8":
        t.quantization = tfl.QuantizationParametersT()
        t.quantization.scale = [1.0]
        t.quantization.zeroPoint = [0]
    return t


def _opcode(builtin: int) -> tfl.OperatorCodeT:
    code = tfl.OperatorCodeT()
    code.deprecatedBuiltinCode = builtin
    code.builtinCode = builtin
    code.version = 1
    return code


def probe_model(
    tensor_hwc: tuple[int, int, int],
    output_hwc: tuple[int, int, int],
    *,
    dtype: str = "float32",
    mean: Sequence[float] | None = (0.0,),
    std: Sequence[float] | None = (1.0,),
    activation: int | None = 0,
    labels: Sequence[str] | None = None,
    extra_label_files: Sequence[tuple[str, str, Sequence[str]]] = (),
    with_metadata: bool = True,
) -> bytes:
    """Model whose output ``[1, *output_hwc]`` is the first elements of its input ``[1, *tensor_hwc]``, flattened.

    ``extra_label_files`` holds ``(file name, locale, lines)`` for localized display-name files.
    """
    n_in, n_out = math.prod(tensor_hwc), math.prod(output_hwc)
    if n_out > n_in:
        raise ValueError(f"output {output_hwc} has more elements than input {tensor_hwc}")
    buffers = [tfl.BufferT()]

    def const_i32(values: Sequence[int]) -> int:
        buf = tfl.BufferT()
        buf.data = list(np.asarray(values, "<i4").tobytes())
        buffers.append(buf)
        return len(buffers) - 1

    tensors = [_tensor((1, *tensor_hwc), dtype, 0, "image")]
    ops: list[tfl.OperatorT] = []
    codes = [_opcode(tfl.BuiltinOperator.RESHAPE), _opcode(tfl.BuiltinOperator.SLICE)]

    def add(tensor: tfl.TensorT) -> int:
        tensors.append(tensor)
        return len(tensors) - 1

    def reshape(src: int, shape: Sequence[int], name: str) -> int:
        shape_t = add(_tensor((len(shape),), "int32", const_i32(shape), name + "_shape"))
        dst = add(_tensor(shape, dtype, 0, name))
        op = tfl.OperatorT()
        op.opcodeIndex = 0
        op.inputs, op.outputs = [src, shape_t], [dst]
        op.builtinOptionsType = tfl.BuiltinOptions.ReshapeOptions
        op.builtinOptions = tfl.ReshapeOptionsT()
        op.builtinOptions.newShape = list(shape)
        ops.append(op)
        return dst

    current = 0
    if n_out < n_in:
        flat = reshape(current, (1, n_in), "flat")
        begin = add(_tensor((2,), "int32", const_i32((0, 0)), "begin"))
        size = add(_tensor((2,), "int32", const_i32((1, n_out)), "size"))
        sliced = add(_tensor((1, n_out), dtype, 0, "sliced"))
        op = tfl.OperatorT()
        op.opcodeIndex = 1
        op.inputs, op.outputs = [flat, begin, size], [sliced]
        op.builtinOptionsType = tfl.BuiltinOptions.SliceOptions
        op.builtinOptions = tfl.SliceOptionsT()
        ops.append(op)
        current = sliced
    out = reshape(current, (1, *output_hwc), "segmentation_masks")

    sub = tfl.SubGraphT()
    sub.tensors, sub.operators, sub.inputs, sub.outputs = tensors, ops, [0], [out]
    model = tfl.ModelT()
    model.version = 3
    model.operatorCodes, model.subgraphs, model.buffers = codes, [sub], buffers
    model.description = "segkit probe model"
    label_files: list[tuple[str, str | None, Sequence[str]]] = []
    if labels is not None:
        label_files.append(("labels.txt", None, labels))
    label_files.extend(extra_label_files)
    if with_metadata:
        meta_buf = tfl.BufferT()
        meta_buf.data = list(_metadata(mean, std, activation, [(n, loc) for n, loc, _ in label_files]))
        buffers.append(meta_buf)
        entry = tfl.MetadataT()
        entry.name = "TFLITE_METADATA"
        entry.buffer = len(buffers) - 1
        model.metadata = [entry]
    b = flatbuffers.Builder(4096)
    b.Finish(model.Pack(b), file_identifier=b"TFL3")
    data = bytes(b.Output())
    if with_metadata and label_files:
        stream = io.BytesIO(data)
        with zipfile.ZipFile(stream, "a") as zf:
            for name, _, lines in label_files:
                zf.writestr(name, "\n".join(lines) + "\n")
        data = stream.getvalue()
    return data
