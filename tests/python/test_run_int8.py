"""`autocalib run` and `autocalib info` on int8 model files (docs/int8-model-format.md).

An int8 model is made once per session by `autocalib quantize` (abs-max thresholds, a few
batches of Fashion-MNIST) from the bundled fmnist_plain.onnx. The tests check what a user
and a downstream tool see:
- the file is the documented msgpack layout (read here with Python's msgpack);
- --dump_tensors writes int8/uint8 codes for int8 tensors (dtype from the stored table's
  sign), the network input's codes equal round-half-away(x / (th/127)) clamped, and the
  float output is exactly the dequantized output codes; a layer kept in fp32 dumps float32;
- another batch size gives the same rows; images (PNG folder + ImageList), our LMDB and idx
  files run with top-1; corrupt files are clean errors.
"""

import os
import subprocess
import sys

import msgpack
import numpy as np
import pytest

from conftest import FMNIST_DIR, MODELS, REPO

sys.path.insert(0, os.path.join(REPO, "python"))
import lmdb_save  # noqa: E402

MODEL = os.path.join(MODELS, "fmnist_plain.onnx")
SAMPLE = os.path.join(MODELS, "fmnist_sample.npy")
LABELS = os.path.join(MODELS, "fmnist_sample_labels.npy")
PREPROCESS = "mean_value=72.93,scale=0.011109"
IDX_IMAGES = os.path.join(FMNIST_DIR, "t10k-images-idx3-ubyte.gz")
IDX_LABELS = os.path.join(FMNIST_DIR, "t10k-labels-idx1-ubyte.gz")


def ac(ac_bin, *args):
    return subprocess.run([ac_bin] + [str(a) for a in args], stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, universal_newlines=True, timeout=600)


def quantize(ac_bin, out_dir, *extra):
    if not os.path.exists(IDX_IMAGES):
        pytest.skip("Fashion-MNIST idx files not found in %s" % FMNIST_DIR)
    p = ac(ac_bin, "quantize", "--model", MODEL,
           "--calib_idx_images", os.path.join(FMNIST_DIR, "train-images-idx3-ubyte.gz"),
           "--calib_idx_labels", os.path.join(FMNIST_DIR, "train-labels-idx1-ubyte.gz"),
           "--test_idx_images", IDX_IMAGES, "--test_idx_labels", IDX_LABELS,
           "--data_preproccess_str", PREPROCESS, "--input_data_shape", "(16,1,28,28)",
           "--calib_iterations", "3", "--test_iterations", "2", "--th_method", "MAX",
           "--output_dir", out_dir, "--quiet", *extra)
    assert p.returncode == 0, p.stderr
    files = [f for f in os.listdir(out_dir) if f.endswith(".int8.acq")]
    assert len(files) == 1, os.listdir(out_dir)
    return os.path.join(out_dir, files[0])


@pytest.fixture(scope="module")
def int8_model(ac_bin, tmp_path_factory):
    return quantize(ac_bin, str(tmp_path_factory.mktemp("q")))


def load_doc(path):
    with open(path, "rb") as f:
        return msgpack.unpackb(f.read(), raw=False, strict_map_key=False)


def table_of(doc):
    return {name: (th, mn, mx) for name, th, mn, mx in doc["calibration_table"]}


def safe(name):
    s = "".join(c if c.isalnum() or c in ".-_" else "_" for c in name)
    return "_" + s[1:] if s.startswith(".") else s


def test_file_is_the_documented_layout(int8_model):
    doc = load_doc(int8_model)
    assert list(doc) == ["format", "version", "producer", "graph", "options",
                         "calibration_table", "plan"]
    assert doc["format"] == "autocalib-int8" and doc["version"] == 1
    g = doc["graph"]
    assert list(g) == ["name", "opset", "tensors", "nodes", "inputs", "outputs"]
    assert len(doc["plan"]) == len(g["nodes"])
    tensors = g["tensors"]
    for node, entry in zip(g["nodes"], doc["plan"]):
        assert entry["node"] == node["name"]
        if entry["kind"] == "conv":
            w = tensors[node["inputs"][1]]
            assert len(entry["params"]["weights"]) == int(np.prod(w["dims"]))
            assert len(entry["params"]["rshift"]) == w["dims"][0]
            assert len(entry["params"]["bias"]) == 2 * w["dims"][0]
            assert all(0 <= r <= 31 for r in entry["params"]["rshift"])
    # Constants hold exactly their bytes.
    for t in tensors:
        if t["data"] is not None:
            assert len(t["data"]) == int(np.prod(t["dims"], dtype=np.int64)) * 4


