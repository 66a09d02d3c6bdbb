"""fp32 reference comparison: `autocalib run` against onnxruntime on real inputs.

onnxruntime's Sigmoid is an approximation (see conftest.exact_reference), so the reference
runs with Sigmoid rewritten exactly. Every output of every model must agree within TOL, measured as
max|autocalib - onnxruntime| / max(max|onnxruntime|, 1e-6). The figure of each case is
printed in the terminal summary. When a model disagrees, the failure message names the
first node whose output differs (see conftest.first_divergence).

Models: the bundled Fashion-MNIST nets (models/*.onnx) and, when ../shared/zoo is present,
the zoo's fmnist, ImageNet and face-detector ONNX models, each fed real images with the
preprocessing given in the zoo README.
"""

import os

import numpy as np
import pytest

import conftest as h

TOL = 1e-4


@pytest.fixture(params=["fast", "ref"])
def kernels(request):
    """Each comparison runs twice: default kernels, and __ref kernels (AC_FORCE_REF=1)."""
    return request.param


def _check(ac_bin, model, x, tmp_path, label, kernels, input_name=None, case=None):
    label = "%s (%s)" % (label, kernels)
    case = "%s (%s)" % (case, kernels) if case else label
    force_ref = kernels == "ref"
    ref = h.run_ort(h.exact_reference(model, tmp_path), x, input_name)
    got = h.run_autocalib(ac_bin, model, x, tmp_path, tag="x", force_ref=force_ref)
    worst, worst_name = 0.0, None
    for name, r in ref.items():
        assert name in got, "%s: autocalib gave no output '%s'" % (label, name)
        err = h.rel_err(got[name], r)
        h.record_figure(case, name, err)
        if err > worst or worst_name is None:
            worst, worst_name = err, name
    if worst > TOL:
        where = h.first_divergence(ac_bin, model, x, tmp_path, input_name, TOL, force_ref)
        pytest.fail("%s: output '%s' rel err %.3e > %.0e; %s"
                    % (label, worst_name, worst, TOL, where))
    return worst


# ------------------------------------------------------------------ bundled Fashion-MNIST nets

BUNDLED = h.bundled_models()


def _ids(paths):
    return [os.path.basename(p) for p in paths]


@pytest.mark.parametrize("model", BUNDLED, ids=_ids(BUNDLED))
def test_bundled_fp32_batch1(ac_bin, model, tmp_path, kernels):
    x, _ = h.fmnist_test(4)
    for i in range(len(x)):
        _check(ac_bin, model, x[i:i + 1], tmp_path, "%s img%d" % (os.path.basename(model), i),
               kernels, case=os.path.basename(model) + " batch1")


FMNIST_ZOO = ["fmnist/fmnist_plain.onnx", "fmnist/fmnist_resnet.onnx", "fmnist/fmnist_mbv2.onnx"]


def _fmnist_batch16_models():
    return [(p, os.path.basename(p)) for p in BUNDLED] + \
        [(os.path.join(h.ZOO, r), "zoo/" + r) for r in FMNIST_ZOO]


@pytest.mark.parametrize("model,label", _fmnist_batch16_models(),
                         ids=[m[1] for m in _fmnist_batch16_models()])
def test_fmnist_fp32_batch16(ac_bin, model, label, tmp_path, kernels):
    if label.startswith("zoo/"):
        model = h.zoo_file(label[4:])
    x = np.load(os.path.join(h.MODELS, "fmnist_sample.npy"))
    assert x.shape == (16, 1, 28, 28) and x.dtype == np.float32
    _check(ac_bin, model, x, tmp_path, "%s batch16" % label, kernels)


