#!/work/main/.venv/bin/python
"""PyTorch post-training static quantization as a peer for autocalib's int8 results.

    /work/main/.venv/bin/python bench/peer_torch_ptq.py [--models a,b] [--limit N]
                                                       [--json OUT] [--act-observer histogram|minmax]

The same ONNX models autocalib quantizes are converted to torch modules (onnx2torch),
checked against onnxruntime in fp32 on the test split, then quantized by PyTorch FX graph
mode PTQ (prepare_fx / calibrate / convert_fx) with symmetric per-tensor int8 activations
and two weight schemes: symmetric per-tensor (row "ptq per-tensor") and symmetric
per-channel (row "ptq per-channel"). Each int8 model is evaluated on the same test split.

Models and data:
- fmnist_plain, fmnist_resnet, fmnist_mbv2: models/<name>.onnx (the zoo's fmnist/ copy when
  the bundled one is absent); Debian's Fashion-MNIST idx files; calibration = the first
  --calib (300) training images, test = the 10k test set (first --limit).
  Preprocessing (x/255 - 0.2860)/0.3530.
- mobilenet_v2, mobilenet_v1_025: ../shared/zoo/imagenet/mobilenet_v2_1.0_224.onnx and
  mobilenet_v1_0.25_128.onnx (1001 classes) on val1300/dataset_1001.txt: the first 300
  lines calibrate, the other 1000 test (first --limit). JPEG decoded as RGB, bilinear
  resize to the model's side (224 / 128), (u8 - 128)/128, NCHW RGB.
  Skipped with a message when the zoo is absent.

Figures: top-1 (and top-5 for ImageNet) as fractions in the JSON, drop in percentage
points (fp32 - int8), calibration seconds (observer passes + convert) and evaluation
seconds (int8 forward over the test split), all on this machine's CPU.
"""

import argparse
import copy
import gzip
import json
import operator
import os
import platform
import sys
import time
import warnings

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ZOO = os.path.normpath(os.path.join(REPO, "..", "shared", "zoo"))
FMNIST_DIR = "/usr/share/datasets/fashion-mnist"
FMNIST_MEAN, FMNIST_STD = 0.2860, 0.3530
IMAGENET_CALIB = 300  # the project's convention: first 300 lines calibrate

FMNIST_MODELS = ["fmnist_plain", "fmnist_resnet", "fmnist_mbv2"]
IMAGENET_MODELS = {"mobilenet_v2": "mobilenet_v2_1.0_224.onnx",
                   "mobilenet_v1_025": "mobilenet_v1_0.25_128.onnx"}
# Input side in pixels of each ImageNet model (the JPEGs are resized to it).
IMAGENET_SIZES = {"mobilenet_v2": 224, "mobilenet_v1_025": 128}
ALL_MODELS = FMNIST_MODELS + list(IMAGENET_MODELS)


class Skip(Exception):
    """A model that cannot run here (file or data absent); the message says why."""


# ------------------------------------------------------------------ data

