"""Metadata bombs: zip members read once under one budget, label counts tied to the output channels."""

from __future__ import annotations

import io
import time
import tracemalloc
import zipfile

import pytest

from segkit.metadata import describe, read_model_info
from segkit.metadata import info as info_module
from tests.metadata.helpers import with_zip
from tests.modelbuilder import probe_model


def _with_deflated_zip(model: bytes, files: dict[str, bytes]) -> bytes:
    """`model` with its appended zip replaced by a deflated one (small on disk, large inflated)."""
    plain = with_zip(model, {"x": b""})
    start = plain.rfind(b"PK\x03\x04")
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in files.items():
            zf.writestr(name, data)
    return plain[:start] + out.getvalue()


@pytest.mark.filterwarnings("ignore:Duplicate name")
def test_one_member_named_a_thousand_times_is_read_once() -> None:
    references = [("names.txt", f"l{k}", ["a"]) for k in range(1000)]
    model = probe_model((4, 4, 3), (4, 4, 1), labels=["a"], extra_label_files=references)
    # one 10 MB member: each of the 1000 references used to inflate and decode it again (10 GB in all)
    bomb = _with_deflated_zip(model, {"labels.txt": b"a\n", "names.txt": b"a" * (10 << 20)})
    assert len(bomb) < 200_000
    tracemalloc.start()
    start = time.perf_counter()
    info = read_model_info(bomb)
    elapsed = time.perf_counter() - start
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert len(info.label_files) == 1001 and len({id(f.text) for f in info.label_files[1:]}) == 1
    assert elapsed < 2.0 and peak < 80 << 20, (elapsed, peak)
    start = time.perf_counter()
    text = describe(info)  # what `segkit info` prints: it listed 1,000 locales of 10 MB names (10 GB) before
    assert time.perf_counter() - start < 2.0 and len(text) < 20_000
    assert "... and 968 more locales" in text and "... and 969 more label files" in text


def test_total_budget_across_files() -> None:
    references = [("labels_de.txt", "de", ["b"]), ("labels_fr.txt", "fr", ["c"])]
    model = probe_model((4, 4, 3), (4, 4, 1), labels=["a"], extra_label_files=references)
    ten = b"b" * (10 << 20)
    files = {"labels.txt": b"a\n", "labels_de.txt": ten, "labels_fr.txt": ten}
    with pytest.raises(ValueError, match=r"associated file 'labels_fr.txt' does not fit .* for all associated files"):
        read_model_info(_with_deflated_zip(model, files))
    one = {"labels.txt": b"a\n", "labels_de.txt": ten, "labels_fr.txt": b"c\n"}
    assert read_model_info(_with_deflated_zip(model, one)).display_names("fr") == ("c",)


def test_a_single_deflate_bomb_is_cut_off() -> None:
    model = probe_model((4, 4, 3), (4, 4, 1), labels=["a"])
    bomb = _with_deflated_zip(model, {"labels.txt": b"\n" * (64 << 20)})
    assert len(bomb) < 200_000
    with pytest.raises(ValueError, match="does not fit the 16777216-byte limit per file"):
        read_model_info(bomb)


def test_label_flood_is_refused_before_splitting() -> None:
    model = probe_model((4, 4, 3), (4, 4, 1), labels=["a"])
    flood = _with_deflated_zip(model, {"labels.txt": b"x\n" * 4_000_000})
    start = time.perf_counter()
    with pytest.raises(ValueError, match=r"labels file 'labels.txt' has 4000000 line breaks for 1 output channel"):
        read_model_info(flood)
    assert time.perf_counter() - start < 1.0


@pytest.mark.parametrize(("labels", "channels"), [(["a", "b"], 1), (["a"], 3), (["a", "b", "c", "d"], 3)])
def test_label_count_must_match_the_channels(labels: list[str], channels: int) -> None:
    model = probe_model((4, 4, 3), (4, 4, channels), labels=labels)
    with pytest.raises(ValueError, match=rf"lists {len(labels)} labels for {channels} output channel\(s\)"):
        read_model_info(model)


def test_more_than_256_channels_is_refused() -> None:
    model = probe_model((10, 10, 3), (1, 1, 300), labels=[f"c{k}" for k in range(300)])
    with pytest.raises(ValueError, match="the mask output has 300 channels; a category mask holds at most 256"):
        read_model_info(model)
    ok = probe_model((10, 10, 3), (1, 1, 256), labels=[f"c{k}" for k in range(256)])
    assert len(read_model_info(ok).labels) == 256
    with pytest.raises(ValueError, match="the mask output has 300 channels"):
        read_model_info(probe_model((10, 10, 3), (1, 1, 300), with_metadata=False))


@pytest.mark.filterwarnings("ignore:Duplicate name")
def test_too_many_label_files() -> None:
    references = [("labels.txt", f"l{k}", ["a"]) for k in range(info_module.MAX_LABEL_FILES)]
    model = probe_model((4, 4, 3), (4, 4, 1), labels=["a"], extra_label_files=references)
    model = with_zip(model, {"labels.txt": b"a\n"})
    with pytest.raises(ValueError, match=r"4097 label files \(at most 4096 are read\)"):
        read_model_info(model)


def test_label_length_is_bounded() -> None:
    model = probe_model((4, 4, 3), (4, 4, 1), labels=["a"], extra_label_files=[("labels_de.txt", "de", ["b"])])
    long = b"x" * (info_module.MAX_LABEL_CHARS + 1)
    with pytest.raises(ValueError, match=r"labels file 'labels.txt' has a line of 1025 characters \(at most 1024\)"):
        read_model_info(with_zip(model, {"labels.txt": long + b"\n", "labels_de.txt": b"b\n"}))
    info = read_model_info(with_zip(model, {"labels.txt": b"a\n", "labels_de.txt": long + b"\n"}))
    with pytest.raises(ValueError, match=r"labels file 'labels_de.txt' has a line of 1025 characters"):
        info.display_names("de")
