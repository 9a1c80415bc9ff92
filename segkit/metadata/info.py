"""`read_model_info`: the TFLite structure plus MediaPipe's TFLITE_METADATA, SEGMENTER_METADATA and label files.

Field ids follow MediaPipe's `metadata_schema.fbs` and `image_segmenter_metadata_schema.fbs`; the rules for
picking metadata entries, label files and locales follow `metadata_extractor.cc`, `image_segmenter_graph.cc`
and `label_map_util.cc`.
"""

from __future__ import annotations

import enum
import io
import re
import struct
import zipfile
import zlib
from dataclasses import dataclass, replace

from segkit.metadata.flatbuf import F32, I8, I32, U8, Reader, Table
from segkit.metadata.tflite import TensorInfo, TFLiteModel, parse_model

METADATA_NAME = "TFLITE_METADATA"
SEGMENTER_METADATA_NAME = "SEGMENTER_METADATA"
TENSOR_AXIS_LABELS = 2  # AssociatedFileType
IMAGE_PROPERTIES = 2  # ContentProperties union member
NORMALIZATION_OPTIONS = 1  # ProcessUnitOptions union member
COLOR_SPACES = ("UNKNOWN", "RGB", "GRAYSCALE")
MAX_ASSOCIATED_FILE = 16 << 20  # bytes; bounds what a lying (or bomb) zip member can make us inflate
MAX_ASSOCIATED_FILES_TOTAL = 16 << 20  # bytes for all label files of a model together
MAX_LABEL_FILES = 4096  # TENSOR_AXIS_LABELS entries (each names a file; locales need a few)
MAX_CATEGORIES = 256  # a category mask is uint8
MAX_LABEL_CHARS = 1024  # one label or display name (a legend or a file name is made of it)
ZIP_ERRORS = (zipfile.BadZipFile, zlib.error, NotImplementedError, EOFError, OSError, RuntimeError,
              struct.error, ValueError, OverflowError, KeyError, IndexError)  # fmt: skip


class Activation(enum.IntEnum):
    """The activation `SEGMENTER_METADATA` asks for (MediaPipe's `Activation` enum)."""

    NONE = 0
    SIGMOID = 1
    SOFTMAX = 2


class InvalidActivationError(ValueError, RuntimeError):
    """SEGMENTER_METADATA holds an unknown activation: a RuntimeError as in MediaPipe, and a ValueError
    (malformed metadata) as segkit's contract says."""


@dataclass(frozen=True)
class Normalization:
    """NormalizationOptions of the input tensor: x' = (x - mean) / std per channel."""

    mean: tuple[float, ...]
    std: tuple[float, ...]


@dataclass(frozen=True)
class LabelFile:
    """One TENSOR_AXIS_LABELS associated file; `text` is None when the appended zip lacks it."""

    name: str
    locale: str | None
    text: str | None


@dataclass(frozen=True)
class TensorMetadata:
    """The parts of one TensorMetadata entry worth showing: content, value range and stats."""

    name: str | None
    description: str | None
    color_space: str | None
    value_range: tuple[int, int] | None
    stats_min: tuple[float, ...]
    stats_max: tuple[float, ...]


