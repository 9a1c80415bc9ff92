"""MediaPipe's category mask: align-corners bilinear on the raw logits at output size, then argmax or threshold.

Per pixel and channel, in float32 without FMA: ``v = lerp(lerp(K00, K10, ty), lerp(K01, K11, ty), tx)`` with
``lerp(a, b, t) = a + (b - a) * t``; SIGMOID (only) is applied to ``v``; ``C > 1`` takes the first maximum,
``C == 1`` gives 0 where ``v > 0.5`` and 255 elsewhere (indices above 255 wrap, as MediaPipe's uint8 does).
The vertical lerps run once per source column, the horizontal ones per output pixel, one channel at a time (a
streaming argmax). Channels that provably cannot be the maximum in a tile of the output are skipped there
(see ``candidates``), and tiles with a single candidate are filled without sampling.

MediaPipe divides by ``out - 1`` and crashes (width 1) or reads garbage (height 1) for 1-pixel outputs; here a
1-pixel axis samples source index 0.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from segkit import _common

from .activation import SIGMOID, SIGMOID_HALF_CUT, quiet, sigmoid

_F32 = np.float32
_HALF = np.float32(0.5)
# Bound on the float32 rounding error of the two nested lerps, relative to the largest |logit| (~11 ulp
# needed, 64 used), plus an absolute term for subnormals.
_REL_MARGIN = 2.0**-18
_ABS_MARGIN = 1e-37
_NO_OVERFLOW = 1e38  # below FLT_MAX / 2: no difference of two logits overflows
# Output columns per block: the granularity at which channels are ruled out.
BLOCK_COLUMNS = 64
# At most this many blocks per row: wider outputs (1xN extremes) get wider blocks, so the per-block Python work
# stays bounded and the cost follows the pixel count (blocks only prune; the mask does not depend on them).
MAX_BLOCKS = 1024
# Output rows per band at least (of the default plan): a band's Python and numpy calls are paid per channel left
# in it, so thin bands of wide outputs cost more than their finer pruning saves. Measured on 2 cores, 1280x720
# masks, 25 -> 51 rows: DeepLab 9.0 -> 7.7 ms, the selfie model 2.4 -> 1.9, hair 4.6 -> 4.0; 640x480 (51 rows) is
# unchanged (the element count already gives it as many).
MIN_BAND_ROWS = 48


def _align_corners(n_in: int, n_out: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per output index: ``(i0, i1, t)`` as MediaPipe computes them in float32 (1-pixel outputs use index 0)."""
    if n_out == 1:
        z = np.zeros(1, np.intp)
        return z, z.copy(), np.zeros(1, _F32)
    scale = _F32(n_in - 1) / _F32(n_out - 1)
    p = np.arange(n_out, dtype=_F32) * scale
    i0 = np.maximum(np.floor(p), _F32(0))
    i1 = np.minimum(np.ceil(p), _F32(n_in - 1))
    t = np.clip(p - i0, _F32(0), _F32(1))
    return i0.astype(np.intp), i1.astype(np.intp), t.astype(_F32)


@dataclass(frozen=True)
class CategoryPlan:
    """Sampling tables for an ``(in_h, in_w)`` to ``(out_h, out_w)`` category mask; see ``category_plan``.

    Output rows come in bands and output columns in blocks; each (band, block) tile reads a known rectangle of
    source pixels (``bands`` and ``blocks`` give both ranges), which bounds its interpolated values.
    """

    in_h: int
    in_w: int
    out_h: int
    out_w: int
    y0: np.ndarray  # (out_h,) upper source row
    y1: np.ndarray  # (out_h,) lower source row
    ty: np.ndarray  # (out_h, 1) float32 vertical fraction
    x0: np.ndarray  # (out_w,) left source column
    tx: np.ndarray  # (out_w,) float32 horizontal fraction
    pair: np.ndarray  # (out_w,) index into the distinct (left, right) column pairs
    pair_x0: np.ndarray  # (P,) left column of each distinct pair
    pair_x1: np.ndarray  # (P,) right column of each distinct pair
    bands: tuple[tuple[int, int, int, int], ...]  # (first out row, end out row, first src row, end src row)
    blocks: tuple[tuple[int, int, int, int], ...]  # (first out col, end out col, first src col, end src col)


