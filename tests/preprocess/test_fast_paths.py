"""The fast paths equal the reference formulas bit for bit: separable warp vs the 2-D gather, banded cv::resize vs
the whole-image emulation (itself checked against cv2), float normalization vs the table; and they are taken."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from segkit import _common
from segkit.preprocess import InputSpec, Preprocessor, to_pixels
from segkit.preprocess import resize as rs
from segkit.preprocess import warp as wp
from segkit.preprocess.color import SRGB, SRGBA
from segkit.preprocess.normalize import normalization_affine, normalize_into
from segkit.preprocess.warp import GridWarpPlan, SeparableWarpPlan, WarpPlan, make_warp_plan
from tests.preprocess import reference
from tests.preprocess.reference import normalization_lut

SIZES = st.integers(1, 700)
TENSORS = st.one_of(
    st.sampled_from([(256, 256), (144, 256), (257, 257), (512, 512)]),
    st.tuples(st.integers(1, 300), st.integers(1, 300)),
)


def grid_plan(H: int, W: int, cn: int, h: int, w: int, rotation: int) -> GridWarpPlan:
    """The 2-D form of the warp, even where the separable one applies."""
    return wp.grid_plan(wp.warp_taps(H, W, h, w, rotation), cn)


def plan_of(H: int, W: int, cn: int, h: int, w: int, rotation: int, separable: bool) -> WarpPlan:
    return make_warp_plan(H, W, cn, h, w, rotation) if separable else grid_plan(H, W, cn, h, w, rotation)


def with_plan(spec: InputSpec, key: tuple[int, int, int, int], plan: WarpPlan) -> Preprocessor:
    """A Preprocessor whose cache already holds ``plan`` for ``key`` (image h, w, channels, rotation)."""
    pre = Preprocessor(spec)
    pre._warps.get(key, lambda: plan)
    return pre


def both_ways(image: np.ndarray, spec: InputSpec, rotation: int) -> tuple[np.ndarray, np.ndarray, bool]:
    """The tensor through the plan as made (separable when it can be) and through the forced 2-D fallback."""
    H, W, cn = image.shape
    fast = Preprocessor(spec)
    got = fast(image, rotation).copy()
    plan = fast._warps.get((H, W, cn, rotation), lambda: pytest.fail("the plan was not cached"))
    slow = with_plan(spec, (H, W, cn, rotation), grid_plan(H, W, cn, spec.height, spec.width, rotation))
    return got, slow(image, rotation).copy(), isinstance(plan, SeparableWarpPlan)


@pytest.mark.slow
@settings(deadline=None, max_examples=150)
@given(
    SIZES,
    SIZES,
    TENSORS,
    st.sampled_from([0, 90, 180, 270, -90, 450]),
    st.sampled_from([3, 4]),
    st.sampled_from(["float32", "uint8"]),
    st.integers(0, 2**32 - 1),
)
@example(480, 640, (256, 256), 0, 3, "float32", 0)
@example(480, 640, (256, 256), 90, 3, "float32", 0)
@example(720, 1280, (144, 256), 270, 4, "float32", 0)
@example(1080, 1920, (512, 512), 180, 3, "float32", 0)  # a grid whose fractions do not factor
@example(1, 1, (7, 5), 90, 3, "uint8", 0)
def test_separable_warp_equals_2d_gather(
    H: int, W: int, tensor: tuple[int, int], rotation: int, cn: int, dtype: str, seed: int
) -> None:
    image = np.random.default_rng(seed).integers(0, 256, (H, W, cn), dtype=np.uint8)
    norm = (127.5, 127.5) if dtype == "float32" else (None, None)
    got, want, _ = both_ways(image, InputSpec(*tensor, 3, dtype, *norm), rotation)
    assert np.array_equal(got.view(np.uint8), want.view(np.uint8))


@pytest.mark.parametrize("rotation", [0, 90, 180, 270])
@pytest.mark.parametrize(
    ("image_hw", "tensor"),
    [((480, 640), (256, 256)), ((720, 1280), (256, 256)), ((480, 640), (144, 256)), ((720, 1280), (257, 257))],
)
def test_common_geometries_take_the_separable_path(
    image_hw: tuple[int, int], tensor: tuple[int, int], rotation: int
) -> None:
    assert isinstance(make_warp_plan(*image_hw, 3, *tensor, rotation), SeparableWarpPlan)


def test_fallback_is_taken_when_fractions_do_not_factor() -> None:
    assert isinstance(make_warp_plan(1080, 1920, 3, 512, 512, 180), GridWarpPlan)
    image = np.random.default_rng(5).integers(0, 256, (1080, 1920, 3), dtype=np.uint8)
    got, want, separable = both_ways(image, InputSpec(512, 512, 3, "float32", 0.0, 1.0), 180)
    assert not separable and np.array_equal(got, want)


@pytest.mark.parametrize("norm", [(0.0, 1.0), (0.0, 255.0), (127.5, 127.5), (0.5, 0.25), (-3.0, 7.1), (255.0, -2.0)])
@pytest.mark.parametrize("dtype", [np.uint8, np.int32, np.uint32, np.float32])
def test_float_normalization_equals_table(norm: tuple[float, float], dtype: type) -> None:
    values: np.ndarray = np.arange(256).astype(dtype)
    out = np.empty(256, np.float32)
    normalize_into(values, out, *normalization_affine(*norm))
    assert np.array_equal(out.view(np.uint32), normalization_lut(*norm).view(np.uint32))


def banded(image: np.ndarray, h: int, w: int) -> np.ndarray:
    """The production resizer's bands, assembled."""
    H, W, cn = image.shape
    out = np.full((h, w * cn), -1.0)

    def emit(r0: int, r1: int, values: np.ndarray) -> None:
        out[r0:r1] = values

    rs.pixel_resizer(H, W, h, w, cn).run(image, emit)
    return out


