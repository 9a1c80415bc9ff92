"""`describe(info)`: a ModelInfo as readable text, shared by `python -m segkit.metadata` and `segkit info`."""

from __future__ import annotations

from segkit.metadata.info import ModelInfo, TensorMetadata
from segkit.metadata.tflite import TensorInfo


def _tensor(t: TensorInfo) -> str:
    """One tensor on one line: name, shape, dtype and quantization."""
    quant = f"  scale={t.quantization[0]:g} zero_point={t.quantization[1]}" if t.quantization else ""
    return f"  {t.name!r}  {list(t.shape)}  {t.dtype}{quant}"


def _tensor_metadata(label: str, m: TensorMetadata | None) -> list[str]:
    """The metadata of one tensor, one fact per line, skipping what is absent."""
    if m is None:
        return []
    lines = [f"{label} tensor metadata: {m.name!r}"]
    facts = (("description", m.description), ("color space", m.color_space), ("value range", m.value_range),
             ("stats min", list(m.stats_min) or None), ("stats max", list(m.stats_max) or None))  # fmt: skip
    lines += [f"  {k}: {v}" for k, v in facts if v is not None]
    return lines


def describe(info: ModelInfo) -> str:
    """Tensors, custom ops, metadata fields, normalization, activation, labels and display names per locale."""
    lines = [f"subgraphs: {info.num_subgraphs}", "inputs:"]
    lines += [_tensor(t) for t in info.inputs]
    lines += ["outputs:"] + [_tensor(t) for t in info.outputs]
    lines.append(f"custom ops: {', '.join(info.custom_ops) or '(none)'}")
    if info.tflite_description:
        lines.append(f"TFLite description: {info.tflite_description}")
    if not info.has_metadata:
        lines.append("metadata: none (no TFLITE_METADATA)")
    else:
        lines.append("metadata (TFLITE_METADATA):")
        for key in ("name", "version", "description", "author", "min_parser_version"):
            value = getattr(info, key)
            if value is not None:
                lines.append(f"  {key}: {value}")
        lines += _tensor_metadata("input", info.input_metadata)
        if info.normalization is not None:
            lines.append(f"normalization: mean {list(info.normalization.mean)} std {list(info.normalization.std)}")
        lines += _tensor_metadata("output", info.output_metadata)
    lines.append(f"activation: {info.activation.name}")
    for f in info.label_files:
        lines.append(f"label file: {f.name}" + (f" (locale {f.locale})" if f.locale else ""))
    lines.append(f"labels ({len(info.labels)}): {', '.join(info.labels) or '(none)'}")
    for locale in info.locales:
        try:
            lines.append(f"display names [{locale}]: {', '.join(info.display_names(locale))}")
        except ValueError as e:
            lines.append(f"display names [{locale}]: error: {e}")
    return "\n".join(lines)
