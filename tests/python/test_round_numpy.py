"""An independent second implementation of the BM1684 rounding rules
(docs/bm1684-int8.md §1-§5, §10), written from the spec in numpy / exact Python
arithmetic, compared bit for bit with the C helpers of kernels/ac_round.c.

The C helpers are loaded through ctypes from the shared library target
ac_round_shared: $AC_BUILD_DIR/kernels/libac_round_shared.so (AC_BUILD_DIR
defaults to <repo>/build). The tests skip with a message when it is absent.

Where the C code uses a closed form (frexp for the shift searches, integer
formulas for the avg-pool table) this file searches step by step or uses
fractions.Fraction, so the two do not share a derivation."""

import ctypes
import math
import os
from fractions import Fraction

import numpy as np
import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
INT64_MAX = 2**63 - 1
INT64_MIN = -2**63


# ------------------------------------------------------------------ the C library

def _load():
    build = os.environ.get("AC_BUILD_DIR", os.path.join(REPO, "build"))
    path = os.path.join(build, "kernels", "libac_round_shared.so")
    if not os.path.exists(path):
        return None, path
    lib = ctypes.CDLL(path)
    c = ctypes
    sig = {
        "ac_rshift_round": (c.c_int64, [c.c_int64, c.c_int]),
        "ac_sat_i8": (c.c_int8, [c.c_int64]),
        "ac_sat_u8": (c.c_uint8, [c.c_int64]),
        "ac_sat_i16": (c.c_int16, [c.c_int64]),
        "ac_round_half_away": (c.c_int64, [c.c_double]),
        "ac_round_half_away_i8": (c.c_int8, [c.c_double]),
        "ac_round_half_away_u8": (c.c_uint8, [c.c_double]),
        "ac_round_half_away_i16": (c.c_int16, [c.c_double]),
        "ac_round_half_away_i32": (c.c_int32, [c.c_double]),
        "ac_scale_from_th": (c.c_double, [c.c_double, c.c_bool]),
        "ac_quantize": (c.c_int32, [c.c_double, c.c_double, c.c_bool]),
        "ac_conv_shift": (c.c_int, [c.c_double, c.c_double]),
        "ac_quant_weight": (c.c_int8, [c.c_float, c.c_int, c.c_double]),
        "ac_quant_bias": (c.c_int16, [c.c_float, c.c_int, c.c_double]),
        "ac_bias_backoff": (c.c_int, [c.POINTER(c.c_float), c.c_size_t, c.c_int, c.c_double]),
        "ac_conv_shift_per_channel": (c.c_int, [c.POINTER(c.c_float), c.POINTER(c.c_float),
                                                c.c_size_t, c.c_double, c.c_double,
                                                c.POINTER(c.c_int), c.POINTER(c.c_size_t)]),
        "ac_add_params": (c.c_bool, [c.c_double, c.c_double, c.c_double,
                                     c.POINTER(c.c_int32), c.POINTER(c.c_int)]),
        "ac_mul_params": (c.c_bool, [c.c_double, c.c_double, c.c_double,
                                     c.POINTER(c.c_int32), c.POINTER(c.c_int)]),
        "ac_requant_params": (c.c_bool, [c.c_double, c.c_double,
                                         c.POINTER(c.c_int32), c.POINTER(c.c_int)]),
        "ac_leaky_params": (c.c_bool, [c.c_double, c.POINTER(c.c_int32), c.POINTER(c.c_int)]),
        "ac_prelu_params": (c.c_bool, [c.POINTER(c.c_float), c.c_size_t,
                                       c.POINTER(c.c_int32), c.POINTER(c.c_int)]),
        "ac_avgpool_params": (c.c_bool, [c.c_int64, c.POINTER(c.c_int32), c.POINTER(c.c_int)]),
        "ac_avgpool_rescale": (c.c_int64, [c.c_int64, c.c_int64, c.c_int64]),
    }
    for name, (res, args) in sig.items():
        f = getattr(lib, name)
        f.restype = res
        f.argtypes = args
    return lib, path


