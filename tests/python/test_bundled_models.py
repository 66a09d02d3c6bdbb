"""The bundled demo models in models/: interface, size, ops exercised, and accuracy.

These need no autocalib binary: they check what python/train_fmnist.py committed.
"""

import os
from collections import Counter

import numpy as np
import pytest

import conftest as h

NAMES = ["fmnist_plain", "fmnist_resnet", "fmnist_mbv2"]
# fp32 top-1 on the 10k test set recorded in models/README.md (onnxruntime); a retrain
# that moves these by more than half a point must update the README.
MIN_TOP1 = 0.87


def _load(name):
    import onnx
    path = os.path.join(h.MODELS, name + ".onnx")
    assert os.path.exists(path), "%s is missing (run python/train_fmnist.py)" % path
    return path, onnx.load(path)


@pytest.mark.parametrize("name", NAMES)
def test_interface(name):
    import onnx
    path, m = _load(name)
    onnx.checker.check_model(m)
    assert os.path.getsize(path) < 1 << 20
    assert max(o.version for o in m.opset_import if o.domain in ("", "ai.onnx")) == 13
    inits = {i.name for i in m.graph.initializer}
    inputs = [i for i in m.graph.input if i.name not in inits]
    assert [i.name for i in inputs] == ["input"]
    dims = inputs[0].type.tensor_type.shape.dim
    assert dims[0].dim_param != "" and [d.dim_value for d in dims[1:]] == [1, 28, 28]
    assert [o.name for o in m.graph.output] == ["logits"]
    nparams = sum(int(np.prod(i.dims)) for i in m.graph.initializer)
    assert nparams < 300000
    # BatchNorm is folded into the convs by the exporter.
    assert "BatchNormalization" not in {n.op_type for n in m.graph.node}


def test_ops_exercised():
    ops = {n: Counter(x.op_type for x in _load(n)[1].graph.node) for n in NAMES}
    assert ops["fmnist_plain"]["MaxPool"] == 2 and ops["fmnist_plain"]["Gemm"] == 2
    assert ops["fmnist_resnet"]["Add"] >= 3 and ops["fmnist_resnet"]["GlobalAveragePool"] == 1
    assert ops["fmnist_mbv2"]["Clip"] > 0 and ops["fmnist_mbv2"]["Add"] > 0
    # ReLU6 is exported as Clip with min/max given as inputs (the opset-11+ form), and
    # the mbv2 net has depthwise convs.
    _, m = _load("fmnist_mbv2")
    clips = [n for n in m.graph.node if n.op_type == "Clip"]
    assert all(len(n.input) == 3 and not n.attribute for n in clips)
    groups = [a.i for n in m.graph.node if n.op_type == "Conv"
              for a in n.attribute if a.name == "group"]
    assert max(groups) > 1


def test_sample_batch():
    x = np.load(os.path.join(h.MODELS, "fmnist_sample.npy"))
    y = np.load(os.path.join(h.MODELS, "fmnist_sample_labels.npy"))
    xr, yr = h.fmnist_test(16)
    assert x.dtype == np.float32 and x.shape == (16, 1, 28, 28)
    np.testing.assert_array_equal(x, xr)
    np.testing.assert_array_equal(y, yr)


@pytest.mark.parametrize("name", NAMES)
def test_accuracy_ort(name):
    path, _ = _load(name)
    x, y = h.fmnist_test(10000)
    correct = 0
    for i in range(0, len(x), 2000):
        logits = h.run_ort(path, x[i:i + 2000])["logits"]
        correct += int((logits.argmax(1) == y[i:i + 2000]).sum())
    assert correct / len(x) >= MIN_TOP1, "%s: top-1 %.2f %%" % (name, 100 * correct / len(x))
