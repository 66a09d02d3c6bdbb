"""bench/bench_net (the whole-network timing of bench/run nets) runs exactly the int8 model
that `autocalib run` runs: its output equals autocalib run's bit for bit, at a batch size
other than the one the model was quantized at, and it prints one figures line per batch.

$AC_BUILD_DIR (default <repo>/build) holds bench/bench_net; $AC_BIN the autocalib binary."""

import os
import re
import subprocess

import numpy as np
import pytest

import conftest as h


def bench_net_path():
    path = os.path.join(os.environ.get("AC_BUILD_DIR", os.path.join(h.REPO, "build")), "bench", "bench_net")
    if not os.access(path, os.X_OK):
        pytest.skip("%s is absent (set AC_BUILD_DIR)" % path)
    return path


@pytest.fixture(scope="module")
def acq(ac_bin, tmp_path_factory):
    """fmnist_plain quantized per channel, at batch 16."""
    idx = os.path.join(h.FMNIST_DIR, "t10k-images-idx3-ubyte.gz")
    if not os.path.exists(idx):
        pytest.skip("%s is absent (Debian package dataset-fashion-mnist)" % idx)
    out = tmp_path_factory.mktemp("acq")
    p = subprocess.run([ac_bin, "quantize", "--model", os.path.join(h.MODELS, "fmnist_plain.onnx"),
                        "--calib_idx_images", idx, "--calib_iterations", "2", "--test_idx_images", idx,
                        "--test_idx_labels", os.path.join(h.FMNIST_DIR, "t10k-labels-idx1-ubyte.gz"),
                        "--test_iterations", "1", "--data_preproccess_str", "mean_value=72.93,scale=0.011109",
                        "--input_data_shape", "(16,1,28,28)", "--no_search", "--per_channel",
                        "--output_dir", str(out), "--quiet"],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, universal_newlines=True)
    assert p.returncode == 0, p.stdout
    return str(out / "fmnist_plain.int8.acq")


def test_output_equals_autocalib_run(ac_bin, acq, tmp_path):
    bench = bench_net_path()
    sample = np.load(os.path.join(h.MODELS, "fmnist_sample.npy"))  # [16,1,28,28]
    first8 = tmp_path / "first8.npy"
    np.save(first8, sample[:8])
    out = tmp_path / "bench_out.npy"
    p = subprocess.run([bench, acq, "--batch", "1,8", "--threads", "2", "--seconds", "0.05", "--warmup", "1",
                        "--input", os.path.join(h.MODELS, "fmnist_sample.npy"), "--output", str(out)],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, universal_newlines=True)
    assert p.returncode == 0, p.stdout
    rows = [dict(f.split("=", 1) for f in ln.split()) for ln in p.stdout.splitlines() if ln.startswith("batch=")]
    assert [r["batch"] for r in rows] == ["1", "8"]
    for r in rows:
        assert r["threads"] == "2" and int(r["calls"]) >= 5
        assert float(r["images_per_s_best"]) >= float(r["images_per_s"]) > 0
        assert float(r["best_ms"]) <= float(r["median_ms"])
        assert int(r["activation_bytes"]) > 0
    # The last batch (8) filled with the first 8 samples: what autocalib run gives for them.
    ref = tmp_path / "ref.npy"
    p = subprocess.run([ac_bin, "run", "--model", acq, "--input", str(first8), "--output", str(ref)],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, universal_newlines=True)
    assert p.returncode == 0, p.stdout
    a, b = np.load(out), np.load(ref)
    assert a.shape == (8, 10) and a.dtype == np.float32
    assert np.array_equal(a, b)


def test_rejects_bad_arguments_and_inputs(acq, tmp_path):
    bench = bench_net_path()
    p = subprocess.run([bench, acq, "--batch", "0"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       universal_newlines=True)
    assert p.returncode == 2 and "usage: bench_net" in p.stderr
    odd = tmp_path / "odd.npy"
    np.save(odd, np.zeros(100, np.float32))  # not a whole number of [1,28,28] samples
    p = subprocess.run([bench, acq, "--batch", "1", "--input", str(odd)], stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, universal_newlines=True)
    assert p.returncode == 1 and re.search(r"odd\.npy: .*not a whole number", p.stderr), p.stderr
    p = subprocess.run([bench, str(tmp_path / "missing.acq")], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       universal_newlines=True)
    assert p.returncode == 1 and "missing.acq" in p.stderr


def test_bench_run_prints_usage():
    p = subprocess.run([os.path.join(h.REPO, "bench", "run")], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       universal_newlines=True)
    assert p.returncode == 2
    assert all(w in p.stderr for w in ("bench/run kernels", "bench/run nets", "bench/run calib", "bench/run memory"))


@pytest.mark.long
def test_bench_run_nets_fmnist_plain():
    """bench/run nets end to end on the smallest net: every engine timed, the same top-1 as
    ONNX Runtime fp32 on the 8 sample inputs, the final ratio line."""
    bench_net_path()
    if not os.access(os.path.join(h.REPO, ".venv-bench", "bin", "python"), os.X_OK):
        pytest.skip(".venv-bench is absent (AC_BENCH=1 ./setup.sh makes it)")
    env = dict(os.environ, AC_BUILD_DIR=os.environ.get("AC_BUILD_DIR", os.path.join(h.REPO, "build")))
    p = subprocess.run([os.path.join(h.REPO, "bench", "run"), "nets", "--models", "fmnist_plain", "--rounds", "1",
                        "--seconds", "0.1"], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       universal_newlines=True)
    assert p.returncode == 0, p.stdout[-3000:]
    assert "top-1 equal to onnxruntime fp32 on 8 inputs: ours 8," in p.stdout, p.stdout
    m = re.search(r"^model=fmnist_plain int8_net_vs_onnxruntime=([0-9.]+) int8_net_vs_pytorch=([0-9.]+)$",
                  p.stdout, re.M)
    assert m and float(m.group(1)) > 0 and float(m.group(2)) > 0, p.stdout
