"""The full-resolution work of a frame as two compiled passes that skip what is certain.

At 720p every OpenCV call on the whole frame costs 0.1-0.3 ms, and the matte and the
composite were about twenty of them (the guided filter's apply, the bounds, the blend,
the light wrap). Most of a frame does not need them: where the model is sure on all sides
the matte is exactly 0 or 255, and the output is the background or the frame, copied.
Only the band along the outline (about a tenth of a 720p talking head) needs the
arithmetic. OpenCV cannot skip per pixel without a Python loop, so the two passes are
compiled with numba, walking the frame in groups of 8 pixels, even rows on one thread and
odd rows on another (numba's OpenMP pool: a 2 us handoff, where a Python thread took
~100 us):

- `matte_rows` (guided_matte): alpha = levels(clamp(A * I + B, up(lo), up(hi))), the
  guided filter's apply and MatteBounds (vbg.guided, vbg.cleanup) in one pass. A group
  whose source cells (in the model-resolution maps) are all sure background / all sure
  person is written as 0 / 255 (one uint64 word) without reading the frame; the rest
  computes the grey guide I from the frame (OpenCV's BGR2GRAY coefficients) and the
  bilinear upsampling of A, B, lo and hi (OpenCV's INTER_LINEAR convention) per pixel.
- `composite_rows` (composite): out = frame * a + bg * (1 - a), rounded once, with the
  light wrap (vbg.lightwrap) on the person's inner edge, in one pass; a group with alpha
  all 0 is the background copied (or left where the previous frame put it), all 255 and
  out of the light wrap's reach the frame copied.

At model resolution the temporal filter's blend and hysteresis and the speck/hole filter's
per-region decisions are compiled loops as well (end of the module).

Both passes agree with the OpenCV passes they replace (`Refiner(compiled=False)`,
`Compositor.blend` + `LightWrap`): within one grey level at all but ~0.03 % (matte) and
~0.15 % (composite with light wrap) of pixels, at most 3 (tests/vbg/test_fused.py).
Compiling takes ~15 s once per machine (cached on disk; vbg.pipeline.warm_up_hot_path).
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

GROUP = 8  # pixels per skip decision: small enough to hug the outline, big enough to pay


def linear_taps(n_src: int, n_dst: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """OpenCV's INTER_LINEAR sampling along one axis: for each destination index, the two
    source indices and the weight of the second (src = (dst + 0.5) * n_src / n_dst - 0.5,
    clamped to the edge as cv2.resize does)."""
    scale = n_src / n_dst
    s = (np.arange(n_dst, dtype=np.float64) + 0.5) * scale - 0.5
    i0 = np.floor(s).astype(np.int32)
    wt = (s - i0).astype(np.float32)
    wt[i0 < 0] = 0.0
    i0 = np.clip(i0, 0, n_src - 1)
    i1 = np.minimum(i0 + 1, n_src - 1).astype(np.int32)
    wt[i0 == n_src - 1] = 0.0
    return i0, i1, wt


def fits(*images: np.ndarray) -> bool:
    """Whether the compiled composite can test and copy these frame-size arrays a uint64
    word at a time: uint8, C order, 8-byte aligned, width a multiple of GROUP. Else it goes
    byte by byte (`frame_fits` is all it needs)."""
    return all(
        a.dtype == np.uint8
        and a.flags.c_contiguous
        and a.ctypes.data % 8 == 0
        and a.shape[1] % GROUP == 0
        for a in images
    )


def frame_fits(frame: np.ndarray) -> bool:
    """Whether the compiled passes read this frame as it is (any width): uint8, C order."""
    return frame.dtype == np.uint8 and frame.flags.c_contiguous


NO_WORDS = np.zeros((0, 0), np.uint64)  # composite(): no word views, byte by byte


def padded_width(w: int) -> int:
    """w rounded up to whole groups: the row length of the matte pass's buffers."""
    return -(-w // GROUP) * GROUP


def rows64(a: np.ndarray) -> np.ndarray:
    """A (H, W[, C]) uint8 array viewed as (H, W * C / 8) uint64 words (no copy)."""
    return a.reshape(a.shape[0], -1).view(np.uint64)


class Taps:
    """Bilinear taps from a (h, w) map to a (H, W) frame, both axes, made once per size."""

    def __init__(self, small_hw: tuple[int, int], frame_hw: tuple[int, int]) -> None:
        self.small_hw, self.frame_hw = small_hw, frame_hw
        self.y0, self.y1, self.wy = linear_taps(small_hw[0], frame_hw[0])
        # Padded to whole groups of pixels with the last column's taps (the padding is
        # written as part of a sure group or skipped, never read from the frame).
        x0, x1, wx = linear_taps(small_hw[1], frame_hw[1])
        pad = -len(x0) % GROUP
        self.x0, self.x1, self.wx = (np.pad(a, (0, pad), mode="edge") for a in (x0, x1, wx))

    def fits(self, small_hw: tuple[int, int], frame_hw: tuple[int, int]) -> bool:
        return self.small_hw == tuple(small_hw) and self.frame_hw == tuple(frame_hw)

    @property
    def all(self) -> tuple[np.ndarray, ...]:
        return self.y0, self.y1, self.wy, self.x0, self.x1, self.wx


@njit(cache=True, nogil=True, inline="always")
def _lerp2(m, r0, r1, wy, c0, c1, wx):
    # In float32 (uint8 maps would wrap on the differences).
    a, b = np.float32(m[r0, c0]), np.float32(m[r0, c1])
    c, d = np.float32(m[r1, c0]), np.float32(m[r1, c1])
    top = a + (b - a) * wx
    bot = c + (d - c) * wx
    return top + (bot - top) * wy


@njit(cache=True, nogil=True)
def _reach_table(m, threshold, x0, x1, run, out, r_first, r_step):
    """out (h, n_groups) bool: whether any cell a group of output pixels reads (rows r and
    r + 1, the group's columns) is above threshold; by prefix sums along each row, not a
    loop over each group's columns. run: int32 (w + 1,) scratch. Rows r_first, r_first +
    r_step, ... only."""
    h, w = m.shape
    for r in range(r_first, h, r_step):
        r1 = min(r + 1, h - 1)
        run[0] = 0
        for c in range(w):
            bad = np.int32(1) if (m[r, c] > threshold or m[r1, c] > threshold) else np.int32(0)
            run[c + 1] = run[c] + bad
        for g in range(out.shape[1]):
            out[r, g] = run[x1[g * GROUP + GROUP - 1] + 1] - run[x0[g * GROUP]] > 0


@njit(cache=True, nogil=True)
def _class_table(lo, hi, t_bg, t_fg, x0, x1, run, out, r_first, r_step):
    """out (h, n_groups) uint8, per source row r (the pair r, r + 1 that output rows with
    y0 == r read) and group of 8 output pixels: 0 = sure background (hi <= t_bg at every
    cell read: the levels give 0), 2 = sure person (lo >= t_fg: 255), 1 = compute.
    run: int32 (2, w + 1) scratch. Rows r_first, r_first + r_step, ... only."""
    h, w = lo.shape
    not_bg, not_fg = run[0], run[1]
    for r in range(r_first, h, r_step):
        r1 = min(r + 1, h - 1)
        not_bg[0] = 0
        not_fg[0] = 0
        for c in range(w):
            nb = np.int32(1) if (hi[r, c] > t_bg or hi[r1, c] > t_bg) else np.int32(0)
            nf = np.int32(1) if (lo[r, c] < t_fg or lo[r1, c] < t_fg) else np.int32(0)
            not_bg[c + 1] = not_bg[c] + nb
            not_fg[c + 1] = not_fg[c] + nf
        for g in range(out.shape[1]):
            c0, c1 = x0[g * GROUP], x1[g * GROUP + GROUP - 1] + 1
            if not_bg[c1] - not_bg[c0] == 0:
                out[r, g] = 0
            elif not_fg[c1] - not_fg[c0] == 0:
                out[r, g] = 2
            else:
                out[r, g] = 1


def lut_ends(lut: np.ndarray) -> tuple[int, int]:
    """(t_bg, t_fg) of a levels table: at or below t_bg it gives 0, at or above t_fg 255."""
    zero, full = np.flatnonzero(lut == 0), np.flatnonzero(lut == 255)
    t_bg = int(zero.max()) if zero.size and lut[0] == 0 else -1
    t_fg = int(full.min()) if full.size and lut[255] == 255 else 256
    return t_bg, t_fg


@njit(cache=True, nogil=True)
def guided_matte(
    frame, a_map, b_map, taps, classes, alpha, alpha64, lo, hi, lut, vrows, y_first, y_step
):
    """alpha (H, W) uint8 = lut[clamp(round(A*I + B), up(lo), up(hi))], I the frame's grey.

    a_map, b_map: float32 (h, w) with alpha 0..255 = A * I + B (GuidedUpsampler
    .coefficients); lo, hi: uint8 (h, w) bounds (MatteBounds.small_bounds); lut: the levels;
    taps: Taps.all from (h, w) to (H, W). Rows y_first, y_first + y_step, ... only (two
    threads take one parity each). alpha64: the same buffer as alpha viewed as uint64
    (H, ceil(W / 8)): sure groups are written a word at a time; any frame width (alpha's
    rows padded to whole groups, the taps' x arrays padded to match: Taps).
    """
    H, W = frame.shape[:2]  # alpha may be wider: its rows padded to whole groups
    n_groups = alpha64.shape[1]
    y0, y1, wy, x0, x1, wx = taps
    # The four maps interpolated between the row pair, per source column: the vertical
    # half of the bilinear taps, done once per output row for the columns a band reads.
    va, vb, vlo, vhi = vrows[0], vrows[1], vrows[2], vrows[3]
    ones = np.uint64(0xFFFFFFFFFFFFFFFF)
    zero = np.uint64(0)
    half = np.float32(0.5)
    for y in range(y_first, H, y_step):
        r0, r1, fy = y0[y], y1[y], wy[y]
        done = -1  # columns up to here are interpolated for this row
        for g in range(n_groups):
            c = classes[r0, g]
            if c == 0:
                alpha64[y, g] = zero
                continue
            if c == 2:
                alpha64[y, g] = ones
                continue
            for col in range(max(done + 1, x0[g * GROUP]), x1[g * GROUP + GROUP - 1] + 1):
                va[col] = a_map[r0, col] + (a_map[r1, col] - a_map[r0, col]) * fy
                vb[col] = b_map[r0, col] + (b_map[r1, col] - b_map[r0, col]) * fy
                l0, l1 = np.float32(lo[r0, col]), np.float32(lo[r1, col])
                h0, h1 = np.float32(hi[r0, col]), np.float32(hi[r1, col])
                vlo[col] = l0 + (l1 - l0) * fy
                vhi[col] = h0 + (h1 - h0) * fy
                done = col
            for x in range(g * GROUP, min(g * GROUP + GROUP, W)):
                c0, c1, fx = x0[x], x1[x], wx[x]
                # OpenCV's fixed-point BGR -> grey (coefficients of 0.114, 0.587, 0.299).
                i = (
                    np.int32(frame[y, x, 0]) * 1868
                    + np.int32(frame[y, x, 1]) * 9617
                    + np.int32(frame[y, x, 2]) * 4899
                    + 8192
                ) >> 14
                a = va[c0] + (va[c1] - va[c0]) * fx
                b = vb[c0] + (vb[c1] - vb[c0]) * fx
                v = a * np.float32(i) + b + half
                v = min(max(v, np.float32(0.0)), np.float32(255.0))
                up_hi = vhi[c0] + (vhi[c1] - vhi[c0]) * fx + half
                up_lo = vlo[c0] + (vlo[c1] - vlo[c0]) * fx + half
                alpha[y, x] = lut[max(min(np.int32(v), np.int32(up_hi)), np.int32(up_lo))]


@njit(cache=True, nogil=True, inline="always")
def _div255(x):
    # round(x / 255) for 0 <= x <= 255 * 255, exactly, in integers.
    x = x + 128
    return (x + (x >> 8)) >> 8


@njit(cache=True, nogil=True, inline="always")
def _copy_group(src, src64, out, o64, y, j, xs, xe, words):
    # One group of pixels from src to out: three uint64 words (from word j) or bytes.
    if words:
        o64[y, j] = src64[y, j]
        o64[y, j + 1] = src64[y, j + 1]
        o64[y, j + 2] = src64[y, j + 2]
    else:
        for x in range(xs, xe):
            for ch in range(3):
                out[y, x, ch] = src[y, x, ch]


@njit(cache=True, nogil=True, inline="always")
def composite(
    frame, bg, alpha, out, f64, b64, a64, o64, light, wrap, strength, reach, taps, vrow, held,
    words, y_first, y_step,
):  # fmt: skip
    """out = frame * a + bg * (1 - a), a = alpha / 255, rounded once; then, with t_wrap > 0,
    the light wrap: out * (1 - w) + light * w with w = strength * a * up(wrap) / 255, wrap
    the blurred (255 - alpha) at low resolution (vbg.lightwrap), light the blurred
    background; reach (wrap's rows, groups): where the weight can be 1 or more (see
    composite_rows); taps (y0, y1, wy, x0, x1, wx) map `wrap` to the frame. An empty reach
    (0 rows): no light wrap (light, wrap and taps are not read). Rows y_first, y_first + y_step, ... only.
    f64, b64, a64, o64: frame, bg, alpha and out viewed as uint64 rows (W a multiple of 8):
    with words (a constant: the function is inlined into composite_rows and
    composite_rows_bytes, so each compiles only its branch) sure groups are tested and
    copied a word at a time; without, byte by byte (the views are not read).
    held (H, W / 8) uint8: 1 where `out` already holds this background from an earlier
    frame (a still background: the caller clears it whenever the background or the buffer
    may have changed); those groups are not written again, the others update it. An empty
    held (0 rows): write everything."""
    H, W = frame.shape[:2]
    n_groups = (W + GROUP - 1) // GROUP
    y0, y1, wy, x0, x1, wx = taps
    ones = np.uint64(0xFFFFFFFFFFFFFFFF)
    k = np.float32(strength / 255.0)
    use_wrap = reach.shape[0] > 0
    track = held.shape[0] > 0
    vw = vrow  # wrap between the row pair, per column
    half = np.float32(0.5)
    for y in range(y_first, H, y_step):
        r0, r1, fy = 0, 0, np.float32(0.0)
        if use_wrap:
            r0, r1, fy = y0[y], y1[y], wy[y]
        done = -1  # wrap columns interpolated for this row so far
        for g in range(n_groups):
            xs = g * GROUP
            # With words the width is whole groups: a constant trip count, loops unrolled.
            xe = xs + GROUP if words else min(xs + GROUP, W)
            if words:
                word = a64[y, g]
                none, full = word == 0, word == ones
            else:
                lo_a, hi_a = 255, 0
                for x in range(xs, xe):
                    lo_a, hi_a = min(lo_a, alpha[y, x]), max(hi_a, alpha[y, x])
                none, full = hi_a == 0, lo_a == 255
            j = 3 * g
            if none:
                if track:
                    if held[y, g]:
                        continue  # the background is already there, from an earlier frame
                    held[y, g] = 1
                _copy_group(bg, b64, out, o64, y, j, xs, xe, words)
                continue
            if track:
                held[y, g] = 0
            wrapped = use_wrap and reach[r0, g]
            if full and not wrapped:
                _copy_group(frame, f64, out, o64, y, j, xs, xe, words)
                continue
            if wrapped:
                for col in range(max(done + 1, x0[g * GROUP]), x1[g * GROUP + GROUP - 1] + 1):
                    w0, w1 = np.float32(wrap[r0, col]), np.float32(wrap[r1, col])
                    vw[col] = w0 + (w1 - w0) * fy
                    done = col
            for x in range(xs, xe):
                a = np.int32(alpha[y, x])
                if a == 0:
                    out[y, x, 0] = bg[y, x, 0]
                    out[y, x, 1] = bg[y, x, 1]
                    out[y, x, 2] = bg[y, x, 2]
                    continue
                wt = np.int32(0)
                if wrapped:
                    c0, c1 = x0[x], x1[x]
                    up = np.int32(vw[c0] + (vw[c1] - vw[c0]) * wx[x] + half)
                    wt = np.int32(np.float32(up * a) * k + half)
                if wt == 0:
                    if a == 255:
                        out[y, x, 0] = frame[y, x, 0]
                        out[y, x, 1] = frame[y, x, 1]
                        out[y, x, 2] = frame[y, x, 2]
                        continue
                    for ch in range(3):
                        f, b = np.int32(frame[y, x, ch]), np.int32(bg[y, x, ch])
                        out[y, x, ch] = _div255(f * a + b * (255 - a))
                    continue
                for ch in range(3):
                    f, b = np.int32(frame[y, x, ch]), np.int32(bg[y, x, ch])
                    v = _div255(f * a + b * (255 - a))
                    out[y, x, ch] = _div255(v * (255 - wt) + np.int32(light[y, x, ch]) * wt)


# The entry points: even rows on one thread, odd rows on another (numba's OpenMP pool,
# numba.set_num_threads(1) runs both halves on the caller). Interleaved rows balance the
# work whatever the person's shape; two threads never write the same row. Every buffer is
# the caller's (Scratch): a frame allocates nothing.


class Scratch:
    """Work buffers of the entry points for one map size (h, w) and frame width W."""

    def __init__(self, small_hw: tuple[int, int], frame_w: int) -> None:
        h, w = small_hw
        self.small_hw, self.frame_w = (h, w), frame_w
        self.table = np.empty((h, -(-frame_w // GROUP)), np.uint8)  # classes or reach
        self.run = np.empty((2, 2, w + 1), np.int32)  # per thread, two prefix sums
        self.rows = np.empty((2, 4, w), np.float32)  # per thread, per interpolated map

    def fits(self, small_hw: tuple[int, int], frame_w: int) -> bool:
        return self.small_hw == tuple(small_hw) and self.frame_w == frame_w


@njit(cache=True, nogil=True, parallel=True)
def matte_classes(lo, hi, ends, taps, table, run):
    """The class table of guided_matte (Scratch.table) on up to two threads, and the box
    of model cells the band reads, (r0, r1, c0, c1) half-open; r0 == r1 when there is no
    band (the matte is all sure). ends: lut_ends of the levels."""
    for t in prange(2):
        _class_table(lo, hi, ends[0], ends[1], taps[3], taps[4], run[t], table, t, 2)
    h = lo.shape[0]
    r0, r1, c0, c1 = h, 0, lo.shape[1], 0
    x0, x1 = taps[3], taps[4]
    for r in range(h):
        for g in range(table.shape[1]):
            if table[r, g] == 1:
                r0 = min(r0, r)
                r1 = max(r1, min(r + 2, h))  # the pair r, r + 1
                c0 = min(c0, x0[g * GROUP])
                c1 = max(c1, x1[g * GROUP + GROUP - 1] + 1)
    if r1 <= r0:
        return 0, 0, 0, 0
    return r0, r1, c0, c1


@njit(cache=True, nogil=True, parallel=True)
def matte_rows(frame, a_map, b_map, lo, hi, lut, taps, alpha, alpha64, table, rows):
    """guided_matte over the whole frame, on up to two threads, with the class table of
    matte_classes; table, rows: Scratch."""
    for t in prange(2):
        guided_matte(frame, a_map, b_map, taps, table, alpha, alpha64, lo, hi, lut, rows[t], t, 2)


@njit(cache=True, nogil=True, parallel=True)
def _reach_rows(wrap, t_wrap, taps, table, run):
    # Where the light wrap can act (composite's reach) on up to two threads; no rows (an
    # empty table) without a light wrap.
    reach = table.view(np.bool_)[: (wrap.shape[0] if t_wrap > 0 else 0)]
    if t_wrap > 0:
        for t in prange(2):
            _reach_table(wrap, t_wrap - 1, taps[3], taps[4], run[t, 0], reach, t, 2)
    return reach


@njit(cache=True, nogil=True, parallel=True)
def composite_rows(
    frame, bg, alpha, out, f64, b64, a64, o64, light, wrap, strength, t_wrap, taps, held,
    table, run, rows,
):  # fmt: skip
    """composite over the whole frame, on up to two threads, a uint64 word (8 pixels) at a
    time where sure (fits(): widths of whole groups). t_wrap: the least wrap value that
    gives a light wrap weight of 1 or more at alpha 255 (LightWrap.min_reach); 0 = no light
    wrap. held: see composite. table, run, rows: Scratch for the wrap map's size."""
    reach = _reach_rows(wrap, t_wrap, taps, table, run)
    for t in prange(2):
        composite(
            frame, bg, alpha, out, f64, b64, a64, o64, light, wrap, strength, reach, taps,
            rows[t, 0], held, True, t, 2,
        )  # fmt: skip


@njit(cache=True, nogil=True, parallel=True)
def composite_rows_bytes(
    frame, bg, alpha, out, light, wrap, strength, t_wrap, taps, held, table, run, rows
):
    """composite_rows for any width and matte layout: sure groups copied byte by byte."""
    reach = _reach_rows(wrap, t_wrap, taps, table, run)
    for t in prange(2):
        composite(
            frame, bg, alpha, out, NO_WORDS, NO_WORDS, NO_WORDS, NO_WORDS, light, wrap,
            strength, reach, taps, rows[t, 0], held, False, t, 2,
        )  # fmt: skip


# --- model resolution -------------------------------------------------------------------
# The temporal filter's per-pixel steps (vbg.temporal): each was five to ten numpy passes
# over the map, ~0.3 ms at 160x288 with the data cold after inference; one loop each here.


@njit(cache=True, nogil=True)
def adaptive_blend(prob, state, still, move):
    """state += w * (prob - state), w = still + (1 - still) * min(|prob - state| / move, 1)."""
    k = np.float32((1.0 - still) / move)
    s0, m = np.float32(still), np.float32(move)
    h, w = prob.shape
    for y in range(h):
        for x in range(w):
            d = prob[y, x] - state[y, x]
            state[y, x] += d * (min(abs(d), m) * k + s0)


@njit(cache=True, nogil=True)
def hysteresis(out, side, strength, has_side):
    """out += strength * (2 * side - 1) * max(0, 1 - |out - 0.5| / (2 * strength)), clipped
    to 0..1 (a tent around 0.5 toward the pixel's previous side; with has_side only), then
    side = out >= 0.5."""
    inv = np.float32(1.0 / (2.0 * strength))
    hs = np.float32(strength)
    h, w = out.shape
    for y in range(h):
        for x in range(w):
            v = out[y, x]
            if has_side:
                tent = max(np.float32(1.0) - abs(v - np.float32(0.5)) * inv, np.float32(0.0))
                v += tent * (hs if side[y, x] else -hs)
                v = min(max(v, np.float32(0.0)), np.float32(1.0))
                out[y, x] = v
            side[y, x] = v >= np.float32(0.5)


# The speck and hole filter's per-region decisions (vbg.cleanup.ComponentFilter): OpenCV
# labels the regions (its labelling alone is ~0.03 ms; with statistics, ~0.12), the counts,
# decisions and writes are one pass each here, with no per-region Python loop.


@njit(cache=True, nogil=True)
def _count_per_label(prob, labels, threshold, counts):
    """counts[lab] = pixels of region lab with prob >= threshold (counts zeroed first)."""
    h, w = prob.shape
    counts[:] = 0
    for y in range(h):
        # Counted per run of one label: one add per run, not a dependent add per pixel.
        lab, run = labels[y, 0], 0
        for x in range(w):
            if labels[y, x] != lab:
                counts[lab] += run
                lab, run = labels[y, x], 0
            if prob[y, x] >= threshold:
                run += 1
        counts[lab] += run
    return counts


@njit(cache=True, nogil=True)
def drop_specks(prob, labels, n, core_threshold, limit, counts):
    """Sets prob to 0 over every region (labels 1..n-1) whose sure part (prob >= core_
    threshold) has fewer than `limit` pixels. counts: int64 scratch of n or more."""
    h, w = prob.shape
    core = _count_per_label(prob, labels, core_threshold, counts[:n])
    dropped = False
    for lab in range(n):
        core[lab] = 1 if lab > 0 and core[lab] < limit else 0  # now: 1 = drop
        dropped = dropped or core[lab] == 1
    if not dropped:
        return
    for y in range(h):
        for x in range(w):
            if core[labels[y, x]]:
                prob[y, x] = 0.0


@njit(cache=True, nogil=True)
def fill_holes(prob, labels, n, limit, counts):
    """Sets prob to 1 over every background region (labels 1..n-1) smaller than `limit`
    pixels that touches no border of the map, grown by one pixel (3x3) so that no half
    alpha rim is left inside the person. counts: int64 scratch of n or more."""
    h, w = prob.shape
    area = _count_per_label(prob, labels, -1.0, counts[:n])  # every pixel: the areas
    # From here on area[lab] is the decision: 1 = fill, 0 = keep.
    for lab in range(n):
        area[lab] = 1 if lab > 0 and area[lab] < limit else 0
    for x in range(w):
        area[labels[0, x]] = 0
        area[labels[h - 1, x]] = 0
    for y in range(h):
        area[labels[y, 0]] = 0
        area[labels[y, w - 1]] = 0
    if not area.any():
        return
    for y in range(h):
        for x in range(w):
            if area[labels[y, x]]:
                for yy in range(max(y - 1, 0), min(y + 2, h)):
                    for xx in range(max(x - 1, 0), min(x + 2, w)):
                        prob[yy, xx] = 1.0


@njit(cache=True, nogil=True, parallel=True)
def shrink_linear(src, y0, y1, wy, x0, x1, wx, out, inverse):
    """out = cv2.resize(src, INTER_LINEAR) to out's size, taps from linear_taps(src side,
    out side); inverse = 255 - out. (The light wrap's small map: cv2's downscale read the
    cold full-size matte at ~0.2 ms; this reads only the taps' pixels, on two threads.)"""
    h, w = out.shape
    half = np.float32(0.5)
    for t in prange(2):
        for i in range(t, h, 2):
            for j in range(w):
                a = np.int32(_lerp2(src, y0[i], y1[i], wy[i], x0[j], x1[j], wx[j]) + half)
                out[i, j] = a
                inverse[i, j] = 255 - a
