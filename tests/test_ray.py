"""segkit.ray on a real local Ray: ``Segment`` in ``Dataset.map_batches`` equals the library on the same pixels, and
``segkit ... --engine ray`` writes the same bytes as ``--workers 1``.

Needs the ``ray`` extra (CI installs it with ``segkit[test]``). Without Ray these tests skip, saying so, unless
``CI`` is set, where they fail.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import numpy as np
import pytest
from PIL import Image as PILImage

from segkit import BaseOptions, ImageSegmenter, ImageSegmenterOptions, effects
from tests.conftest import data_file, model_path

try:
    import ray
    import ray.data
except ImportError:
    if os.environ.get("CI"):
        raise
    pytest.skip(
        'Ray is not installed (pip install "segkit[ray]"); CI installs it and runs these tests',
        allow_module_level=True,
    )

from segkit.ray import Segment

pytestmark = pytest.mark.slow

PHOTOS = ("astronaut.png", "cat.jpg", "cat_large.jpg", "cats_and_dogs.jpg")
SIZES = ((320, 240), (240, 320), (400, 300), (256, 256), (333, 211))
SEGKIT = Path(sys.executable).with_name("segkit")


def make_photos(folder: Path, count: int) -> list[Path]:
    """``count`` JPEG crops of the shared photos, of several sizes, under ``folder``."""
    rng = np.random.default_rng(7)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(count):
        with PILImage.open(data_file(PHOTOS[i % len(PHOTOS)])) as im:
            photo = im.convert("RGB")
        width, height = SIZES[i % len(SIZES)]
        x = int(rng.integers(0, max(1, photo.width - width)))
        y = int(rng.integers(0, max(1, photo.height - height)))
        crop = photo.crop((x, y, x + width, y + height)).resize((width, height))
        path = folder / f"img_{i:03d}.jpg"
        crop.save(path, quality=90)
        paths.append(path)
    return paths


def segmenter(model: str, category_mask: bool = False) -> ImageSegmenter:
    """The library's segmenter, built directly from the public API."""
    options = ImageSegmenterOptions(
        base_options=BaseOptions(model_asset_path=str(model_path(model))),
        output_confidence_masks=True,
        output_category_mask=category_mask,
    )
    return ImageSegmenter.create_from_options(options)


def to_u8(alpha: np.ndarray) -> np.ndarray:
    """A float alpha in [0, 1] as 8-bit, rounded: the mask columns' encoding."""
    encoded: np.ndarray = np.rint(np.clip(alpha, 0.0, 1.0) * 255.0).astype(np.uint8)
    return encoded


def run_cli(args: Sequence[str], timeout: float = 240) -> subprocess.CompletedProcess[str]:
    """The real console script, with the shared models."""
    env = {**os.environ, "SEGKIT_MODEL_DIR": str(model_path("selfie_segmenter.tflite").parent)}
    return subprocess.run([str(SEGKIT), *args], capture_output=True, text=True, timeout=timeout, env=env)