def _tiles(i0: np.ndarray, i1: np.ndarray, n_out: int, step: int) -> tuple[tuple[int, int, int, int], ...]:
    """Split ``range(n_out)`` into runs of ``step`` with the source range ``[min i0, max i1]`` each run reads."""
    starts = range(0, n_out, step)
    ends = [min(a + step, n_out) for a in starts]
    return tuple((a, e, int(i0[a]), int(i1[e - 1]) + 1) for a, e in zip(starts, ends, strict=True))


def _distinct_sorted(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``np.unique(keys, return_inverse=True)`` for non-decreasing ``keys`` (the column pairs grow with the output
    column) in linear time, without a sort: what keeps very wide outputs in proportion to their pixel count."""
    new = np.empty(len(keys), bool)
    new[0] = True
    np.not_equal(keys[1:], keys[:-1], out=new[1:])
    inverse = np.cumsum(new, dtype=np.intp)
    inverse -= 1
    return keys[new], inverse


def _band_rows(out_w: int, band_elements: int | None) -> int:
    """Output rows per band: ``band_elements`` pixels' worth, or the default's (at least ``MIN_BAND_ROWS``)."""
    if band_elements is not None:
        return max(1, band_elements // out_w)
    return max(MIN_BAND_ROWS, _common.BAND_ELEMENTS // out_w)


def category_plan(in_h: int, in_w: int, out_h: int, out_w: int, band_elements: int | None = None) -> CategoryPlan:
    """Build the align-corners tables, the row bands (about ``band_elements`` pixels each; by default
    ``segkit._common.BAND_ELEMENTS`` and at least ``MIN_BAND_ROWS`` rows; the mask does not depend on them) and the
    column blocks."""
    if min(in_h, in_w, out_h, out_w) < 1:
        raise ValueError(f"cannot sample {in_w}x{in_h} logits at {out_w}x{out_h}")
    y0, y1, ty = _align_corners(in_h, out_h)
    x0, x1, tx = _align_corners(in_w, out_w)
    pairs, pair = _distinct_sorted(x0 * in_w + x1)
    return CategoryPlan(
        in_h, in_w, out_h, out_w, y0=y0, y1=y1, ty=ty[:, None], x0=x0, tx=tx,
        pair=pair.astype(np.intp), pair_x0=pairs // in_w, pair_x1=pairs % in_w,
        bands=_tiles(y0, y1, out_h, _band_rows(out_w, band_elements)),
        blocks=_tiles(x0, x1, out_w, max(BLOCK_COLUMNS, -(-out_w // MAX_BLOCKS))),
    )  # fmt: skip


def vertical(k: np.ndarray, plan: CategoryPlan, rows: slice) -> tuple[np.ndarray, np.ndarray]:
    """The vertical lerps of one channel ``k`` for output ``rows`` at every source column, ``(rows, in_w)``,
    and each distinct column pair's difference ``right - left`` of them, ``(rows, P)``."""
    if k.flags.c_contiguous:
        a = k.take(plan.y0[rows], 0)
        v = k.take(plan.y1[rows], 0)
    else:  # a strided channel of (h, w, C) logits: ``take`` would first copy the whole channel, indexing does not
        a = k[plan.y0[rows]]
        v = k[plan.y1[rows]]
    np.subtract(v, a, out=v)
    np.multiply(v, plan.ty[rows], out=v)
    np.add(v, a, out=v)
    d = v.take(plan.pair_x1, 1)
    np.subtract(d, v.take(plan.pair_x0, 1), out=d)
    return v, d


def horizontal(vd: tuple[np.ndarray, np.ndarray], plan: CategoryPlan, cols: slice, out: np.ndarray) -> np.ndarray:
    """The final lerp ``left + (right - left) * tx`` at output ``cols``, from ``vertical``'s arrays, into ``out``."""
    v, d = vd
    d.take(plan.pair[cols], 1, out, "clip")  # indices are in range; "clip" avoids buffering
    np.multiply(out, plan.tx[cols], out=out)
    np.add(out, v.take(plan.x0[cols], 1), out=out)
    return out


def tile_bounds(k: np.ndarray, plan: CategoryPlan, bands: range) -> tuple[np.ndarray, np.ndarray]:
    """Per channel, the min and max source value each (band, block) tile reads: two ``(C, len(bands), blocks)``.

    NaN in a tile's source makes its bounds NaN.
    """
    c, nb = k.shape[0], len(bands)
    rows = np.empty((2, k.shape[2], c, nb), _F32)  # column-major, so each block reduces whole rows
    for i, band in enumerate(bands):
        s0, s1 = plan.bands[band][2:]
        rows[0, :, :, i] = np.minimum.reduce(k[:, s0:s1], axis=1).T
        rows[1, :, :, i] = np.maximum.reduce(k[:, s0:s1], axis=1).T
    lo = np.empty((len(plan.blocks), c, nb), _F32)
    hi = np.empty_like(lo)
    for j, (_, _, t0, t1) in enumerate(plan.blocks):
        np.minimum.reduce(rows[0, t0:t1], axis=0, out=lo[j])
        np.maximum.reduce(rows[1, t0:t1], axis=0, out=hi[j])
    return lo.transpose(1, 2, 0), hi.transpose(1, 2, 0)


def _margin(lo: np.ndarray, hi: np.ndarray) -> np.float32 | None:
    """A bound on the rounding error of the nested lerps within these bounds; None if a value is not finite
    or so large that a difference could overflow (then nothing is bounded)."""
    top, bottom = float(hi.max()), float(lo.min())
    largest = max(abs(top), abs(bottom))
    if not largest < _NO_OVERFLOW:
        return None
    margin: np.float32 = _F32(largest * _REL_MARGIN + _ABS_MARGIN)
    return margin


def candidates(k: np.ndarray, plan: CategoryPlan, activation: int, bands: range) -> np.ndarray | None:
    """Which channels may be the (first) maximum somewhere in each tile: bool ``(C, len(bands), blocks)``.

    An interpolated value stays within its tile's source range up to the rounding margin, so a channel whose
    upper bound is below another channel's lower bound never wins (nor ties) in that tile. SIGMOID compares
    after the sigmoid, which may round distinct logits to equal values. None when the logits are not finite.
    """
    lo, hi = tile_bounds(k, plan, bands)
    margin = _margin(lo, hi)
    if margin is None:
        return None
    top = np.add(hi, margin)
    floor = np.subtract(lo.max(axis=0), margin)
    if activation == SIGMOID:
        top, floor = sigmoid(top), sigmoid(floor)
    may_win: np.ndarray = top >= floor
    return may_win


def _runs(flags: np.ndarray) -> list[tuple[int, int, int]]:
    """Maximal runs of equal values in a 1-D int array: ``(start, end, value)``."""
    edges = np.flatnonzero(flags[1:] != flags[:-1]) + 1
    starts = [0, *edges.tolist()]
    ends = [*edges.tolist(), len(flags)]
    return [(a, b, int(flags[a])) for a, b in zip(starts, ends, strict=True)]


@quiet
def argmax_mask(
    k: np.ndarray, plan: CategoryPlan, activation: int, out: np.ndarray, bands: range | None = None
) -> np.ndarray:
    """First-max channel index per output pixel of channel-first logits ``k`` ``(C, in_h, in_w)``, into ``out``.

    Per band: tiles with one candidate channel are filled; runs of other tiles stream over their candidates.
    """
    bands = bands if bands is not None else range(len(plan.bands))
    cand = candidates(k, plan, activation, bands)
    every = np.arange(k.shape[0])
    for pos, i in enumerate(bands):
        rows = slice(*plan.bands[i][:2])
        if cand is None:
            runs = [(slice(0, plan.out_w), every)]
        else:
            tile = cand[:, pos, :]
            single = np.where(tile.sum(axis=0) == 1, tile.argmax(axis=0), -1)
            runs = []
            for a, b, ch in _runs(single):
                cols = slice(plan.blocks[a][0], plan.blocks[b - 1][1])
                if ch >= 0:
                    out[rows, cols] = ch & 0xFF
                else:
                    runs.append((cols, np.flatnonzero(tile[:, a:b].any(axis=1))))
        if runs:
            lerps = {int(c): vertical(k[c], plan, rows) for c in np.unique(np.concatenate([ch for _, ch in runs]))}
            for cols, chans in runs:
                _stream(lerps, plan, activation, chans, rows, cols, out, nan_safe=cand is None)
    return out


def _stream(
    lerps: dict[int, tuple[np.ndarray, np.ndarray]], plan: CategoryPlan, activation: int, chans: np.ndarray,
    rows: slice, cols: slice, out: np.ndarray, *, nan_safe: bool,
) -> None:  # fmt: skip
    """Streaming first-max over ``chans`` for one run of tiles: a running best value and its channel index."""
    shape = (rows.stop - rows.start, cols.stop - cols.start)
    best, value, wins = np.empty(shape, _F32), np.empty(shape, _F32), np.empty(shape, bool)
    idx = out[rows, cols]
    for n, c in enumerate(chans.tolist()):
        v = horizontal(lerps[c], plan, cols, value if n else best)
        if activation == SIGMOID:
            sigmoid(v, out=v)
        if n == 0:
            idx[...] = c & 0xFF
            if nan_safe:  # MediaPipe's max_element keeps a NaN first element: nothing compares greater
                np.copyto(best, _F32(np.inf), where=np.isnan(best))
            continue
        np.greater(v, best, out=wins)
        np.copyto(idx, np.uint8(c & 0xFF), where=wins)
        if n + 1 < len(chans):
            np.fmax(best, v, out=best)


@quiet
def threshold_mask(
    k: np.ndarray, plan: CategoryPlan, activation: int, out: np.ndarray, bands: range | None = None
) -> np.ndarray:
    """One-channel mask: 0 where the sampled value (after SIGMOID, if any) is > 0.5, else 255, into ``out``.

    SIGMOID is folded into the cut on the raw value. Tiles whose bounds clear the cut are filled.
    """
    cut = SIGMOID_HALF_CUT if activation == SIGMOID else _HALF
    bands = bands if bands is not None else range(len(plan.bands))
    lo, hi = tile_bounds(k, plan, bands)
    margin = _margin(lo, hi)
    state = None
    if margin is not None:
        state = np.where(lo[0] - margin > cut, 0, np.where(hi[0] + margin <= cut, 255, -1))
    for pos, i in enumerate(bands):
        rows = slice(*plan.bands[i][:2])
        runs = [(0, len(plan.blocks), -1)] if state is None else _runs(state[pos])
        lerp = None
        for a, b, fill in runs:
            cols = slice(plan.blocks[a][0], plan.blocks[b - 1][1])
            if fill >= 0:
                out[rows, cols] = fill
                continue
            lerp = lerp or vertical(k[0], plan, rows)
            v = horizontal(lerp, plan, cols, np.empty((rows.stop - rows.start, cols.stop - cols.start), _F32))
            m = np.greater(v, cut)
            np.logical_not(m, out=m)
            np.multiply(m.view(np.uint8), np.uint8(255), out=out[rows, cols])
    return out