@pytest.fixture(scope="module")
def lib():
    lib, path = _load()
    if lib is None:
        pytest.skip("%s is absent: build the ac_round_shared target (or set AC_BUILD_DIR)"
                    % path)
    return lib


def f32ptr(a):
    a = np.ascontiguousarray(a, dtype=np.float32)
    return a, a.ctypes.data_as(ctypes.POINTER(ctypes.c_float))


# ------------------------------------------------------------------ numpy / exact reference

def round_half_away(x):
    """Round half away from zero on float64 arrays, saturated to int64, NaN -> 0.
    a - floor(a) is exact for a >= 0, so the tie test is exact."""
    x = np.asarray(x, dtype=np.float64)
    a = np.abs(x)
    fl = np.floor(a)
    with np.errstate(invalid="ignore"):  # inf - inf for infinite inputs
        up = np.where(np.isnan(a), 0.0, fl + ((a - fl) >= 0.5))
    r = np.copysign(up, x)
    out = np.zeros(x.shape, dtype=np.int64)
    ok = np.isfinite(r) & (r < 2.0**63) & (r >= -2.0**63)
    out[ok] = r[ok].astype(np.int64)
    out[~np.isnan(x) & (r >= 2.0**63)] = INT64_MAX
    out[~np.isnan(x) & (r < -2.0**63)] = INT64_MIN
    return out


def round_fraction(q):
    """Round half away from zero of an exact rational."""
    if q >= 0:
        return math.floor(q + Fraction(1, 2))
    return -math.floor(-q + Fraction(1, 2))


def rshift_round(v, r):
    return math.floor(Fraction(v, 2**r) + Fraction(1, 2))


def conv_shift(wmax, ratio):
    p = wmax * ratio
    if math.isnan(p) or math.isinf(p) or p < 0:
        return None
    if p == 0:
        return 31
    r = 31
    while p * 2.0**r >= 127:
        r -= 1
    return r


def quant_weight(w, r, ratio):
    w = np.asarray(w, dtype=np.float32).astype(np.float64)
    return np.clip(round_half_away((w * 2.0**r) * ratio), -128, 127)


def bias_codes(b, r, s_out):
    b = np.asarray(b, dtype=np.float32).astype(np.float64)
    return round_half_away((b * 2.0**r) / s_out)


def bias_backoff(b, r, s_out):
    if r < 0 or len(b) == 0:
        return r
    while r > 0:
        q = bias_codes(b, r, s_out)
        n_over = int(np.count_nonzero((q < -32768) | (q > 32767)))
        if Fraction(n_over, len(b)) <= Fraction(3, 100):
            break
        r -= 1
    return r


def per_channel(wmax, bias, ratio, s_out):
    rs = []
    for c in range(len(wmax)):
        r = conv_shift(float(wmax[c]), ratio)
        if r is None or r < 0:
            return 1, c, rs
        if bias is not None:
            while r >= 0:
                q = int(bias_codes([bias[c]], r, s_out)[0])
                if -32768 <= q <= 32767:
                    break
                r -= 1
            if r < 0:
                return 2, c, rs
        rs.append(r)
    return 0, None, rs


def add_params(c, s_in, s_out):
    x = c * s_in / s_out
    if math.isnan(x) or math.isinf(x) or x < 0:
        return False, None, None
    if x == 0:
        return True, 0, 31
    r = 31
    while r > 0 and x * 2.0**r > 127:
        r -= 1
    m = int(round_half_away(x * 2.0**r))
    return 0 <= m <= 127, m, r


def mult_shift(x, r_max):
    """Least exact error |m/2^r - |x||, m <= 127, ties to the smaller r."""
    if math.isnan(x) or math.isinf(x):
        return False, None, None
    a = Fraction(abs(x))
    best = None
    for r in range(r_max + 1):
        m = round_fraction(a * 2**r)
        if m > 127:
            break
        err = abs(Fraction(m, 2**r) - a)
        if best is None or err < best[0]:
            best = (err, m, r)
    if best is None:
        return False, None, None
    return True, (-best[1] if x < 0 else best[1]), best[2]


