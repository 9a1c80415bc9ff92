"""segkit.batch, the library API: outputs equal to the library's own calls, the pool equal to one process and in
order, per-file outcomes, atomic writes, a worker that dies, a model that cannot load."""

from __future__ import annotations

import multiprocessing
import os
import platform
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import numpy as np
import pytest
from PIL import Image as PILImage

import segkit
from segkit import batch, effects, video
from segkit.batch import FileJob, MaskOutput, Task
from tests.conftest import data_file, load_rgb, model_path


def selfie_task(command: batch.Command = "blur", **options: object) -> Task:
    return Task(model=str(model_path("selfie_segmenter.tflite")), command=command, **options)  # type: ignore[arg-type]


def photos(folder: Path, count: int) -> list[Path]:
    """``count`` small real photos (cycling through the shared ones, each a different size)."""
    folder.mkdir(parents=True, exist_ok=True)
    names = ("astronaut.png", "cat.jpg", "cats_and_dogs.jpg", "segmentation_input_rotation0.jpg")
    paths = []
    for i in range(count):
        with PILImage.open(data_file(names[i % len(names)])) as im:
            path = folder / f"p{i:02d}.png"
            im.convert("RGB").resize((160 + 8 * i, 120 + 4 * i)).save(path)
            paths.append(path)
    return paths


@pytest.mark.parametrize("orientation", [1, 6, 3])
def test_decode_image_applies_the_exif_orientation(tmp_path: Path, orientation: int) -> None:
    """The file's pixels turned as its EXIF orientation says (1: as stored, 6: 90 degrees clockwise, 3: 180), as a
    contiguous uint8 RGB array."""
    pixels = load_rgb("astronaut.png")[:40, :60]
    path = tmp_path / "turned.png"
    exif = PILImage.Exif()
    exif[0x0112] = orientation
    PILImage.fromarray(pixels).save(path, exif=exif)
    decoded = batch.decode_image(path)
    expected = {1: pixels, 6: np.rot90(pixels, -1), 3: np.rot90(pixels, 2)}[orientation]
    assert decoded.shape == expected.shape and (decoded == expected).all()
    assert decoded.flags.c_contiguous and decoded.dtype == np.uint8


PIL_CORE: Any = PILImage.core  # type: ignore[attr-defined]  # Pillow's C module (not re-exported in its stubs)


def test_a_dedicated_worker_gives_the_effects_its_thread_share(monkeypatch: pytest.MonkeyPatch) -> None:
    """A pool worker or Ray actor (dedicated) sets the effects' threads to the task's; an in-process one leaves the
    caller's setting alone."""
    calls: list[int] = []
    monkeypatch.setattr(effects, "set_num_threads", calls.append)
    monkeypatch.setattr(PIL_CORE, "set_blocks_max", lambda count: None)
    batch.Worker(selfie_task(num_threads=1))
    batch.Worker(selfie_task(), dedicated=True)  # no share given: nothing to follow
    assert calls == []
    batch.Worker(selfie_task(num_threads=1), dedicated=True)
    assert calls == [1]


