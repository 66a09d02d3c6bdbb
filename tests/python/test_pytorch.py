"""The PyTorch route (python/export_pytorch.py, graph/ac_pytorch.c) against torch itself.

A small network (conv + BN + ReLU, depthwise conv, max/avg pooling, a residual add,
flatten, linear, softmax) with random weights is saved as TorchScript and as a module
file + state dict; `autocalib run --model` on each gives torch's own output on the same
input within float tolerance. `export-pytorch` writes an ONNX file the importer reads,
`info` describes a .pt, and the failures name the file and the reason.

The helper runs in this interpreter (AC_PYTHON=sys.executable: the venv sees Debian's
python3-torch). Skips when torch is absent."""

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import conftest as h

torch = pytest.importorskip("torch")

TOL = 1e-4  # max |ours - torch| / max |torch| (float summation order, BN folding)
SHAPE = (1, 3, 32, 32)

MODULE_SRC = textwrap.dedent('''
    import torch
    import torch.nn as nn

    class SmallNet(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv1 = nn.Conv2d(3, 16, 3, padding=1)
            self.bn1 = nn.BatchNorm2d(16)
            self.dw = nn.Conv2d(16, 16, 3, padding=1, groups=16)
            self.pw = nn.Conv2d(16, 16, 1)
            self.pool = nn.MaxPool2d(2)
            self.conv2 = nn.Conv2d(16, 24, 3, stride=2, padding=1)
            self.fc = nn.Linear(24, 10)

        def forward(self, x):
            x = torch.relu(self.bn1(self.conv1(x)))
            x = x + torch.relu(self.pw(self.dw(x)))
            x = self.pool(x)
            x = torch.sigmoid(self.conv2(x))
            x = torch.flatten(nn.functional.adaptive_avg_pool2d(x, 1), 1)
            return torch.softmax(self.fc(x), dim=1)
    ''')


def _env():
    env = dict(os.environ)
    env["AC_PYTHON"] = sys.executable
    env["AC_PYTHON_DIR"] = os.path.join(h.REPO, "python")
    return env


def _run(cmd):
    return subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          universal_newlines=True, env=_env())


@pytest.fixture(scope="module")
def net(tmp_path_factory):
    """(module file, state dict, TorchScript file, input, torch's output)"""
    d = tmp_path_factory.mktemp("torch")
    src = d / "smallnet.py"
    src.write_text(MODULE_SRC)
    sys.path.insert(0, str(d))
    try:
        import smallnet
    finally:
        sys.path.pop(0)
    torch.manual_seed(7)
    m = smallnet.SmallNet()
    with torch.no_grad():  # BN statistics that are not the identity, so folding is exercised
        m.bn1.running_mean.uniform_(-0.5, 0.5)
        m.bn1.running_var.uniform_(0.5, 2.0)
        m.bn1.weight.uniform_(0.5, 1.5)
        m.bn1.bias.uniform_(-0.2, 0.2)
    m.eval()
    sd = d / "smallnet_sd.pt"
    torch.save(m.state_dict(), str(sd))
    x = np.random.RandomState(3).uniform(-1, 1, SHAPE).astype(np.float32)
    ts = d / "smallnet.pt"
    torch.jit.save(torch.jit.trace(m, torch.from_numpy(x)), str(ts))
    with torch.no_grad():
        ref = m(torch.from_numpy(x)).numpy()
    return str(src), str(sd), str(ts), x, ref


def _autocalib_run(ac_bin, model, x, workdir, extra=()):
    xin, out = os.path.join(str(workdir), "in.npy"), os.path.join(str(workdir), "out.npy")
    np.save(xin, x)
    proc = _run([ac_bin, "run", "--model", model, "--input_data_shape", h.shape_arg(x.shape),
                 "--input", xin, "--output", out] + list(extra))
    assert proc.returncode == 0, proc.stderr
    return np.load(out)


def test_torchscript_matches_torch(ac_bin, net, tmp_path):
    _, _, ts, x, ref = net
    got = _autocalib_run(ac_bin, ts, x, tmp_path)
    assert got.shape == ref.shape
    err = h.rel_err(got, ref)
    h.record_figure("pytorch smallnet.pt vs torch", "output", err)
    assert err < TOL, err


def test_module_and_state_dict_match_torch(ac_bin, net, tmp_path):
    src, sd, _, x, ref = net
    got = _autocalib_run(ac_bin, src + ":SmallNet", x, tmp_path, ["--weights", sd])
    err = h.rel_err(got, ref)
    h.record_figure("pytorch smallnet.py:SmallNet vs torch", "output", err)
    assert err < TOL, err


def test_export_pytorch_writes_onnx(ac_bin, net, tmp_path):
    _, _, ts, x, ref = net
    out = str(tmp_path / "smallnet.onnx")
    proc = _run([ac_bin, "export-pytorch", ts, "--input_data_shape", h.shape_arg(SHAPE),
                 "--output", out])
    assert proc.returncode == 0, proc.stderr
    got = _autocalib_run(ac_bin, out, x, tmp_path)
    assert h.rel_err(got, ref) < TOL


def test_info_describes_a_pt(ac_bin, net):
    _, _, ts, _, _ = net
    proc = _run([ac_bin, "info", ts, "--input_data_shape", h.shape_arg(SHAPE)])
    assert proc.returncode == 0, proc.stderr
    assert "(pytorch," in proc.stdout
    assert "Conv" in proc.stdout and "Softmax" in proc.stdout


def test_errors_name_file_and_reason(ac_bin, net, tmp_path):
    _, sd, ts, _, _ = net
    proc = _run([ac_bin, "info", ts])
    assert proc.returncode != 0
    assert ts in proc.stderr and "--input_data_shape" in proc.stderr
    # A state dict is not TorchScript: the helper says what to do instead.
    proc = _run([ac_bin, "info", sd, "--input_data_shape", h.shape_arg(SHAPE)])
    assert proc.returncode != 0
    assert "not a TorchScript file" in proc.stderr and "module.py:ClassName" in proc.stderr
    src = tmp_path / "other.py"
    src.write_text("class Nothing:\n    pass\n")
    proc = _run([ac_bin, "info", str(src) + ":Missing", "--input_data_shape", h.shape_arg(SHAPE)])
    assert proc.returncode != 0
    assert "has no class 'Missing'" in proc.stderr


def test_quantize_a_pt_scores_as_its_onnx_twin(ac_bin, tmp_path):
    """`quantize --model X.pt` end to end (calibration, lowering, scoring): the bundled
    Fashion-MNIST net as TorchScript (onnx2torch + torch.jit.trace) scores exactly as the
    ONNX file it came from, fp32 and int8."""
    onnx2torch = pytest.importorskip("onnx2torch")
    import json
    import onnx
    from test_quantize import data_args
    args = data_args()
    src = os.path.join(h.MODELS, "fmnist_plain.onnx")
    m = onnx2torch.convert(onnx.load(src)).eval()
    pt = str(tmp_path / "fmnist_plain.pt")
    torch.jit.save(torch.jit.trace(m, torch.zeros(16, 1, 28, 28)), pt)
    reports = []
    for model, out in ((src, tmp_path / "q_onnx"), (pt, tmp_path / "q_pt")):
        proc = _run([ac_bin, "quantize", "--model", model, "--output_dir", str(out)] + args)
        assert proc.returncode == 0, proc.stderr
        with open(str(out / "report.json")) as f:
            reports.append(json.load(f))
    assert reports[1]["fp32_score"] == reports[0]["fp32_score"] > 0.8
    assert reports[1]["int8_score"] == reports[0]["int8_score"]
