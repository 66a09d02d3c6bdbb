#!/usr/bin/env python3
"""Accuracy and search table: autocalib's fast and auto modes against post-training
quantization peers, each model on the same calibration set and test split.

    bench/run accuracy [--models a,b] [--skip-auto a,b|all] [--limit N]
                       [--json F] [--markdown [docs/accuracy.md]] [--rerun a,b]
                       [--rerun-autocalib a,b|all]

For each classifier (the Fashion-MNIST nets, ImageNet MobileNetV1-0.25 and MobileNetV2):
- autocalib quantize, fast mode: fp32, the screen of round 1, the fast-mode result;
  evaluations, rounds, wall time;
- autocalib quantize --no_search, once per plan of that screen: the full score of the plain
  baseline (KL, per-tensor) and of every single fast-mode option, each by itself (these
  runs are not part of the search);
- autocalib quantize --auto_calib: the result, its fp32 layers and estimated BM1684 cost;
- ONNX Runtime quantize_static: QDQ, int8 symmetric activations and weights, MinMax /
  Entropy / Percentile calibration, per-tensor and per-channel weights;
- PyTorch FX post-training static quantization (bench/peer_torch_ptq.py), per-tensor and
  per-channel weights;
- NNCF quantize_with_accuracy_control (ONNX backend, max_drop 0.005 absolute);
- ONNX Neural Compressor (Intel Neural Compressor's ONNX Runtime package) autotune over the
  six quantize_static variants, tolerable loss 0.005 absolute (passed as relative loss
  0.005 / fp32 top-1, the only form it takes).
All peers score top-1 against the labels of the same test split, in Python; autocalib scores
with its own loader and the same preprocessing (docs/accuracy.md says where they differ).

For each detector (UltraFace RFB-320, YuNet, BlazeFace): autocalib's fast and auto modes and
the same peers, every tool scored by mAP@[.5:.95] against its own fp32 model's detections
(the zoo has no labels) with autocalib's decoder, NMS and mAP code (metrics/ac_metric_tool),
which is checked against autocalib's own score of its int8 model (the cross-check row).

Results go to --json (default $AC_BUILD_DIR/bench-work/accuracy.json) as they come, one
entry per model and tool; a later run reuses them (--rerun drops a model's entries,
--rerun-autocalib only its autocalib ones).
--markdown regenerates the generated section of docs/accuracy.md from that JSON alone.
"""

import argparse
import collections
import contextlib
import datetime
import json
import os
import re
import signal
import subprocess
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import peer_torch_ptq as ptq  # noqa: E402  (data loading, torch PTQ, top-k, machine line)

REPO = ptq.REPO
BUDGET = 0.005  # the accuracy budget of every tool: at most 0.5 top-1 points lost
DOC = os.path.join(REPO, "docs", "accuracy.md")
BEGIN = "<!-- accuracy_table.py: generated section begins; do not edit by hand -->"
END = "<!-- accuracy_table.py: generated section ends -->"
FMNIST_PREPROCESS = "mean_value=72.93,scale=0.011109"  # (x - 0.2860*255) / (0.3530*255)

# Classifiers this script runs: kind, autocalib batch. MobileNetV2 runs at batch 5: each
# auto-mode worker keeps up to three prepared executors with every activation of a batch
# (docs/accuracy.md, auto-mode section), 7.4 GB at batch 5 with two workers.
CLASSIFIERS = {
    "fmnist_plain": ("fmnist", 100),
    "fmnist_resnet": ("fmnist", 100),
    "fmnist_mbv2": ("fmnist", 100),
    "mobilenet_v1_025": ("imagenet", 10),
    "mobilenet_v2": ("imagenet", 5),
}
# Detectors: zoo model (and its weights file), images (calibration and test alike),
# preprocessing, autocalib decoder, input layout, autocalib batch, and what the images are.
# Every tool is scored against its own fp32 model's detections (autocalib's no-label detect
# score), also where the zoo has labels, so that the detectors are judged alike.
Detector = collections.namedtuple(
    "Detector", "model images preprocess decoder layout weights batch about classes",
    defaults=(None, 1, "the zoo has no other face images and no labels", 1))
DETECTORS = {
    "ultraface_rfb320": Detector("faces/ulfd_version-RFB-320.onnx", "faces/imgs",
                                 "resize_h=240,resize_w=320;mean_value=127:127:127,scale=0.0078125,"
                                 "bgr2rgb=True", "ultraface", "NCHW"),
    # YuNet takes BGR 0..255, as images enter autocalib's pipeline.
    "yunet_n_320": Detector("faces/yunet_n_320_320.onnx", "faces/imgs", "resize_h=320,resize_w=320",
                            "yunet", "NCHW"),
    # MediaPipe BlazeFace (front camera): RGB x/127.5 - 1, NHWC.
    "blazeface_front_128": Detector("faces/face_detection_front_128x128_barracuda.onnx", "faces/imgs",
                                    "resize_h=128,resize_w=128;mean_value=127.5:127.5:127.5,"
                                    "scale=0.00784313725490196,bgr2rgb=True", "blazeface", "NHWC"),
    # Yolo-Fastest 1.1 (Darknet): a plain resize to 320x320, RGB, x/255; the peers quantize
    # autocalib's import written as ONNX (`autocalib export-onnx`).
    "yolo_fastest_1.1": Detector("darknet/yolo-fastest-1.1.cfg", "coco128/images/val2017",
                                 "resize_h=320,resize_w=320;scale=0.00392156862745098,bgr2rgb=True",
                                 "yolo_fastest", "NCHW", "darknet/yolo-fastest-1.1.weights", 16,
                                 "COCO128's 128 val2017 images; its labels score the same model "
                                 "in the Yolo-Fastest section above", 80),
}
# Zoo models the importers handle that this script does not run, and why (none now).
NOT_RUN = {}
ORT_METHODS = ("MinMax", "Entropy", "Percentile")
WEIGHT_OPS = ("Conv", "Gemm", "MatMul")


class PeerTimeout(Exception):
    pass


@contextlib.contextmanager
def time_limit(seconds):
    """Raises PeerTimeout in the main thread after `seconds` (0: no limit), so that one slow
    accuracy-driven peer cannot hold the whole table."""
    def on_alarm(signum, frame):
        raise PeerTimeout("stopped after %d s (--peer-timeout)" % seconds)
    old = signal.signal(signal.SIGALRM, on_alarm)
    signal.alarm(int(seconds))
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


# ------------------------------------------------------------------ data