def prelu_params(alpha):
    alpha = [Fraction(float(a)) for a in np.asarray(alpha, dtype=np.float32)]
    best = None
    for r in range(32):
        ms = [round_fraction(abs(a) * 2**r) for a in alpha]
        if any(m > 127 for m in ms):
            break
        worst = max([abs(Fraction(m, 2**r) - abs(a)) for m, a in zip(ms, alpha)] or [0])
        if best is None or worst < best[0]:
            best = (worst, r)
    if best is None:
        return False, None, None
    r = best[1]
    ms = [round_fraction(abs(a) * 2**r) * (-1 if a < 0 else 1) for a in alpha]
    return True, ms, r


def avgpool_params(k):
    best = None
    for e in range(64):
        v = round_fraction(Fraction(2**e, k))
        if v <= 255:
            best = (v, e)
    m, e = best
    while e > 0 and m % 2 == 0:
        m //= 2
        e -= 1
    return m, e


# ------------------------------------------------------------------ value generators

def interesting_doubles(rng, n):
    """Random doubles rich in exact ties, near-ties and extreme magnitudes."""
    ints = rng.integers(-70000, 70000, n).astype(np.float64)
    halves = ints + 0.5
    near = np.nextafter(halves, np.where(rng.random(n) < 0.5, -np.inf, np.inf))
    wide = rng.standard_normal(n) * 10.0 ** rng.integers(-8, 12, n)
    dyadic = rng.integers(-2**20, 2**20, n) / 2.0 ** rng.integers(0, 12, n)
    special = np.array([0.0, -0.0, 0.5, -0.5, 1.5, -1.5, 2.5, -2.5, 127.5, -128.5, 254.5,
                        32767.5, -32768.5, 2147483647.5, -2147483648.5, 1e300, -1e300,
                        np.inf, -np.inf, np.nan, 2.0**63, -2.0**63, 2.0**53 + 1,
                        np.nextafter(0.5, 0), -np.nextafter(0.5, 0)])
    return np.concatenate([ints, halves, near, wide, dyadic, special])


# ------------------------------------------------------------------ tests

def test_rshift_round_and_saturation(lib):
    rng = np.random.default_rng(1)
    vals = list(rng.integers(-2**40, 2**40, 3000)) + list(range(-70, 70)) + \
        [2**31 - 1, -2**31, 2**31, -2**31 - 1]
    for v in vals:
        v = int(v)
        for r in (0, 1, 2, 3, 7, 8, 15, 16, 31, 32):
            assert lib.ac_rshift_round(v, r) == rshift_round(v, r), (v, r)
    for v in list(range(-40000, 40000, 7)) + [2**62, -2**62, -129, -128, 127, 128, 255, 256]:
        assert lib.ac_sat_i8(v) == min(max(v, -128), 127)
        assert lib.ac_sat_u8(v) == min(max(v, 0), 255)
        assert lib.ac_sat_i16(v) == min(max(v, -32768), 32767)


def test_round_half_away(lib):
    x = interesting_doubles(np.random.default_rng(2), 4000)
    want = round_half_away(x)
    for xi, w in zip(x, want):
        xi = float(xi)
        assert lib.ac_round_half_away(xi) == w, xi
        assert lib.ac_round_half_away_i8(xi) == min(max(w, -128), 127), xi
        assert lib.ac_round_half_away_u8(xi) == min(max(w, 0), 255), xi
        assert lib.ac_round_half_away_i16(xi) == min(max(w, -32768), 32767), xi
        assert lib.ac_round_half_away_i32(xi) == min(max(w, -2**31), 2**31 - 1), xi


def test_quantize_input(lib):
    rng = np.random.default_rng(3)
    th = np.float64(rng.uniform(0.01, 20.0, 300))
    for t in th:
        for signed in (True, False):
            s = t / 127.0 if signed else t / 255.0
            assert lib.ac_scale_from_th(float(t), signed) == s
            x = np.concatenate([rng.uniform(-1.2 * t, 1.2 * t, 20),
                                (rng.integers(-130, 260, 20) + 0.5) * s])
            q = round_half_away(x / s)
            q = np.clip(q, -128, 127) if signed else np.clip(q, 0, 255)
            for xi, qi in zip(x, q):
                assert lib.ac_quantize(float(xi), float(s), signed) == qi, (xi, s, signed)