def test_a_video_segmenter_leaves_cores_to_the_effect_stage() -> None:
    """A video's inference runs beside its effect: its lanes together get half the cores unless the task says
    otherwise."""
    worker = batch.Worker(selfie_task())
    assert worker._options(video=True).num_threads == max(1, batch.default_workers() // 2)
    assert worker._options(video=True, lanes=2).num_threads == max(1, batch.default_workers() // 4)
    assert worker._options(video=False).num_threads is None  # images: the interpreter's default, all cores
    assert batch.Worker(selfie_task(num_threads=3))._options(video=True, lanes=2).num_threads == 3


@pytest.mark.parametrize(
    ("cores", "threads", "gpu", "lanes"),
    [(1, None, False, 1), (2, None, False, 2), (16, None, False, 2), (2, 1, False, 1), (2, None, True, 1)],
)
def test_a_video_gets_two_segmentation_lanes_where_segkit_picks_the_cpu_threads(
    monkeypatch: pytest.MonkeyPatch, cores: int, threads: int | None, gpu: bool, lanes: int
) -> None:
    """Two lanes on 2 cores or more; ``--threads N`` and ``--gpu`` keep one segmenter."""
    monkeypatch.setattr(batch, "available_cores", lambda: cores)
    assert batch._video_lanes(selfie_task(num_threads=threads, gpu=gpu)) == lanes


def test_a_worker_hands_the_video_its_lanes(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """The worker opens one VIDEO-mode segmenter per lane and gives transcode their segment_for_video."""
    monkeypatch.setattr(batch, "available_cores", lambda: 2)
    handed: list[list[object]] = []
    monkeypatch.setattr(video, "transcode", lambda source, target, process, **kwargs: handed.append(process))
    source = tmp_path / "clip.mp4"
    source.write_bytes(b"")
    for task in (selfie_task(), selfie_task(num_threads=1)):
        outcome = batch.Worker(task).process_file(FileJob(source, (tmp_path / "out.mp4",)), overwrite=True)
        assert outcome.status == "done", outcome.error
    assert [len(process) for process in handed] == [2, 1]
    owners = [getattr(lane, "__self__", None) for lane in handed[0]]
    assert all(isinstance(o, segkit.ImageSegmenter) for o in owners) and owners[0] is not owners[1]


def test_a_dedicated_worker_keeps_freed_image_memory(monkeypatch: pytest.MonkeyPatch) -> None:
    """Pillow's block cache (PILLOW_BLOCKS_MAX) is turned on in a dedicated worker only, and never over the user's
    own setting."""
    before = PIL_CORE.get_blocks_max()
    monkeypatch.delenv("PILLOW_BLOCKS_MAX", raising=False)
    try:
        PIL_CORE.set_blocks_max(0)
        batch.Worker(selfie_task())
        assert PIL_CORE.get_blocks_max() == 0
        batch.Worker(selfie_task(), dedicated=True)
        assert PIL_CORE.get_blocks_max() > 0
        PIL_CORE.set_blocks_max(3)
        monkeypatch.setenv("PILLOW_BLOCKS_MAX", "3")
        batch.Worker(selfie_task(), dedicated=True)
        assert PIL_CORE.get_blocks_max() == 3
    finally:
        PIL_CORE.set_blocks_max(before)


def test_worker_blur_is_the_library_blur() -> None:
    rgb = load_rgb("astronaut.png")
    worker = batch.Worker(selfie_task("blur", strength=9.0))
    try:
        (blurred,) = worker.process_array(rgb)
    finally:
        worker.close()
    options = segkit.ImageSegmenterOptions(base_options=segkit.BaseOptions(model_asset_path=task_model()))
    with segkit.ImageSegmenter.create_from_options(options) as segmenter:
        alpha = effects.subject_mask(segmenter.segment(rgb), segmenter=segmenter)
    np.testing.assert_array_equal(blurred, effects.blur_background(rgb, alpha, strength=9.0))


def task_model() -> str:
    return str(model_path("selfie_segmenter.tflite"))


def test_segment_outputs_follow_the_task_masks() -> None:
    rgb = load_rgb("segmentation_input_rotation0.jpg")
    labels = batch.model_labels(model_path("deeplabv3.tflite"))
    assert labels[15] == "person" and len(labels) == 21
    masks = batch.mask_outputs("both", labels, batch.resolve_categories(["person", "13"], labels))
    assert [m.name for m in masks] == ["category", "confidence_15_person", "confidence_13_horse"]
    task = Task(model=str(model_path("deeplabv3.tflite")), command="segment", masks=masks)
    category, person, horse = next(batch.map_images(task, [rgb]))
    assert category.dtype == np.uint8 and set(np.unique(category).tolist()) == {0, 13, 15}
    assert person[category == 15].mean() > 150 and horse[category == 13].mean() > 150
    assert person[category == 13].mean() < 60


def test_model_labels_without_metadata_are_channel_numbers() -> None:
    labels = batch.model_labels(model_path("deeplabv3_without_metadata.tflite"))
    assert labels == tuple(str(i) for i in range(21))


def test_resolve_categories_rejects_what_is_not_a_class() -> None:
    labels = ("background", "hair")
    assert batch.resolve_categories(["HAIR", "0", "hair"], labels) == (1, 0)
    for bad in (["horse"], ["2"], ["²"], ["-1"], []):
        with pytest.raises(ValueError, match="background, hair"):
            batch.resolve_categories(bad, labels)


def test_task_checks_what_its_command_needs() -> None:
    with pytest.raises(ValueError, match="command must be one of"):
        Task(model="m.tflite", command="sharpen")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="background"):
        Task(model="m.tflite", command="replace")
    with pytest.raises(ValueError, match="color"):
        Task(model="m.tflite", command="recolor")
    assert MaskOutput("confidence", 3).name == "confidence_03"
    with pytest.raises(ValueError, match="'nocolor' is not a color"):
        Task(model="m.tflite", command="recolor", color="nocolor")
    with pytest.raises(ValueError, match="or an existing image file"):
        Task(model="m.tflite", command="replace", background="nowhere.png")
    with pytest.raises(TypeError, match=r"background must be a str .* got \(0, 177, 64\)"):
        Task(model="m.tflite", command="replace", background=(0, 177, 64))  # type: ignore[arg-type]


def test_choose_outputs_checks_the_users_choices() -> None:
    deeplab = model_path("deeplabv3.tflite")
    masks, subject = batch.choose_outputs(deeplab, "alpha", ["person"])
    assert masks == (MaskOutput("alpha"),) and subject == (15,)
    masks, chosen = batch.choose_outputs(deeplab, "confidence", ["horse", 15])
    assert [m.name for m in masks] == ["confidence_13_horse", "confidence_15_person"] and chosen == (13, 15)
    assert len(batch.choose_outputs(deeplab, "both")[0]) == 22
    with pytest.raises(batch.UnknownCategoryError, match="'unicorn' is not a class"):
        batch.choose_outputs(deeplab, "alpha", ["unicorn"])


def test_run_files_reports_each_file(tmp_path: Path) -> None:
    good = photos(tmp_path / "in", 2)
    bad = tmp_path / "in" / "bad.png"
    bad.write_bytes(b"\x89PNG garbage")
    jobs = [FileJob(p, (tmp_path / "out" / p.name,)) for p in (good[0], bad, good[1])]
    outcomes = list(batch.run_files(selfie_task(), jobs, workers=1))
    assert [o.status for o in outcomes] == ["done", "failed", "done"]
    assert "cannot read image" in outcomes[1].error and str(bad) in outcomes[1].error
    assert outcomes[0].seconds > 0
    again = list(batch.run_files(selfie_task(), jobs, workers=1))
    assert [o.status for o in again] == ["skipped", "failed", "skipped"]
    assert not list((tmp_path / "out").glob(".*")), "no temporary files"


def test_atomic_write_keeps_the_old_file_on_error(tmp_path: Path) -> None:
    target = tmp_path / "out.png"
    target.write_bytes(b"old")
    with pytest.raises(RuntimeError), batch.atomic_write(target) as temp:
        temp.write_bytes(b"half")
        raise RuntimeError("interrupted")
    assert target.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.png"]
    target.chmod(0o600)
    batch.write_bytes(target, b"new")
    assert target.read_bytes() == b"new" and target.stat().st_mode & 0o777 == 0o600  # a replaced file keeps its mode
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.png"]


def test_remove_partials_only_touches_its_targets_leftovers(tmp_path: Path) -> None:
    target = tmp_path / "a[1].png"
    prefix = batch.temporary_prefix(target)
    leftovers = [tmp_path / f"{prefix}.x1y2.segkit-part", tmp_path / f"{prefix}.k3.partial.png"]
    other = batch.temporary_prefix(tmp_path / "b.png")
    keep = [tmp_path / f"{other}.x1.segkit-part", tmp_path / f"{prefix}.k3.partial.mp4", tmp_path / "a[1].png"]
    for path in leftovers + keep:
        path.write_bytes(b"")
    batch.remove_partials(target)
    assert sorted(tmp_path.iterdir()) == sorted(keep)


def test_temporary_names_fit_beside_the_longest_legal_names(tmp_path: Path) -> None:
    """A legal output name of up to 255 bytes gets a legal temporary name (it once was the name + 21 bytes)."""
    for name in ("L" * 251 + ".png", "写" * 83 + ".png"):
        target = tmp_path / name
        assert len(os.fsencode(target.name)) <= 255
        with batch.atomic_write(target) as temp:
            assert len(os.fsencode(temp.name)) <= 40 and temp.name.startswith(batch.temporary_prefix(target))
            temp.write_bytes(b"new")
        assert target.read_bytes() == b"new"
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []


def test_a_file_in_place_of_the_output_folder_is_named(tmp_path: Path) -> None:
    (tmp_path / "a.jpg").write_bytes(b"")
    with pytest.raises(NotADirectoryError, match=r"a\.jpg: it is a file, not a folder"):
        batch.write_bytes(tmp_path / "a.jpg" / "x.png", b"data")


def test_a_target_that_is_a_folder_or_the_source_fails(tmp_path: Path) -> None:
    """Neither counts as an existing output ('skipped'), and the source is never replaced, even with overwrite."""
    source = tmp_path / "in.png"
    source.write_bytes(b"original")
    (tmp_path / "out.png").mkdir()
    os.link(source, tmp_path / "hard.png")
    worker = batch.Worker(selfie_task())
    try:
        for target, message in ((tmp_path / "out.png", "a folder is in its place"),
                                (source, "is the input file itself"),
                                (tmp_path / "hard.png", "is the input file itself")):  # fmt: skip
            for overwrite in (False, True):
                outcome = worker.process_file(FileJob(source, (target,)), overwrite=overwrite)
                assert outcome.status == "failed" and message in outcome.error, outcome
            done = list(batch.run_files(selfie_task(), [FileJob(source, (target,))], workers=2))
            assert [(o.status, message in o.error) for o in done] == [("failed", True)]
    finally:
        worker.close()
    assert source.read_bytes() == b"original"


def test_decoded_arrays_are_writable_copies(tmp_path: Path) -> None:
    """Every decode path gives a new array the caller may modify in place (numpy's view of Pillow's bytes is
    read-only), C-contiguous, with the file's pixels."""
    rgba = np.zeros((6, 5, 4), np.uint8)
    rgba[:, :, 0], rgba[:, 2:, 3] = 90, 255
    PILImage.fromarray(rgba).save(tmp_path / "rgba.png")
    PILImage.fromarray(rgba[:, :, :3]).save(tmp_path / "rgb.jpg", quality=100)
    PILImage.fromarray(np.full((6, 5), 40_000, np.uint16)).save(tmp_path / "gray16.png")
    PILImage.fromarray(rgba[:, :, 0]).convert("P").save(tmp_path / "palette.png")
    decoded = [
        batch.decode_image(tmp_path / "rgba.png", alpha=True),
        batch.decode_image(tmp_path / "rgba.png"),
        batch.decode_image((tmp_path / "rgb.jpg").read_bytes()),
        batch.decode_image(tmp_path / "gray16.png"),
        batch.decode_image(tmp_path / "palette.png"),
    ]
    assert [d.shape for d in decoded] == [(6, 5, 4)] + [(6, 5, 3)] * 4
    for array in decoded:
        assert array.flags.writeable and array.flags.c_contiguous and array.dtype == np.uint8
        array[0, 0] = 7  # would raise on a read-only view
    np.testing.assert_array_equal(decoded[0][1:], rgba[1:])
    assert (decoded[3][1:] == 156).all()  # 40000 / 257, rounded


def test_decode_keeps_transparency_when_asked(tmp_path: Path) -> None:
    rgba = np.zeros((8, 8, 4), np.uint8)
    rgba[:, :, 1], rgba[:, 4:, 3] = 200, 255
    PILImage.fromarray(rgba).save(tmp_path / "rgba.png")
    np.testing.assert_array_equal(batch.decode_image(tmp_path / "rgba.png", alpha=True), rgba)
    assert batch.decode_image(tmp_path / "rgba.png").shape == (8, 8, 3)
    PILImage.fromarray(rgba[:, :, :3]).save(tmp_path / "rgb.png")
    assert batch.decode_image(tmp_path / "rgb.png", alpha=True).shape == (8, 8, 3)  # nothing transparent: RGB
    (tmp_path / "empty.png").write_bytes(b"")
    with pytest.raises(ValueError, match=r"empty\.png: it is empty"):
        batch.decode_image(tmp_path / "empty.png")
    with pytest.raises(ValueError, match="standard input: it is empty"):
        batch.decode_image(b"")


def test_encode_and_decode_round_trip() -> None:
    rgb = load_rgb("cat.jpg")
    png = batch.encode_image(rgb, batch.image_format(".png"))
    np.testing.assert_array_equal(batch.decode_image(png), rgb)
    assert batch.image_format("JPG") == "JPEG" and batch.image_format(".webp") == "WEBP"
    with pytest.raises(ValueError, match="unknown image format 'heic'"):
        batch.image_format("heic")
    with pytest.raises(ValueError, match="cannot read image standard input"):
        batch.decode_image(b"nothing")


def test_decode_refuses_what_8_bits_cannot_hold(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ramp = (np.arange(64 * 32, dtype=np.uint16).reshape(32, 64) * 32).astype(np.uint16)
    PILImage.fromarray(ramp).save(tmp_path / "gray16.png")
    rgb = batch.decode_image(tmp_path / "gray16.png")
    assert rgb.dtype == np.uint8 and rgb.shape == (32, 64, 3)
    np.testing.assert_array_equal(rgb[:, :, 0], ((ramp.astype(np.int64) + 128) // 257).astype(np.uint8))
    assert rgb.max() > 200, "16-bit pixels are scaled, not clipped or blackened"
    PILImage.fromarray(np.full((8, 8), 0.5, np.float32)).save(tmp_path / "float.tiff")
    with pytest.raises(ValueError, match=r"float\.tiff.*no faithful 8-bit RGB form"):
        batch.decode_image(tmp_path / "float.tiff")
    monkeypatch.setenv("SEGKIT_MAX_PIXELS", "1000")
    with pytest.raises(ValueError, match="above segkit's pixel budget"):
        batch.decode_image(tmp_path / "gray16.png")


def test_a_model_that_cannot_load_stops_the_run(tmp_path: Path) -> None:
    broken = tmp_path / "broken.tflite"
    broken.write_bytes(b"not a model")
    task = Task(model=str(broken), command="blur")
    jobs = [FileJob(p, (tmp_path / "out" / p.name,)) for p in photos(tmp_path / "in", 2)]
    with pytest.raises(batch.SetupError, match="cannot load model"):
        list(batch.run_files(task, jobs, workers=1))


@pytest.mark.slow
def test_pool_equals_one_process_and_keeps_order(tmp_path: Path) -> None:
    paths = photos(tmp_path / "in", 7)
    task = selfie_task("cutout")
    one = list(batch.map_images(task, paths, workers=1))
    two = list(batch.map_images(task, paths, workers=2))
    arrays = list(batch.map_images(task, [batch.decode_image(p) for p in paths], workers=2))
    assert len(one) == len(two) == len(arrays) == 7
    for a, b, c, path in zip(one, two, arrays, paths, strict=True):
        assert a[0].shape[:2] == batch.decode_image(path).shape[:2]  # in input order: each has its input's size
        np.testing.assert_array_equal(a[0], b[0])
        np.testing.assert_array_equal(a[0], c[0])
    jobs = [FileJob(p, (tmp_path / "out" / p.name,)) for p in paths]
    outcomes = list(batch.run_files(task, iter(jobs), workers=2))
    assert sorted(str(o.job.source) for o in outcomes) == sorted(map(str, paths))
    assert {o.status for o in outcomes} == {"done"}
    for (expected,), job in zip(one, jobs, strict=True):
        np.testing.assert_array_equal(_rgba(job.targets[0]), expected)


def _rgba(path: Path) -> np.ndarray:
    with PILImage.open(path) as im:
        return np.asarray(im)


@pytest.mark.slow
def test_pool_errors_and_setup_failures(tmp_path: Path) -> None:
    raised = []
    for workers in (1, 2):  # the same exception, however many workers
        with pytest.raises(Exception, match="cannot read image") as caught:
            list(batch.map_images(selfie_task(), [tmp_path / "missing.png"], workers=workers))
        raised.append((type(caught.value), str(caught.value)))
    assert raised[0] == raised[1] and raised[0][0] is not RuntimeError
    with pytest.raises(TypeError, match="expected uint8"):  # from the segmenter, in a worker process
        list(batch.map_images(selfie_task(), [np.zeros((8, 8, 3), np.int64)], workers=2))
    broken = tmp_path / "broken.tflite"
    broken.write_bytes(b"not a model")
    jobs = [FileJob(p, (tmp_path / "out" / p.name,)) for p in photos(tmp_path / "in", 3)]
    with pytest.raises(batch.SetupError, match="cannot load model"):
        list(batch.run_files(Task(model=str(broken), command="blur"), jobs, workers=2))
    assert not multiprocessing.active_children(), "the workers were stopped"


def kill_workers() -> None:
    """SIGKILL to every worker process of this test process."""
    for child in multiprocessing.active_children():
        os.kill(child.pid or 0, signal.SIGKILL)


@pytest.mark.slow
def test_a_dead_worker_fails_its_file_and_the_run_goes_on(tmp_path: Path) -> None:
    """A worker killed from outside (as the OOM killer would) costs the file it held; the rest are retried."""
    fifo = tmp_path / "in" / "stuck.png"
    goods = photos(tmp_path / "in", 4)
    os.mkfifo(fifo)  # opening it blocks forever: its worker hangs until it is killed
    jobs = [FileJob(p, (tmp_path / "out" / p.name,)) for p in [fifo, *goods]]
    killer = threading.Timer(8.0, kill_workers)
    killer.start()
    try:
        outcomes = {o.job.source.name: o for o in batch.run_files(selfie_task(), jobs, workers=2)}
    finally:
        killer.cancel()
    assert outcomes["stuck.png"].status == "failed"
    assert outcomes["stuck.png"].error == "the worker process died (signal 9)"
    assert all(outcomes[p.name].status == "done" for p in goods)
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == sorted(p.name for p in goods)


@pytest.mark.slow
def test_readme_example_runs_as_a_script(tmp_path: Path) -> None:
    """The README's ``segkit.batch`` example, saved as a user's script, runs on real photos with its pool."""
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")
    section = readme[readme.index("### Batch jobs from Python") :]
    code = section[section.index("```python\n") + len("```python\n") : section.index("\n```\n")]
    (tmp_path / "example.py").write_text(code)
    for path in photos(tmp_path / "photos", 3)[:2]:
        path.rename(tmp_path / "photos" / path.with_suffix(".jpg").name)
    for name in ("a.jpg", "b.jpg"):
        small = PILImage.open(data_file("cat.jpg")).convert("RGB").resize((120, 80))
        small.save(tmp_path / name)
    env = dict(os.environ, SEGKIT_MODEL_DIR=str(model_path("selfie_segmenter.tflite").parent))
    done = subprocess.run([sys.executable, "example.py"], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=300)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["p00.jpg", "p01.jpg"]
    assert done.stdout.count(" done ") == 2 and done.stdout.count("(80, 120, 3)") == 2


@pytest.mark.slow
def test_pool_reads_jobs_lazily(tmp_path: Path) -> None:
    """At most two jobs per worker are in flight: a job source of any length is read as outcomes come back."""
    sources = photos(tmp_path / "in", 2)
    pulled = 0

    def endless() -> Iterator[FileJob]:
        nonlocal pulled
        while True:
            pulled += 1
            yield FileJob(sources[pulled % 2], (tmp_path / "out" / f"{pulled:04d}.png",))

    outcomes = batch.run_files(selfie_task("cutout"), endless(), workers=2)
    try:
        for received in range(1, 13):
            assert next(outcomes).status == "done"
            assert pulled <= received + 2 * 2 + 1
    finally:
        outcomes.close()
    assert not multiprocessing.active_children(), "closing the iterator stopped the workers"
    assert not list((tmp_path / "out").glob(".*")), "and removed their partial files"


@pytest.mark.slow
def test_workers_start_only_for_jobs_that_exist(tmp_path: Path) -> None:
    jobs = [FileJob(p, (tmp_path / "out" / p.name,)) for p in photos(tmp_path / "in", 2)]
    outcomes = batch.run_files(selfie_task(), jobs, workers=16)
    try:
        assert next(outcomes).status == "done"
        assert len(multiprocessing.active_children()) <= 2
    finally:
        outcomes.close()


def test_task_and_file_job_check_their_values(tmp_path: Path) -> None:
    """Values the command line refuses are refused by the library too (they were accepted silently); paths given as
    str or one target alone become Path tuples (a str path failed with AttributeError, differently per worker count)."""
    model = str(model_path("selfie_segmenter.tflite"))
    bad: list[tuple[str, Any]] = [
        ("refine", "sharp"), ("refine_radius", -3), ("refine_radius", 1.5), ("smooth", 5.0), ("preset", "turbo"),
        ("crf", 64), ("crf", 20.5),
    ]  # fmt: skip
    for name, value in [*bad, ("smooth", 0)]:
        with pytest.raises(ValueError, match=name):
            batch.Task(model=model, command="blur", **cast(dict[str, Any], {name: value}))
    chosen = batch.Task(model=model, command="blur", preset="veryfast", crf=30).video_options()
    assert (chosen.preset, chosen.crf) == ("veryfast", 30)
    assert batch.Task(model=model, command="blur").video_options() == video.VideoOptions()
    job = batch.FileJob(cast(Any, str(tmp_path / "a.png")), cast(Any, str(tmp_path / "b.png")))
    assert job.source == tmp_path / "a.png" and job.targets == (tmp_path / "b.png",)
    with pytest.raises(TypeError, match="tuple of paths"):
        batch.FileJob(tmp_path / "a.png", cast(Any, 3))


def test_a_dedicated_worker_keeps_freed_memory_for_the_next_image() -> None:
    """glibc unmaps big freed blocks and trims its heap, so each image page-faulted its buffers in afresh (half the
    job's time at 720p with one worker); a dedicated worker fixes the thresholds (glibc's ``mallopt``: elsewhere it
    must leave malloc alone). In a fresh process, since the setting is process-wide."""
    script = """
import resource, numpy as np
from segkit import batch
def faults():
    start = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(10):
        buffers = [np.ones(8 << 20, np.uint8) for _ in range(3)]  # an image's working set, freed after it
        del buffers
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - start
faults()
before = faults()
batch.Worker(batch.Task(model="selfie_segmenter", command="blur"), dedicated=True)
faults()
print(before, faults(), int(batch._reuse_heap_memory()))  # applying it again reports whether it applies here
"""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, check=True)
    before, after, applied = map(int, done.stdout.split())
    if platform.libc_ver()[0] != "glibc":
        assert not applied
        return
    assert applied and before > 5000, "the default thresholds should fault the buffers in each round"
    assert after < before / 20
    with_variable = subprocess.run(
        [sys.executable, "-c", "from segkit import batch; print(int(batch._reuse_heap_memory()))"],
        capture_output=True,
        text=True,
        env={**env, "MALLOC_TRIM_THRESHOLD_": "131072"},
        check=True,
    )
    assert with_variable.stdout.strip() == "0", "a threshold the user set wins"
