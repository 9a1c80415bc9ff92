"""Label files and locales, following MediaPipe's ForEachLine, BuildLabelMapFromFiles and GetLabelItemsIfAny."""

from __future__ import annotations

import pytest

from segkit.metadata import LabelFile, ModelInfo, read_model_info, split_label_lines
from tests.metadata.helpers import load, with_zip
from tests.modelbuilder import probe_model


@pytest.mark.parametrize(
    ("text", "lines"),
    [
        ("a\nb", ("a", "b")),
        ("a\nb\n", ("a", "b")),
        ("a\r\nb\rc\n", ("a", "b", "c")),
        ("a\n\n", ("a",)),  # exactly one trailing empty line dropped
        ("a\n\n\n", ("a", "")),
        ("a\n\nb", ("a", "", "b")),  # empty middle lines kept
        (" a \t\n", (" a \t",)),  # no trimming
        ("\n", ()),
        ("a\x0bb\x0cc\u2028d", ("a\x0bb\x0cc\u2028d",)),  # only \n, \r\n and \r split lines
    ],
)
def test_split_label_lines(text: str, lines: tuple[str, ...]) -> None:
    assert split_label_lines(text) == lines


def _info(*files: LabelFile) -> ModelInfo:
    return ModelInfo((), (), 1, (), has_metadata=True, labels=split_label_lines(files[0].text or ""), label_files=files)


def test_locale_rules() -> None:
    info = _info(LabelFile("a.txt", "en", "x\ny\n"), LabelFile("b.txt", "de", "X\nY"), LabelFile("c.txt", "de", "1\n2"))
    assert info.display_names("") == ("x", "y")  # "" matches the first file, whatever its locale
    assert info.display_names("de") == ("X", "Y")  # the first file of the locale
    assert info.display_names("fr") == ("", "")
    assert info.locales == ("en", "de")


def test_display_names_errors() -> None:
    mismatch = _info(LabelFile("a.txt", None, "x\ny"), LabelFile("b.txt", "de", "X"))
    with pytest.raises(ValueError, match=r"^Mismatch between number of labels \(2\) and display names \(1\)\.$"):
        mismatch.display_names("de")
    missing = _info(LabelFile("a.txt", None, "x"), LabelFile("b.txt", "de", None))
    with pytest.raises(ValueError, match=r"^No associated file with name: b\.txt$"):
        missing.display_names("de")
    empty = _info(LabelFile("a.txt", None, "x"), LabelFile("b.txt", "de", ""))
    assert empty.display_names("de") == ("",)  # an empty display-names file counts as none


def test_labels_from_rebuilt_zip() -> None:
    three = probe_model((4, 4, 3), (4, 4, 3), labels=["a", "b", "c"])
    info = read_model_info(with_zip(three, {"labels.txt": b" sky \r\n\r\nroad\r\n\r\n"}))
    assert info.labels == (" sky ", "", "road")
    model = load("deeplabv3.tflite")
    with pytest.raises(ValueError, match=r"^Expected non-empty labels file\.$"):
        read_model_info(with_zip(model, {"labelmap.txt": b""}))
    with pytest.raises(ValueError, match=r"^No associated file with name: labelmap\.txt$"):
        read_model_info(with_zip(model, {"labels.txt": b"a\n"}))
    with pytest.raises(ValueError, match="not valid UTF-8"):
        read_model_info(with_zip(model, {"labelmap.txt": b"\xff\n"}))


def test_missing_locale_file_in_zip() -> None:
    model = load("deeplabv3_softmax_locales.tflite")
    lower, upper = tuple(f"c{k}" for k in range(21)), tuple(f"C{k}" for k in range(21))
    files = {"labels.txt": "\n".join(lower).encode(), "labels_en.txt": "\n".join(upper).encode()}
    info = read_model_info(with_zip(model, files))
    assert info.labels == lower and info.display_names("en") == upper
    with pytest.raises(ValueError, match=r"^No associated file with name: labels_fr\.txt$"):
        info.display_names("fr")