@dataclass(frozen=True)
class ModelInfo:
    """Everything segkit reads from a model file (see docs/architecture.md)."""

    inputs: tuple[TensorInfo, ...]
    outputs: tuple[TensorInfo, ...]
    num_subgraphs: int
    custom_ops: tuple[str, ...]
    has_metadata: bool = False
    name: str | None = None
    version: str | None = None
    description: str | None = None
    author: str | None = None
    min_parser_version: str | None = None
    color_space: str | None = None
    normalization: Normalization | None = None
    activation: Activation = Activation.NONE
    labels: tuple[str, ...] = ()
    label_files: tuple[LabelFile, ...] = ()
    input_metadata: TensorMetadata | None = None
    output_metadata: TensorMetadata | None = None
    tflite_description: str | None = None

    @property
    def locales(self) -> tuple[str, ...]:
        """The distinct locales of the label files, in file order."""
        return tuple(dict.fromkeys(f.locale for f in self.label_files if f.locale))

    def display_names(self, locale: str) -> tuple[str, ...]:
        """Display names per label, as MediaPipe's GetLabelItemsIfAny + BuildLabelMapFromFiles make them.

        The file is the first TENSOR_AXIS_LABELS file whose locale equals `locale`; `""` matches the first file
        (so gives `labels`). No such file, or an empty one, leaves every display name empty: `("",) * n`.
        A named file missing from the zip, or a line count unlike `labels`, raises ValueError.
        """
        if not self.labels:
            return ()
        chosen = next((f for f in self.label_files if not locale or f.locale == locale), None)
        if chosen is None:
            return ("",) * len(self.labels)
        if chosen.text is None:
            raise ValueError(f"No associated file with name: {chosen.name}")
        if not chosen.text:
            return ("",) * len(self.labels)
        names = split_label_lines(chosen.text)
        _check_lengths(chosen.name, names)
        if len(names) != len(self.labels):
            raise ValueError(
                f"Mismatch between number of labels ({len(self.labels)}) and display names ({len(names)})."
            )
        return names


def split_label_lines(text: str) -> tuple[str, ...]:
    """Lines as MediaPipe's ForEachLine + BuildLabelMapFromFiles give them: split on \\n, \\r\\n or \\r, no
    trimming, the piece after a final newline dropped, then one trailing empty line dropped."""
    lines = re.split(r"\r\n|\r|\n", text)
    if lines[-1] == "":
        lines.pop()
    if lines and lines[-1] == "":
        lines.pop()
    return tuple(lines)


def read_model_info(model: bytes, parsed: TFLiteModel | None = None) -> ModelInfo:
    """Read tensors, custom ops, metadata, activation and labels; ValueError on anything malformed.

    `parsed` is what `verify_model(model)` returned, if the caller has it (the walk is then not repeated).
    A model without a `TFLITE_METADATA` entry gives `has_metadata=False` and no labels, without error.
    """
    tfl = parsed if parsed is not None else parse_model(model)
    sg = tfl.subgraphs[0]
    channels = output_channels(tuple(sg.tensors[i] for i in sg.outputs))
    if channels > MAX_CATEGORIES:
        raise ValueError(
            f"the mask output has {channels} channels; a category mask holds at most {MAX_CATEGORIES} categories"
        )
    base = ModelInfo(
        inputs=tuple(sg.tensors[i] for i in sg.inputs),
        outputs=tuple(sg.tensors[i] for i in sg.outputs),
        num_subgraphs=len(tfl.subgraphs),
        custom_ops=tfl.custom_ops,
        tflite_description=tfl.description,
    )
    entries = [data for name, data in tfl.metadata if name == METADATA_NAME]
    if not entries:
        return base
    if entries[0] is None:
        raise ValueError("Metadata buffer has no data.")
    return _with_metadata(base, entries[0], bytes(model))