@pytest.mark.parametrize("model", BUNDLED, ids=_ids(BUNDLED))
def test_bundled_top1_matches_ort(ac_bin, model, tmp_path, kernels):
    """argmax over the first 1000 test images: autocalib must pick ort's class for >= 99.9 %."""
    x, y = h.fmnist_test(1000)
    ref = h.run_ort(model, x)["logits"]
    got = h.run_autocalib(ac_bin, model, x, tmp_path, tag="top1",
                          force_ref=kernels == "ref")["logits"]
    same = float(np.mean(got.argmax(1) == ref.argmax(1)))
    name = os.path.basename(model)
    acc_ref = float(np.mean(ref.argmax(1) == y))
    acc_got = float(np.mean(got.argmax(1) == y))
    h.record_figure("%s 1000 imgs (%s)" % (name, kernels),
                    "logits; argmax same %.1f %%, top-1 %.1f %% (ort %.1f %%)"
                    % (100 * same, 100 * acc_got, 100 * acc_ref), h.rel_err(got, ref))
    assert same >= 0.999, "%s: only %.1f %% of argmax agree with onnxruntime" % (name, 100 * same)
    assert abs(acc_ref - acc_got) <= 0.001, \
        "%s: top-1 %.1f %% (autocalib) vs %.1f %% (ort)" % (name, 100 * acc_got, 100 * acc_ref)


# ------------------------------------------------------------------ zoo models on real images

def _imagenet_input(path, size):
    """RGB, (u8 - 128) / 128, NCHW."""
    rgb = h.load_rgb(path, size, size).astype(np.float32)
    return ((rgb - 128.0) / 128.0).transpose(2, 0, 1)[None].astype(np.float32)


def _ulfd_input(path):
    """RGB 320x240, (x - 127) / 128, NCHW."""
    rgb = h.load_rgb(path, 320, 240).astype(np.float32)
    return ((rgb - 127.0) / 128.0).transpose(2, 0, 1)[None].astype(np.float32)


def _yunet_input(path):
    """BGR 320x320, raw 0..255, NCHW."""
    bgr = h.load_rgb(path, 320, 320)[:, :, ::-1].astype(np.float32)
    return bgr.transpose(2, 0, 1)[None].astype(np.float32).copy()


def _blazeface_input(path):
    """RGB 128x128, x / 127.5 - 1, NHWC."""
    rgb = h.load_rgb(path, 128, 128).astype(np.float32)
    return (rgb / 127.5 - 1.0)[None].astype(np.float32)


# (zoo path, image source, input builder); two images each, batch 1.
ZOO_CASES = [
    ("imagenet/mobilenet_v2_1.0_224.onnx", "imagenet", lambda p: _imagenet_input(p, 224)),
    ("imagenet/mobilenet_v1_0.25_128.onnx", "imagenet", lambda p: _imagenet_input(p, 128)),
    ("faces/ulfd_version-RFB-320.onnx", "faces", _ulfd_input),
    ("faces/ulfd_version-RFB-320_simplified.onnx", "faces", _ulfd_input),
    ("faces/yunet_n_320_320.onnx", "faces", _yunet_input),
    ("faces/face_detection_front_128x128_barracuda.onnx", "faces", _blazeface_input),
]


@pytest.mark.parametrize("rel,source,make_input", ZOO_CASES, ids=[c[0] for c in ZOO_CASES])
def test_zoo_fp32(ac_bin, rel, source, make_input, tmp_path, kernels):
    model = h.zoo_file(rel)
    images = h.imagenet_images(2) if source == "imagenet" else h.face_images(2)
    assert len(images) == 2
    for path in images:
        _check(ac_bin, model, make_input(path), tmp_path,
               "%s %s" % (rel, os.path.basename(path)), kernels, case="zoo/" + rel)


@pytest.mark.parametrize("rel", FMNIST_ZOO)
def test_zoo_fmnist_fp32_batch1(ac_bin, rel, tmp_path, kernels):
    model = h.zoo_file(rel)
    x, _ = h.fmnist_test(2)
    for i in range(len(x)):
        _check(ac_bin, model, x[i:i + 1], tmp_path, "zoo/%s img%d" % (rel, i),
               kernels, case="zoo/%s batch1" % rel)
