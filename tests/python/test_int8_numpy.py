"""An independent second implementation of the BM1684 int8 integer arithmetic
(docs/bm1684-int8.md §3-§5 and §10; docs/int8.md) in numpy and exact Python
arithmetic, compared bit for bit with the C side:

- kernels: conv (normal, grouped, depthwise, strided, dilated, padded), FC, Add,
  max / average pools (padding, ceil-mode overhang, count_include_pad), global
  average pool, 256-entry tables and input quantization, on random codes,
  through the ctypes entry points of $AC_BUILD_DIR/kernels/libac_int8_shared.so;
- real layers: the Fashion-MNIST models (and, with the zoo, MobileNetV2 layers)
  are lowered and run by $AC_BUILD_DIR/quant/ac_q8_dump; here every int8
  conv/FC/Add/pool layer is recomputed from its input codes, the float weights
  and the shared thresholds (parameters derived here from the spec, not read
  from the C plan) and must give the same output codes.

AC_BUILD_DIR defaults to <repo>/build; tests skip with a message when the
library or the tool is absent."""

import ctypes
import math
import os
import subprocess
from fractions import Fraction

import numpy as np
import pytest

from conftest import FMNIST_DIR, MODELS, ZOO, read_idx, FMNIST_MEAN, FMNIST_STD, record_figure

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BUILD = os.environ.get("AC_BUILD_DIR", os.path.join(REPO, "build"))
INT32_MAX = 2**31 - 1

# ------------------------------------------------------------------ the spec, in numpy


def round_half_away(v):
    """Round half away from zero, exactly (a - floor(a) is exact in binary)."""
    v = np.asarray(v, dtype=np.float64)
    a = np.abs(v)
    f = np.floor(a)
    r = f + (a - f >= 0.5)
    return (np.sign(v) * r).astype(np.int64)


def rshift_round(v, r):
    """(v + 2^(r-1)) >> r, round half up; r = 0 leaves v."""
    v = np.asarray(v, dtype=np.int64)
    r = np.asarray(r, dtype=np.int64)
    half = np.left_shift(np.int64(1), np.maximum(r - 1, 0))
    return np.where(r > 0, np.right_shift(v + np.where(r > 0, half, 0), r), v)


def saturate(v, signed):
    return np.clip(v, -128, 127) if signed else np.clip(v, 0, 255)


def scale_of(th, signed):
    return th / 127.0 if signed else th / 255.0


def conv_shift(p):
    """Largest r <= 31 with p * 2^r < 127, by stepping (the C code uses frexp)."""
    if p == 0.0:
        return 31
    r = 31
    while math.ldexp(p, r) >= 127.0:
        r -= 1
    return r


def bias_codes(b, r, s_out):
    return round_half_away(np.ldexp(b.astype(np.float64), r) / s_out)


def overflows(codes):
    return (codes < -32768) | (codes > 32767)


def lower_weights(w, b, s_in, s_out, per_channel):
    """Spec §3 + §10.1-10.3: (w_q [O][K], b_q [O] or None, r [O]), or None for fp32."""
    ratio = s_in / s_out
    n_out = w.shape[0]
    wmax = np.max(np.abs(w), axis=1).astype(np.float64)
    if per_channel:
        r = np.zeros(n_out, dtype=np.int64)
        for o in range(n_out):
            rc = conv_shift(float(wmax[o]) * ratio)
            if rc < 0:
                return None
            while b is not None and rc > 0 and overflows(bias_codes(b[o:o + 1], rc, s_out))[0]:
                rc -= 1
            if b is not None and overflows(bias_codes(b[o:o + 1], rc, s_out))[0]:
                return None
            r[o] = rc
    else:
        r0 = conv_shift(float(np.max(wmax)) * ratio)
        if r0 < 0:
            return None
        while b is not None and r0 > 0 and \
                np.count_nonzero(overflows(bias_codes(b, r0, s_out))) * 100 > 3 * b.size:
            r0 -= 1
        r = np.full(n_out, r0, dtype=np.int64)
    wq = np.clip(round_half_away(np.ldexp(w.astype(np.float64), r[:, None]) * ratio), -128, 127)
    bq = None
    if b is not None:
        bq = np.clip(round_half_away(np.ldexp(b.astype(np.float64), r) / s_out), -32768, 32767)
    return wq, bq, r


