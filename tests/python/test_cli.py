"""The autocalib command line as a user meets it: help, info, run, and clean errors
on bad input (exit status 1 or 2 with a message naming the file and the rule, never a
crash)."""

import os
import subprocess

import numpy as np
import pytest

import conftest as h

MODEL = os.path.join(h.MODELS, "fmnist_plain.onnx")


def ac(ac_bin, *args):
    p = subprocess.run([ac_bin] + list(args), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       universal_newlines=True)
    assert p.returncode >= 0, "killed by signal %d: %s" % (-p.returncode, p.stderr)
    return p


def test_help_and_unknown_command(ac_bin):
    p = ac(ac_bin, "--help")
    assert p.returncode == 0 and "info" in p.stdout and "run" in p.stdout
    p = ac(ac_bin, "frobnicate")
    assert p.returncode == 2 and "unknown command 'frobnicate'" in p.stderr


def test_info_bundled_model(ac_bin):
    p = ac(ac_bin, "info", MODEL)
    assert p.returncode == 0, p.stderr
    assert "input" in p.stdout and "[1,1,28,28]" in p.stdout
    assert "logits" in p.stdout and "[1,10]" in p.stdout
    assert "Conv 4" in p.stdout
    macs = [l for l in p.stdout.splitlines() if l.startswith("total MACs:")]
    assert macs and int(macs[0].split()[2]) > 100000
    # Option spellings: underscore and dash forms both work.
    p2 = ac(ac_bin, "info", "--model", MODEL, "--input-data-shape", "(4,1,28,28)")
    assert p2.returncode == 0 and "[4,1,28,28]" in p2.stdout, p2.stderr


def test_run_writes_outputs_and_dumps(ac_bin, tmp_path):
    x, _ = h.fmnist_test(4)
    xin = tmp_path / "x.npy"
    np.save(xin, x)
    out = tmp_path / "y.npy"
    dump = tmp_path / "dump"
    p = ac(ac_bin, "run", "--model", MODEL, "--input", str(xin), "--output", str(out),
           "--dump_tensors", str(dump))
    assert p.returncode == 0, p.stderr
    y = np.load(out)
    assert y.shape == (4, 10) and y.dtype == np.float32
    dumped = os.listdir(dump)
    assert "logits.npy" in dumped and len(dumped) >= 8
    assert np.array_equal(np.load(dump / "logits.npy"), y)
    # Same result with 1 thread (results do not depend on the thread count).
    out1 = tmp_path / "y1.npy"
    p = ac(ac_bin, "run", "--model", MODEL, "--input", str(xin), "--output", str(out1),
           "--threads", "1")
    assert p.returncode == 0, p.stderr
    assert np.array_equal(np.load(out1), y)


def test_run_prints_top5_without_output(ac_bin, tmp_path):
    x, _ = h.fmnist_test(2)
    np.save(tmp_path / "x.npy", x)
    p = ac(ac_bin, "run", "--model", MODEL, "--input", str(tmp_path / "x.npy"))
    assert p.returncode == 0, p.stderr
    assert p.stdout.count("top-5:") == 2


@pytest.mark.parametrize("cut", [0, 10, 100, 1000, -100])
def test_truncated_model_is_a_clean_error(ac_bin, tmp_path, cut):
    data = open(MODEL, "rb").read()
    bad = tmp_path / "broken.onnx"
    bad.write_bytes(data[:cut] if cut >= 0 else data[:len(data) + cut])
    p = ac(ac_bin, "info", str(bad))
    assert p.returncode == 1, p.stdout + p.stderr
    assert "broken.onnx" in p.stderr


def test_bad_inputs_are_clean_errors(ac_bin, tmp_path):
    x = np.zeros((1, 3, 28, 28), np.float32)
    np.save(tmp_path / "x3.npy", x)
    p = ac(ac_bin, "run", "--model", MODEL, "--input", str(tmp_path / "x3.npy"),
           "--input_data_shape", "(1,1,28,28)")
    assert p.returncode == 1 and "does not match input 'input'" in p.stderr, p.stderr
    np.save(tmp_path / "xi.npy", np.zeros((1, 1, 28, 28), np.int64))
    p = ac(ac_bin, "run", "--model", MODEL, "--input", str(tmp_path / "xi.npy"))
    assert p.returncode == 1 and "dtype" in p.stderr, p.stderr
    (tmp_path / "junk.npy").write_bytes(b"not an npy file at all")
    p = ac(ac_bin, "run", "--model", MODEL, "--input", str(tmp_path / "junk.npy"))
    assert p.returncode == 1 and "junk.npy" in p.stderr, p.stderr
    p = ac(ac_bin, "run", "--model", MODEL, "--input", str(tmp_path / "x3.npy"),
           "--input_data_shape", "(1,1,28")
    assert p.returncode == 1 and "--input_data_shape" in p.stderr, p.stderr
    p = ac(ac_bin, "run", "--model", MODEL, "--bogus", "1")
    assert p.returncode == 2 and "unknown option '--bogus'" in p.stderr
    p = ac(ac_bin, "run", "--model", str(tmp_path / "missing.onnx"), "--input",
           str(tmp_path / "x3.npy"))
    assert p.returncode == 1 and "missing.onnx" in p.stderr
    p = ac(ac_bin, "info", str(tmp_path / "x3.npy"))
    assert p.returncode == 1 and "unknown model format" in p.stderr