def tree(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` by relative path, with its bytes."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


# --- the command line (runs before the module's Ray starts: the CLI starts its own local Ray) ---------------------


def test_cli_engine_ray_writes_the_bytes_of_workers_1_and_resumes(tmp_path: Path) -> None:
    photos = tmp_path / "photos"
    make_photos(photos, 10)
    (photos / "img_004_broken.jpg").write_bytes(b"\xff\xd8 not a jpeg")
    common = ["replace", str(photos), "--background", "#00b140", "--quiet"]

    on_ray = run_cli([*common, "--out", f"{tmp_path / 'ray'}/", "--engine", "ray", "--workers", "2"])
    local = run_cli([*common, "--out", f"{tmp_path / 'local'}/", "--workers", "1"])

    assert on_ray.returncode == 1, on_ray.stderr[-3000:]  # the broken file fails, the run goes on
    assert local.returncode == 1, local.stderr[-3000:]
    assert "img_004_broken.jpg" in on_ray.stderr
    written = tree(tmp_path / "ray")
    assert sorted(written) == [f"img_{i:03d}.jpg" for i in range(10)]
    assert written == tree(tmp_path / "local")

    stamps = {p.name: p.stat().st_mtime_ns for p in (tmp_path / "ray").iterdir()}
    rerun = run_cli([*common, "--out", f"{tmp_path / 'ray'}/", "--engine", "ray", "--workers", "2"])
    assert rerun.returncode == 1, rerun.stderr[-3000:]
    assert {p.name: p.stat().st_mtime_ns for p in (tmp_path / "ray").iterdir()} == stamps  # finished: skipped


def test_cli_with_no_ray_at_the_address_fails_in_one_line(tmp_path: Path) -> None:
    photos = make_photos(tmp_path / "photos", 2)
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    started = time.monotonic()
    proc = run_cli(["blur", str(photos[0].parent), "--out", f"{tmp_path / 'out'}/", "--quiet", "--engine", "ray",
                    "--ray-address", f"127.0.0.1:{port}"])  # fmt: skip
    assert proc.returncode == 1
    assert f"cannot reach the Ray cluster at 127.0.0.1:{port}" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert time.monotonic() - started < 60  # not Ray's minutes of reconnecting
    assert not (tmp_path / "out").exists()


def test_cli_interrupted_on_ray_leaves_no_partial_files_and_a_rerun_finishes(tmp_path: Path) -> None:
    photos = tmp_path / "photos"
    make_photos(photos, 120)
    out = tmp_path / "ray"
    overlay = ["overlay", str(photos), "--model", str(model_path("deeplabv3.tflite")), "--quiet"]
    on_ray = [*overlay, "--out", f"{out}/", "--engine", "ray", "--workers", "2"]
    proc = subprocess.Popen([str(SEGKIT), *on_ray], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 180
    while not (out.is_dir() and len(list(out.glob("*.jpg"))) >= 3) and time.monotonic() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, stderr[-3000:]  # 0 would mean it finished first: the test needs more files
    left = sorted(p.name for p in out.iterdir())
    assert left and all(name.endswith(".jpg") and not name.startswith(".") for name in left), left
    assert len(left) < 120
    for name in left:  # every file there is complete
        with PILImage.open(out / name) as im:
            im.load()

    rerun = run_cli(on_ray)
    local = run_cli([*overlay, "--out", f"{tmp_path / 'local'}/", "--workers", "1"])
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert local.returncode == 0, local.stderr[-3000:]
    assert tree(out) == tree(tmp_path / "local")


def crash_on_poison_files() -> Callable[[], None]:
    """A Ray worker setup hook that makes ``Worker.process_file`` kill its process on files named ``poison*``.

    Built inside a function so that Ray pickles it by value (the workers need not import this test module).
    """

    def hook() -> None:
        from segkit import batch

        process_file = batch.Worker.process_file

        def crashing(self: batch.Worker, job: batch.FileJob, *, overwrite: bool) -> batch.FileOutcome:
            if job.source.name.startswith("poison"):
                os._exit(13)  # a crash: no exception, no outcome
            return process_file(self, job, overwrite=overwrite)

        batch.Worker.process_file = crashing  # type: ignore[method-assign]

    return hook


def test_a_file_whose_worker_dies_is_reported_failed_and_the_run_goes_on(tmp_path: Path) -> None:
    from segkit import batch
    from segkit import ray as segkit_ray

    photos = make_photos(tmp_path / "photos", 12)
    poison = photos[5].with_name("poison.jpg")
    photos[5].rename(poison)
    photos[5] = poison
    task = batch.Task(model=str(model_path("selfie_segmenter.tflite")), command="blur")
    jobs = [batch.FileJob(p, (tmp_path / "out" / p.name,)) for p in photos]
    ray.init(
        num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level=logging.ERROR,
        runtime_env={"worker_process_setup_hook": crash_on_poison_files()},
    )  # fmt: skip
    try:
        outcomes = {o.job.source.name: o for o in segkit_ray.run_files(task, jobs, workers=2)}
    finally:
        ray.shutdown()
    assert sorted(outcomes) == sorted(p.name for p in photos)
    assert outcomes["poison.jpg"].status == "failed"
    assert "worker process died" in outcomes["poison.jpg"].error
    failed = [name for name, o in outcomes.items() if o.status == "failed"]
    assert failed == ["poison.jpg"]  # its batch's other files are rerun one per call and done
    written = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert written == sorted(p.name for p in photos if p.name != "poison.jpg")


def test_cli_joins_a_two_node_cluster_by_address(tmp_path: Path) -> None:
    from ray.cluster_utils import Cluster

    photos = tmp_path / "photos"
    make_photos(photos, 8)
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False})
    try:
        cluster.add_node(num_cpus=1)
        cluster.wait_for_nodes()
        assert cluster.address is not None
        on_cluster = run_cli(
            ["blur", str(photos), "--out", f"{tmp_path / 'cluster'}/", "--quiet", "--engine", "ray",
             "--ray-address", cluster.address, "--workers", "2"]
        )  # fmt: skip
    finally:
        cluster.shutdown()
    local = run_cli(["blur", str(photos), "--out", f"{tmp_path / 'local'}/", "--quiet", "--workers", "1"])
    assert on_cluster.returncode == 0, on_cluster.stderr[-3000:]
    assert local.returncode == 0, local.stderr[-3000:]
    assert len(tree(tmp_path / "cluster")) == 8
    assert tree(tmp_path / "cluster") == tree(tmp_path / "local")


# --- Segment in Dataset.map_batches -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def local_ray() -> Iterator[None]:
    """One quiet 2-CPU local Ray for the module."""
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level=logging.ERROR)
    context = ray.data.DataContext.get_current()
    context.enable_progress_bars = False
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def photos(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    return make_photos(tmp_path_factory.mktemp("photos"), 30)


def map_segment(dataset: ray.data.Dataset, **kwargs: object) -> list[dict[str, object]]:
    """``dataset.map_batches(Segment, ...)`` on two actors of half a CPU each (the reads keep a CPU)."""
    mapped = dataset.map_batches(
        Segment,
        fn_constructor_kwargs=kwargs,
        compute=ray.data.ActorPoolStrategy(size=2),
        num_cpus=0.5,
        batch_size=4,
    )
    return mapped.take_all()


def test_blur_from_read_images_equals_the_library(local_ray: None, photos: list[Path]) -> None:
    rows = map_segment(
        ray.data.read_images(str(photos[0].parent), mode="RGB", include_paths=True),
        model="selfie_segmenter",
        effect="blur",
        strength=10.0,
    )
    assert sorted(Path(str(r["path"])).name for r in rows) == sorted(p.name for p in photos)
    with segmenter("selfie_segmenter.tflite") as seg:
        for row in rows:
            image, output = np.asarray(row["image"]), np.asarray(row["output"])
            with PILImage.open(str(row["path"])) as im:
                assert np.array_equal(image, np.asarray(im.convert("RGB")))
            alpha = effects.subject_mask(seg.segment(image), labels=seg.labels)
            expected = effects.blur_background(image, alpha, strength=10.0)
            assert output.dtype == np.uint8 and output.shape == image.shape
            assert np.array_equal(output, expected), row["path"]


def test_masks_of_a_multiclass_model_equal_the_library(local_ray: None, photos: list[Path]) -> None:
    chosen = photos[:8]
    rows = map_segment(
        ray.data.read_images([str(p) for p in chosen], mode="RGB"),
        model=str(model_path("deeplabv3.tflite")),
        masks="both",
        categories=["person", "cat"],
    )
    assert len(rows) == len(chosen)
    with segmenter("deeplabv3.tflite", category_mask=True) as seg:
        person, cat = seg.labels.index("person"), seg.labels.index("cat")
        for row in rows:
            image = np.asarray(row["image"])
            result = seg.segment(image)
            assert result.category_mask is not None
            category = np.asarray(result.category_mask.numpy_view()).reshape(image.shape[:2])
            assert np.array_equal(np.asarray(row["category"]), category)
            for index in (person, cat):
                column = f"confidence_{index:02d}_{seg.labels[index]}"
                expected = to_u8(effects.subject_mask(result, categories=[index], labels=seg.labels))
                assert np.array_equal(np.asarray(row[column]), expected), column


def test_equal_sized_arrays_in_a_named_column(local_ray: None, photos: list[Path]) -> None:
    images = []
    for path in photos[:6]:
        with PILImage.open(path) as im:
            images.append(np.asarray(im.convert("RGB").resize((200, 150))))
    rows = map_segment(ray.data.from_numpy(np.stack(images)).repartition(3), image_column="data", masks="alpha")
    assert len(rows) == len(images)
    with segmenter("selfie_segmenter.tflite") as seg:
        expected = {to_u8(effects.subject_mask(seg.segment(im), labels=seg.labels)).tobytes() for im in images}
    got = {np.asarray(r["alpha"]).tobytes() for r in rows}
    assert got == expected
    assert all(np.asarray(r["alpha"]).shape == (150, 200) for r in rows)


def test_run_files_stops_with_setup_error_when_the_model_cannot_load(
    local_ray: None, photos: list[Path], tmp_path: Path
) -> None:
    from segkit import batch
    from segkit import ray as segkit_ray

    broken = tmp_path / "broken.tflite"
    broken.write_bytes(b"not a model")
    task = batch.Task(model=str(broken), command="blur")
    jobs = [batch.FileJob(p, (tmp_path / "out" / p.name,)) for p in photos[:6]]
    with pytest.raises(batch.SetupError, match=r"broken\.tflite"):
        list(segkit_ray.run_files(task, jobs, workers=1))
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())
    assert ray.is_initialized()  # a Ray the caller started is left running


# --- Segment called directly, as Ray calls it (no cluster needed) -------------------------------------------------


def test_a_batch_of_gray_and_rgba_images_is_read_as_rgb_and_a_cutout_keeps_the_alpha() -> None:
    with PILImage.open(data_file("astronaut.png")) as im:
        rgb = np.asarray(im.convert("RGB").resize((160, 120)))
    gray = np.asarray(PILImage.fromarray(rgb).convert("L"))
    rgba = np.dstack([rgb, np.full(rgb.shape[:2], 7, np.uint8)])
    column = np.empty(3, dtype=object)
    column[0], column[1], column[2] = rgb, gray, rgba
    segment = Segment("selfie_segmenter", "cutout", num_threads=1)
    out = segment({"image": column, "id": np.array([10, 11, 12])})
    assert list(out["id"]) == [10, 11, 12]
    outputs = out["output"]
    assert outputs.shape == (3, 120, 160, 4)  # cutout: RGBA; same sizes are stacked
    expected_alpha = (outputs[0][:, :, 3].astype(np.uint16) * 7 + 127) // 255  # the input's alpha times the subject's
    assert np.array_equal(outputs[2][:, :, 3], expected_alpha)  # as `segkit cutout` keeps a PNG's alpha
    blur = Segment("selfie_segmenter", "blur", num_threads=1)
    assert np.array_equal(blur({"image": rgba[None]})["output"][0], blur({"image": rgb[None]})["output"][0])
    gray_rgb = np.repeat(gray[:, :, None], 3, axis=2)
    assert np.array_equal(outputs[1], segment({"image": gray_rgb[None]})["output"][0])


def test_bad_inputs_name_the_problem() -> None:
    with pytest.raises(ValueError, match="effect must be None or one of"):
        Segment("selfie_segmenter", "sharpen")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="not a class of this model"):
        Segment(str(model_path("deeplabv3.tflite")), categories=["unicorn"])
    segment = Segment("selfie_segmenter")
    with pytest.raises(KeyError, match="no column 'image'"):
        segment({"pixels": np.zeros((1, 4, 4, 3), np.uint8)})
    with pytest.raises(ValueError, match="mode='RGB'"):
        segment({"image": np.zeros((1, 1, 8, 8), np.uint8)})
    with pytest.raises(ValueError, match="must be uint8"):
        segment({"image": np.zeros((1, 4, 4, 3), np.float32)})