def add_params(c, s_in, s_out):
    x = c * s_in / s_out
    r = 31
    while r > 0 and math.ldexp(x, r) > 127.0:
        r -= 1
    m = int(round_half_away(math.ldexp(x, r)))
    return (m, r) if 0 <= m <= 127 else None


def avgpool_params(k):
    """1/k ~ m/2^e: largest e with round(2^e/k) <= 255, then factors of 2 cancelled."""
    def rnd(e):
        q = Fraction(2**e, k)
        f = math.floor(q)
        return f + (1 if q - f >= Fraction(1, 2) else 0)
    e = 0
    while rnd(e + 1) <= 255:
        e += 1
    m = rnd(e)
    while m % 2 == 0 and e > 0:
        m //= 2
        e -= 1
    return m, e


def rescale(s, k, count):
    q = Fraction(int(s) * k, count)
    a = abs(q)
    f = math.floor(a)
    r = f + (1 if a - f >= Fraction(1, 2) else 0)
    return r if q >= 0 else -r


def conv_acc(x, wq, stride, pads, dil, groups, out_hw):
    """Integer convolution: x [N][C][H][W], wq [O][C/g][kh][kw] -> int64 accumulators."""
    n, c, h, w = x.shape
    o, cg, kh, kw = wq.shape
    oh, ow = out_hw
    pt, pl = pads
    sh, sw = stride
    dh, dw = dil
    need_h = (oh - 1) * sh + (kh - 1) * dh + 1
    need_w = (ow - 1) * sw + (kw - 1) * dw + 1
    xp = np.zeros((n, c, max(need_h, pt + h), max(need_w, pl + w)), dtype=np.int64)
    xp[:, :, pt:pt + h, pl:pl + w] = x
    acc = np.zeros((n, o, oh, ow), dtype=np.int64)
    og = o // groups
    for i in range(kh):
        for j in range(kw):
            xs = xp[:, :, i * dh:i * dh + (oh - 1) * sh + 1:sh, j * dw:j * dw + (ow - 1) * sw + 1:sw]
            for g in range(groups):
                acc[:, g * og:(g + 1) * og] += np.einsum(
                    "nchw,oc->nohw", xs[:, g * cg:(g + 1) * cg], wq[g * og:(g + 1) * og, :, i, j])
    return acc


def requant(acc, bq, r, y_signed, axis_shape):
    b = 0 if bq is None else bq.reshape(axis_shape)
    return saturate(rshift_round(acc + b, r.reshape(axis_shape)), y_signed)


def pool_ref(x, is_max, k, s, p_begin, p_end, out_hw, cip, m=0, e=0):
    n, c, h, w = x.shape
    oh, ow = out_hw
    y = np.zeros((n, c, oh, ow), dtype=np.int64)
    for a in range(oh):
        for b in range(ow):
            h0, w0 = a * s[0] - p_begin[0], b * s[1] - p_begin[1]
            hs = [i for i in range(h0, h0 + k[0]) if 0 <= i < h]
            ws = [j for j in range(w0, w0 + k[1]) if 0 <= j < w]
            win = x[:, :, hs][:, :, :, ws].reshape(n, c, -1)
            if is_max:
                y[:, :, a, b] = win.max(axis=2)
                continue
            ph = len([i for i in range(h0, h0 + k[0]) if -p_begin[0] <= i < h + p_end[0]])
            pw = len([j for j in range(w0, w0 + k[1]) if -p_begin[1] <= j < w + p_end[1]])
            count = ph * pw if cip else len(hs) * len(ws)
            area = k[0] * k[1]
            sums = win.sum(axis=2)
            if count != area:
                sums = np.vectorize(lambda v: rescale(v, area, count), otypes=[np.int64])(sums)
            y[:, :, a, b] = rshift_round(sums * m, e)
    return y


