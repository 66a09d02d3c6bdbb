"""The Darknet importer against Debian's darknet (package `darknet`) on Yolo-Fastest 1.1
(../shared/zoo/darknet), on the package's dog.jpg sample and on COCO128 images.

Same input for both: darknet's own preprocessing (load_image_color + letterbox_image to
320x320, what `darknet detector test` does) runs inside tests/darknet_ref.c, a small
program over the package's libdarknet that writes the letterboxed pixels as input.npy,
the raw inputs of both [yolo] layers and darknet's final detections (get_network_boxes +
do_nms_sort, as the CLI computes them). autocalib runs the imported graph on that very
input.npy (`autocalib run --input`), so the comparison is exact-input:

- the raw YOLO head outputs agree within float rounding (BN folding and summation order);
- decoding our heads with the yolo_fastest preset (metrics/ac_detect.h) gives darknet's
  boxes, classes and scores;
- and the `darknet detector test` command itself prints the same classes and rounded
  percentages for dog.jpg as our detections.

Skips with a message when the darknet package, darknet_ref or the zoo is absent."""

import os
import re
import shutil
import subprocess

import numpy as np
import pytest

import conftest as h

CFG = "darknet/yolo-fastest-1.1.cfg"
WEIGHTS = "darknet/yolo-fastest-1.1.weights"
THRESH = 0.25
HEAD_TOL = 5e-4      # max |ours - darknet| on the raw heads (values up to ~25)
SCORE_TOL = 1e-4
BOX_TOL = 1e-4
COCO_IMAGES = ["000000000139.jpg", "000000000632.jpg", "000000000785.jpg"]


def _build_dir():
    return os.environ.get("AC_BUILD_DIR", os.path.join(h.REPO, "build"))


@pytest.fixture(scope="module")
def darknet():
    exe = shutil.which("darknet")
    if not exe:
        pytest.skip("the darknet command is absent (Debian package darknet, scripts/apt-packages.txt)")
    return exe


@pytest.fixture(scope="module")
def ref_tool(darknet):
    path = os.path.join(_build_dir(), "tests", "darknet_ref")
    if not os.access(path, os.X_OK):
        pytest.skip("%s is absent: reconfigure the build with the darknet package installed" % path)
    return path


@pytest.fixture(scope="module")
def metric_tool():
    path = os.path.join(_build_dir(), "metrics", "ac_metric_tool")
    if not os.access(path, os.X_OK):
        pytest.skip("%s is absent (set AC_BUILD_DIR)" % path)
    return path


