"""bench/peer_torch_ptq.py (the PyTorch post-training-quantization peer) runs end to end on
the bundled fmnist_plain model and writes a JSON table with sane figures."""

import json
import os
import subprocess
import sys

import pytest

import conftest as h

SCRIPT = os.path.join(h.REPO, "bench", "peer_torch_ptq.py")


def test_peer_fmnist_plain(tmp_path):
    pytest.importorskip("torch")
    pytest.importorskip("onnx2torch", reason="onnx2torch is not installed "
                        "(pip install -r python/requirements-test.txt into the venv)")
    pytest.importorskip("onnxruntime")
    if not os.path.exists(os.path.join(h.FMNIST_DIR, "t10k-images-idx3-ubyte.gz")):
        pytest.skip("%s is absent (Debian package dataset-fashion-mnist)" % h.FMNIST_DIR)
    if not os.path.exists(os.path.join(h.MODELS, "fmnist_plain.onnx")):
        pytest.skip("models/fmnist_plain.onnx is absent")
    out = tmp_path / "peer.json"
    proc = subprocess.run([sys.executable, SCRIPT, "--models", "fmnist_plain", "--limit", "200",
                           "--json", str(out)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          universal_newlines=True)
    assert proc.returncode == 0, proc.stdout[-3000:]
    doc = json.loads(out.read_text())
    assert doc["skipped"] == {}
    rows = doc["rows"]
    assert [r["method"] for r in rows] == ["ptq per-tensor", "ptq per-channel"]
    for r in rows:
        assert r["model"] == "fmnist_plain"
        assert r["n_test"] == 200 and r["n_calib"] == 300
        assert r["fp32_top1"] > 0.8, r
        # torch (onnx2torch) and onnxruntime run the same fp32 graph.
        assert abs(r["fp32_top1"] - r["fp32_top1_ort"]) <= 1.0 / 200, r
        assert abs(r["fp32_top1"] - r["int8_top1"]) <= 0.05, r
        assert abs(r["drop_pts"] - 100.0 * (r["fp32_top1"] - r["int8_top1"])) < 1e-9
        assert r["calib_s"] > 0 and r["eval_s"] > 0
    assert "| fmnist_plain | ptq per-tensor |" in proc.stdout


def test_peer_rejects_unknown_model():
    proc = subprocess.run([sys.executable, SCRIPT, "--models", "no_such_net"],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True)
    assert proc.returncode == 2
    assert "unknown model(s) no_such_net" in proc.stderr


def test_peer_skips_imagenet_without_zoo(tmp_path):
    pytest.importorskip("torch")
    pytest.importorskip("onnx2torch", reason="onnx2torch is not installed")
    out = tmp_path / "peer.json"
    absent = str(tmp_path / "no_zoo")
    proc = subprocess.run([sys.executable, SCRIPT, "--models", "mobilenet_v2", "--zoo", absent,
                           "--json", str(out)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          universal_newlines=True)
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert "mobilenet_v2: skipped: model zoo %s is absent" % absent in proc.stdout
    doc = json.loads(out.read_text())
    assert doc["rows"] == [] and "mobilenet_v2" in doc["skipped"]