# ------------------------------------------------------------------ the C side


def _lib():
    path = os.path.join(BUILD, "kernels", "libac_int8_shared.so")
    if not os.path.exists(path):
        pytest.skip("%s is absent (build the ac_int8_shared target, or set AC_BUILD_DIR)" % path)
    return ctypes.CDLL(path)


def _ptr(a):
    return a.ctypes.data_as(ctypes.c_void_p)


def _codes(rng, shape, signed):
    return rng.integers(-128, 128, shape).astype(np.int8) if signed else \
        rng.integers(0, 256, shape).astype(np.uint8)


def _i64(*v):
    return [ctypes.c_int64(int(x)) for x in v]


COUNTS = {"kernel cases": 0, "layers": 0}


# ------------------------------------------------------------------ random tensors

CONV_CASES = [
    # c_in, c_out, h, w, k, stride, pad, dil, groups
    (3, 8, 9, 9, 3, 1, 1, 1, 1),
    (4, 6, 8, 7, 3, 2, 1, 1, 2),
    (8, 8, 10, 10, 3, 1, 1, 1, 8),     # depthwise
    (8, 8, 11, 9, 3, 2, 1, 1, 8),      # depthwise, stride 2
    (5, 7, 12, 12, 5, 3, 2, 2, 1),     # dilation, large pad
    (16, 4, 5, 5, 1, 1, 0, 1, 1),      # pointwise
    (2, 3, 300, 4, 3, 1, 1, 1, 1),     # long rows (> one accumulator chunk)
    (2, 2, 3, 600, 3, 1, 1, 1, 1),
]