def _with_metadata(base: ModelInfo, buf: bytes, model: bytes) -> ModelInfo:
    """`base` completed from the ModelMetadata flatbuffer `buf` and the zip appended to `model`."""
    r = Reader(buf, "malformed TFLITE_METADATA")
    if r.identifier() != b"M001":
        got = r.identifier().decode("ascii", "backslashreplace")
        raise ValueError(f"Invalid metadata schema version: expected M001, got {got}")
    root = r.root("ModelMetadata")
    name, description, version = root.string(0), root.string(1), root.string(2)
    author, min_parser_version = root.string(4), root.string(7)
    root.string(5)
    input_metadata = output_metadata = None
    normalization = None
    files: tuple[LabelFile, ...] = ()
    labels: tuple[str, ...] = ()
    activation = Activation.NONE
    subgraphs = root.tables(3, "subgraph_metadata")
    if subgraphs:
        sg = subgraphs[0]
        inputs = sg.tables(2, "input_tensor_metadata")
        outputs = sg.tables(3, "output_tensor_metadata")
        if inputs:
            input_metadata = _tensor_metadata(inputs[0])
            normalization = _normalization(inputs[0])
        if outputs:
            output_metadata = _tensor_metadata(outputs[-1])
            files = _label_files(outputs[-1], model)
            if files:
                labels = _labels(files[0], base.outputs)
        activation = _activation(sg)
    return replace(
        base, has_metadata=True, name=name, description=description, version=version, author=author,
        min_parser_version=min_parser_version, input_metadata=input_metadata,
        color_space=input_metadata.color_space if input_metadata is not None else None,
        normalization=normalization, output_metadata=output_metadata, label_files=files, labels=labels,
        activation=activation,
    )  # fmt: skip


def output_channels(outputs: tuple[TensorInfo, ...]) -> int:
    """Channels of the mask output (the last one), which may be [h, w], [h, w, C] or [1, h, w, C]."""
    if not outputs:
        return 0
    shape = outputs[-1].shape
    return shape[-1] if len(shape) >= 3 else 1


def _labels(first: LabelFile, outputs: tuple[TensorInfo, ...]) -> tuple[str, ...]:
    """The labels from the first label file, one per output channel (checked before the text is split)."""
    if first.text is None:
        raise ValueError(f"No associated file with name: {first.name}")
    if not first.text:
        raise ValueError("Expected non-empty labels file.")
    channels = output_channels(outputs)
    breaks = first.text.count("\n") + first.text.count("\r")
    if breaks > 2 * channels + 2:
        raise ValueError(f"labels file {first.name!r} has {breaks} line breaks for {channels} output channel(s)")
    labels = split_label_lines(first.text)
    if len(labels) != channels:
        raise ValueError(f"labels file {first.name!r} lists {len(labels)} labels for {channels} output channel(s)")
    _check_lengths(first.name, labels)
    return labels


def _check_lengths(name: str, lines: tuple[str, ...]) -> None:
    """ValueError when a label or display name is longer than MAX_LABEL_CHARS."""
    longest = max((len(line) for line in lines), default=0)
    if longest > MAX_LABEL_CHARS:
        raise ValueError(f"labels file {name!r} has a line of {longest} characters (at most {MAX_LABEL_CHARS})")


def _tensor_metadata(t: Table) -> TensorMetadata:
    """Name, description, color space, value range and stats of one TensorMetadata table."""
    color_space = value_range = None
    content = t.table(3, "content")
    if content is not None:
        props = content.table(1, "content_properties")
        if props is not None and int(content.scalar(0, U8)) == IMAGE_PROPERTIES:
            cs = int(props.scalar(0, I8))
            color_space = COLOR_SPACES[cs] if 0 <= cs < len(COLOR_SPACES) else f"UNKNOWN({cs})"
        rng = content.table(2, "range")
        if rng is not None:
            value_range = (int(rng.scalar(0, I32)), int(rng.scalar(1, I32)))
    stats = t.table(5, "stats")
    stats_max = tuple(float(v) for v in stats.scalars(0, F32) or ()) if stats else ()
    stats_min = tuple(float(v) for v in stats.scalars(1, F32) or ()) if stats else ()
    t.strings(2)
    return TensorMetadata(t.string(0), t.string(1), color_space, value_range, stats_min, stats_max)


def _normalization(t: Table) -> Normalization | None:
    """The tensor's NormalizationOptions; more than one is an error, as in FindFirstProcessUnit."""
    found = None
    for unit in t.tables(4, "process_units"):
        options = unit.table(1, "options")
        if int(unit.scalar(0, U8)) != NORMALIZATION_OPTIONS or options is None:
            continue
        if found is not None:
            raise ValueError("Found multiple ProcessUnits with type=NormalizationOptions, expected at most one.")
        found = Normalization(
            tuple(float(v) for v in options.scalars(0, F32) or ()),
            tuple(float(v) for v in options.scalars(1, F32) or ()),
        )
    return found