def test_conv_shift(lib):
    rng = np.random.default_rng(4)
    wmax = np.float32(np.abs(rng.standard_normal(3000)) * 10.0 ** rng.integers(-6, 4, 3000))
    ratio = rng.uniform(0.001, 4.0, 3000) * 2.0 ** rng.integers(-6, 6, 3000)
    cases = list(zip(wmax.tolist(), ratio.tolist()))
    # exact powers of two and the 127/128 edge, where the strict bound matters
    cases += [(2.0**e, 1.0) for e in range(-40, 10)]
    cases += [(127.0 * 2.0**e, 1.0) for e in range(-40, 3)]
    cases += [(127.0 / 128.0, 1.0), (float(np.nextafter(127.0 / 128.0, 0)), 1.0), (0.0, 3.0),
              (254.0, 0.5)]
    for w, r in cases:
        want = conv_shift(w, r)
        got = lib.ac_conv_shift(w, r)
        assert got == want, (w, r, got, want)


def test_weight_and_bias_codes(lib):
    rng = np.random.default_rng(5)
    for _ in range(200):
        r = int(rng.integers(0, 32))
        ratio = float(rng.uniform(0.01, 3.0))
        s_out = float(rng.uniform(1e-4, 1.0))
        w = np.float32(rng.standard_normal(40) * 2.0 ** -r * 130 / ratio)
        # dyadic weights produce exact .5 ties after scaling
        w[:10] = np.float32((rng.integers(-300, 300, 10) + 0.5) * 2.0 ** -r)
        want_w = quant_weight(w, r, ratio)
        b = np.float32(rng.standard_normal(40) * 40000 * s_out * 2.0 ** -r)
        want_b = np.clip(bias_codes(b, r, s_out), -32768, 32767)
        for wi, qi in zip(w, want_w):
            assert lib.ac_quant_weight(float(wi), r, ratio) == qi, (wi, r, ratio)
        for bi, qi in zip(b, want_b):
            assert lib.ac_quant_bias(float(bi), r, s_out) == qi, (bi, r, s_out)


