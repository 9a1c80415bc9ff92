"""The ``--out`` rules and output names, in process (fast): what ``segkit.cli.planning`` decides for each input."""

from __future__ import annotations

from pathlib import Path

import pytest

from segkit.batch import FileJob, MaskOutput
from segkit.cli.parsing import UsageError
from segkit.cli.planning import Destination, Naming, PlanFailure, destination, format_suffix, plan

ALPHA = (MaskOutput("alpha"),)


def test_out_rules(tmp_path: Path) -> None:
    (tmp_path / "folder").mkdir()
    assert destination(None) == Destination("beside")
    assert destination("-") == Destination("stdout")
    assert destination(str(tmp_path / "folder")) == Destination("folder", tmp_path / "folder")
    assert destination("new/") == Destination("folder", Path("new"))
    assert destination("m.PNG") == Destination("file", Path("m.PNG"))
    assert destination("clip.mkv") == Destination("file", Path("clip.mkv"))
    for ambiguous in ("noext", "archive.tar", "photo."):
        with pytest.raises(UsageError, match=r"neither a folder nor a file name"):
            destination(ambiguous)


def test_names_beside_and_under_a_folder() -> None:
    blur = Naming("blur", ALPHA)
    assert blur.beside(Path("a/p.jpg")) == (Path("a/p.blur.jpg"),)
    assert blur.under(Path("out"), Path("x/p.jpg")) == (Path("out/x/p.jpg"),)
    assert blur.under(Path("out"), Path("clip.avi")) == (Path("out/clip.mp4"),)
    assert Naming("cutout", ALPHA).under(Path("o"), Path("p.jpg")) == (Path("o/p.png"),)
    assert Naming("cutout", ALPHA).under(Path("o"), Path("p.webp")) == (Path("o/p.webp"),)
    assert Naming("blur", ALPHA, ".webp").under(Path("o"), Path("p.jpg")) == (Path("o/p.webp"),)
    both = (MaskOutput("category"), MaskOutput("confidence", 15, "confidence_15_person"))
    assert Naming("segment", both).beside(Path("p.jpg")) == (Path("p.category.png"), Path("p.confidence_15_person.png"))


def test_single_file_checks(tmp_path: Path) -> None:
    image, video = tmp_path / "p.png", tmp_path / "c.mp4"
    image.write_bytes(b"")
    video.write_bytes(b"")
    two = Naming("segment", (MaskOutput("category"), MaskOutput("alpha")))
    with pytest.raises(UsageError, match="2 files per image"):
        list(plan([image], Destination("file", tmp_path / "m.png"), two))
    with pytest.raises(UsageError, match=r"is a video but --out .* is an image"):
        list(plan([video], Destination("file", tmp_path / "m.png"), Naming("blur", ALPHA)))
    with pytest.raises(UsageError, match=r"must be \.png, \.webp or \.tiff"):
        list(plan([image], Destination("file", tmp_path / "m.jpg"), Naming("cutout", ALPHA)))
    with pytest.raises(UsageError, match="green screen"):
        list(plan([video], Destination("beside"), Naming("cutout", ALPHA)))
    with pytest.raises(UsageError, match="contradicts"):
        list(plan([image], Destination("file", tmp_path / "m.jpg"), Naming("blur", ALPHA, ".png")))
    with pytest.raises(UsageError, match="input not found"):
        list(plan([tmp_path / "missing.png"], Destination("beside"), Naming("blur", ALPHA)))
    job = next(plan([image], Destination("file", tmp_path / "m.jpeg"), Naming("blur", ALPHA, ".jpg")))
    assert job == FileJob(image, (tmp_path / "m.jpeg",))
    with pytest.raises(UsageError, match="unknown image format 'heic'"):
        format_suffix("heic")


def test_folder_plan_mirrors_the_tree_and_reports_clashes(tmp_path: Path) -> None:
    for name in ("b/x.jpg", "b/x.png", "a.png", "b/.hidden.png", "notes.txt", ".git/c.png", "b/clip.mp4"):
        (tmp_path / "in" / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "in" / name).write_bytes(b"")
    planned = list(plan([tmp_path / "in"], Destination("folder", tmp_path / "out"), Naming("cutout", ALPHA)))
    inp, out = tmp_path / "in", tmp_path / "out"
    assert planned[0] == FileJob(inp / "a.png", (out / "a.png",))
    assert isinstance(planned[1], PlanFailure) and planned[1].path == inp / "b" / "clip.mp4"
    assert "transparent video" in planned[1].error
    assert planned[2] == FileJob(inp / "b" / "x.jpg", (out / "b" / "x.png",))
    assert planned[3] == PlanFailure(inp / "b" / "x.png", f"would write the same output as {inp / 'b' / 'x.jpg'}")
    assert len(planned) == 4  # no hidden files or folders, no text file


def test_two_folders_with_one_name_need_different_names(tmp_path: Path) -> None:
    (tmp_path / "1" / "photos").mkdir(parents=True)
    (tmp_path / "2" / "photos").mkdir(parents=True)
    folders = [tmp_path / "1" / "photos", tmp_path / "2" / "photos"]
    with pytest.raises(UsageError, match="several input folders would write into"):
        plan(folders, Destination("folder", tmp_path / "out"), Naming("blur", ALPHA))