def _package_file(name):
    """A file the darknet package installs, found with dpkg -L."""
    try:
        out = subprocess.run(["dpkg", "-L", "darknet"], stdout=subprocess.PIPE, universal_newlines=True,
                             check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("dpkg -L darknet failed: the darknet package is not installed")
    for line in out.splitlines():
        if line.endswith("/" + name):
            return line
    pytest.skip("the darknet package has no %s" % name)


def _model():
    return h.zoo_file(CFG), h.zoo_file(WEIGHTS)


def run_darknet_ref(ref_tool, image, workdir):
    cfg, weights = _model()
    proc = subprocess.run([ref_tool, cfg, weights, image, str(workdir), str(THRESH)], stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, universal_newlines=True)
    assert proc.returncode == 0, proc.stderr[-2000:]
    dets = []
    for line in proc.stdout.splitlines():
        if line.startswith("det "):
            _, cls, prob, x, y, w, hh = line.split()
            x, y, w, hh = float(x), float(y), float(w), float(hh)
            dets.append((int(cls), float(prob), x - w / 2, y - hh / 2, x + w / 2, y + hh / 2))
    heads = [np.load(os.path.join(str(workdir), "head_%d.npy" % k)) for k in range(2)]
    return os.path.join(str(workdir), "input.npy"), heads, dets


def run_ours(ac_bin, metric_tool, input_npy, workdir):
    cfg, weights = _model()
    out = os.path.join(str(workdir), "ours.npy")
    subprocess.run([ac_bin, "run", "--model", cfg, "--weights", weights, "--input", input_npy, "--output", out],
                   check=True, stdout=subprocess.DEVNULL)
    heads = [np.load(out), np.load(os.path.join(str(workdir), "ours.conv_129.npy"))]
    files = []
    for k, x in enumerate(heads):
        f = os.path.join(str(workdir), "ours_head_%d.f32" % k)
        x.astype("<f4").tofile(f)
        files.append("%s:%s" % (f, ",".join(str(d) for d in x.shape)))
    proc = subprocess.run([metric_tool, "decode", "yolo_fastest", str(THRESH)] + files, stdout=subprocess.PIPE,
                          universal_newlines=True, check=True)
    dets = []
    for line in proc.stdout.split("\n"):
        if line.strip():
            cls, score, x1, y1, x2, y2, _ = line.split()
            dets.append((int(cls), float(score), float(x1), float(y1), float(x2), float(y2)))
    return heads, dets


def match_detections(ours, theirs):
    """Every darknet detection has one of ours with its class, score and box."""
    assert len(ours) == len(theirs), "ours %s\ndarknet %s" % (ours, theirs)
    left = list(ours)
    for t in theirs:
        best = None
        for o in left:
            if o[0] == t[0] and abs(o[1] - t[1]) <= SCORE_TOL and max(abs(a - b) for a, b in zip(o[2:], t[2:])) <= BOX_TOL:
                best = o
                break
        assert best is not None, "darknet's %s has no match among ours %s" % (t, left)
        left.remove(best)


def images():
    dog = ("dog.jpg", None)
    coco = [(name, "coco128/images/val2017/" + name) for name in COCO_IMAGES]
    return [dog] + coco


@pytest.mark.parametrize("name,rel", images(), ids=[n for n, _ in images()])
def test_heads_and_boxes_match_darknet(ac_bin, ref_tool, metric_tool, tmp_path, name, rel):
    image = _package_file("dog.jpg") if rel is None else h.zoo_file(rel)
    input_npy, ref_heads, ref_dets = run_darknet_ref(ref_tool, image, tmp_path)
    x = np.load(input_npy)
    assert x.shape == (1, 3, 320, 320) and 0 <= x.min() and x.max() <= 1
    heads, dets = run_ours(ac_bin, metric_tool, input_npy, tmp_path)
    for k, (a, b) in enumerate(zip(heads, ref_heads)):
        assert a.shape == b.shape, (k, a.shape, b.shape)
        diff = float(np.max(np.abs(a.astype(np.float64) - b)))
        assert diff <= HEAD_TOL, "head %d: max |ours - darknet| = %g" % (k, diff)
    assert ref_dets, "darknet found nothing above %g on %s: the image is no test" % (THRESH, name)
    match_detections(dets, ref_dets)


def test_darknet_cli_prints_our_detections(ac_bin, darknet, ref_tool, metric_tool, tmp_path):
    """`darknet detector test` on dog.jpg prints 'class: NN%' lines; ours must give the same
    classes with the same percentages (rounding may differ by one at a .5 boundary)."""
    cfg, weights = _model()
    dog = _package_file("dog.jpg")
    names_file = _package_file("coco.names")
    with open(names_file) as f:
        names = [line.strip() for line in f if line.strip()]
    data = tmp_path / "coco.data"
    data.write_text("classes=80\nnames=%s\n" % names_file)
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen")
    # -out: save the picture instead of opening a window and waiting for a key
    proc = subprocess.run([darknet, "detector", "test", str(data), cfg, weights, dog, "-thresh", str(THRESH),
                           "-out", str(tmp_path / "predictions")], cwd=str(tmp_path), stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, universal_newlines=True, env=env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    cli = sorted((m.group(1), int(m.group(2))) for m in re.finditer(r"^(.+): (\d+)%$", proc.stdout, re.M))
    assert cli, "no detections in the darknet output:\n" + proc.stdout[-2000:]
    input_npy, _, _ = run_darknet_ref(ref_tool, dog, tmp_path)
    _, dets = run_ours(ac_bin, metric_tool, input_npy, tmp_path)
    ours = sorted((names[c], s * 100) for c, s, *_ in dets)
    assert [n for n, _ in ours] == [n for n, _ in cli], "ours %s, darknet %s" % (ours, cli)
    for (n, s), (_, p) in zip(ours, cli):
        assert abs(s - p) <= 0.5 + 1e-3, "%s: ours %.3f%%, darknet prints %d%%" % (n, s, p)


def test_export_onnx_runs_in_onnxruntime_as_ours(ac_bin, tmp_path):
    """`autocalib export-onnx` writes the Darknet import as ONNX (the file tpu-mlir's
    model_transform would read, since it has no Darknet importer): a valid ONNX model whose
    outputs in onnxruntime equal autocalib's own fp32 run of the cfg."""
    import onnx
    cfg, weights = h.zoo_file(CFG), h.zoo_file(WEIGHTS)
    out = str(tmp_path / "yf.onnx")
    p = subprocess.run([ac_bin, "export-onnx", cfg, "--weights", weights, "--output", out],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True)
    assert p.returncode == 0, p.stderr
    assert "darknet as ONNX" in p.stdout and not os.path.exists(out + ".tmp")
    onnx.checker.check_model(onnx.load(out))
    x = np.random.default_rng(3).uniform(0, 1, (1, 3, 320, 320)).astype(np.float32)
    theirs = h.run_ort(out, x)
    xin, yout = str(tmp_path / "x.npy"), str(tmp_path / "y.npy")
    np.save(xin, x)
    p = subprocess.run([ac_bin, "run", "--model", cfg, "--weights", weights, "--input", xin,
                        "--output", yout], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       universal_newlines=True)
    assert p.returncode == 0, p.stderr
    names = list(theirs)
    assert len(names) == 2
    ours = [np.load(yout), np.load(h._output_file(yout, names[1], False))]
    for name, mine in zip(names, ours):
        err = float(np.abs(theirs[name] - mine).max())
        assert theirs[name].shape == mine.shape and err <= HEAD_TOL, (name, err)
    # bad input: an error that names the rule, and no file
    bad = str(tmp_path / "none.onnx")
    p = subprocess.run([ac_bin, "export-onnx", cfg, "--output", bad],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True)
    assert p.returncode == 1 and "needs its weights file" in p.stderr and not os.path.exists(bad)
