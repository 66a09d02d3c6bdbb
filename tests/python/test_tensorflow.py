"""The TensorFlow frozen-GraphDef importer (graph/ac_tf.c) against TensorFlow itself.

tf_make_models.py (run in .venv-tf, TensorFlow 2.21 from PyPI: AC_TF=1 ./setup.sh, or
$AC_TF_PYTHON) builds and freezes Keras MobileNetV2 (random weights and BN statistics,
96x96) and a small net of raw tf ops covering every mapped op, and saves TF's outputs on
a random NHWC input. `autocalib run --model NAME.pb` on the same input must give the same
outputs (NHWC in, NHWC out); `info` names the format; an unsupported op is an error
naming the node and the op. Skips when the TensorFlow venv is absent."""

import json
import os
import subprocess

import numpy as np
import pytest

import conftest as h

TOL = 1e-5  # max |ours - TF| / max |TF|


def _tf_python():
    return os.environ.get("AC_TF_PYTHON", os.path.join(h.REPO, ".venv-tf", "bin", "python"))


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    py = _tf_python()
    if not os.access(py, os.X_OK):
        pytest.skip("no TensorFlow venv at %s (AC_TF=1 ./setup.sh, or set AC_TF_PYTHON)" % py)
    d = tmp_path_factory.mktemp("tf")
    proc = subprocess.run([py, os.path.join(h.REPO, "tests", "python", "tf_make_models.py"), str(d)],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return str(d)


def _run(ac_bin, models, name, tmp_path):
    with open(os.path.join(models, name + ".json")) as f:
        meta = json.load(f)
    out = str(tmp_path / (name + "_ours.npy"))
    proc = subprocess.run([ac_bin, "run", "--model", os.path.join(models, name + ".pb"),
                           "--input", os.path.join(models, name + "_in.npy"), "--output", out],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True)
    assert proc.returncode == 0, proc.stderr
    for i, oname in enumerate(meta["outputs"]):
        ref = np.load(os.path.join(models, "%s_out%d.npy" % (name, i)))
        got = np.load(h._output_file(out, oname, i == 0))
        assert got.shape == ref.shape, (oname, got.shape, ref.shape)
        err = h.rel_err(got, ref)
        h.record_figure("tensorflow %s vs TF 2.21" % name, oname, err)
        assert err < TOL, (oname, err)
    return meta


def test_mobilenetv2_matches_tensorflow(ac_bin, models, tmp_path):
    meta = _run(ac_bin, models, "mobilenetv2", tmp_path)
    # Keras' BN arrives as constant arithmetic the importer folds.
    assert "Rsqrt" in meta["ops"] and "DepthwiseConv2dNative" in meta["ops"]


def test_smallnet_every_op_matches_tensorflow(ac_bin, models, tmp_path):
    meta = _run(ac_bin, models, "smallnet", tmp_path)
    for op in ("FusedBatchNormV3", "ConcatV2", "ResizeBilinear", "ResizeNearestNeighbor", "Squeeze",
               "Reshape", "MaxPool", "AvgPool", "Pad", "Sigmoid", "BiasAdd"):
        assert op in meta["ops"], op


def test_info_names_the_format(ac_bin, models):
    proc = subprocess.run([ac_bin, "info", os.path.join(models, "smallnet.pb")],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True)
    assert proc.returncode == 0, proc.stderr
    assert "(tensorflow, opset 13)" in proc.stdout
    assert "[1,16,16,3]" in proc.stdout and "[1,8,8,24]" in proc.stdout  # NHWC in and out


def test_unsupported_op_names_node_and_op(ac_bin, models):
    proc = subprocess.run([ac_bin, "info", os.path.join(models, "badop.pb")],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True)
    assert proc.returncode != 0
    assert "badop.pb: node '" in proc.stderr and "(Cumsum): op 'Cumsum' is not supported" in proc.stderr
