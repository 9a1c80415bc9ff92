"""`describe(info)`: a ModelInfo as readable text, shared by `python -m segkit.metadata` and `segkit info`."""

from __future__ import annotations

from collections.abc import Sequence

from segkit.metadata.info import ModelInfo, TensorMetadata
from segkit.metadata.tflite import TensorInfo

MAX_SHOWN = 32  # label files and locales listed; the rest are counted (a model may name thousands)
MAX_NAME = 60  # characters shown of one label or display name
MAX_LINE = 2000  # characters of one list of names


def _names(names: Sequence[str]) -> str:
    """Names joined by commas, each and the whole list cut to a readable length."""
    text = ", ".join(n if len(n) <= MAX_NAME else n[:MAX_NAME] + "..." for n in names)
    return text if len(text) <= MAX_LINE else text[:MAX_LINE] + f"... ({len(names)} names)"


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
    for f in info.label_files[:MAX_SHOWN]:
        lines.append(f"label file: {f.name}" + (f" (locale {f.locale})" if f.locale else ""))
    if len(info.label_files) > MAX_SHOWN:
        lines.append(f"... and {len(info.label_files) - MAX_SHOWN} more label files")
    lines.append(f"labels ({len(info.labels)}): {_names(info.labels) or '(none)'}")
    shown: dict[str, str] = {}  # by file name: locales sharing one file are read once
    for locale in info.locales[:MAX_SHOWN]:
        chosen = next(f.name for f in info.label_files if f.locale == locale)
        if chosen not in shown:
            try:
                shown[chosen] = _names(info.display_names(locale))
            except ValueError as e:
                shown[chosen] = f"error: {e}"
        lines.append(f"display names [{locale}]: {shown[chosen]}")
    if len(info.locales) > MAX_SHOWN:
        lines.append(f"... and {len(info.locales) - MAX_SHOWN} more locales")
    return "\n".join(lines)