def test_bias_backoff_and_per_channel(lib):
    rng = np.random.default_rng(6)
    for trial in range(300):
        n = int(rng.integers(1, 120))
        s_out = float(rng.uniform(0.001, 0.1))
        r0 = int(rng.integers(-2, 32))
        b = np.float32(rng.standard_normal(n) * s_out * 200)
        k = int(rng.integers(0, max(1, n // 10) + 1))
        b[:k] = np.float32(rng.uniform(1, 2, k) * 32768 * s_out * 2.0 ** -rng.integers(0, 8, k))
        arr, ptr = f32ptr(b)
        assert lib.ac_bias_backoff(ptr, n, r0, s_out) == bias_backoff(b, r0, s_out), trial

        wmax = np.float32(np.abs(rng.standard_normal(n)) * 10.0 ** rng.integers(-3, 3, n))
        if trial % 5 == 0:
            wmax[int(rng.integers(0, n))] = 0.0
        ratio = float(rng.uniform(0.05, 2.0))
        warr, wptr = f32ptr(wmax)
        rs = (ctypes.c_int * n)()
        bad = ctypes.c_size_t(12345)
        use_bias = trial % 3 != 0
        st = lib.ac_conv_shift_per_channel(wptr, ptr if use_bias else None, n, ratio, s_out,
                                           rs, ctypes.byref(bad))
        want_st, want_bad, want_rs = per_channel(wmax, b if use_bias else None, ratio, s_out)
        assert st == want_st, trial
        if st == 0:
            assert list(rs) == want_rs, trial
        else:
            assert bad.value == want_bad, trial


def test_add_params(lib):
    rng = np.random.default_rng(7)
    th = rng.uniform(0.01, 30.0, (2000, 2))
    signed = rng.random((2000, 2)) < 0.5
    coef = rng.choice([1.0, 1.0, 0.5, 2.0, -1.0, 0.25, 3.0], 2000)
    cases = []
    for (ti, to), (si, so), c in zip(th, signed, coef):
        cases.append((float(c), ti / (127.0 if si else 255.0), to / (127.0 if so else 255.0)))
    cases += [(1.0, 127.0 / 128.0, 1.0), (1.0, 127.4, 1.0), (1.0, 127.5, 1.0), (1.0, 1e-12, 1.0),
              (0.0, 1.0, 1.0), (1.0, 1.0, 1.0), (1.0, 0.1, 1.0)]
    for c, s_in, s_out in cases:
        m, r = ctypes.c_int32(), ctypes.c_int()
        ok = lib.ac_add_params(c, s_in, s_out, ctypes.byref(m), ctypes.byref(r))
        want_ok, want_m, want_r = add_params(c, s_in, s_out)
        assert ok == want_ok, (c, s_in, s_out)
        if want_m is not None and want_ok:
            assert (m.value, r.value) == (want_m, want_r), (c, s_in, s_out)


def test_mul_requant_leaky_prelu(lib):
    rng = np.random.default_rng(8)
    for _ in range(1500):
        s_a, s_b, s_o = rng.uniform(0.001, 0.2, 3)
        m, r = ctypes.c_int32(), ctypes.c_int()
        ok = lib.ac_mul_params(s_a, s_b, s_o, ctypes.byref(m), ctypes.byref(r))
        want = mult_shift(s_a * s_b / s_o, 31)
        assert ok == (want[0] and 0 <= want[1] <= 127)
        if ok:
            assert (m.value, r.value) == want[1:]
        x = float(rng.uniform(0.0, 3.0) * 2.0 ** rng.integers(-12, 7))
        ok = lib.ac_requant_params(x, 1.0, ctypes.byref(m), ctypes.byref(r))
        want = mult_shift(x, 30)
        assert ok == want[0], x
        if ok:
            assert (m.value, r.value) == want[1:], x
        alpha = float(rng.choice([-1, 1]) * rng.uniform(0, 1) ** 3)
        ok = lib.ac_leaky_params(alpha, ctypes.byref(m), ctypes.byref(r))
        want = mult_shift(alpha, 31)
        assert ok and (m.value, r.value) == want[1:], alpha
    m, r = ctypes.c_int32(), ctypes.c_int()
    assert lib.ac_leaky_params(0.1, ctypes.byref(m), ctypes.byref(r))
    assert (m.value, r.value) == (51, 9)  # spec §5
    for _ in range(200):
        n = int(rng.integers(1, 9))
        alpha = np.float32(rng.uniform(-0.5, 0.5, n) * 2.0 ** rng.integers(-6, 3))
        arr, ptr = f32ptr(alpha)
        ms = (ctypes.c_int32 * n)()
        ok = lib.ac_prelu_params(ptr, n, ms, ctypes.byref(r))
        want_ok, want_ms, want_r = prelu_params(alpha)
        assert ok == want_ok, alpha
        if ok:
            assert (list(ms), r.value) == (want_ms, want_r), alpha


def test_avgpool(lib):
    m, e = ctypes.c_int32(), ctypes.c_int()
    for k in list(range(1, 226)) + [256, 1000, 4096, 50176, 2**24]:
        assert lib.ac_avgpool_params(k, ctypes.byref(m), ctypes.byref(e))
        assert (m.value, e.value) == avgpool_params(k), k
    assert avgpool_params(9) == (57, 9) and avgpool_params(49) == (167, 13)
    assert avgpool_params(4) == (1, 2) and avgpool_params(1) == (1, 0)
    rng = np.random.default_rng(9)
    for _ in range(5000):
        k = int(rng.integers(1, 226))
        count = int(rng.integers(1, k + 1))
        s = int(rng.integers(-128 * count, 128 * count))
        assert lib.ac_avgpool_rescale(s, k, count) == round_fraction(Fraction(s * k, count))