def test_dump_tensors_writes_codes(ac_bin, int8_model, tmp_path):
    dump, out = tmp_path / "dump", tmp_path / "y.npy"
    p = ac(ac_bin, "run", "--model", int8_model, "--input", SAMPLE, "--output", out,
           "--dump_tensors", dump)
    assert p.returncode == 0, p.stderr
    doc = load_doc(int8_model)
    table = table_of(doc)
    g = doc["graph"]
    checked = 0
    for t in g["tensors"]:
        if t["data"] is not None or t["dtype"] != 1 or t["name"] not in table:
            continue
        path = dump / (safe(t["name"]) + ".npy")
        assert path.exists(), path
        a = np.load(str(path))
        th, mn, mx = table[t["name"]]
        assert a.dtype == (np.int8 if mn < 0 else np.uint8), (t["name"], a.dtype, mn)
        assert list(a.shape) == t["dims"]
        checked += 1
    assert checked >= 10
    # The input's codes: q = clamp(round_half_away(x / (th/127))), a division (spec §10.1).
    x = np.load(SAMPLE).astype(np.float64)
    name = g["tensors"][g["inputs"][0]]["name"]
    th, mn, mx = table[name]
    lo, hi, d = (-128, 127, 127.0) if mn < 0 else (0, 255, 255.0)
    v = x / (th / d)
    want = np.clip(np.sign(v) * np.floor(np.abs(v) + 0.5), lo, hi)
    got = np.load(str(dump / (safe(name) + ".npy"))).astype(np.float64)
    assert np.array_equal(got, want)
    # The float output is the dequantized output codes: float32(q * scale).
    oname = g["tensors"][g["outputs"][0]]["name"]
    th, mn, mx = table[oname]
    q = np.load(str(dump / (safe(oname) + ".npy"))).astype(np.float64)
    y = np.load(str(out))
    assert y.dtype == np.float32
    assert np.array_equal(y, (q * (th / (127.0 if mn < 0 else 255.0))).astype(np.float32))
    labels = np.load(LABELS)
    assert (y.argmax(1) == labels).mean() >= 0.8
    assert "as int8/uint8 codes" in p.stdout


def test_fp32_layer_dumps_float(ac_bin, tmp_path):
    doc_model = quantize(ac_bin, str(tmp_path / "q"), "--fp32_layers", "logits")
    doc = load_doc(doc_model)
    last = doc["plan"][-1]
    assert last["mode"] == "fp32" and last["reason"] == "forced" and last["params"] == {}
    dump = tmp_path / "dump"
    p = ac(ac_bin, "run", "--model", doc_model, "--input", SAMPLE, "--dump_tensors", dump)
    assert p.returncode == 0, p.stderr
    assert np.load(str(dump / "logits.npy")).dtype == np.float32
    g = doc["graph"]
    gemm_in = g["tensors"][g["nodes"][-1]["inputs"][0]]["name"]
    assert np.load(str(dump / (safe(gemm_in) + ".npy"))).dtype in (np.int8, np.uint8)
    p = ac(ac_bin, "info", doc_model)
    assert p.returncode == 0, p.stderr
    assert "fp32  forced" in p.stdout and "1 fp32 layers" in p.stdout


def test_other_batch_size_gives_the_same_rows(ac_bin, int8_model, tmp_path):
    x = np.load(SAMPLE)
    np.save(str(tmp_path / "x3.npy"), x[5:8])
    full, part = tmp_path / "full.npy", tmp_path / "part.npy"
    assert ac(ac_bin, "run", "--model", int8_model, "--input", SAMPLE, "--output",
              full).returncode == 0
    p = ac(ac_bin, "run", "--model", int8_model, "--input", tmp_path / "x3.npy", "--output",
           part, "--threads", "1")
    assert p.returncode == 0, p.stderr
    assert np.array_equal(np.load(str(part)), np.load(str(full))[5:8])