class Data:
    """One model's calibration inputs, test inputs and labels, as the Python peers see them,
    and the matching autocalib data options."""

    def __init__(self, name, kind, batch, limit, work):
        self.kind, self.batch = kind, batch
        if kind == "detect":
            d = DETECTORS[name]
            self.preprocess, self.decoder, self.nclasses = d.preprocess, d.decoder, d.classes
            self.images = os.path.join(ptq.ZOO, d.images)
            self.weights = os.path.join(ptq.ZOO, d.weights) if d.weights else None
            if not os.path.isdir(self.images):
                raise ptq.Skip("%s is absent" % self.images)
            self.n_test = len([f for f in os.listdir(self.images)
                               if f.lower().endswith((".jpg", ".jpeg", ".png"))])
            # The peers see exactly autocalib's inputs: its own decoder and resize, dumped.
            self.xc = self.xt = dumped_inputs(work, name)
            self.yt = None
            self.work, self.scorer = work, None  # a DetectScore: detect_scorer()
            return
        if kind == "fmnist":
            n_test = 10000
        else:
            n_test = len(ptq.imagenet_list(ptq.ZOO)) - ptq.IMAGENET_CALIB
        if limit:
            n_test = min(n_test, limit)
        # autocalib counts test batches: keep the peers on exactly the same samples.
        self.test_iterations = n_test // batch
        self.n_test = self.test_iterations * batch
        os.makedirs(work, exist_ok=True)
        if kind == "fmnist":
            self.xc, self.xt, self.yt = ptq.fmnist_data(300, self.n_test)
            self.size = 28
        else:
            self.size = ptq.IMAGENET_SIZES[name]
            self.xc, self.xt, self.yt = cached_imagenet(work, self.n_test, self.size)
            self.lists = write_imagenet_lists(work, self.n_test)

    def autocalib_args(self):
        if self.kind == "detect":
            batches = str(self.n_test // self.batch)
            extra = ["--weights", self.weights] if self.weights else []
            if self.batch > 1:
                extra += ["--input_data_shape", "(%d,%s)" % (self.batch, ",".join(
                    str(d) for d in self.xt.shape[1:]))]
            return ["--calib_image_source", self.images, "--calib_iterations", batches,
                    "--test_image_source", self.images, "--test_iterations", batches,
                    "--data_preproccess_str", self.preprocess,
                    "--task", "detect", "--detect_decoder", self.decoder] + extra
        if self.kind == "fmnist":
            f = ptq.FMNIST_DIR
            return ["--calib_idx_images", f + "/train-images-idx3-ubyte.gz",
                    "--calib_iterations", str(300 // self.batch),
                    "--test_idx_images", f + "/t10k-images-idx3-ubyte.gz",
                    "--test_idx_labels", f + "/t10k-labels-idx1-ubyte.gz",
                    "--test_iterations", str(self.test_iterations),
                    "--data_preproccess_str", FMNIST_PREPROCESS,
                    "--input_data_shape", "(%d,1,28,28)" % self.batch]
        s = self.size
        return ["--calib_image_source", self.lists[0],
                "--calib_iterations", str(300 // self.batch),
                "--test_image_source", self.lists[1],
                "--test_iterations", str(self.test_iterations),
                "--data_preproccess_str",
                "resize_h=%d,resize_w=%d;mean_value=128:128:128,scale=0.0078125,bgr2rgb=True"
                % (s, s),
                "--input_data_shape", "(%d,3,%d,%d)" % (self.batch, s, s)]


def cached_imagenet(work, n_test, size):
    """ImageNet arrays, decoded once per split and kept in the work folder (the NNCF child
    process and reruns read them back)."""
    cache = os.path.join(work, "imagenet_%d_%d.npz" % (n_test, size))
    if not os.path.exists(cache):
        xc, xt, yt = ptq.imagenet_data(ptq.ZOO, 300, n_test, size)
        np.savez(cache + ".tmp.npz", xc=xc, xt=xt, yt=yt)
        os.replace(cache + ".tmp.npz", cache)
    arrays = np.load(cache)
    return arrays["xc"], arrays["xt"], arrays["yt"]


def write_imagenet_lists(work, n_test):
    """The zoo's split as two ImageLists with absolute paths: the first 300 lines of
    dataset_1001.txt calibrate, the next n_test test (the peers read the same lines)."""
    items = ptq.imagenet_list(ptq.ZOO)
    calib, test = items[:ptq.IMAGENET_CALIB], items[ptq.IMAGENET_CALIB:][:n_test]
    paths = []
    for fname, part in (("calib300.txt", calib), ("test%d.txt" % n_test, test)):
        path = os.path.join(work, fname)
        with open(path, "w") as f:
            f.writelines("%s %d\n" % (p, lab) for p, lab in part)
        paths.append(path)
    return paths


def top1(logits, labels):
    return ptq.topk(logits, labels, 1)


def ac_tool(name):
    """A program of the autocalib build (the CLI, or metrics/ac_metric_tool)."""
    build = os.path.join(REPO, os.environ.get("AC_BUILD_DIR", "build"))  # REPO unless absolute
    return os.path.join(build, *({"autocalib": ("cli", "autocalib"),
                                  "metric": ("metrics", "ac_metric_tool")}[name]))


def dumped_inputs(work, name):
    """A detector's preprocessed images as autocalib makes them (`autocalib dataset dump`),
    [n, C, H, W] float32, kept in the work folder."""
    path = os.path.join(work, "inputs.npy")
    if not os.path.exists(path):
        d = DETECTORS[name]
        tmp = os.path.join(work, "inputs.tmp.npy")
        subprocess.run([ac_tool("autocalib"), "dataset", "dump", os.path.join(ptq.ZOO, d.images),
                        "--out", tmp, "--data_preproccess_str", d.preprocess, "--layout", d.layout],
                       check=True, stdout=subprocess.DEVNULL)
        os.replace(tmp, path)
    return np.load(path)


class DetectScore:
    """autocalib's detection score without labels, for tools scored in Python: the same
    decoder, NMS and COCO mAP@[.5:.95] code as autocalib's metric (metrics/ac_metric_tool
    runs them), candidate detections with score >= 0.05 against the fp32 model's own with
    score >= 0.5 (docs/metrics.md section 1). One yardstick for every tool: each is scored
    against its own pipeline's fp32 detections, so fp32 scores exactly 1."""

    CAND_THRESHOLD, REF_THRESHOLD = 0.05, 0.5

    def __init__(self, decoder, fp32_outputs, work, nclasses=1):
        self.decoder, self.work, self.nclasses = decoder, work, nclasses
        self.gt = [self.decode(o, self.REF_THRESHOLD) for o in fp32_outputs]

    def decode(self, outputs, threshold):
        """One sample's detections [(cls, score, x1, y1, x2, y2)] from its outputs (each
        with a leading batch dimension of 1)."""
        args = [ac_tool("metric"), "decode", self.decoder, repr(threshold)]
        for k, a in enumerate(outputs):
            f = os.path.join(self.work, "decode_%d.f32" % k)
            np.ascontiguousarray(a, dtype="<f4").tofile(f)
            args.append("%s:%s" % (f, ",".join(str(d) for d in a.shape)))
        out = subprocess.run(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             universal_newlines=True)
        if out.returncode != 0:
            raise RuntimeError("ac_metric_tool decode: %s" % out.stderr.strip())
        return [(int(r[0]), *map(float, r[1:6])) for r in (l.split() for l in out.stdout.splitlines())]

    def score(self, outputs, indices=None):
        """mAP@[.5:.95] of the samples `indices` (default all), outputs[i] being sample
        indices[i]'s outputs."""
        indices = list(range(len(self.gt))) if indices is None else list(indices)
        lines = ["classes %d" % self.nclasses] + ["sample %d" % i for i in range(len(indices))]
        for k, (i, o) in enumerate(zip(indices, outputs)):
            lines += ["gt %d %d %.9g %.9g %.9g %.9g" % (k, c, *b) for c, _, *b in self.gt[i]]
            lines += ["det %d %d %.9g %.9g %.9g %.9g %.9g" % (k, c, sc, *b)
                      for c, sc, *b in self.decode(o, self.CAND_THRESHOLD)]
        out = subprocess.run([ac_tool("metric"), "map"], input="\n".join(lines) + "\n",
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             universal_newlines=True)
        if out.returncode != 0:
            raise RuntimeError("ac_metric_tool map: %s" % out.stderr.strip())
        return float(dict(l.split() for l in out.stdout.splitlines())["map50_95"])


def ort_outputs(model_or_path, x, threads):
    """Every output of an ONNX model, one sample at a time: [[out0, out1, ...] per sample]."""
    sess = ort_session(model_or_path, threads)
    name = sess.get_inputs()[0].name
    return [sess.run(None, {name: x[i:i + 1]}) for i in range(len(x))]


def detect_scorer(data, fp32_path, threads):
    """The detector's scorer, its reference the fp32 model's detections (onnxruntime)."""
    if data.scorer is None:
        data.scorer = DetectScore(data.decoder, ort_outputs(fp32_path, data.xt, threads), data.work,
                                  data.nclasses)
    return data.scorer


def model_score(model_or_path, data, threads):
    """A model's score on the test split: top-1 against the labels (classifiers), or the
    detection score against the fp32 model's detections (detectors)."""
    if data.kind != "detect":
        return ort_top1(model_or_path, data, threads)
    return data.scorer.score(ort_outputs(model_or_path, data.xt, threads))


def named_copy(path, work):
    """The model with every node named: the zoo's MobileNets have unnamed nodes, and the ORT
    and Neural Compressor quantizers exclude nodes by name, so excluding the (unnamed)
    Softmax would exclude every node. The names do not change what the graph computes."""
    import onnx
    model = onnx.load(path)
    if all(n.name for n in model.graph.node):
        return path
    for i, n in enumerate(model.graph.node):
        if not n.name:
            n.name = "%s_%d" % (n.op_type, i)
    named = os.path.join(work, os.path.basename(path).replace(".onnx", ".named.onnx"))
    onnx.save(model, named)
    return named


def softmax_nodes(model):
    # Every tool here keeps Softmax in fp32 (autocalib always does; an 8-bit probability
    # would create ties among the top classes), so the peers exclude it too.
    return [n.name for n in model.graph.node if n.op_type == "Softmax"]


def input_name(model):
    return model.graph.input[0].name


def ort_session(model_or_path, threads):
    import onnxruntime as ort
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.log_severity_level = 3  # errors only: UltraFace's initializers-as-inputs warn per tensor
    src = model_or_path if isinstance(model_or_path, str) else model_or_path.SerializeToString()
    return ort.InferenceSession(src, so, providers=["CPUExecutionProvider"])


def ort_top1(model_or_path, data, threads):
    sess = ort_session(model_or_path, threads)
    name = sess.get_inputs()[0].name
    logits = np.concatenate([sess.run(None, {name: data.xt[i:i + data.batch]})[0]
                             for i in range(0, len(data.xt), data.batch)])
    return top1(logits, data.yt)


# ------------------------------------------------------------------ autocalib

def run_autocalib(name, path, data, mode, args):
    out = os.path.join(args.work, name, mode)
    cmd = [args.autocalib, "quantize", "--model", path, *data.autocalib_args(),
           "--accept_int8_decay", str(BUDGET), "--workers", str(args.workers),
           "--output_dir", out, "--quiet"]
    if mode == "auto":
        cmd.append("--auto_calib")
    log = os.path.join(args.work, name, mode + ".log")
    os.makedirs(os.path.dirname(log), exist_ok=True)
    t0 = time.perf_counter()
    with open(log, "w") as f:
        rc = subprocess.call(cmd, stdout=f, stderr=subprocess.STDOUT)
    wall = time.perf_counter() - t0
    if rc != 0:
        raise RuntimeError("autocalib %s exited %d; see %s" % (mode, rc, log))
    with open(os.path.join(out, "report.json")) as f:
        report = json.load(f)
    return summarize_report(report, wall, cmd)


# Each single-option plan of fast mode's screen, by the search's own name for it, with the
# `autocalib quantize` options that evaluate it alone.
SINGLE_OPTIONS = (
    ("baseline (KL, per-tensor)", ["--th_method", "KL"]),
    ("KL+per_channel", ["--th_method", "KL", "--per_channel"]),
    ("MAX", ["--th_method", "MAX"]),
    ("PERCENTILE9999", ["--th_method", "PERCENTILE9999"]),
    ("MSE", ["--th_method", "MSE"]),
    ("ACIQ_GAUSS", ["--th_method", "ACIQ_GAUSS"]),
    ("ACIQ_LAPLACE", ["--th_method", "ACIQ_LAPLACE"]),
    ("KL+accuracy_opt", ["--th_method", "KL", "--accuracy_opt"]),
    ("KL+first_conv_fp32", ["--th_method", "KL", "--first_conv_fp32"]),
)


def run_autocalib_options(name, path, data, args):
    """Every single-option plan evaluated on the full test set by itself (`--no_search`):
    the table's score of the plain baseline and of each fast-mode option. These runs are
    not part of any search; the search screens the same plans on the subset and evaluates
    in full only what its screen puts first."""
    rows = []
    for label, opts in SINGLE_OPTIONS:
        out = os.path.join(args.work, name, "option", label.split(" ")[0])
        cmd = [args.autocalib, "quantize", "--model", path, *data.autocalib_args(),
               "--accept_int8_decay", str(BUDGET), "--no_search", *opts,
               "--output_dir", out, "--quiet"]
        log = out + ".log"
        os.makedirs(os.path.dirname(log), exist_ok=True)
        t0 = time.perf_counter()
        with open(log, "w") as f:
            rc = subprocess.call(cmd, stdout=f, stderr=subprocess.STDOUT)
        wall = time.perf_counter() - t0
        if rc not in (0, 2):  # 2: the plan misses the budget, which is a result here
            raise RuntimeError("autocalib %s exited %d; see %s" % (label, rc, log))
        with open(os.path.join(out, "report.json")) as f:
            report = json.load(f)
        rows.append({"name": label, "fp32_top1": report["fp32_score"],
                     "int8_top1": report["int8_score"], "met_budget": report["met_budget"],
                     "cost": report["estimated_cost"], "wall_s": wall})
    return {"tool": "autocalib options", "options": rows}


def option_lines(entry):
    """The single-option plans, each evaluated in full by itself, outside the search."""
    r = entry["rows"].get("autocalib options")
    if r is None:
        return []
    if "error" in r:
        return ["| autocalib, one option by itself | — | — | — | — | — | — | %s |" % r["error"]]
    return ["| autocalib, one option by itself | %s | %s | %s | %s | 1 (0) | — / %s | "
            "cost %.2f; `--no_search`, outside the search |"
            % (o["name"], pct(o["int8_top1"]), drop(o["fp32_top1"], o["int8_top1"]),
               "yes" if o["met_budget"] else "no", secs(o["wall_s"]), o["cost"])
            for o in r["options"]]


def refresh_autocalib_rows(name, rows, args):
    """Cached autocalib rows are summaries of report.json files kept in the work folder:
    summarize them again so that fields added to summarize_report reach older runs."""
    for mode in ("fast", "auto"):
        row = rows.get("autocalib " + mode)
        report = os.path.join(args.work, name, mode, "report.json")
        if row and "error" not in row and os.path.exists(report):
            with open(report) as f:
                rows["autocalib " + mode] = summarize_report(json.load(f), row["wall_s"],
                                                             row["command"])


def summarize_report(report, wall, cmd):
    """What the table needs from report.json: scores, the chosen plan and every candidate."""
    search = report.get("search") or {}
    chosen = report.get("chosen_candidate")
    return {
        "tool": "autocalib", "command": cmd,
        "fp32_top1": report["fp32_score"], "int8_top1": report["int8_score"],
        "met_budget": report["met_budget"], "estimated_cost": report["estimated_cost"],
        "fp32_layers": len(report["fp32_layers"]),
        # Conv/Gemm layers in fp32 out of all: the unit the peers' rows use.
        "fp32_weight_layers": [sum(1 for l in report["layers"]
                                   if l["op"] in WEIGHT_OPS and l["mode"] == "fp32"),
                               sum(1 for l in report["layers"] if l["op"] in WEIGHT_OPS)],
        "search_fp32_layers": (len(report["candidates"][chosen]["fp32_layers"])
                               if chosen is not None else 0),
        "chosen": report["candidates"][chosen]["name"] if chosen is not None else None,
        "evaluations": report["evaluations"],
        "subset_evaluations": search.get("subset_evaluations", 0),
        "rounds": report.get("rounds"), "workers": report.get("workers"),
        "elapsed_s": report["elapsed_s"], "wall_s": wall,
        "candidates": [{"name": c["name"], "round": c["round"],
                        "int8_score": c.get("int8_score"), "decided": c.get("decided"),
                        "subset_score": c.get("subset_score"),
                        "cost": c.get("cost"), "fp32_layers": len(c.get("fp32_layers") or [])}
                       for c in report["candidates"]],
    }


# ------------------------------------------------------------------ peers

class OrtReader:
    """Calibration batches for onnxruntime.quantization (and the Neural Compressor, which
    takes the same interface). __len__ and set_range let quantize_static calibrate in
    chunks (CalibStridedMinMax)."""

    def __init__(self, name, x, batch):
        self.name, self.x, self.batch = name, x, batch
        self.start, self.end = 0, len(self)
        self.i = 0

    def __len__(self):
        return (len(self.x) + self.batch - 1) // self.batch

    def set_range(self, start_index, end_index):
        self.start, self.end, self.i = start_index, end_index, start_index

    def get_next(self):
        if self.i >= self.end:
            return None
        item = {self.name: self.x[self.i * self.batch:(self.i + 1) * self.batch]}
        self.i += 1
        return item

    def rewind(self):
        self.i = self.start


def ort_static_config(method, per_channel):
    """The quantize_static settings closest to BM1684: QDQ graph, int8 symmetric activations
    and weights (zero point 0)."""
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType
    return dict(quant_format=QuantFormat.QDQ, activation_type=QuantType.QInt8,
                weight_type=QuantType.QInt8, per_channel=per_channel,
                calibrate_method=getattr(CalibrationMethod, method),
                extra_options={"ActivationSymmetric": True, "WeightSymmetric": True})


def inc_static_config(method, per_channel):
    from onnxruntime.quantization import QuantType
    settings = ort_static_config(method, per_channel)
    settings.update(activation_type=QuantType.QUInt8,
                    extra_options={"ActivationSymmetric": False, "WeightSymmetric": True})
    return settings


def peer_ort(path, model, data, work, args):
    from onnxruntime.quantization import quantize_static
    rows = {}
    for method in ORT_METHODS:
        for per_channel in (False, True):
            method_name = "%s %s" % (method, "per-channel" if per_channel else "per-tensor")
            dst = os.path.join(work, "ort_%s_%d.onnx" % (method, per_channel))
            t0 = time.perf_counter()
            settings = ort_static_config(method, per_channel)
            reader = OrtReader(input_name(model), data.xc, data.batch)
            # Its histogram calibrators keep every activation they are fed: feed the
            # calibration set in chunks of about 50 samples (the histograms merge).
            settings["extra_options"]["CalibStridedMinMax"] = max(
                1, min(len(reader), 50 // data.batch))
            while len(reader) % settings["extra_options"]["CalibStridedMinMax"]:
                settings["extra_options"]["CalibStridedMinMax"] -= 1
            quantize_static(path, dst, reader, nodes_to_exclude=softmax_nodes(model),
                            **settings)
            calib_s = time.perf_counter() - t0
            score = model_score(dst, data, args.threads)
            rows["ort " + method_name] = {
                "tool": "onnxruntime quantize_static", "method": method_name,
                "int8_top1": score, "evaluations": 1, "calib_s": calib_s,
                "wall_s": time.perf_counter() - t0}
            log("ort %s: %.4f" % (method_name, score))
    return rows


def peer_torch(path, data, args):
    gm = ptq.to_torch(path)
    engine = ptq.pick_engine("auto")
    rows = {}
    for per_channel in (False, True):
        method_name = "FX PTQ %s" % ("per-channel" if per_channel else "per-tensor")
        t0 = time.perf_counter()
        q = ptq.quantize(gm, data.xc, data.batch, engine, "histogram", per_channel)
        calib_s = time.perf_counter() - t0
        score = torch_score(q, data)
        rows["torch " + method_name] = {
            "tool": "PyTorch %s (%s)" % (ptq_torch_version(), engine), "method": method_name,
            "int8_top1": score, "evaluations": 1, "calib_s": calib_s,
            "wall_s": time.perf_counter() - t0}
        log("torch %s: %.4f" % (method_name, score))
    return rows


def torch_score(model, data):
    if data.kind != "detect":
        return top1(ptq.forward_all(model, data.xt, data.batch), data.yt)
    import torch
    outs = []
    with torch.no_grad():
        for i in range(len(data.xt)):
            y = model(torch.from_numpy(data.xt[i:i + 1]))
            outs.append([t.float().numpy() for t in (y if isinstance(y, (tuple, list)) else [y])])
    return data.scorer.score(outs)


def ptq_torch_version():
    import torch
    return torch.__version__


class CountingValidator:
    """NNCF's validation_fn: top-1 of an ONNX model on the items given, one sample per item
    (NNCF ranks layers with the per-item values), or a detector's score on them (one value
    for the set: NNCF then ranks by its own output differences). Counts full-set and subset
    evaluations."""

    def __init__(self, data, threads):
        self.data, self.n_test, self.threads = data, len(data.xt), threads
        self.full = self.subset = 0
        self.sizes = []  # items per call, in call order (the JSON keeps them)

    def count(self, n):
        self.sizes.append(n)
        # NNCF first calls it on one item to check it; that is not an evaluation.
        if n >= self.n_test:
            self.full += 1
        elif n > 1:
            self.subset += 1

    def __call__(self, model, items):
        sess = ort_session(model, self.threads)
        name = sess.get_inputs()[0].name
        items = list(items)
        self.count(len(items))
        if self.data.kind == "detect":
            return self.data.scorer.score([sess.run(None, {name: x}) for x, _ in items],
                                          [i for _, i in items])
        correct = [float(np.argmax(sess.run(None, {name: x})[0][0]) == y) for x, y in items]
        return float(np.mean(correct)), correct


# Peers that run in a child process: NNCF, because NNCF 3.x loads its torch tensor
# functions whenever torch imports and they need torch >= 2 (torch.uint16), which Debian's
# torch 1.13 (the PyTorch peer, imported in this process) is not; the ONNX Runtime and
# Neural Compressor calibrators, because their Entropy/Percentile calibrators hold every
# activation of the calibration set in memory (about 10 GB on MobileNetV2) and a child
# under an address-space limit fails alone instead of waking the OOM killer.
CHILD_PEERS = ("ort", "nncf", "inc", "inc check")
CHILD_MEMORY_BYTES = 14 << 30


def peer_in_child(name, peer, fp32, args):
    tag = peer.replace(" ", "_")
    out = os.path.join(args.work, name, tag + ".json")
    if os.path.exists(out):
        os.remove(out)
    cmd = [sys.executable, os.path.abspath(__file__), "--peer-child", "%s:%s" % (name, peer),
           "--child-fp32", repr(fp32), "--limit", str(args.limit), "--build", args.build,
           "--threads", str(args.threads)]

    def limit_memory():
        import resource
        resource.setrlimit(resource.RLIMIT_AS, (CHILD_MEMORY_BYTES, CHILD_MEMORY_BYTES))

    with open(os.path.join(args.work, name, tag + ".log"), "w") as f:
        launched = time.time()
        child = subprocess.Popen(cmd, stdout=f, stderr=subprocess.STDOUT, preexec_fn=limit_memory)
        try:
            rc = child.wait()
        finally:  # --peer-timeout fired: the child must not run on beside the next step
            if child.poll() is None:
                child.kill()
                child.wait()
    if rc != 0:
        raise RuntimeError("%s child exited %d (last line: %s); see %s"
                           % (peer, rc, last_line(f.name), f.name))
    with open(out) as f:
        rows = json.load(f)
    return with_command_time(rows, launched)


def with_command_time(rows, launched):
    """command_s: from the child's launch to the end of the tool's call (a "done_at"
    clock time the child records), that is the Python start, the imports, reading the
    model and data, and the call: the same span autocalib's wall time covers (its whole
    command), where wall_s covers the call alone, with everything already in memory."""
    for row in rows.values():
        done_at = row.pop("done_at", None)
        if done_at is not None:
            row["command_s"] = done_at - launched
    return rows


def last_line(path):
    with open(path, errors="replace") as f:
        lines = [line.strip() for line in f if line.strip()]
    return lines[-1][:200] if lines else "none"


def peer_child_main(spec, args):
    name, peer = spec.split(":", 1)
    if peer == "nncf":
        sys.modules["torch"] = None  # import torch now raises ImportError, which NNCF skips
    import onnx
    # a detector's peers run its ONNX form one image at a time (its batch dimension is 1)
    kind, batch = CLASSIFIERS[name] if name in CLASSIFIERS else ("detect", 1)
    work = os.path.join(args.work, name)
    path, _, _ = peer_model(name, work)
    data = Data(name, kind, batch, args.limit, work)
    if kind == "detect":
        detect_scorer(data, path, args.threads)
    model = onnx.load(path)
    fp32 = args.child_fp32
    if peer == "ort":
        rows = peer_ort(path, model, data, work, args)
    elif peer == "nncf":
        rows = peer_nncf(model, data, fp32, args)
    elif peer == "inc":
        rows = peer_inc(path, model, data, fp32, work, args)
    else:
        rows = peer_inc_symmetric_check(path, model, data, args)
    save(os.path.join(work, peer.replace(" ", "_") + ".json"), rows)
    return 0


def peer_nncf(model, data, fp32_top1, args):
    import nncf
    name = input_name(model)
    calib = nncf.Dataset([data.xc[i:i + 1] for i in range(len(data.xc))], lambda x: {name: x})
    # Items (input, label) or, for a detector, (input, sample index); the transform gives
    # NNCF the model's input when it ranks layers by output differences.
    test = nncf.Dataset([(data.xt[i:i + 1], data.yt[i] if data.yt is not None else i)
                         for i in range(len(data.xt))], lambda item: {name: item[0]})
    validate = CountingValidator(data, args.threads)
    t0 = time.perf_counter()
    q = nncf.quantize_with_accuracy_control(
        model, calib, test, validate, max_drop=BUDGET, drop_type=nncf.DropType.ABSOLUTE,
        subset_size=len(data.xc), ignored_scope=nncf.IgnoredScope(types=["Softmax"], validate=False))
    wall = time.perf_counter() - t0
    done_at = time.time()
    score = model_score(q, data, args.threads)
    kept, total = float_weight_layers(q)
    # NNCF's first full evaluation is the fp32 model's; the table counts int8 evaluations.
    return {"nncf accuracy control": {
        "tool": "NNCF %s" % nncf.__version__, "method": "quantize_with_accuracy_control",
        "int8_top1": score, "met_budget": fp32_top1 - score <= BUDGET,
        "evaluations": validate.full - 1, "subset_evaluations": validate.subset,
        "validation_sizes": validate.sizes, "wall_s": wall, "done_at": done_at,
        "note": "%d of %d Conv/Gemm layers left in fp32" % (kept, total)}}


def float_weight_layers(model):
    """(Conv/Gemm nodes whose weight is not dequantized from int8, all Conv/Gemm nodes) of a
    QDQ model: the layers an accuracy-driven peer left in fp32."""
    dequantized = {n.output[0] for n in model.graph.node if n.op_type == "DequantizeLinear"}
    layers = [n for n in model.graph.node if n.op_type in WEIGHT_OPS]
    return sum(1 for n in layers if n.input[1] not in dequantized), len(layers)


def peer_inc(path, model, data, fp32_top1, work, args):
    """ONNX Neural Compressor's autotune: quantize with each config of the set in turn,
    evaluate, stop at the first within the budget. It calls exit() when none is."""
    from onnx_neural_compressor.quantization import config, tuning
    import onnx_neural_compressor
    # One config per calibration method and weight granularity, in the ORT rows' order (its
    # own expansion of list-valued parameters leaves calibrate_method a list, which its
    # calibrator rejects). Activations stay in its default uint8 asymmetric form: with
    # symmetric int8 activations its QDQ models lose far more than quantize_static's with
    # the same settings (docs/accuracy.md, generated section).
    # calibration_sampling_size: all of the calibration set (its default is 100 samples).
    configs = [config.StaticQuantConfig(nodes_to_exclude=softmax_nodes(model),
                                        calibration_sampling_size=len(data.xc),
                                        **inc_static_config(method, per_channel))
               for method in ORT_METHODS for per_channel in (False, True)]
    scores = []

    def evaluate(model_path):
        scores.append(model_score(model_path, data, args.threads))
        return scores[-1]

    tune = tuning.TuningConfig(config_set=configs,
                               tolerable_loss=BUDGET / fp32_top1, max_trials=100)
    t0 = time.perf_counter()
    met, note = True, None
    try:
        tuning.autotune(path, tune, evaluate,
                        calibration_data_reader=OrtReader(input_name(model), data.xc, data.batch))
    except SystemExit:
        met, note = False, "no config within the budget: best trial shown"
    except MemoryError:
        # Its Entropy/Percentile calibration keeps every activation of the calibration set.
        met = False
        note = ("stopped by MemoryError in trial %d (%s) under this child's %d GiB limit: "
                "its Entropy/Percentile calibration keeps every activation of the %d "
                "calibration samples; best earlier trial shown"
                % (len(scores), configs[len(scores) - 1].calibrate_method
                   if hasattr(configs[len(scores) - 1], "calibrate_method") else "?",
                   CHILD_MEMORY_BYTES >> 30, len(data.xc)))
    wall = time.perf_counter() - t0
    done_at = time.time()
    trials = scores[1:]  # the first evaluation is the fp32 baseline
    return {"inc autotune": {
        "tool": "ONNX Neural Compressor %s" % getattr(onnx_neural_compressor, "__version__", "1.0"),
        "method": "autotune (6 static configs, uint8 asymmetric activations)",
        "int8_top1": trials[-1] if met else max(trials, default=None), "met_budget": met,
        "evaluations": len(trials), "wall_s": wall, "done_at": done_at, "note": note}}


def peer_inc_symmetric_check(path, model, data, args):
    """Why the INC row tunes with uint8 asymmetric activations: the same package with
    symmetric int8 activations (MinMax, per-tensor), scored beside quantize_static's row
    with the same settings."""
    from onnx_neural_compressor.quantization import config, tuning
    scores = []

    def evaluate(model_path):
        scores.append(model_score(model_path, data, args.threads))
        return scores[-1]

    one = config.StaticQuantConfig(nodes_to_exclude=softmax_nodes(model),
                                   calibration_sampling_size=len(data.xc),
                                   **ort_static_config("MinMax", False))
    t0 = time.perf_counter()
    # tolerable_loss 1: the first (only) config is always accepted, so it returns the model.
    tuning.autotune(path, tuning.TuningConfig(config_set=[one], tolerable_loss=1.0), evaluate,
                    calibration_data_reader=OrtReader(input_name(model), data.xc, data.batch))
    return {"inc int8 symmetric check": {
        "tool": "ONNX Neural Compressor (check, not tuned)",
        "method": "MinMax per-tensor, int8 symmetric activations", "int8_top1": scores[-1],
        "evaluations": 1, "wall_s": time.perf_counter() - t0, "check": True,
        "note": "the ORT quantize_static row with the same settings is \"MinMax per-tensor\""}}


# ------------------------------------------------------------------ one model

def log(msg):
    print("[%s] %s" % (time.strftime("%H:%M:%S"), msg), flush=True)


PEER_OPSET = 13  # per-channel QDQ (DequantizeLinear axis) and NNCF need opset >= 13 / 10


def peer_model(name, work):
    """The model the peers quantize: every node named and, for a detector, converted to
    PEER_OPSET when older. Returns (path, max |fp32 output difference| from the original on
    the first test input, or 0 when unchanged, the original's opset)."""
    import onnx
    from onnx import version_converter
    named = named_copy(onnx_file(name, work), work)
    model = onnx.load(named)
    opset = max((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), default=0)
    if name not in DETECTORS or opset >= PEER_OPSET:
        return named, 0.0, opset
    path = named.replace(".onnx", ".opset%d.onnx" % PEER_OPSET)
    if not os.path.exists(path):
        onnx.save(version_converter.convert_version(model, PEER_OPSET), path + ".tmp")
        os.replace(path + ".tmp", path)
    x = dumped_inputs(work, name)[:1]
    a, b = ort_outputs(named, x, 1)[0], ort_outputs(path, x, 1)[0]
    return path, max(float(np.abs(p - q).max()) for p, q in zip(a, b)), opset


def model_file(name):
    if name in DETECTORS:
        return os.path.join(ptq.ZOO, DETECTORS[name].model)
    return ptq.model_path(name, ptq.ZOO)


def onnx_file(name, work):
    """The model as ONNX for the Python tools: the zoo file, or for another format the
    ONNX form of autocalib's import (`autocalib export-onnx`), kept in the work folder."""
    path = model_file(name)
    if path.endswith(".onnx"):
        return path
    d = DETECTORS[name]
    out = os.path.join(work, os.path.splitext(os.path.basename(path))[0] + ".onnx")
    if not os.path.exists(out):
        cmd = [ac_tool("autocalib"), "export-onnx", path, "--output", out]
        if d.weights:
            cmd += ["--weights", os.path.join(ptq.ZOO, d.weights)]
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    return out


def peer_steps(name, path, data, fp32, args):
    """The peers' steps, in the order the table lists them."""
    return [("ort MinMax per-tensor", lambda: peer_in_child(name, "ort", fp32, args)),
            ("torch FX PTQ per-tensor", lambda: peer_torch(path, data, args)),
            ("nncf accuracy control", lambda: peer_in_child(name, "nncf", fp32, args)),
            ("inc autotune", lambda: peer_in_child(name, "inc", fp32, args)),
            ("inc int8 symmetric check", lambda: peer_in_child(name, "inc check", fp32, args))]


def run_model(name, args, results):
    kind, batch = CLASSIFIERS[name]
    path = ptq.model_path(name, ptq.ZOO)
    work = os.path.join(args.work, name)
    os.makedirs(work, exist_ok=True)
    entry = results["models"].setdefault(name, {"rows": {}})
    entry["file"] = os.path.relpath(path, REPO)
    rows = entry["rows"]
    data = Data(name, kind, batch, args.limit, work)
    entry.update(n_calib=len(data.xc), n_test=len(data.xt))
    if "fp32_top1" not in entry:
        entry["fp32_top1"] = ort_top1(path, data, args.threads)
    fp32 = entry["fp32_top1"]
    log("== %s: %d calibration / %d test; fp32 top-1 (onnxruntime) %.4f"
        % (name, len(data.xc), len(data.xt), fp32))

    refresh_autocalib_rows(name, rows, args)
    steps = autocalib_steps(name, path, data, args) + peer_steps(name, path, data, fp32, args)
    run_steps(name, rows, steps, args, results)


def autocalib_steps(name, path, data, args):
    """The steps of autocalib's fast mode and, unless skipped, auto mode."""
    steps = [("autocalib fast", lambda: {"autocalib fast": run_autocalib(name, path, data, "fast", args)}),
             ("autocalib options",
              lambda: {"autocalib options": run_autocalib_options(name, path, data, args)})]
    if not skipped_auto(name, args):
        steps.append(("autocalib auto",
                      lambda: {"autocalib auto": run_autocalib(name, path, data, "auto", args)}))
    return steps


def run_steps(name, rows, steps, args, results):
    """Runs the (row key, step) pairs whose rows the JSON does not hold yet; a step that fails
    becomes a row with the reason. The JSON is saved after each."""
    for key, step in steps:
        if key in rows:
            continue  # cached in the JSON
        log("%s: %s" % (name, key))
        try:
            limit = 0 if key.startswith("autocalib") else args.peer_timeout
            with time_limit(limit):
                rows.update(step())
        except (PeerTimeout, Exception) as e:  # a peer that fails is listed with the reason
            rows[key] = {"tool": key, "error": "%s: %s" % (type(e).__name__, e)}
            log("%s: %s failed: %s" % (name, key, e))
        save(args.json, results)


def run_detector(name, args, results):
    """A detector: autocalib's fast and auto modes and the peers, every tool scored by the
    same detection score against its own fp32 detections (DetectScore)."""
    path = model_file(name)
    if not os.path.exists(path):
        raise ptq.Skip("%s is absent" % path)
    work = os.path.join(args.work, name)
    os.makedirs(work, exist_ok=True)
    entry = results["models"].setdefault(name, {"rows": {}})
    entry.pop("peers_why", None)
    data = Data(name, "detect", DETECTORS[name].batch, 0, work)
    onnx_path = onnx_file(name, work)
    scorer = detect_scorer(data, onnx_path, args.threads)
    entry.update(kind="detect", file=os.path.relpath(path, REPO), n_calib=data.n_test,
                 n_test=data.n_test, about=DETECTORS[name].about,
                 fp32_top1=scorer.score(ort_outputs(onnx_path, data.xt, args.threads)))
    log("== %s: %d images calibrate and test; fp32 against itself %.4f"
        % (name, data.n_test, entry["fp32_top1"]))
    refresh_autocalib_rows(name, entry["rows"], args)
    steps = autocalib_steps(name, path, data, args)
    peer_path, opset_diff, zoo_opset = peer_model(name, work)
    steps.append(("autocalib cross-check", lambda: {"autocalib cross-check": dict(
        cross_check(name, onnx_path, data, args), peer_model=os.path.basename(peer_path),
        opset_diff=opset_diff, zoo_opset=zoo_opset)}))
    steps += peer_steps(name, peer_path, data, entry["fp32_top1"], args)
    run_steps(name, entry["rows"], steps, args, results)


def cross_check(name, path, data, args):
    """The Python scorer against autocalib's own score: autocalib's fast-mode int8 model and
    its fp32 model run on the dumped inputs (`autocalib run`), scored by DetectScore with
    autocalib's fp32 detections as the reference, must give the int8 score autocalib
    reported. Otherwise the peers' figures would not be comparable with autocalib's."""
    report = os.path.join(args.work, name, "fast", "report.json")
    with open(report) as f:
        rep = json.load(f)
    int8_model = os.path.join(args.work, name, "fast", rep["int8_model"]) \
        if not os.path.isabs(rep["int8_model"]) else rep["int8_model"]
    import onnx
    names = [o.name for o in onnx.load(path).graph.output]
    outs = {}
    for tag, model in (("fp32", path), ("int8", int8_model)):
        prefix = os.path.join(args.work, name, "xcheck_" + tag)
        # one image per run: UltraFace's graph has its batch of 1 built into constants
        outs[tag] = [autocalib_outputs(model, names, data.xt[i:i + 1], prefix)[0]
                     for i in range(len(data.xt))]
    scorer = DetectScore(data.decoder, outs["fp32"], data.work, data.nclasses)
    python = scorer.score(outs["int8"])
    log("%s: cross-check: Python %.10f, autocalib %.10f" % (name, python, rep["int8_score"]))
    return {"tool": "cross-check", "python_score": python, "autocalib_score": rep["int8_score"],
            "equal": abs(python - rep["int8_score"]) <= 1e-9}


def autocalib_outputs(model, names, x, prefix):
    """Every output of `autocalib run` on x, in the order of `names` (the ONNX model's
    outputs), one list per sample, in the scorer's form."""
    xin = prefix + "_in.npy"
    np.save(xin, np.ascontiguousarray(x, dtype=np.float32))
    out = prefix + "_out.npy"
    subprocess.run([ac_tool("autocalib"), "run", "--model", model, "--input", xin,
                    "--input_data_shape", "(%s)" % ",".join(str(d) for d in x.shape),
                    "--output", out], check=True, stdout=subprocess.DEVNULL)
    # the first output goes to OUT.npy, the others to OUT.<name>.npy, the name with any
    # character other than letters, digits, '_', '.', '-' written as '_'
    arrays = [np.load(out)] + [np.load("%s_out.%s.npy" % (prefix, re.sub(r"[^A-Za-z0-9_.-]", "_", n)))
                               for n in names[1:]]
    return [[a[i:i + 1] for a in arrays] for i in range(len(x))]


def skipped_auto(name, args):
    return "all" in args.skip_auto or name in args.skip_auto


def save(path, results):
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(results, f, indent=1)
    os.replace(tmp, path)


def load(path):
    if os.path.exists(path):
        with open(path) as f:
            return json.load(f)
    return {"models": {}}


# ------------------------------------------------------------------ markdown

def pct(v):
    return "—" if v is None else "%.2f" % (100.0 * v)


def drop(fp32, v):
    return "—" if v is None or fp32 is None else "%.2f" % (100.0 * (fp32 - v))


def secs(v):
    return "—" if v is None else "%.0f" % v


def peer_secs(r, unit=""):
    """A peer's seconds: its call's, and its whole command's where measured."""
    if r.get("command_s") is None:
        return secs(r["wall_s"]) + unit
    return "%s%s (whole command %s%s)" % (secs(r["wall_s"]), unit, secs(r["command_s"]), unit)


TIME_NOISE = 0.10  # run-to-run spread of a whole command here: a few tenths of 3-6 s


def time_verdict(ours, r):
    """autocalib's whole command against the peer's whole command where measured (Python
    start, imports, model and data read, the call), else against its call alone."""
    if r.get("command_s") is not None:
        theirs, scope = r["command_s"], "whole commands %.1f vs %.1f s" % (ours["wall_s"], r["command_s"])
    else:
        theirs, scope = r["wall_s"], "our command %.1f s vs its call %.1f s" % (ours["wall_s"], r["wall_s"])
    # One measurement each on shared CPUs: closer than this, the order is noise.
    if abs(ours["wall_s"] - theirs) <= TIME_NOISE * theirs:
        return "**about the same** time (%s, within %d %%)" % (scope, round(100 * TIME_NOISE))
    return "%s time (%s)" % ("less" if ours["wall_s"] < theirs else "**not less**", scope)


def autocalib_lines(entry, key, mode_label):
    """Rows for one autocalib run: for fast mode the baseline and each round-1 option, then
    the chosen plan; for auto mode the chosen plan."""
    r = entry["rows"].get(key)
    if r is None:
        return []
    if "error" in r:
        return ["| autocalib %s | — | — | — | — | — | — | %s |" % (mode_label, r["error"])]
    fp32 = r["fp32_top1"]
    lines = []
    if key == "autocalib fast":
        for c in r["candidates"]:
            if c.get("subset_score") is not None:  # a screen on the subset: no decision
                lines.append("| autocalib fast, round %d | %s | — | — | screened | — | — | "
                             "cost %.2f; mean output cosine on the subset %.5f |"
                             % (c["round"], c["name"], c["cost"] or 0, c["subset_score"]))
                continue
            lines.append("| autocalib fast, round %d | %s | %s | %s | %s | — | — | cost %.2f |"
                         % (c["round"], c["name"], pct(c["int8_score"]),
                            drop(fp32, c["int8_score"]), c["decided"], c["cost"] or 0))
    lines.append("| **autocalib %s** | %s | **%s** | %s | %s | %d (%d) | %.0f / %.0f | "
                 "cost %.2f, %d fp32 layers (%d by the search%s)%s |"
                 % (mode_label, r["chosen"], pct(r["int8_top1"]), drop(fp32, r["int8_top1"]),
                    "yes" if r["met_budget"] else "**no**", r["evaluations"],
                    r["subset_evaluations"], r["rounds"], r["wall_s"], r["estimated_cost"],
                    r["fp32_layers"], r["search_fp32_layers"], weight_layers_text(r),
                    "; fp32 %s" % pct(fp32)))
    return lines


PEER_ORDER = ("ort ", "torch ", "nncf", "inc autotune", "inc int8")


def peer_order(key):
    """Peers in a fixed order, whatever order the cache was filled in."""
    return next((i for i, prefix in enumerate(PEER_ORDER) if key.startswith(prefix)),
                len(PEER_ORDER))


def weight_layers_text(r):
    if "fp32_weight_layers" not in r:
        return ""
    return "; %d of %d Conv/Gemm layers" % tuple(r["fp32_weight_layers"])


def peer_lines(entry):
    fp32 = entry["fp32_top1"]
    lines = []
    for key in sorted(entry["rows"], key=peer_order):  # stable: ORT rows keep their order
        r = entry["rows"][key]
        if key.startswith("autocalib"):
            continue
        if "error" in r:
            lines.append("| %s | — | — | — | — | — | — | could not run: %s |" % (r["tool"], r["error"]))
            continue
        met = r.get("met_budget", fp32 - r["int8_top1"] <= BUDGET)
        lines.append("| %s | %s | %s | %s | %s | %d (%d) | — / %s | %s |"
                     % (r["tool"], r["method"], pct(r["int8_top1"]), drop(fp32, r["int8_top1"]),
                        "yes" if met else "no", r["evaluations"], r.get("subset_evaluations", 0),
                        peer_secs(r), r.get("note") or ""))
    return lines


def best_peer(entry):
    scored = [r for k, r in entry["rows"].items()
              if not k.startswith("autocalib") and r.get("int8_top1") is not None
              and not r.get("check")]
    return max(scored, key=lambda r: r["int8_top1"], default=None)


ACCURACY_DRIVEN = {"nncf accuracy control": "NNCF", "inc autotune": "INC"}


def autocalib_result(entry):
    """The autocalib run the goal is judged on: fast mode when it met the budget (auto mode
    only adds work then), otherwise auto mode when it ran."""
    fast, auto = entry["rows"].get("autocalib fast"), entry["rows"].get("autocalib auto")
    fast = fast if fast and "error" not in fast else None
    auto = auto if auto and "error" not in auto else None
    if fast and (fast["met_budget"] or auto is None):
        return "fast", fast
    return ("auto", auto) if auto else (None, None)


def run_cell(r, n_test=None):
    if r is None:
        return "not run"
    if "error" in r:
        return "failed"
    return "%s (%s pts, %s, %.0f s)" % (pct(r["int8_top1"]), drop(r["fp32_top1"], r["int8_top1"]),
                                        evals_text(r, n_test), r["wall_s"])


def evals_text(r, n_test=None):
    subset = r.get("subset_evaluations") or 0
    text = "%d evals" % r["evaluations"] + (" + %d on a subset" % subset if subset else "")
    work = test_set_passes(r, n_test) if n_test else None
    if work is not None and subset:
        text += " = %.1f test-set passes" % work
    return text


AUTOCALIB_SUBSET = 256  # autocalib's screen and probes: the first 256 test samples (or all)


def test_set_passes(r, n_test):
    """The samples a tool's int8 evaluations ran, in passes over the test set: full ones
    count 1, subset ones their share. NNCF's validation calls are recorded item by item
    (its first full call, the fp32 model's, is left out, as autocalib's fp32 pass is);
    autocalib's subset is the first 256 test samples. None when not known."""
    if r.get("tool") == "autocalib":
        subset = r.get("subset_evaluations") or 0
        return r["evaluations"] + subset * min(AUTOCALIB_SUBSET, n_test) / n_test
    sizes = r.get("validation_sizes")
    if sizes:
        return (sum(sizes) - n_test) / n_test
    return None


def goal_cell(ours, driven):
    """Within the budget, and fewer evaluations and less wall time than every accuracy-driven
    peer that ran."""
    if ours is None:
        return "—"
    parts = ["budget %s" % ("met" if ours["met_budget"] else "**missed**")]
    for label, r in driven:
        if not r.get("met_budget") and ours["met_budget"]:
            # Effort spent by a peer that did not reach the goal is not the same work:
            # say that, with its figures, instead of ranking the two.
            parts.append("vs %s: it missed the budget (%d evals, %.0f s)" % (
                label, r["evaluations"], r["wall_s"]))
            continue
        parts.append("vs %s: %s evals, %s" % (
            label, evals_verdict(ours["evaluations"], r["evaluations"], least_evaluations(ours)),
            time_verdict(ours, r)))
    return "; ".join(parts)


def least_evaluations(ours):
    """The fewest full evaluations that can choose autocalib's plan: 1 when it costs what
    plain int8 costs on the chip, else 2."""
    return 2 if ours.get("estimated_cost", 1.0) > 1.0 + 1e-9 else 1


def evals_verdict(ours, theirs, least=1):
    """Full evaluations against a peer's. One is the least any tool can spend; two for a
    plan dearer on the chip than plain int8 (a cheaper plan has to be seen to miss the
    budget before it, by any tool). The least against the least is as few as possible,
    not fewer; said so rather than hidden."""
    if ours < theirs:
        return "fewer"
    if ours == theirs == least:
        why = "" if least == 1 else " for a plan dearer than plain int8"
        return "**not fewer** (%d = %d, the least possible%s)" % (ours, theirs, why)
    return "**not fewer** (%d vs %d)" % (ours, theirs)


def summary_line(name, entry):
    fast, auto = entry["rows"].get("autocalib fast"), entry["rows"].get("autocalib auto")
    mode, ours = autocalib_result(entry)
    peer = best_peer(entry)
    driven = [(label, entry["rows"][k]) for k, label in ACCURACY_DRIVEN.items()
              if k in entry["rows"] and "error" not in entry["rows"][k]]
    gap = "—"
    if ours and peer:
        # Compare drops, each from its own pipeline's fp32 (the loaders differ slightly).
        gap = "%+.2f" % (100.0 * ((ours["fp32_top1"] - ours["int8_top1"])
                                  - (entry["fp32_top1"] - peer["int8_top1"])))
    return "| %s | %s / %s | %s | %s | %s | %s: %s (%s pts) | %s | %s (%s) | %s |" % (
        name, pct(ours["fp32_top1"]) if ours else "—", pct(entry["fp32_top1"]),
        run_cell(fast, entry.get("n_test")), run_cell(auto, entry.get("n_test")),
        "%.2f" % auto["estimated_cost"] if auto and "error" not in auto else "—",
        peer["tool"] if peer else "—", peer["method"] if peer else "",
        drop(entry["fp32_top1"], peer["int8_top1"]) if peer else "—",
        "; ".join("%s: %s, %s, %s" % (label, pct(r["int8_top1"]), evals_text(r, entry.get("n_test")),
                                      peer_secs(r, " s"))
                  for label, r in driven) or "—",
        gap, mode or "—", goal_cell(ours, driven))


def ordered_models(results):
    """The cached models in the script's own order (CLASSIFIERS, then DETECTORS), not the
    cache's: --rerun drops a model and adds it back at the end, which must not move its
    section in the doc. Models the script no longer knows come last, as cached."""
    known = list(CLASSIFIERS) + list(DETECTORS)
    rank = {name: i for i, name in enumerate(known)}
    items = list(results["models"].items())
    return sorted(items, key=lambda item: rank.get(item[0], len(known)))


def peer_model_text(name, check):
    """Which file the peers quantize, and why it is not the zoo file when it is not."""
    exported = name in DETECTORS and not DETECTORS[name].model.endswith(".onnx")
    zoo_opset = check.get("zoo_opset", "?")
    if isinstance(zoo_opset, int) and zoo_opset >= PEER_OPSET:
        return ("The peers quantize `%s`, %s (opset %d), as it is." % (
            check.get("peer_model", "?"),
            "the ONNX form of autocalib's import (`autocalib export-onnx`)" if exported
            else "the zoo file with every node named", zoo_opset))
    return ("The peers quantize `%s`, the model converted to ONNX opset %d "
            "(`onnx.version_converter`): the %s is opset %s, in which quantize_static's "
            "per-channel DequantizeLinear (axis) is invalid (and NNCF refuses opsets below 10). "
            "Its fp32 outputs differ from the original's by at most %.2g." % (
                check.get("peer_model", "?"), PEER_OPSET,
                "exported model" if exported else "zoo file", zoo_opset,
                check.get("opset_diff", float("nan"))))


def markdown(results):
    meta = results.get("meta", {})
    out = [BEGIN, "", "## Accuracy and search table (generated)", "",
           "Generated by `%s` on %s (%s). Every figure below comes from the script's JSON "
           "cache, which this command fills (it reuses rows that earlier invocations on the "
           "same build folder measured, and `--rerun MODEL` measures a model again); "
           "rerun the command to regenerate this section." % (
               meta.get("command", "bench/run accuracy --markdown"), meta.get("date", "?"),
               meta.get("machine", "?")), ""]
    out += SETUP_TEXT.strip().splitlines() + [""]
    if meta.get("limit"):
        out += ["**Limited run:** the test split was cut to the first %d samples (`--limit`)."
                % meta["limit"], ""]
    out += ["### Summary", "",
            "Drops are in top-1 points from each pipeline's own fp32. autocalib's result is "
            "its fast mode when that met the budget, else its auto mode. \"gap\" = "
            "autocalib's drop minus the best peer's drop (negative: autocalib loses less). "
            "The goal: within the budget, with fewer evaluations and less wall time than the "
            "accuracy-driven peers (NNCF, INC); evaluations compare full-test-set ones (the "
            "subset ones, NNCF's ranking on 300 samples and autocalib's screen and sensitivity "
            "probes on 256, are listed beside them and are in the wall time). \"test-set "
            "passes\" adds them up: the samples the int8 evaluations ran, over the test set's "
            "size (full evaluations count 1, subset ones their share; fp32 not counted).", "",
            "| model | fp32 top-1 % (autocalib / Python) | autocalib fast | autocalib auto "
            "| auto cost | best peer (drop) | accuracy-driven peers | gap (pts) | goal |",
            "|---|---|---|---|---:|---|---|---|---|"]
    models = ordered_models(results)
    classifiers = [(n, e) for n, e in models if e.get("kind") != "detect"]
    detectors = [(n, e) for n, e in models if e.get("kind") == "detect"]
    for name, entry in classifiers:
        out.append(summary_line(name, entry))
    for name, entry in classifiers:
        out += ["", "### %s" % name, "",
                "`%s`, %d calibration / %d test samples, fp32 top-1 %s %% (onnxruntime, "
                "Python loader)." % (entry["file"], entry["n_calib"], entry["n_test"],
                                     pct(entry["fp32_top1"])), "",
                "| tool | method / plan | int8 top-1 % | drop (pts) | within 0.5 | evaluations "
                "(subset) | rounds / wall s | notes |",
                "|---|---|---:|---:|---|---:|---|---|"]
        out += both_modes_lines(name, entry, results)
        out += peer_lines(entry)
    for name, entry in detectors:
        out += detector_section(name, entry, results)
    not_run = ["- %s: %s." % (name, why) for name, why in
               list(NOT_RUN.items()) + list(results.get("skipped", {}).items())]
    if not_run:
        out += ["", "### Not run", ""] + not_run
    out += ["", END]
    return "\n".join(out) + "\n"


def both_modes_lines(name, entry, results):
    """autocalib's fast-mode rows, then auto mode's, or why auto mode has none."""
    lines = (option_lines(entry) + autocalib_lines(entry, "autocalib fast", "fast")
             + autocalib_lines(entry, "autocalib auto", "auto"))
    if "autocalib auto" not in entry["rows"]:
        lines.append("| autocalib auto | — | — | — | — | — | — | not run in this regeneration, %s |"
                     % skip_reason(results, name))
    return lines


def detector_section(name, entry, results):
    """A detector's rows: autocalib alone, scored against the fp32 model's detections."""
    out = ["", "### %s (detector)" % name, "",
           "`%s`, the same %d images calibrate and test (%s). Scores are mAP@[.5:.95] (%%) of "
           "the int8 detections against the fp32 model's own (autocalib's detection score "
           "without labels; docs/metrics.md), so fp32 scores 100 and the budget is 0.005 of "
           "that mAP." % (entry["file"], entry["n_test"],
                          entry.get("about", "the zoo has no other face images and no labels")),
           "",
           "| tool | method / plan | int8 mAP % | drop (pts) | within 0.5 | evaluations "
           "(subset) | rounds / wall s | notes |",
           "|---|---|---:|---:|---|---:|---|---|"]
    out += both_modes_lines(name, entry, results)
    out += peer_lines(entry)
    check = entry["rows"].get("autocalib cross-check")
    if check and "error" not in check:
        out += ["", "The peers are scored in Python by `DetectScore` (this script), which runs "
                "autocalib's own decoder, NMS and mAP code (`metrics/ac_metric_tool`) against "
                "each tool's own fp32 detections (onnxruntime's for the peers). Cross-check: "
                "autocalib's fast-mode int8 model and its fp32 model, run by `autocalib run` on "
                "the same inputs and scored this way, give %.10f; autocalib reported %.10f "
                "(%s)."
                % (check["python_score"], check["autocalib_score"],
                   "equal" if check["equal"] else "**they differ**"),
                ""] + [peer_model_text(name, check)]
    elif check:
        out += ["", "Cross-check of the Python scorer could not run: %s" % check["error"]]
    return out


SETUP_TEXT = """
**Budget:** 0.005 top-1 (half a point) absolute, for every tool. **Data:** Fashion-MNIST:
the first 300 training images calibrate, the 10 000 test images test; ImageNet: the zoo's
`val1300/dataset_1001.txt`, the first 300 lines calibrate, the other 1000 test. Scores are
top-1 against the labels. Detectors: see their sections.

**Tools:**
- autocalib: `autocalib quantize --accept_int8_decay 0.005 --workers 2` (fast mode) and
  the same with `--auto_calib`; BM1684 int8 emulation. Fast-mode rows list every candidate:
  round 1 screens plain int8 (the baseline: KL, per-tensor, all int8) and each single
  option on the subset, the later rounds evaluate in full; the bold rows are the chosen
  plans. "one option by itself" rows are each plan of that screen evaluated in full with
  `--no_search`, outside the search, for the table alone. "evaluations" are full-test-set
  candidate evaluations (subset: the screen and the sensitivity probes), the fp32 pass not
  counted; "wall s" is the whole command. The fp32 figure in the notes
  is autocalib's own: its JPEG decoder and resize are not Pillow's, and MobileNetV1-0.25 at
  128 px is sensitive to that, so compare drops, each from its own pipeline's fp32.
- ONNX Runtime `quantize_static`: QDQ format, int8 activations and weights, both
  symmetric (`ActivationSymmetric`, `WeightSymmetric`: zero point 0, the closest to
  BM1684), Softmax excluded; one evaluation each.
- PyTorch FX PTQ: `bench/peer_torch_ptq.py`'s scheme (HistogramObserver activations,
  symmetric per-tensor or per-channel weights).
- NNCF `quantize_with_accuracy_control`, ONNX backend, `max_drop=0.005`, absolute,
  defaults otherwise (symmetric int8, per-channel weights), Softmax ignored. Evaluations:
  full-set int8 evaluations (subset: its ranking passes), fp32 not counted.
- INC: ONNX Neural Compressor `autotune` (Intel Neural Compressor's ONNX Runtime package;
  the `neural-compressor` 3.x wheel holds only torch, TensorFlow and JAX back ends): QDQ,
  MinMax / Entropy / Percentile x per-tensor / per-channel symmetric int8 weights as its
  config set, tried in that order, stopping at the first within the budget. Its
  activations are its default uint8 asymmetric ones: with symmetric int8 activations
  it loses far more than `quantize_static` with the same settings (the "check, not
  tuned" row of each model). `tolerable_loss` is relative only, so it is set to
  0.005 / fp32 top-1, i.e. 0.5 points absolute. This package's autotune only walks the
  config set it is given (no per-layer fp32 fallback of its own), so at most six
  evaluations.
The peers' seconds are wall time of calibration + their evaluations in Python on the same
CPUs, the tool's call alone with the model and data already in memory; "whole command" (NNCF,
INC, where measured) is the span autocalib's seconds cover, its whole command: from the
peer's process launch (Python start, imports, reading the model and the data) to the
call's return. The goal compares whole commands where both are known.
"""


def skip_reason(results, name):
    reasons = results.get("skip_auto_reason", {})
    if name in reasons or "all" in reasons:
        return "`--skip-auto`: " + (reasons.get(name) or reasons["all"])
    return "no result in the JSON (the run was stopped before it)"


def write_markdown(results, doc):
    with open(doc) as f:
        text = f.read()
    section = markdown(results)
    if BEGIN in text and END in text:
        head, rest = text.split(BEGIN, 1)
        tail = rest.split(END, 1)[1].lstrip("\n")
        text = head + section + ("\n" + tail if tail else "")
    else:
        text = text.rstrip("\n") + "\n\n" + section
    with open(doc, "w") as f:
        f.write(text)


# ------------------------------------------------------------------ main

def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    build = os.environ.get("AC_BUILD_DIR", "build")
    known = list(CLASSIFIERS) + list(DETECTORS)
    p.add_argument("--models", default=",".join(known),
                   help="comma-separated subset of: %s" % ", ".join(known))
    p.add_argument("--skip-auto", default="",
                   help="models (or 'all') whose auto mode is not run, e.g. for time")
    p.add_argument("--skip-auto-reason", default="its run time on these CPUs",
                   help="the reason written into the doc for --skip-auto")
    p.add_argument("--rerun", default="", help="models whose cached results are dropped first")
    p.add_argument("--rerun-autocalib", default="",
                   help="models (or 'all') whose cached autocalib rows are dropped first; "
                        "their peers' rows are kept")
    p.add_argument("--limit", type=int, default=0, help="test on the first N samples only")
    p.add_argument("--build", default=build, help="autocalib build folder (default %(default)s)")
    p.add_argument("--json", help="results cache (default BUILD/bench-work/accuracy.json)")
    p.add_argument("--markdown", nargs="?", const=DOC,
                   help="write the generated section into this doc (default docs/accuracy.md)")
    p.add_argument("--markdown-only", action="store_true",
                   help="regenerate the doc from the JSON without running anything")
    p.add_argument("--workers", type=int, default=2, help="autocalib embedded-cluster workers")
    p.add_argument("--peer-timeout", type=int, default=1800,
                   help="seconds one peer may take on one model (0: no limit)")
    p.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    p.add_argument("--peer-child", help=argparse.SUPPRESS)  # MODEL:PEER, see peer_in_child
    p.add_argument("--child-fp32", type=float, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    args.models = [m for m in args.models.split(",") if m]
    args.skip_auto = [m for m in args.skip_auto.split(",") if m]
    args.rerun = [m for m in args.rerun.split(",") if m]
    args.rerun_autocalib = [m for m in args.rerun_autocalib.split(",") if m]
    unknown = [m for m in args.models + args.rerun + args.rerun_autocalib
               if m not in known and m != "all"]
    if unknown:
        p.error("unknown model(s) %s; known: %s" % (", ".join(unknown), ", ".join(known)))
    args.work = os.path.join(os.path.abspath(args.build), "bench-work", "accuracy")
    args.json = args.json or os.path.join(args.work, "accuracy.json")
    args.autocalib = os.path.join(os.path.abspath(args.build), "cli", "autocalib")
    return args


def command_line(argv):
    """How this run was started, as bench/run's user types it (bench/run passes --build)."""
    words, build = [], "build"
    it = iter(argv)
    for w in it:
        if w == "--build":
            build = next(it, build)
        elif w.startswith("--build="):
            build = w.split("=", 1)[1]
        else:
            words.append(w)
    prefix = "" if build == "build" else "AC_BUILD_DIR=%s " % build
    return prefix + "bench/run accuracy " + " ".join(words)


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    os.makedirs(args.work, exist_ok=True)
    if args.peer_child:
        return peer_child_main(args.peer_child, args)
    results = load(args.json)
    if args.markdown_only:  # fields added to summarize_report reach the cached rows too
        for name, entry in results["models"].items():
            refresh_autocalib_rows(name, entry["rows"], args)
    else:
        for name in args.rerun:
            results["models"].pop(name, None)
        for name, entry in results["models"].items():
            if name in args.rerun_autocalib or "all" in args.rerun_autocalib:
                for key in [k for k in entry.get("rows", {}) if k.startswith("autocalib")]:
                    del entry["rows"][key]
        results["meta"] = {
            "command": command_line(argv),
            "date": datetime.date.today().isoformat(), "machine": ptq.machine(),
            "limit": args.limit}
        # Only this invocation's --skip-auto: a model whose auto mode ran since is not skipped.
        results["skip_auto_reason"] = {name: args.skip_auto_reason for name in args.skip_auto}
        for name in args.models:
            try:
                if name in DETECTORS:
                    run_detector(name, args, results)
                else:
                    run_model(name, args, results)
            except ptq.Skip as e:
                results.setdefault("skipped", {})[name] = str(e)
                log("%s: skipped: %s" % (name, e))
            save(args.json, results)
    if args.markdown:
        write_markdown(results, args.markdown)
        log("wrote %s" % args.markdown)
    else:
        print(markdown(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
