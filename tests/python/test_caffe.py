"""The Caffe importer against the ONNX importer on UltraFace RFB-320: the zoo holds the same
network twice (../shared/zoo/faces/caffe/RFB-320.prototxt + .caffemodel, and
../shared/zoo/faces/ulfd_version-RFB-320_simplified.onnx, see ../shared/zoo/README.md).

Both are run by `autocalib run` on the same .npy inputs made from real face photos
(../shared/zoo/faces/imgs, RGB, (x - 127) / 128 at 320x240), and their `scores` and `boxes`
outputs must agree within float tolerance. `autocalib info` must describe the Caffe model
(its format, input and outputs), and the missing --weights file is an error that says so.
Skips with a message when the zoo is absent."""

import json
import os
import subprocess

import numpy as np
import pytest

import conftest as h

PROTOTXT = "faces/caffe/RFB-320.prototxt"
CAFFEMODEL = "faces/caffe/RFB-320.caffemodel"
ONNX_TWIN = "faces/ulfd_version-RFB-320_simplified.onnx"
OUTPUTS = ("scores", "boxes")
ABS_TOL = 1e-4   # max |caffe - onnx|; boxes reach ~6, scores are in 0..1
REL_TOL = 1e-5   # max |caffe - onnx| / max |onnx| per output
N_IMAGES = 4


def _run(ac_bin, model_args, x_npy, workdir, tag):
    out = os.path.join(str(workdir), "%s.npy" % tag)
    cmd = [ac_bin, "run"] + model_args + ["--input", x_npy, "--output", out]
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True)
    assert proc.returncode == 0, "%s failed: %s" % (" ".join(cmd), proc.stderr[-2000:])
    # the first output goes to OUT.npy, the others to OUT.<name>.npy; the stdout names them
    result = {}
    for line in proc.stdout.splitlines():
        if line.startswith("wrote ") and line.endswith(")"):
            path, name = line[len("wrote "):-1].split(" (")
            result[name] = np.load(path)
    assert set(result) == set(OUTPUTS), proc.stdout
    return result


def test_rfb320_caffe_matches_onnx_twin(ac_bin, tmp_path):
    prototxt, caffemodel, onnx_twin = h.zoo_file(PROTOTXT), h.zoo_file(CAFFEMODEL), h.zoo_file(ONNX_TWIN)
    worst = {name: (0.0, 0.0) for name in OUTPUTS}
    for i, img in enumerate(h.face_images(N_IMAGES)):
        x = (h.load_rgb(img, 320, 240).astype(np.float32) - 127.0) / 128.0
        x_npy = os.path.join(str(tmp_path), "in%d.npy" % i)
        np.save(x_npy, np.ascontiguousarray(x.transpose(2, 0, 1)[None]))
        ours = _run(ac_bin, ["--model", prototxt, "--weights", caffemodel], x_npy, tmp_path, "caffe%d" % i)
        twin = _run(ac_bin, ["--model", onnx_twin], x_npy, tmp_path, "onnx%d" % i)
        for name in OUTPUTS:
            a, b = ours[name], twin[name]
            assert a.shape == b.shape, (name, a.shape, b.shape)
            assert np.all(np.isfinite(a)), name
            d = float(np.max(np.abs(a.astype(np.float64) - b)))
            r = d / max(float(np.max(np.abs(b))), 1e-6)
            worst[name] = (max(worst[name][0], d), max(worst[name][1], r))
            assert d <= ABS_TOL and r <= REL_TOL, "%s on %s: max abs %.3g, rel %.3g" % (name, img, d, r)
        # the detector finds faces on these photos: some anchor is confidently a face
        assert float(ours["scores"][0, :, 1].max()) > 0.9, img
    print("caffe vs onnx twin, max abs / rel:", worst)


def test_rfb320_info(ac_bin):
    prototxt, caffemodel = h.zoo_file(PROTOTXT), h.zoo_file(CAFFEMODEL)
    proc = subprocess.run([ac_bin, "info", prototxt, "--weights", caffemodel], stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, universal_newlines=True)
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert "(caffe, opset 13)" in out
    assert "[1,3,240,320]" in out and "[1,4420,4]" in out and "[1,4420,2]" in out
    assert "Conv 52" in out and "Softmax 1" in out