def read_idx(path):
    with gzip.open(path, "rb") as f:
        raw = f.read()
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != 8:
        raise ValueError("%s: not an unsigned-byte idx file (magic %r)" % (path, raw[:4]))
    ndim = raw[3]
    dims = [int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


def fmnist_split(prefix, n):
    img = os.path.join(FMNIST_DIR, "%s-images-idx3-ubyte.gz" % prefix)
    lab = os.path.join(FMNIST_DIR, "%s-labels-idx1-ubyte.gz" % prefix)
    if not os.path.exists(img) or not os.path.exists(lab):
        raise Skip("%s is absent (Debian package dataset-fashion-mnist)" % img)
    x = read_idx(img)[:n].astype(np.float32) / np.float32(255.0)
    x = (x - np.float32(FMNIST_MEAN)) / np.float32(FMNIST_STD)
    return np.ascontiguousarray(x[:, None], dtype=np.float32), read_idx(lab)[:n].astype(np.int64)


def fmnist_data(n_calib, limit):
    xc, _ = fmnist_split("train", n_calib)
    xt, yt = fmnist_split("t10k", limit if limit else 10000)
    return xc, xt, yt


def imagenet_list(zoo):
    if not os.path.isdir(zoo):
        raise Skip("model zoo %s is absent" % zoo)
    listing = os.path.join(zoo, "imagenet", "val1300", "dataset_1001.txt")
    if not os.path.exists(listing):
        raise Skip("%s is absent" % listing)
    root = os.path.dirname(listing)
    items = []
    with open(listing) as f:
        for lineno, line in enumerate(f, 1):
            line = line.strip()
            if not line:
                continue
            rel, sep, label = line.rpartition(",")
            if not sep:
                raise ValueError("%s:%d: expected 'path, label', got %r" % (listing, lineno, line))
            items.append((os.path.normpath(os.path.join(root, rel.strip())), int(label)))
    return items


def imagenet_images(items, size=224):
    """float32 NCHW RGB, (u8 - 128)/128, after a bilinear resize to size x size."""
    from PIL import Image
    out = np.empty((len(items), 3, size, size), np.float32)
    for i, (path, _) in enumerate(items):
        with Image.open(path) as im:
            rgb = np.asarray(im.convert("RGB").resize((size, size), Image.BILINEAR), np.float32)
        out[i] = ((rgb - 128.0) / 128.0).transpose(2, 0, 1)
    return out, np.array([lab for _, lab in items], np.int64)


def imagenet_data(zoo, n_calib, limit, size=224):
    items = imagenet_list(zoo)
    calib = items[:min(n_calib, IMAGENET_CALIB)]
    test = items[IMAGENET_CALIB:]
    if limit:
        test = test[:limit]
    xc, _ = imagenet_images(calib, size)
    xt, yt = imagenet_images(test, size)
    return xc, xt, yt


# ------------------------------------------------------------------ models

def model_path(name, zoo=ZOO):
    if name in IMAGENET_MODELS:
        if not os.path.isdir(zoo):
            raise Skip("model zoo %s is absent" % zoo)
        path = os.path.join(zoo, "imagenet", IMAGENET_MODELS[name])
        if not os.path.exists(path):
            raise Skip("%s is absent" % path)
        return path
    for path in (os.path.join(REPO, "models", name + ".onnx"),
                 os.path.join(zoo, "fmnist", name + ".onnx")):
        if os.path.exists(path):
            return path
    raise Skip("%s.onnx is in neither models/ nor the zoo's fmnist/" % name)


def to_torch(onnx_path):
    """The ONNX model as a torch.fx GraphModule made of modules and functions FX PTQ knows:
    onnx2torch's Add module becomes operator.add (quantized add), its GlobalAveragePool
    (torch.mean) becomes AdaptiveAvgPool2d(1), and constants no node reads are dropped."""
    import onnx
    import torch
    from onnx2torch import convert
    from onnx2torch.node_converters.binary_math_operations import OnnxBinaryMathOperation
    from onnx2torch.node_converters.global_average_pool import (
        OnnxGlobalAveragePool, OnnxGlobalAveragePoolWithKnownInputShape)
    from onnx2torch.node_converters.constant import OnnxConstant

    gm = convert(onnx.load(onnx_path))
    graph = gm.graph
    for node in list(graph.nodes):
        if node.op != "call_module":
            continue
        mod = gm.get_submodule(node.target)
        if isinstance(mod, OnnxConstant) and not node.users:
            graph.erase_node(node)
            gm.delete_submodule(node.target)
        elif isinstance(mod, OnnxBinaryMathOperation) and mod.math_op_function is torch.add \
                and mod.broadcast is None and len(node.args) == 2:
            with graph.inserting_after(node):
                new = graph.call_function(operator.add, tuple(node.args))
            node.replace_all_uses_with(new)
            graph.erase_node(node)
            gm.delete_submodule(node.target)
        elif isinstance(mod, (OnnxGlobalAveragePool, OnnxGlobalAveragePoolWithKnownInputShape)):
            gm.delete_submodule(node.target)
            gm.add_submodule(node.target, torch.nn.AdaptiveAvgPool2d(1))
    graph.lint()
    gm.recompile()
    gm.eval()
    return gm


# ------------------------------------------------------------------ evaluation

def forward_all(model, x, batch):
    import torch
    outs = []
    with torch.no_grad():
        for i in range(0, len(x), batch):
            outs.append(model(torch.from_numpy(x[i:i + batch])).float().numpy())
    return np.concatenate(outs)


def topk(logits, labels, k):
    # Stable sort on -logits: among tied scores the lower class index ranks first.
    order = np.argsort(-logits, axis=1, kind="stable")[:, :k]
    return float(np.mean(np.any(order == labels[:, None], axis=1)))


def ort_logits(onnx_path, x, batch, threads):
    import onnxruntime as ort
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    sess = ort.InferenceSession(onnx_path, so, providers=["CPUExecutionProvider"])
    name = sess.get_inputs()[0].name
    return np.concatenate([sess.run(None, {name: x[i:i + batch]})[0]
                           for i in range(0, len(x), batch)])


def pick_engine(requested):
    import torch
    engines = torch.backends.quantized.supported_engines
    if requested != "auto":
        if requested not in engines:
            raise SystemExit("quantized engine '%s' is not in this torch build (has: %s)"
                             % (requested, ", ".join(engines)))
        return requested
    # fbgemm/x86 are the usual x86 engines; Debian's torch 1.13 ships onednn and qnnpack.
    for e in ("x86", "fbgemm", "onednn", "qnnpack"):
        if e in engines:
            return e
    raise SystemExit("this torch build has no quantized engine (has: %s)" % ", ".join(engines))


def qconfig(engine, act_observer, per_channel):
    import torch
    from torch.ao.quantization import (QConfig, HistogramObserver, MinMaxObserver,
                                       PerChannelMinMaxObserver)
    # fbgemm/x86 kernels want 7-bit activations (reduce_range) to avoid overflow in
    # their int16 accumulation; onednn and qnnpack take the full 8 bits.
    reduce_range = engine in ("fbgemm", "x86")
    act_cls = HistogramObserver if act_observer == "histogram" else MinMaxObserver
    # The quantized kernels take quint8 activations: symmetric quint8 puts zero at 128,
    # i.e. the same grid as a symmetric int8 tensor.
    act = act_cls.with_args(dtype=torch.quint8, qscheme=torch.per_tensor_symmetric,
                            reduce_range=reduce_range)
    if per_channel:
        weight = PerChannelMinMaxObserver.with_args(dtype=torch.qint8, ch_axis=0,
                                                    qscheme=torch.per_channel_symmetric)
    else:
        weight = MinMaxObserver.with_args(dtype=torch.qint8, qscheme=torch.per_tensor_symmetric)
    return QConfig(activation=act, weight=weight)


def quantize(gm, calib, batch, engine, act_observer, per_channel):
    """FX graph-mode PTQ: insert observers, run the calibration set, convert to int8.
    Softmax (MobileNetV2's last node) stays fp32: it does not change the ranking, and an
    8-bit probability would create ties among the top classes."""
    import torch
    from torch.ao.quantization import QConfigMapping
    from torch.ao.quantization.quantize_fx import convert_fx, prepare_fx
    torch.backends.quantized.engine = engine
    qmap = (QConfigMapping()
            .set_global(qconfig(engine, act_observer, per_channel))
            .set_object_type(torch.nn.Softmax, None))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        prepared = prepare_fx(copy.deepcopy(gm), qmap,
                              example_inputs=(torch.from_numpy(calib[:1]),))
        with torch.no_grad():
            for i in range(0, len(calib), batch):
                prepared(torch.from_numpy(calib[i:i + batch]))
        return convert_fx(prepared)


def run_model(name, args, engine):
    path = model_path(name, args.zoo)
    is_imagenet = name in IMAGENET_MODELS
    t0 = time.perf_counter()
    if is_imagenet:
        xc, xt, yt = imagenet_data(args.zoo, args.calib, args.limit, IMAGENET_SIZES[name])
        batch = 50
    else:
        xc, xt, yt = fmnist_data(args.calib, args.limit)
        batch = 250
    load_s = time.perf_counter() - t0
    print("== %s: %s, %d calibration / %d test inputs (%.1f s to load)"
          % (name, os.path.relpath(path, REPO), len(xc), len(xt), load_s), flush=True)

    gm = to_torch(path)
    t0 = time.perf_counter()
    fp32 = forward_all(gm, xt, batch)
    fp32_s = time.perf_counter() - t0
    ort = ort_logits(path, xt, batch, args.threads)
    fp32_top1, ort_top1 = topk(fp32, yt, 1), topk(ort, yt, 1)
    agree = float(np.mean(np.argmax(fp32, 1) == np.argmax(ort, 1)))
    max_diff = float(np.max(np.abs(fp32 - ort)))
    line = ("   fp32 top-1: torch %.4f, onnxruntime %.4f (argmax agreement %.4f, max|diff| %.2e)"
            % (fp32_top1, ort_top1, agree, max_diff))
    fp32_top5 = ort_top5 = None
    if is_imagenet:
        fp32_top5, ort_top5 = topk(fp32, yt, 5), topk(ort, yt, 5)
        line += "; top-5: torch %.4f, onnxruntime %.4f" % (fp32_top5, ort_top5)
    print(line, flush=True)

    rows = []
    for method, per_channel in (("ptq per-tensor", False), ("ptq per-channel", True)):
        t0 = time.perf_counter()
        q = quantize(gm, xc, batch, engine, args.act_observer, per_channel)
        calib_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        int8 = forward_all(q, xt, batch)
        eval_s = time.perf_counter() - t0
        row = {
            "model": name, "method": method, "file": os.path.relpath(path, REPO),
            "engine": engine, "act_observer": args.act_observer,
            "weights": "per_channel_symmetric" if per_channel else "per_tensor_symmetric",
            "activations": "per_tensor_symmetric quint8",
            "n_calib": int(len(xc)), "n_test": int(len(xt)),
            "fp32_top1": fp32_top1, "fp32_top1_ort": ort_top1,
            "int8_top1": topk(int8, yt, 1),
            "drop_pts": 100.0 * (fp32_top1 - topk(int8, yt, 1)),
            "calib_s": calib_s, "eval_s": eval_s, "fp32_eval_s": fp32_s,
        }
        if is_imagenet:
            row.update(fp32_top5=fp32_top5, fp32_top5_ort=ort_top5,
                       int8_top5=topk(int8, yt, 5),
                       drop5_pts=100.0 * (fp32_top5 - topk(int8, yt, 5)))
        print("   %-16s int8 top-1 %.4f (drop %+.2f pts), calibrate %.1f s, eval %.1f s"
              % (method, row["int8_top1"], row["drop_pts"], calib_s, eval_s), flush=True)
        rows.append(row)
    return rows


def pct(v):
    return "—" if v is None else "%.2f" % (100.0 * v)


def print_table(rows):
    print()
    print("| model | method | fp32 top-1 % | int8 top-1 % | drop (pts) | fp32 top-5 % | int8 top-5 % "
          "| calib s | int8 eval s | fp32 eval s |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print("| %s | %s | %s | %s | %.2f | %s | %s | %.1f | %.1f | %.1f |"
              % (r["model"], r["method"], pct(r["fp32_top1"]), pct(r["int8_top1"]), r["drop_pts"],
                 pct(r.get("fp32_top5")), pct(r.get("int8_top5")), r["calib_s"], r["eval_s"],
                 r["fp32_eval_s"]))


def machine():
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return "%s, %d CPUs, %s" % (cpu, os.cpu_count() or 1, platform.platform())


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--models", default=",".join(ALL_MODELS),
                   help="comma-separated subset of: %s" % ", ".join(ALL_MODELS))
    p.add_argument("--limit", type=int, default=0, help="evaluate the first N test inputs only")
    p.add_argument("--calib", type=int, default=300, help="calibration inputs (default 300)")
    p.add_argument("--json", help="write the rows and run details to this file")
    p.add_argument("--act-observer", choices=("histogram", "minmax"), default="histogram")
    p.add_argument("--engine", default="auto", help="quantized engine (default: first of x86, "
                   "fbgemm, onednn, qnnpack this torch has)")
    p.add_argument("--zoo", default=ZOO, help="the shared model/data zoo (default %(default)s)")
    p.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    args = p.parse_args(argv)
    args.models = [m.strip() for m in args.models.split(",") if m.strip()]
    unknown = [m for m in args.models if m not in ALL_MODELS]
    if unknown:
        p.error("unknown model(s) %s; known: %s" % (", ".join(unknown), ", ".join(ALL_MODELS)))
    if args.limit < 0 or args.calib < 1 or args.threads < 1:
        p.error("--limit must be >= 0, --calib and --threads >= 1")
    return args


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    import importlib.util
    missing = [m for m in ("torch", "onnx", "onnx2torch", "onnxruntime")
               if importlib.util.find_spec(m) is None]
    if missing:
        print("peer_torch_ptq: %s not importable by %s (pip install -r "
              "python/requirements-test.txt into the venv)" % (", ".join(missing), sys.executable),
              file=sys.stderr)
        return 2
    import torch
    torch.set_num_threads(args.threads)
    engine = pick_engine(args.engine)
    print("torch %s, quantized engine %s, %d threads, activation observer %s"
          % (torch.__version__, engine, args.threads, args.act_observer), flush=True)
    rows, skipped = [], {}
    for name in args.models:
        try:
            rows += run_model(name, args, engine)
        except Skip as e:
            skipped[name] = str(e)
            print("== %s: skipped: %s" % (name, e), flush=True)
    print_table(rows)
    if args.json:
        doc = {"tool": "bench/peer_torch_ptq.py", "argv": sys.argv[1:] if argv is None else argv,
               "machine": machine(), "torch": torch.__version__, "engine": engine,
               "threads": args.threads, "rows": rows, "skipped": skipped}
        with open(args.json, "w") as f:
            json.dump(doc, f, indent=1)
        print("wrote %s" % args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
