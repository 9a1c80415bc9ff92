"""read_model_info and verify_model on every shared model: the MANIFEST facts, exactly."""

from __future__ import annotations

import dataclasses

import pytest

from segkit.metadata import Activation, ModelInfo, Normalization, TensorInfo, read_model_info, verify_model
from tests.metadata.helpers import load

VOC = ("background", "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow",
       "dining table", "dog", "horse", "motorbike", "person", "potted plant", "sheep", "sofa", "train",
       "tv")  # fmt: skip
FRENCH = ("arrière-plan", "avion", "vélo", "oiseau", "bateau", "bouteille", "bus", "voiture", "chat", "chaise",
          "vache", "table à manger", "chien", "cheval", "moto", "personne", "plante en pot", "mouton", "canapé",
          "train", "télévision")  # fmt: skip
SELFIE_DESC = "keras2tflite_selfiesegmentation_mlkit-256x256-2021_01_19-v1215.tflite.generated"
LANDSCAPE_DESC = "keras2tflite_meet_1655.tflite.generated"
HAIR_DESC = "model-1244_hair_best.tflite.no_meta"
HAIR_OPS = ("MaxPoolingWithArgmax2D", "Convolution2DTransposeBias", "MaxUnpooling2D")
TRANSPOSE = ("Convolution2DTransposeBias",)

# file: (input shape, output shape, custom ops, TFLite description)
STRUCTURE = {
    "selfie_segmenter.tflite": ((1, 256, 256, 3), (1, 256, 256, 1), TRANSPOSE, SELFIE_DESC),
    "selfie_segmenter_landscape.tflite": ((1, 144, 256, 3), (1, 144, 256, 1), TRANSPOSE, LANDSCAPE_DESC),
    "hair_segmenter.tflite": ((1, 512, 512, 4), (1, 512, 512, 2), HAIR_OPS, HAIR_DESC),
    "deeplabv3.tflite": ((1, 257, 257, 3), (1, 257, 257, 21), (), "TOCO Converted."),
    "deeplabv3_without_metadata.tflite": ((1, 257, 257, 3), (1, 257, 257, 21), (), "TOCO Converted."),
    "deeplabv3_softmax_locales.tflite": ((1, 257, 257, 3), (1, 257, 257, 21), (), "TOCO Converted."),
    "legacy/selfie_segmentation.tflite": ((1, 256, 256, 3), (1, 256, 256, 1), TRANSPOSE, SELFIE_DESC),
    "legacy/selfie_segmentation_landscape.tflite": ((1, 144, 256, 3), (1, 144, 256, 1), TRANSPOSE, LANDSCAPE_DESC),
    "legacy/hair_segmentation.tflite": ((1, 512, 512, 4), (1, 512, 512, 2), HAIR_OPS, HAIR_DESC),
    "legacy/1x256x256x3_softmax.tflite": ((1, 256, 256, 3), (1, 256, 256, 3), (), "MLIR Converted."),
}
WITHOUT_METADATA = [n for n in STRUCTURE if n.startswith("legacy/")] + ["deeplabv3_without_metadata.tflite"]
TASKS = ("selfie_segmenter.tflite", "selfie_segmenter_landscape.tflite", "hair_segmenter.tflite")


@pytest.mark.parametrize("name", sorted(STRUCTURE))
def test_structure(name: str) -> None:
    model = load(name)
    verify_model(model)
    info = read_model_info(model)
    in_shape, out_shape, ops, desc = STRUCTURE[name]
    assert info.num_subgraphs == 1
    assert [(t.shape, t.dtype, t.quantization) for t in info.inputs] == [(in_shape, "float32", None)]
    assert [(t.shape, t.dtype, t.quantization) for t in info.outputs] == [(out_shape, "float32", None)]
    assert sorted(info.custom_ops) == sorted(ops)
    assert info.tflite_description == desc


@pytest.mark.parametrize("name", WITHOUT_METADATA)
def test_without_metadata(name: str) -> None:
    info = read_model_info(load(name))
    assert not info.has_metadata
    assert (info.name, info.version, info.author, info.min_parser_version) == (None, None, None, None)
    assert (info.color_space, info.normalization, info.activation) == (None, None, Activation.NONE)
    assert info.labels == () and info.label_files == () and info.display_names("") == ()


def test_tensor_names() -> None:
    info = read_model_info(load("selfie_segmenter.tflite"))
    assert info.inputs == (TensorInfo("input_1", (1, 256, 256, 3), "float32", None),)
    assert info.outputs == (TensorInfo("activation_10", (1, 256, 256, 1), "float32", None),)
    assert read_model_info(load("deeplabv3.tflite")).outputs[0].name == "ResizeBilinear_3"


@pytest.mark.parametrize("name", TASKS)
def test_tasks_models(name: str) -> None:
    info = read_model_info(load(name))
    assert info.has_metadata
    assert (info.name, info.version, info.author, info.min_parser_version) == (
        "ImageSegmenter",
        "1",
        "MediaPipe",
        "1.5.0",
    )
    assert info.color_space == "RGB"
    assert info.normalization == Normalization((0.0,), (255.0,))
    assert info.input_metadata is not None and info.input_metadata.name == "image"
    assert (info.input_metadata.stats_min, info.input_metadata.stats_max) == ((0.0,), (1.0,))
    out = info.output_metadata
    assert out is not None and (out.name, out.color_space, out.value_range) == (
        "segmentation_masks",
        "GRAYSCALE",
        (1, 2),
    )
    assert [(f.name, f.locale) for f in info.label_files] == [("labels.txt", None)]
    if name.startswith("hair"):
        assert info.activation is Activation.SOFTMAX
        assert info.labels == ("background", "hair")
    else:
        assert info.activation is Activation.NONE
        assert info.labels == ("selfie",)


def test_deeplabv3() -> None:
    info = read_model_info(load("deeplabv3.tflite"))
    assert info.has_metadata
    assert (info.name, info.author, info.min_parser_version) == ("DeepLabV3", "TensorFlow", "1.0.0")
    assert info.activation is Activation.NONE  # no SEGMENTER_METADATA
    assert info.normalization == Normalization((127.5,), (127.5,))
    assert info.color_space == "RGB"
    assert [(f.name, f.locale) for f in info.label_files] == [("labelmap.txt", None)]
    assert info.labels == VOC and len(info.labels) == 21


def test_deeplabv3_softmax_locales() -> None:
    info = read_model_info(load("deeplabv3_softmax_locales.tflite"))
    assert (info.name, info.min_parser_version, info.activation) == ("ImageSegmenter", "1.5.0", Activation.SOFTMAX)
    assert info.normalization == Normalization((127.5,), (127.5,))
    assert [(f.name, f.locale) for f in info.label_files] == [
        ("labels.txt", None),
        ("labels_en.txt", "en"),
        ("labels_fr.txt", "fr"),
    ]
    assert info.labels == VOC
    assert info.locales == ("en", "fr")
    assert info.display_names("fr") == FRENCH
    assert info.display_names("en") == VOC
    assert info.display_names("") == VOC  # empty locale: the first TENSOR_AXIS_LABELS file
    assert info.display_names("de") == ("",) * 21  # no file for the locale: display names stay empty
    assert info.display_names("FR") == ("",) * 21  # locales compare exactly


def test_model_info_is_frozen() -> None:
    info = read_model_info(load("selfie_segmenter.tflite"))
    assert isinstance(info, ModelInfo)
    with pytest.raises(dataclasses.FrozenInstanceError):
        info.labels = ()  # type: ignore[misc]
    assert [a.value for a in Activation] == [0, 1, 2]