@pytest.mark.slow
@settings(deadline=None, max_examples=120)
@given(
    st.integers(1, 400),
    st.integers(1, 400),
    st.integers(1, 300),
    st.integers(1, 300),
    st.sampled_from([4, 3, 1]),
    st.sampled_from([1 << 15, 700, 40]),
    st.integers(0, 2**32 - 1),
)
@example(480, 640, 512, 512, 4, 1 << 15, 0)
@example(720, 1280, 512, 512, 4, 1 << 15, 0)
@example(720, 1280, 512, 512, 4, 100, 0)
def test_banded_resize_equals_whole_image(H: int, W: int, h: int, w: int, cn: int, band: int, seed: int) -> None:
    image = np.random.default_rng(seed).integers(0, 256, (H, W, cn), dtype=np.uint8)
    want = reference.resize(image, h, w, rs.choose_interpolation(H, W, h, w)).reshape(h, w * cn)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(_common, "BAND_ELEMENTS", band)  # many small bands exercise the band edges
        assert np.array_equal(banded(image, h, w), want)


@pytest.mark.parametrize("image_hw", [(480, 640), (720, 1280), (1024, 1024), (37, 53)])
@pytest.mark.parametrize("keep_alpha", [False, True])
def test_hair_srgb_shortcut_equals_rgba_input(image_hw: tuple[int, int], keep_alpha: bool) -> None:
    """SRGB to the hair model (no RGBA made by to_pixels) gives the tensor of the explicit opaque RGBA image."""
    rng = np.random.default_rng(image_hw[0])
    rgb = rng.integers(0, 256, (*image_hw, 3), dtype=np.uint8)
    rgba = np.concatenate([rgb, np.full((*image_hw, 1), 255, np.uint8)], axis=2)
    pre = Preprocessor(InputSpec(512, 512, 4, "float32", 0.0, 255.0, zero_alpha=True))
    pixels = to_pixels(rgb, SRGB, 4)
    assert pixels.shape[2] == 3
    want = pre(to_pixels(rgba, SRGBA, 4), keep_alpha=keep_alpha).copy()
    assert np.array_equal(pre(pixels, keep_alpha=keep_alpha), want)
    if not keep_alpha:
        assert (want[..., 3] == 0).all()


def reference_warp(image: np.ndarray, h: int, w: int, rotation: int) -> np.ndarray:
    """The integer bilinear formula straight from the 1/32-pixel source coordinates, int64 throughout: uint8
    (h, w, 3), independent of the plan layout, the gathers and the float Y pass."""
    H, W, _ = image.shape
    sx, sy = wp.source_coords(wp.warp_matrix(H, W, h, w, rotation), h, w)
    ix, iy = np.clip(sx >> 5, -32768, 32767), np.clip(sy >> 5, -32768, 32767)
    fx, fy = (sx & 31)[..., None], (sy & 31)[..., None]
    x0, x1 = np.clip(ix, 0, W - 1), np.clip(ix + 1, 0, W - 1)
    y0, y1 = np.clip(iy, 0, H - 1), np.clip(iy + 1, 0, H - 1)
    px = image[..., :3].astype(np.int64)
    s = (px[y0, x0] * (32 - fx) + px[y0, x1] * fx) * (32 - fy) + (px[y1, x0] * (32 - fx) + px[y1, x1] * fx) * fy
    out: np.ndarray = ((s + 512) >> 10).astype(np.uint8)
    return out