def test_prototxt_without_weights_is_an_error(ac_bin):
    prototxt = h.zoo_file(PROTOTXT)
    proc = subprocess.run([ac_bin, "info", prototxt], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          universal_newlines=True)
    assert proc.returncode != 0
    assert "--weights FILE.caffemodel" in proc.stderr


def test_rfb320_caffe_searches_on_the_farm(ac_bin, tmp_path):
    """A Caffe model goes through the default search on the embedded farm (the workers get
    its import as ONNX), scored with the ultraface_raw decoder although the Caffe net lists
    its boxes before its scores; the search's full evaluation equals the same strategy
    evaluated alone in one process."""
    prototxt, caffemodel = h.zoo_file(PROTOTXT), h.zoo_file(CAFFEMODEL)
    images = h.zoo_file("faces/imgs")
    common = [ac_bin, "quantize", "--model", prototxt, "--weights", caffemodel,
              "--calib_image_source", images, "--test_image_source", images,
              "--data_preproccess_str",
              "resize_h=240,resize_w=320;mean_value=127:127:127,scale=0.0078125,bgr2rgb=True",
              "--task", "detect", "--detect_decoder", "ultraface_raw", "--quiet"]
    farm = tmp_path / "farm"
    p = subprocess.run(common + ["--workers", "2", "--output_dir", str(farm)],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True)
    assert p.returncode in (0, 2), p.stderr
    rep = json.load(open(farm / "report.json"))
    full = [c for c in rep["candidates"] if "int8_score" in c]
    assert rep["fp32_score"] == 1.0 and full and rep["test"]["fp32"]["detections"] > 0, rep["test"]
    single = tmp_path / "single"
    p = subprocess.run(common + h.strategy_args(full[0]["options"]) + ["--output_dir", str(single)],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True)
    assert p.returncode in (0, 2), p.stderr
    one = json.load(open(single / "report.json"))
    assert 0.2 < one["int8_score"] < 1 and one["int8_score"] == full[0]["int8_score"]


def test_export_onnx_holds_the_calibration_table_names(ac_bin, tmp_path):
    """tpu-mlir compiles the bmodel from a model file and autocalib's calibration and
    quantize tables, matched by tensor name. `autocalib export-onnx` of the Caffe model
    gives an ONNX file in which every tensor the tables name exists."""
    import onnx
    prototxt, caffemodel = h.zoo_file(PROTOTXT), h.zoo_file(CAFFEMODEL)
    out = str(tmp_path / "rfb.onnx")
    p = subprocess.run([ac_bin, "export-onnx", prototxt, "--weights", caffemodel, "--output", out],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True)
    assert p.returncode == 0, p.stderr
    g = onnx.load(out).graph
    tensors = {o for n in g.node for o in n.output} | {i.name for i in g.input}
    q = tmp_path / "q"
    images = h.zoo_file("faces/imgs")
    p = subprocess.run([ac_bin, "quantize", "--model", prototxt, "--weights", caffemodel,
                        "--calib_image_source", images, "--test_image_source", images,
                        "--data_preproccess_str",
                        "resize_h=240,resize_w=320;mean_value=127:127:127,scale=0.0078125,bgr2rgb=True",
                        "--task", "detect", "--detect_decoder", "ultraface_raw", "--no_search",
                        "--accuracy_opt", "--output_dir", str(q), "--quiet"],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True)
    assert p.returncode in (0, 2), p.stderr
    names = [l.split()[0] for l in open(q / "calibration_table") if l.strip() and not l.startswith("#")]
    fp32 = [l.split()[0] for l in open(q / "qtable") if l.strip() and not l.startswith("#")]
    assert len(names) > 50 and fp32, (len(names), fp32)
    assert not [n for n in names + fp32 if n not in tensors], [n for n in names + fp32 if n not in tensors]