def test_datasets_idx_images_lmdb(ac_bin, int8_model, tmp_path):
    # idx: top-1 over 32 test images, and the collected outputs.
    out = tmp_path / "idx.npy"
    p = ac(ac_bin, "run", "--model", int8_model, "--idx_images", IDX_IMAGES, "--idx_labels",
           IDX_LABELS, "--data_preproccess_str", PREPROCESS, "--test_iterations", 2,
           "--output", out)
    assert p.returncode == 0, p.stderr
    assert "top-1:" in p.stdout and "/ 32 =" in p.stdout
    y_idx = np.load(str(out))
    assert y_idx.shape == (32, 10)
    # The first 16 are the bundled sample batch, preprocessed there by numpy
    # ((x/255 - mean)/std, not (x - mean_value)*scale): float rounding may move a
    # few codes by one step, no more.
    y_npy = tmp_path / "npy.npy"
    assert ac(ac_bin, "run", "--model", int8_model, "--input", SAMPLE, "--output",
              y_npy).returncode == 0
    y16 = np.load(str(y_npy))
    assert (y_idx[:16].argmax(1) == y16.argmax(1)).sum() >= 15
    assert np.abs(y_idx[:16] - y16).max() <= 0.1 * np.abs(y16).max()
    # A PNG folder with an ImageList (labels), 5 images: a short last batch.
    from PIL import Image
    import gzip
    with gzip.open(IDX_IMAGES) as f:
        raw = np.frombuffer(f.read(), np.uint8)[16:16 + 5 * 784].reshape(5, 28, 28)
    labels = np.load(LABELS)[:5]
    lines = []
    for i in range(5):
        Image.fromarray(raw[i]).save(str(tmp_path / ("im%d.png" % i)))
        lines.append("im%d.png %d" % (i, labels[i]))
    (tmp_path / "list.txt").write_text("\n".join(lines) + "\n")
    out = tmp_path / "img.npy"
    p = ac(ac_bin, "run", "--model", int8_model, "--image_source", tmp_path / "list.txt",
           "--data_preproccess_str", PREPROCESS, "--output", out)
    assert p.returncode == 0, p.stderr
    assert "top-1:" in p.stdout and "/ 5 =" in p.stdout
    assert np.array_equal(np.load(str(out)), y_idx[:5])
    # Our LMDB (preprocessed tensors) from the sample batch.
    ds = lmdb_save.LMDB_Dataset(str(tmp_path / "db"))
    ds.put(np.load(SAMPLE)[:8], labels=[int(v) for v in np.load(LABELS)[:8]])
    ds.close()
    out = tmp_path / "db.npy"
    p = ac(ac_bin, "run", "--model", int8_model, "--lmdb_path", tmp_path / "db", "--output", out)
    assert p.returncode == 0, p.stderr
    assert "/ 8 =" in p.stdout
    assert np.array_equal(np.load(str(out)), y16[:8])


def test_fp32_model_on_images(ac_bin, tmp_path):
    if not os.path.exists(IDX_IMAGES):
        pytest.skip("Fashion-MNIST idx files not found")
    p = ac(ac_bin, "run", "--model", MODEL, "--input_data_shape", "(8,1,28,28)", "--idx_images",
           IDX_IMAGES, "--idx_labels", IDX_LABELS, "--data_preproccess_str", PREPROCESS,
           "--test_iterations", 2)
    assert p.returncode == 0, p.stderr
    assert "fp32 model" in p.stdout and "top-1:" in p.stdout and "/ 16 =" in p.stdout


def test_info_prints_the_plan(ac_bin, int8_model):
    p = ac(ac_bin, "info", int8_model)
    assert p.returncode == 0, p.stderr
    assert "autocalib int8 model, format version 1" in p.stdout
    assert "int8  conv r=" in p.stdout and "int8  fc r=" in p.stdout


@pytest.mark.parametrize("cut", [1, 30, 1000, -100])
def test_corrupt_int8_model_is_a_clean_error(ac_bin, int8_model, tmp_path, cut):
    data = open(int8_model, "rb").read()
    bad = tmp_path / "bad.int8.acq"
    bad.write_bytes(data[:cut])
    for cmd in (["run", "--model", bad, "--input", SAMPLE], ["info", bad]):
        p = ac(ac_bin, *cmd)
        # Cut before the magic the file is not an int8 model: an unknown format; after it,
        # a field-naming error. Either way exit status 1 with one message, no crash.
        assert p.returncode == 1, (cut, p.stderr)
        assert p.stderr.startswith("autocalib ") and len(p.stderr.splitlines()) == 1
