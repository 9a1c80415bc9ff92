"""Helpers for the metadata tests: load real models and locate their metadata and zip regions."""

from __future__ import annotations

import io
import zipfile

from segkit.metadata.flatbuf import Reader
from segkit.metadata.tflite import parse_model
from tests.conftest import model_path


def load(name: str) -> bytes:
    """A shared model's bytes (fails loudly when missing)."""
    return model_path(name).read_bytes()


def metadata_region(model: bytes) -> tuple[int, int]:
    """(start, end) of the TFLITE_METADATA buffer inside the model."""
    data = dict(parse_model(model).metadata)["TFLITE_METADATA"]
    assert data is not None
    start = model.find(data)
    assert start > 0 and model.find(data, start + 1) == -1
    return start, start + len(data)


def zip_start(model: bytes) -> int:
    """Where the zip archive appended to the model starts (its first local file header)."""
    with zipfile.ZipFile(io.BytesIO(model)) as zf:
        return min(info.header_offset for info in zf.infolist())


def with_zip(model: bytes, files: dict[str, bytes]) -> bytes:
    """The model with its appended zip replaced by one holding `files`."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as zf:
        for name, data in files.items():
            zf.writestr(name, data)
    return model[: zip_start(model)] + out.getvalue()


def activation_pos(model: bytes) -> int:
    """Position in the model of the `activation` byte of the (last) SEGMENTER_METADATA entry."""
    start, end = metadata_region(model)
    root = Reader(model[start:end], "test").root("ModelMetadata")
    custom = root.tables(3, "sg")[0].tables(9, "custom")[-1]
    vector = custom.vector(1, 1)
    assert vector is not None
    data_start, n = vector
    options = Reader(model[start + data_start : start + data_start + n], "test").root("opts")
    field = options._field(0, 1)
    assert field is not None, "activation is stored (not defaulted) in this model"
    return start + data_start + field