def _label_files(t: Table, model: bytes) -> tuple[LabelFile, ...]:
    """The tensor's TENSOR_AXIS_LABELS files (those with a name), each read from the appended zip.

    Each zip member is read and decoded once however often it is named, and all of them together stay within
    MAX_ASSOCIATED_FILES_TOTAL bytes, so no list of references can make the reader inflate more than that.
    """
    entries = []
    for f in t.tables(6, "associated_files"):
        name, locale = f.string(0), f.string(3)
        f.string(1)
        f.string(4)
        if int(f.scalar(2, I8)) == TENSOR_AXIS_LABELS and name is not None:
            entries.append((name, locale))
    if not entries:
        return ()
    if len(entries) > MAX_LABEL_FILES:
        raise ValueError(f"malformed metadata: {len(entries)} label files (at most {MAX_LABEL_FILES} are read)")
    archive = _open_zip(model)
    texts: dict[str, str | None] = {}
    budget = MAX_ASSOCIATED_FILES_TOTAL
    for name, _ in entries:
        if name not in texts:
            text, used = _read_member(archive, name, budget)
            texts[name] = text
            budget -= used
    return tuple(LabelFile(name, locale, texts[name]) for name, locale in entries)


def _open_zip(model: bytes) -> zipfile.ZipFile | None:
    """The zip appended to the model, or None when there is none (MediaPipe: no associated files)."""
    try:
        return zipfile.ZipFile(io.BytesIO(model))
    except ZIP_ERRORS:
        return None


def _read_member(archive: zipfile.ZipFile | None, name: str, budget: int) -> tuple[str | None, int]:
    """A zip member as UTF-8 text (None when absent) and its size; ValueError when it is corrupt or larger than
    `budget` (what is left of the total for associated files)."""
    if archive is None or name not in archive.NameToInfo:
        return None, 0
    limit = min(MAX_ASSOCIATED_FILE, budget)
    try:
        with archive.open(name) as fh:
            data = fh.read(limit + 1)
    except ZIP_ERRORS as e:
        raise ValueError(
            f"malformed metadata: cannot read {name!r} from the zip appended to the model: {e or type(e).__name__}"
        ) from e
    if len(data) > limit:
        raise ValueError(
            f"malformed metadata: associated file {name!r} does not fit the {MAX_ASSOCIATED_FILE}-byte limit per "
            f"file and {MAX_ASSOCIATED_FILES_TOTAL} bytes for all associated files"
        )
    try:
        return data.decode("utf-8"), len(data)
    except UnicodeDecodeError as e:
        raise ValueError(f"malformed metadata: associated file {name!r} is not valid UTF-8 ({e.reason})") from e


def _activation(sg: Table) -> Activation:
    """Activation from the subgraph's SEGMENTER_METADATA entries (the last one wins); NONE when absent.

    Like MediaPipe, the ImageSegmenterOptions flatbuffer's "V001" identifier is not required.
    """
    activation = Activation.NONE
    for custom in sg.tables(9, "custom_metadata"):
        if custom.string(0) != SEGMENTER_METADATA_NAME:
            continue
        data = custom.blob(1)
        if data is None:
            raise ValueError("malformed SEGMENTER_METADATA: the entry has no data")
        value = int(Reader(data, "malformed SEGMENTER_METADATA").root("ImageSegmenterOptions").scalar(0, I8))
        if value not in Activation._value2member_map_:
            raise InvalidActivationError(
                "Invalid activation type found in CustomMetadata of ImageSegmenterOptions type."
            )
        activation = Activation(value)
    return activation
