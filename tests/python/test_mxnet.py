"""The MXNet importer (graph/ac_mxnet.c) against MXNet itself.

mxnet_make_models.py (run in .venv-mxnet, MXNet 1.9.1 from PyPI: AC_MXNET=1 ./setup.sh, or
$AC_MXNET_PYTHON) exports a symbol-API net covering every mapped op and Gluon's
resnet18_v1, with random weights and BN statistics, and MXNet's outputs on a random
input. `autocalib run --model NAME-symbol.json --weights NAME-0000.params` must give the
same outputs.

MXNet 1.9 writes NDArrays in its V2 layout only; the V1, V3, legacy and float64 layouts
the reader also accepts are checked by rewriting MXNet's file in each of them with
write_params() below, which follows the byte layout documented in docs/importers.md, and
running the same model: the outputs must be identical. Errors (a truncated .params, an
unsupported op) name the file, the offset or node and the rule. Skips when the MXNet
venv is absent."""

import json
import os
import struct
import subprocess

import numpy as np
import pytest

import conftest as h

TOL = 1e-5
V1, V2, V3 = 0xF993FAC8, 0xF993FAC9, 0xF993FACA


def _mx_python():
    return os.environ.get("AC_MXNET_PYTHON", os.path.join(h.REPO, ".venv-mxnet", "bin", "python"))


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    py = _mx_python()
    if not os.access(py, os.X_OK):
        pytest.skip("no MXNet venv at %s (AC_MXNET=1 ./setup.sh, or set AC_MXNET_PYTHON)" % py)
    d = tmp_path_factory.mktemp("mx")
    proc = subprocess.run([py, os.path.join(h.REPO, "tests", "python", "mxnet_make_models.py"), str(d)],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return str(d)


def read_params(path):
    """MXNet's V2 NDArray list -> [(name, array)] (the documented layout)."""
    b = open(path, "rb").read()
    magic, _, n = struct.unpack_from("<QQQ", b, 0)
    assert magic == 0x112
    pos, arrays = 24, []
    for _ in range(n):
        m, stype, ndim = struct.unpack_from("<IiI", b, pos)
        assert m == V2 and stype == 0
        pos += 12
        dims = struct.unpack_from("<%dq" % ndim, b, pos)
        pos += 8 * ndim + 8  # dims, then dev_type and dev_id
        (flag,) = struct.unpack_from("<i", b, pos)
        pos += 4
        assert flag == 0
        cnt = int(np.prod(dims))
        arrays.append(np.frombuffer(b, np.float32, cnt, pos).reshape(dims))
        pos += 4 * cnt
    (nn,) = struct.unpack_from("<Q", b, pos)
    pos += 8
    names = []
    for _ in range(nn):
        (ln,) = struct.unpack_from("<Q", b, pos)
        names.append(b[pos + 8:pos + 8 + ln].decode())
        pos += 8 + ln
    assert pos == len(b)
    return list(zip(names, arrays))


def write_params(path, items, layout, f64=False):
    """Write [(name, array)] as an NDArray list in layout 'v1', 'v2', 'v3' or 'legacy'."""
    out = [struct.pack("<QQQ", 0x112, 0, len(items))]
    for _, a in items:
        if layout == "legacy":
            out.append(struct.pack("<I", a.ndim) + struct.pack("<%dI" % a.ndim, *a.shape))
        else:
            magic = {"v1": V1, "v2": V2, "v3": V3}[layout]
            out.append(struct.pack("<I", magic))
            if layout != "v1":
                out.append(struct.pack("<i", 0))
            out.append(struct.pack("<i" if layout == "v3" else "<I", a.ndim))
            out.append(struct.pack("<%dq" % a.ndim, *a.shape))
        out.append(struct.pack("<iii", 1, 0, 1 if f64 else 0))
        out.append(np.ascontiguousarray(a, np.float64 if f64 else np.float32).tobytes())
    out.append(struct.pack("<Q", len(items)))
    for name, _ in items:
        out.append(struct.pack("<Q", len(name)) + name.encode())
    with open(path, "wb") as f:
        f.write(b"".join(out))


def _run(ac_bin, models, name, tmp_path, params=None, tag="ours"):
    with open(os.path.join(models, name + ".json")) as f:
        meta = json.load(f)
    out = str(tmp_path / ("%s_%s.npy" % (name, tag)))
    proc = subprocess.run([ac_bin, "run", "--model", os.path.join(models, name + "-symbol.json"),
                           "--weights", params or os.path.join(models, name + "-0000.params"),
                           "--input_data_shape", h.shape_arg(meta["shape"]),
                           "--input", os.path.join(models, name + "_in.npy"), "--output", out],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True)
    assert proc.returncode == 0, proc.stderr
    return np.load(out), meta


@pytest.mark.parametrize("name", ["symnet", "resnet18"])
def test_matches_mxnet(ac_bin, models, tmp_path, name):
    got, meta = _run(ac_bin, models, name, tmp_path)
    ref = np.load(os.path.join(models, name + "_out.npy"))
    assert got.shape == ref.shape
    err = h.rel_err(got, ref)
    h.record_figure("mxnet %s vs MXNet 1.9.1" % name, "output", err)
    assert err < TOL, err


def test_symnet_covers_the_ops(models):
    with open(os.path.join(models, "symnet.json")) as f:
        ops = set(json.load(f)["ops"])
    assert {"Convolution", "BatchNorm", "LeakyReLU", "Pooling", "Concat", "clip", "Dropout",
            "FullyConnected", "SoftmaxOutput", "elemwise_add"} <= ops


@pytest.mark.parametrize("layout,f64", [("v1", False), ("v3", False), ("legacy", False), ("v2", True)])
def test_params_layouts_read_alike(ac_bin, models, tmp_path, layout, f64):
    items = read_params(os.path.join(models, "symnet-0000.params"))
    p = str(tmp_path / ("symnet-%s.params" % layout))
    write_params(p, items, layout, f64)
    base, _ = _run(ac_bin, models, "symnet", tmp_path, tag="base")
    got, _ = _run(ac_bin, models, "symnet", tmp_path, params=p, tag=layout)
    np.testing.assert_array_equal(got, base)


def test_errors_name_offset_and_node(ac_bin, models, tmp_path):
    src = os.path.join(models, "symnet-0000.params")
    cut = str(tmp_path / "cut.params")
    with open(src, "rb") as f, open(cut, "wb") as g:
        g.write(f.read()[:200])
    sym = os.path.join(models, "symnet-symbol.json")
    proc = subprocess.run([ac_bin, "info", sym, "--weights", cut, "--input_data_shape", "(1,3,17,17)"],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True)
    assert proc.returncode != 0
    assert "cut.params: offset 80: array 0 needs 864 data bytes, 120 left" in proc.stderr
    with open(sym) as f:
        js = json.load(f)
    js["nodes"][9]["op"] = "Crop"
    bad = str(tmp_path / "bad-symbol.json")
    with open(bad, "w") as f:
        json.dump(js, f)
    proc = subprocess.run([ac_bin, "info", bad, "--weights", src, "--input_data_shape", "(1,3,17,17)"],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True)
    assert proc.returncode != 0
    assert "bad-symbol.json: node 9 'r1' (Crop): op 'Crop' is not supported" in proc.stderr
    proc = subprocess.run([ac_bin, "info", sym, "--weights", src],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True)
    assert proc.returncode != 0 and "input 'data' has no shape" in proc.stderr