@pytest.mark.slow
@settings(deadline=None, max_examples=150)
@given(
    SIZES,
    SIZES,
    TENSORS,
    st.sampled_from([0, 90, 180, 270, -90, 450]),
    st.sampled_from([3, 4]),
    st.booleans(),
    st.integers(0, 2**32 - 1),
)
@example(480, 640, (256, 256), 0, 3, True, 0)
@example(480, 640, (256, 256), 90, 4, True, 0)
@example(1080, 1920, (512, 512), 180, 3, True, 0)  # not separable
@example(1080, 1920, (512, 512), 180, 4, True, 0)  # not separable, RGBA pixels
@example(1, 1, (7, 5), 270, 4, False, 0)
@example(3, 701, (1, 1), 90, 3, False, 0)
def test_warp_equals_integer_reference(
    H: int, W: int, tensor: tuple[int, int], rotation: int, cn: int, separable: bool, seed: int
) -> None:
    """Both plan forms, RGB and RGBA pixels, uint8 and float models, against the plain int64 formula."""
    image = np.random.default_rng(seed).integers(0, 256, (H, W, cn), dtype=np.uint8)
    want = reference_warp(image, *tensor, rotation)
    plan = plan_of(H, W, cn, *tensor, rotation, separable)
    key = (H, W, cn, rotation)
    assert np.array_equal(with_plan(InputSpec(*tensor, 3, "uint8"), key, plan)(image, rotation)[0], want)
    got = with_plan(InputSpec(*tensor, 3, "float32", 127.5, 127.5), key, plan)(image, rotation)[0]
    assert np.array_equal(got.view(np.uint32), normalization_lut(127.5, 127.5)[want].view(np.uint32))


@pytest.mark.parametrize(
    ("H", "W", "cn", "h", "w", "rotation"),
    [
        (480, 640, 3, 257, 257, 0),
        (480, 640, 4, 256, 256, 90),
        (1080, 1920, 3, 512, 512, 180),
        (37, 53, 3, 61, 3, 270),
        (5, 3, 4, 2, 300, 180),
    ],
)
def test_chunked_plan_build_equals_one_chunk(
    monkeypatch: pytest.MonkeyPatch, H: int, W: int, cn: int, h: int, w: int, rotation: int
) -> None:
    whole = wp.make_warp_plan(H, W, cn, h, w, rotation)
    monkeypatch.setattr(wp, "_PLAN_CHUNK", 1)  # one row per chunk
    rows = wp.make_warp_plan(H, W, cn, h, w, rotation)
    sx, sy = wp.source_coords(wp.warp_matrix(H, W, h, w, rotation), h, w)
    part_x, part_y = wp.source_coords(wp.warp_matrix(H, W, h, w, rotation), h, w, slice(h // 2, h))
    assert np.array_equal(part_x, sx[h // 2 :]) and np.array_equal(part_y, sy[h // 2 :])
    assert type(whole) is type(rows)
    for a, b in zip(dataclasses.astuple(whole), dataclasses.astuple(rows), strict=True):
        for x, y in zip(a if isinstance(a, tuple) else (a,), b if isinstance(b, tuple) else (b,), strict=True):
            assert np.array_equal(x, y)


def test_plan_keeps_per_pixel_indices_only() -> None:
    """The plan holds one intp index per tensor pixel and tap, and 2-D weights only when it is not separable."""
    sep = wp.make_warp_plan(480, 640, 3, 257, 257, 0)
    assert isinstance(sep, SeparableWarpPlan)
    assert all(o.shape == (257 * 257,) and o.dtype == np.intp for o in sep.offsets)
    assert sep.x_weights[0].shape == (257 * 3,) and sep.y_weights[0].shape == (257, 1)
    full = wp.make_warp_plan(1080, 1920, 3, 512, 512, 180)
    assert isinstance(full, GridWarpPlan)
    assert all(v.dtype == np.uint8 and v.shape == (512, 512 * 3) for v in full.fractions)
    nbytes = sum(o.nbytes for o in sep.offsets) + sum(v.nbytes for v in sep.x_weights + sep.y_weights)
    assert nbytes < 2.2e6


@pytest.mark.parametrize(
    ("cn", "rotation", "separable"), [(3, 0, True), (4, 90, True), (3, 180, False), (4, 270, False)]
)
def test_warp_bands_equal_whole(cn: int, rotation: int, separable: bool) -> None:
    image = np.random.default_rng(cn).integers(0, 256, (101, 163, cn), dtype=np.uint8)
    spec = InputSpec(67, 45, 3, "float32", 127.5, 127.5)
    whole = Preprocessor(spec)
    want = whole(image, rotation).copy()
    banded_pre = Preprocessor(spec)
    plan = plan_of(101, 163, cn, 67, 45, rotation, separable)
    for r0 in range(0, 67, 10):
        banded_pre._warp_band(image.reshape(-1), plan, slice(r0, min(67, r0 + 10)), cn)
    assert np.array_equal(banded_pre._out, want)