@pytest.mark.parametrize("case", CONV_CASES)
@pytest.mark.parametrize("signs", [(True, True), (False, True), (True, False), (False, False)])
def test_conv_random(case, signs):
    lib = _lib()
    rng = np.random.default_rng(hash((case, signs)) % 2**32)
    cin, cout, h, w, k, s, p, d, g = case
    xs, ys = signs
    oh = (h + 2 * p - ((k - 1) * d + 1)) // s + 1
    ow = (w + 2 * p - ((k - 1) * d + 1)) // s + 1
    x = _codes(rng, (1, cin, h, w), xs)
    wq = rng.integers(-128, 128, (cout, cin // g, k, k)).astype(np.int8)
    bq = rng.integers(-32768, 32768, cout).astype(np.int16)
    r = rng.integers(0, 20, cout).astype(np.int32)
    for nth in (1, 3):
        y = np.zeros((1, cout, oh, ow), dtype=np.int8 if ys else np.uint8)
        lib.ac_q8t_conv(_ptr(x), int(xs), 1, cin, h, w, cout, oh, ow, k, k, s, s, p, p, d, d, g,
                        _ptr(wq), _ptr(bq), _ptr(r), int(ys), 0, 0x7fffffff, _ptr(y), nth)
        acc = conv_acc(x.astype(np.int64), wq.astype(np.int64), (s, s), (p, p), (d, d), g, (oh, ow))
        assert np.abs(acc).max() <= INT32_MAX
        ref = requant(acc, bq.astype(np.int64), r.astype(np.int64), ys, (1, cout, 1, 1))
        np.testing.assert_array_equal(y.astype(np.int64), ref)
    COUNTS["kernel cases"] += 1


def test_conv_fused_relu_clip():
    lib = _lib()
    rng = np.random.default_rng(7)
    x = _codes(rng, (1, 4, 6, 6), True)
    wq = rng.integers(-128, 128, (4, 4, 3, 3)).astype(np.int8)
    r = np.full(4, 6, dtype=np.int32)
    y = np.zeros((1, 4, 4, 4), dtype=np.uint8)
    lib.ac_q8t_conv(_ptr(x), 1, 1, 4, 6, 6, 4, 4, 4, 3, 3, 1, 1, 0, 0, 1, 1, 1, _ptr(wq), None,
                    _ptr(r), 0, 1, 200, _ptr(y), 2)
    acc = conv_acc(x.astype(np.int64), wq.astype(np.int64), (1, 1), (0, 0), (1, 1), 1, (4, 4))
    ref = np.clip(rshift_round(acc, 6), 0, 200)
    np.testing.assert_array_equal(y.astype(np.int64), ref)
    COUNTS["kernel cases"] += 1


@pytest.mark.parametrize("shape", [(1, 64, 10), (3, 200, 17), (2, 1000, 1)])
@pytest.mark.parametrize("xs", [True, False])
def test_fc_random(shape, xs):
    lib = _lib()
    m, k, n = shape
    rng = np.random.default_rng(m * 1000 + k + n)
    x = _codes(rng, (m, k), xs)
    wq = rng.integers(-128, 128, (n, k)).astype(np.int8)
    bq = rng.integers(-32768, 32768, n).astype(np.int16)
    r = rng.integers(0, 24, n).astype(np.int32)
    y = np.zeros((m, n), dtype=np.int8)
    lib.ac_q8t_fc(_ptr(x), int(xs), *_i64(m, n, k), _ptr(wq), _ptr(bq), _ptr(r), 1, _ptr(y), 2)
    acc = x.astype(np.int64) @ wq.astype(np.int64).T
    ref = saturate(rshift_round(acc + bq.astype(np.int64), r.astype(np.int64)), True)
    np.testing.assert_array_equal(y.astype(np.int64), ref)
    COUNTS["kernel cases"] += 1


@pytest.mark.parametrize("seed", range(6))
def test_add_random(seed):
    lib = _lib()
    rng = np.random.default_rng(seed)
    nin = 2 + seed % 3
    numel = 997
    signs = [bool(rng.integers(0, 2)) for _ in range(nin)]
    xs = [_codes(rng, numel, s) for s in signs]
    ths = [float(rng.uniform(0.5, 8.0)) for _ in range(nin)]
    th_out = float(rng.uniform(2.0, 16.0))
    ys = bool(seed % 2)
    ms, rs = [], []
    for s, th in zip(signs, ths):
        mr = add_params(1.0, scale_of(th, s), scale_of(th_out, ys))
        assert mr is not None
        ms.append(mr[0])
        rs.append(mr[1])
    ptrs = (ctypes.c_void_p * nin)(*[a.ctypes.data for a in xs])
    arr = lambda v: np.array(v, dtype=np.int32)
    sg, m_a, r_a = arr(signs), arr(ms), arr(rs)
    relu = int(seed % 3 == 0)
    y = np.zeros(numel, dtype=np.int8 if ys else np.uint8)
    lib.ac_q8t_add(nin, ptrs, _ptr(sg), _ptr(m_a), _ptr(r_a), ctypes.c_int64(numel), int(ys), relu,
                   _ptr(y), 3)
    total = sum(rshift_round(a.astype(np.int64) * m, r) for a, m, r in zip(xs, ms, rs))
    if relu:
        total = np.maximum(total, 0)
    np.testing.assert_array_equal(y.astype(np.int64), saturate(total, ys))
    COUNTS["kernel cases"] += 1


POOL_CASES = [
    # h, w, k, s, pad_begin, pad_end, ceil overhang rows/cols, count_include_pad
    (8, 8, 2, 2, 0, 0, 0, 0),
    (7, 7, 3, 2, 1, 1, 0, 0),
    (7, 7, 3, 2, 1, 1, 0, 1),
    (9, 9, 3, 2, 0, 0, 1, 0),     # ceil mode: one more window reading past the end
    (14, 14, 7, 7, 0, 0, 0, 0),   # k = 49
    (15, 15, 15, 1, 0, 0, 0, 0),  # k = 225
    (6, 5, 3, 1, 1, 1, 0, 1),
]


@pytest.mark.parametrize("case", POOL_CASES)
@pytest.mark.parametrize("is_max", [False, True])
@pytest.mark.parametrize("xs", [True, False])
def test_pool_random(case, is_max, xs):
    lib = _lib()
    h, w, k, s, pb, pe, extra, cip = case
    rng = np.random.default_rng(h * 31 + k * 7 + s + cip)
    oh = (h + pb + pe - k) // s + 1 + extra
    ow = (w + pb + pe - k) // s + 1 + extra
    x = _codes(rng, (2, 3, h, w), xs)
    m, e = avgpool_params(k * k)
    y = np.zeros((2, 3, oh, ow), dtype=np.int8 if xs else np.uint8)
    lib.ac_q8t_pool(int(is_max), _ptr(x), int(xs), *_i64(2, 3, h, w, oh, ow, k, k, s, s, pb, pb,
                                                         pe, pe), cip, m, e, int(xs), _ptr(y), 2)
    ref = pool_ref(x.astype(np.int64), is_max, (k, k), (s, s), (pb, pb), (pe, pe), (oh, ow), cip,
                   m, e)
    np.testing.assert_array_equal(y.astype(np.int64), saturate(ref, xs))
    COUNTS["kernel cases"] += 1


def test_avgpool_table_examples():
    assert avgpool_params(9) == (57, 9)
    assert avgpool_params(49) == (167, 13)
    assert avgpool_params(4) == (1, 2)
    assert avgpool_params(1) == (1, 0)


@pytest.mark.parametrize("len_", [1, 4, 49, 225])
def test_global_avgpool_random(len_):
    lib = _lib()
    rng = np.random.default_rng(len_)
    x = _codes(rng, (6, len_), True)
    m, e = avgpool_params(len_)
    y = np.zeros(6, dtype=np.int8)
    lib.ac_q8t_global_avgpool(_ptr(x), 1, *_i64(6, len_), m, e, 1, _ptr(y), 4)
    ref = saturate(rshift_round(x.astype(np.int64).sum(axis=1) * m, e), True)
    np.testing.assert_array_equal(y.astype(np.int64), ref)
    COUNTS["kernel cases"] += 1


LUT_FUNCS = {
    "Sigmoid": lambda v: 1.0 / (1.0 + math.exp(-v)),
    "Tanh": math.tanh,
    "SiLU": lambda v: v / (1.0 + math.exp(-v)),
    "HardSwish": lambda v: v * min(max(v / 6.0 + 0.5, 0.0), 1.0),
}


def lut_table(f, s_in, xs, s_out, ys):
    q0 = -128 if xs else 0
    vals = [f(float(q0 + i) * s_in) for i in range(256)]
    return saturate(round_half_away(np.array(vals) / s_out), ys)


@pytest.mark.parametrize("name", sorted(LUT_FUNCS))
@pytest.mark.parametrize("xs", [True, False])
def test_lut_random(name, xs):
    lib = _lib()
    rng = np.random.default_rng(len(name))
    s_in = scale_of(6.0, xs)
    ys = name in ("Tanh", "SiLU", "HardSwish")
    s_out = scale_of(1.0 if name in ("Sigmoid", "Tanh") else 6.0, ys)
    table = lut_table(LUT_FUNCS[name], s_in, xs, s_out, ys).astype(np.int16)
    x = _codes(rng, 4096, xs)
    y = np.zeros(4096, dtype=np.int8 if ys else np.uint8)
    lib.ac_q8t_lut(_ptr(x), int(xs), _ptr(table), ctypes.c_int64(4096), int(ys), _ptr(y), 3)
    idx = x.astype(np.int64) + (128 if xs else 0)
    np.testing.assert_array_equal(y.astype(np.int64), table[idx].astype(np.int64))
    COUNTS["kernel cases"] += 1


def test_quantize_random():
    lib = _lib()
    rng = np.random.default_rng(3)
    x = (rng.standard_normal(5000) * 3).astype(np.float32)
    x[:8] = np.array([0.5, -0.5, 1.5, -1.5, 2.5, -2.5, 1000, -1000], np.float32) / 64
    for signed in (True, False):
        y = np.zeros(5000, dtype=np.int8 if signed else np.uint8)
        lib.ac_q8t_quantize(_ptr(x), _ptr(y), ctypes.c_int64(5000), ctypes.c_double(1 / 64),
                            int(signed), 3)
        ref = saturate(round_half_away(x.astype(np.float64) / (1 / 64)), signed)
        np.testing.assert_array_equal(y.astype(np.int64), ref)
    COUNTS["kernel cases"] += 1


# ------------------------------------------------------------------ real layers


def _tool():
    path = os.path.join(BUILD, "quant", "ac_q8_dump")
    if not os.access(path, os.X_OK):
        pytest.skip("%s is absent (build it, or set AC_BUILD_DIR)" % path)
    return path


def run_dump(model, shape, calib, x, workdir, per_channel):
    out = os.path.join(str(workdir), "dump_%s_%d" % (os.path.basename(model), per_channel))
    os.makedirs(out, exist_ok=True)
    np.save(os.path.join(out, "calib_in.npy"), np.ascontiguousarray(calib, np.float32))
    np.save(os.path.join(out, "x_in.npy"), np.ascontiguousarray(x, np.float32))
    cmd = [_tool(), model, shape, os.path.join(out, "calib_in.npy"),
           os.path.join(out, "x_in.npy"), out] + (["--per_channel"] if per_channel else [])
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          universal_newlines=True)
    assert proc.returncode == 0, proc.stderr
    tensors = {}
    with open(os.path.join(out, "tensors.txt")) as f:
        for line in f:
            idx, name, kind, th, signed, scale, numel = line.split()
            tensors[int(idx)] = dict(name=name, codes=kind == "codes", th=float(th),
                                     signed=signed == "1", scale=float(scale),
                                     data=np.load(os.path.join(out, "t%s.npy" % idx)))
    nodes = []
    with open(os.path.join(out, "nodes.txt")) as f:
        for line in f:
            fs = line.split()
            nodes.append(dict(idx=int(fs[0]), name=fs[1], op=fs[2], mode=fs[3], kind=fs[4],
                              per_channel=fs[5] == "1",
                              inputs=[int(v) for v in fs[6].split(",")],
                              outputs=[int(v) for v in fs[7].split(",")],
                              attrs=[int(v) for v in fs[8:]], dir=out))
    return tensors, nodes


def check_layer(node, tensors):
    """Recompute one int8 layer; returns True when it was checked (and agreed)."""
    kind = node["kind"]
    t_out = tensors[node["outputs"][0]]
    y = t_out["data"].astype(np.int64)
    xin = tensors[node["inputs"][0]]
    x = xin["data"].astype(np.int64)
    if kind in ("conv", "fc"):
        w = np.load(os.path.join(node["dir"], "w%d.npy" % node["idx"]))
        bpath = os.path.join(node["dir"], "b%d.npy" % node["idx"])
        b = np.load(bpath) if os.path.exists(bpath) else None
        low = lower_weights(w, b, xin["scale"], t_out["scale"], node["per_channel"])
        assert low is not None, "%s: the spec puts it in fp32, the C plan in int8" % node["name"]
        wq, bq, r = low
        if kind == "conv":
            kh, kw, sh, sw, pt, pl, dh, dw, g = node["attrs"]
            if x.ndim == 3:  # 1-D conv: height 1
                x, y = x[:, :, None, :], y[:, :, None, :]
            cout = wq.shape[0]
            wq4 = wq.reshape(cout, -1, kh, kw)
            acc = conv_acc(x, wq4, (sh, sw), (pt, pl), (dh, dw), g, y.shape[2:])
            ref = requant(acc, bq, r, t_out["signed"], (1, cout, 1, 1))
        else:
            x2 = x.reshape(-1, wq.shape[1])
            acc = x2 @ wq.T
            ref = requant(acc, bq, r, t_out["signed"], (1, -1)).reshape(y.shape)
        assert np.abs(acc).max() <= INT32_MAX
    elif kind == "add":
        total = 0
        for ti in node["inputs"][:2]:
            t = tensors[ti]
            mr = add_params(1.0, t["scale"], t_out["scale"])
            assert mr is not None
            total = total + rshift_round(t["data"].astype(np.int64) * mr[0], mr[1])
        ref = saturate(total, t_out["signed"])
    elif kind in ("maxpool", "avgpool"):
        kh, kw, sh, sw, pt, pl, pb, pr, cip = node["attrs"]
        m, e = avgpool_params(kh * kw)
        ref = saturate(pool_ref(x, kind == "maxpool", (kh, kw), (sh, sw), (pt, pl), (pb, pr),
                                y.shape[2:], cip, m, e), t_out["signed"])
    elif kind == "global_avgpool":
        n, c = x.shape[:2]
        len_ = x[0, 0].size
        m, e = avgpool_params(len_)
        ref = saturate(rshift_round(x.reshape(n, c, -1).sum(axis=2) * m, e), t_out["signed"])
        ref = ref.reshape(y.shape)
    elif kind == "clamp":
        ref = saturate(np.maximum(x, 0), t_out["signed"])
        if node["op"] in ("Relu6", "Clip"):
            code = int(round_half_away(6.0 / t_out["scale"]))
            if 0 <= code < (127 if t_out["signed"] else 255):
                ref = np.minimum(ref, code)
    else:
        return False
    np.testing.assert_array_equal(y, ref, err_msg="layer %s (%s)" % (node["name"], kind))
    return True


def _fmnist_models():
    names = ["fmnist_plain.onnx", "fmnist_resnet.onnx", "fmnist_mbv2.onnx"]
    found = []
    for n in names:
        for d in (MODELS, os.path.join(ZOO, "fmnist")):
            p = os.path.join(d, n)
            if os.path.exists(p):
                found.append(p)
                break
    return found


def _fmnist(split, first, n):
    img = os.path.join(FMNIST_DIR, "%s-images-idx3-ubyte.gz" % split)
    if not os.path.exists(img):
        pytest.skip("%s is absent (Debian package dataset-fashion-mnist)" % img)
    x = read_idx(img)[first:first + n].astype(np.float32) / 255.0
    return ((x - np.float32(FMNIST_MEAN)) / np.float32(FMNIST_STD))[:, None].astype(np.float32)


@pytest.mark.parametrize("per_channel", [0, 1])
def test_fmnist_layers(tmp_path, per_channel):
    models = _fmnist_models()
    if not models:
        pytest.skip("no Fashion-MNIST model in %s or the zoo" % MODELS)
    calib = _fmnist("train", 0, 64)
    x = _fmnist("t10k", 0, 1)
    for model in models:
        tensors, nodes = run_dump(model, "(1,1,28,28)", calib, x, tmp_path, per_channel)
        checked = 0
        for node in nodes:
            if node["mode"] == "int8" and check_layer(node, tensors):
                checked += 1
        assert checked >= 5, "%s: only %d layers checked" % (model, checked)
        COUNTS["layers"] += checked
        record_figure("int8 numpy: %s %s layers bit-exact" % (
            os.path.basename(model), "per-channel" if per_channel else "per-tensor"), "layers",
            checked)


@pytest.mark.parametrize("per_channel", [0, 1])
def test_mobilenet_v2_layers(tmp_path, per_channel):
    model = os.path.join(ZOO, "imagenet", "mobilenet_v2_1.0_224.onnx")
    if not os.path.exists(model):
        pytest.skip("zoo model %s is absent" % model)
    from conftest import imagenet_images, load_rgb
    imgs = [load_rgb(p, 224, 224) for p in imagenet_images(5)]
    arr = np.stack(imgs).astype(np.float32).transpose(0, 3, 1, 2)
    arr = (arr - 128.0) * 0.0078125
    tensors, nodes = run_dump(model, "(1,3,224,224)", arr[:4], arr[4:5], tmp_path, per_channel)
    convs = [n for n in nodes if n["mode"] == "int8" and n["kind"] == "conv"]
    picked = convs[:6] + convs[-2:] + [n for n in nodes if n["mode"] == "int8" and
                                       n["kind"] in ("add", "global_avgpool", "fc")][:4]
    checked = sum(1 for n in picked if check_layer(n, tensors))
    assert checked >= 8
    COUNTS["layers"] += checked
    record_figure("int8 numpy: mobilenet_v2 %s layers bit-exact" % (
        "per-channel" if per_channel else "per-tensor"), "layers", checked)
