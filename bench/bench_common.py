"""What bench/run's Python benchmarks share: locations, the models and data they run, the
peers' int8 models (ONNX Runtime QDQ, PyTorch FX PTQ), timing and machine lines.

Data go through autocalib's own pipeline once: `autocalib dataset import` (ImageNet JPEGs)
or the idx reader (Fashion-MNIST), then `autocalib dataset dump` to .npy. Ours reads the
LMDB / idx files, the peers read the dumped arrays: every engine sees the same float32
tensors and no engine's time includes image decoding.

Everything made here is cached in the work folder (<build>/bench-work) under a name that
holds the inputs' content hash, so a second run re-times without re-quantizing.
"""

import hashlib
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(REPO, "bench"))
import peer_torch_ptq as ptq  # noqa: E402  (reused: data readers, onnx2torch fix-ups, qconfig)

ZOO = ptq.ZOO
VAL = os.path.join(ZOO, "imagenet", "val1300")
FMNIST_DIR = ptq.FMNIST_DIR
N_CALIB = 300
CALIB_BATCH = 10  # 300 calibration images = 30 batches for every engine

IMAGENET_PP = "resize_h=224,resize_w=224;mean_value=128:128:128,scale=0.0078125,bgr2rgb=True"
FMNIST_PP = "mean_value=72.93,scale=0.011109"


class Skip(Exception):
    """A model whose files or data are absent here; the message says which."""


_T0 = time.perf_counter()


def log(msg):
    print(msg, flush=True)


def step(msg):
    """A setup step, with the seconds since the start (where the time goes)."""
    print("   [%5.0fs] %s" % (time.perf_counter() - _T0, msg), flush=True)


# ------------------------------------------------------------------ locations and commands

class Env:
    """The build folder, its autocalib and bench_net binaries, and the work folder."""

    def __init__(self, build):
        self.build = os.path.abspath(build)
        self.ac = os.path.join(self.build, "cli", "autocalib")
        self.bench_net = os.path.join(self.build, "bench", "bench_net")
        self.work = os.path.join(self.build, "bench-work")
        os.makedirs(self.work, exist_ok=True)
        for exe in (self.ac, self.bench_net):
            if not os.access(exe, os.X_OK):
                raise SystemExit("%s is missing: build %s first (bench/run does)" % (exe, self.build))

    def path(self, *parts):
        p = os.path.join(self.work, *parts)
        os.makedirs(os.path.dirname(p), exist_ok=True)
        return p

    def autocalib(self, *args, quiet=True):
        return run([self.ac] + [str(a) for a in args], quiet=quiet)


def run(cmd, quiet=True):
    """Runs a command; on failure prints its output and stops the benchmark."""
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, universal_newlines=True)
    if p.returncode != 0:
        sys.stdout.write(p.stdout)
        raise SystemExit("failed (%d): %s" % (p.returncode, " ".join(cmd)))
    if not quiet:
        sys.stdout.write(p.stdout)
    return p.stdout


def file_sha(path, _cache={}):
    if path not in _cache:
        h = hashlib.sha256()
        with open(path, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
        _cache[path] = h.hexdigest()
    return _cache[path]


def key_of(*parts):
    """A short name for a cached product of these inputs (file hashes, options)."""
    return hashlib.sha256(json.dumps(parts).encode()).hexdigest()[:16]


# ------------------------------------------------------------------ models and data

class Net:
    """One benchmarked network: its fp32 ONNX file, input shape, and the calibration /
    sample data in both forms (autocalib arguments, float32 arrays)."""

    def __init__(self, name, onnx_path, chw, input_name):
        self.name, self.onnx, self.chw, self.input_name = name, onnx_path, chw, input_name
        self.calib_args = []     # autocalib quantize: calibration source (and preprocessing)
        self.calib_run_args = [] # autocalib run: the same calibration inputs
        self.test_args = []      # autocalib quantize: a small test source (scoring is not timed)
        self.calib_npy = None    # [300, C, H, W] float32, the same tensors
        self.sample_npy = None   # [8, C, H, W] float32 test inputs for timing

    def shape(self, batch):
        return "(%d,%s)" % (batch, ",".join(str(d) for d in self.chw))


def imagenet_lists(env):
    """calib300.txt (lines 1-300 of val1300/dataset_1001.txt) and test250.txt (lines
    301-550), beside a `data` link to the zoo's images: relative paths under the list's
    folder, which is what a farm's dataset blob needs (docs/worker.md)."""
    src = os.path.join(VAL, "dataset_1001.txt")
    if not os.path.exists(src):
        raise Skip("%s is absent (the shared zoo)" % src)
    d = os.path.dirname(env.path("imagenet", "x"))
    link = os.path.join(d, "data")
    if not os.path.islink(link):
        os.symlink(os.path.join(VAL, "data"), link)
    with open(src) as f:
        lines = [ln.strip() for ln in f if ln.strip()]
    rel = [ln[2:] if ln.startswith("./") else ln for ln in lines]
    out = {}
    for name, part in (("calib300", rel[:N_CALIB]), ("test250", rel[N_CALIB:N_CALIB + 250])):
        p = os.path.join(d, name + ".txt")
        text = "\n".join(part) + "\n"
        if not os.path.exists(p) or open(p).read() != text:
            with open(p, "w") as f:
                f.write(text)
        out[name] = p
    return out


def imagenet_lmdb(env, list_path, name):
    """`autocalib dataset import` of a list with the MobileNetV2 preprocessing."""
    out = env.path("imagenet", name + ".lmdb")
    if not os.path.exists(os.path.join(out, "data.mdb")):
        env.autocalib("dataset", "import", "--image_source", list_path, "--data_preproccess_str", IMAGENET_PP,
                      "--out", out, "--threads", 2, "--overwrite")
    return out


def dump(env, out, *source_args):
    """`autocalib dataset dump` of a source to float32 .npy (cached)."""
    if not os.path.exists(out):
        env.autocalib("dataset", "dump", *source_args, "--out", out)
    return out


def mobilenet_v2(env):
    onnx_path = os.path.join(ZOO, "imagenet", "mobilenet_v2_1.0_224.onnx")
    if not os.path.exists(onnx_path):
        raise Skip("%s is absent (the shared zoo)" % onnx_path)
    lists = imagenet_lists(env)
    calib = imagenet_lmdb(env, lists["calib300"], "calib300")
    test = imagenet_lmdb(env, lists["test250"], "test250")
    n = Net("mobilenet_v2", onnx_path, (3, 224, 224), "t0")
    n.calib_args = ["--calib_lmdb_path", calib]
    n.calib_run_args = ["--lmdb_path", calib]
    n.test_args = ["--test_lmdb_path", test]
    n.calib_npy = dump(env, env.path("imagenet", "calib300.npy"), calib)
    n.sample_npy = dump(env, env.path("imagenet", "test8.npy"), test, "--count", 8)
    n.lists, n.lmdbs = lists, {"calib300": calib, "test250": test}
    return n


def fmnist(env, name):
    onnx_path = os.path.join(REPO, "models", name + ".onnx")
    train = os.path.join(FMNIST_DIR, "train-images-idx3-ubyte.gz")
    test = os.path.join(FMNIST_DIR, "t10k-images-idx3-ubyte.gz")
    labels = os.path.join(FMNIST_DIR, "t10k-labels-idx1-ubyte.gz")
    for p in (onnx_path, train, test, labels):
        if not os.path.exists(p):
            raise Skip("%s is absent (models/ or Debian's dataset-fashion-mnist)" % p)
    n = Net(name, onnx_path, (1, 28, 28), "input")
    pp = ["--data_preproccess_str", FMNIST_PP]
    n.calib_args = ["--calib_idx_images", train] + pp
    n.calib_run_args = ["--idx_images", train] + pp
    n.test_args = ["--test_idx_images", test, "--test_idx_labels", labels]
    n.calib_npy = dump(env, env.path("fmnist", "calib300.npy"), "--idx_images", train, *pp, "--count", N_CALIB)
    n.sample_npy = dump(env, env.path("fmnist", "test8.npy"), "--idx_images", test, *pp, "--count", 8)
    return n


NETS = ["mobilenet_v2", "fmnist_plain", "fmnist_resnet", "fmnist_mbv2"]


def load_net(env, name):
    return mobilenet_v2(env) if name == "mobilenet_v2" else fmnist(env, name)


# ------------------------------------------------------------------ ours

def quantize_ours(env, net, extra, tag):
    """`autocalib quantize` on the 300 calibration images (batches of 10, 2 threads) with
    `extra` options and one test batch (scoring is not what is measured). Returns the
    output folder (report.json, <model>.int8.acq); cached by model, data and options."""
    args = ["--model", net.onnx] + net.calib_args + ["--calib_iterations", N_CALIB // CALIB_BATCH] \
        + net.test_args + ["--test_iterations", 1, "--input_data_shape", net.shape(CALIB_BATCH),
                           "--threads", 2] + list(extra)
    out = env.path(net.name, "%s-%s" % (tag, key_of(file_sha(net.onnx), [str(a) for a in args])))
    if not os.path.exists(os.path.join(out, "report.json")):
        shutil.rmtree(out, ignore_errors=True)
        step("autocalib quantize %s (%s) ..." % (net.name, " ".join(str(a) for a in extra)))
        env.autocalib("quantize", *args, "--output_dir", out, "--quiet")
    return out


def acq_path(out_dir):
    names = [f for f in os.listdir(out_dir) if f.endswith(".int8.acq")]
    if len(names) != 1:
        raise SystemExit("%s: expected one .int8.acq file, found %s" % (out_dir, names))
    return os.path.join(out_dir, names[0])


# ------------------------------------------------------------------ ONNX Runtime

def dynamic_batch(env, net):
    """The fp32 model with a symbolic batch dimension (the zoo's MobileNetV2 says 1), so
    that one ONNX Runtime session runs batch 1 and 8; intermediate shapes are dropped."""
    import onnx
    out = env.path(net.name, "fp32-%s.onnx" % file_sha(net.onnx)[:16])
    if not os.path.exists(out):
        m = onnx.load(net.onnx)
        del m.graph.value_info[:]
        for v in list(m.graph.input) + list(m.graph.output):
            dims = v.type.tensor_type.shape.dim
            if dims:
                dims[0].Clear()
                dims[0].dim_param = "N"
        onnx.save(m, out + ".tmp")
        os.replace(out + ".tmp", out)
    return out


def ort_qdq(env, net):
    """ONNX Runtime's own static quantizer on the same 300 calibration tensors: QDQ format,
    per-channel int8 weights, uint8 activations (ORT's recommended U8S8 for x86), MinMax
    ranges. Returns the QDQ model path (cached)."""
    fp32 = dynamic_batch(env, net)
    out = env.path(net.name, "qdq-%s.onnx" % key_of(file_sha(fp32), file_sha(net.calib_npy), "v1"))
    if os.path.exists(out):
        return out
    import logging
    from onnxruntime.quantization import (CalibrationDataReader, CalibrationMethod, QuantFormat,
                                          QuantType, quantize_static)
    import onnxruntime as ort
    logging.getLogger().setLevel(logging.ERROR)  # its "consider pre-processing" hint
    ort.set_default_logger_severity(3)
    x = np.load(net.calib_npy)

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.i = 0

        def get_next(self):
            if self.i >= len(x):
                return None
            self.i += CALIB_BATCH
            return {net.input_name: x[self.i - CALIB_BATCH:self.i]}

    step("onnxruntime quantize_static %s ..." % net.name)
    quantize_static(fp32, out + ".tmp.onnx", Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                    activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                    calibrate_method=CalibrationMethod.MinMax)
    os.replace(out + ".tmp.onnx", out)
    return out


def ort_session(path, threads):
    import onnxruntime as ort
    ort.set_default_logger_severity(3)  # no warnings about initializers it drops
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    return ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])


# ------------------------------------------------------------------ PyTorch

def torch_prepare(net, fp32_path, act_observer):
    """FX graph-mode PTQ up to the calibration: the onnx2torch module with observers
    (symmetric per-tensor activations, per-channel symmetric weights, as
    bench/peer_torch_ptq.py does). Returns (prepared module, engine)."""
    import copy
    import warnings

    import torch
    from torch.ao.quantization import QConfigMapping
    from torch.ao.quantization.quantize_fx import prepare_fx
    engine = ptq.pick_engine("auto")
    torch.backends.quantized.engine = engine
    gm = ptq.to_torch(fp32_path)
    qmap = (QConfigMapping().set_global(ptq.qconfig(engine, act_observer, True))
            .set_object_type(torch.nn.Softmax, None))
    x = np.load(net.calib_npy, mmap_mode="r")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        prepared = prepare_fx(copy.deepcopy(gm), qmap, example_inputs=(torch.from_numpy(np.array(x[:1])),))
    return prepared, engine


def torch_calibrate(prepared, x):
    import torch
    with torch.no_grad():
        for i in range(0, len(x), CALIB_BATCH):
            prepared(torch.from_numpy(np.array(x[i:i + CALIB_BATCH])))


def torch_calibrated(env, net, fp32_path, act_observer):
    """The prepared module with its observers filled by the 300 calibration tensors; the
    observers' state is cached (state_dict), so a later run only re-prepares."""
    import torch
    prepared, engine = torch_prepare(net, fp32_path, act_observer)
    cache = env.path(net.name, "torch-observers-%s.pt" % key_of(
        file_sha(fp32_path), file_sha(net.calib_npy), act_observer, torch.__version__, engine))
    if os.path.exists(cache):
        prepared.load_state_dict(torch.load(cache))
    else:
        step("torch FX PTQ calibration %s (%d inputs, %s observers) ..." % (net.name, N_CALIB, act_observer))
        torch_calibrate(prepared, np.load(net.calib_npy, mmap_mode="r"))
        torch.save(prepared.state_dict(), cache + ".tmp")
        os.replace(cache + ".tmp", cache)
    return prepared, engine


def torch_convert(prepared):
    """convert_fx on a copy: Debian torch's onednn engine binds a converted model to the
    batch size and thread count of its first run, so each gets its own converted copy."""
    import copy
    import warnings
    from torch.ao.quantization.quantize_fx import convert_fx
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return convert_fx(copy.deepcopy(prepared))


# ------------------------------------------------------------------ timing and machine

def time_calls(fn, batch, seconds, warmup=3, min_calls=5):
    """Times fn() call by call after `warmup` calls, for at least `seconds` and
    `min_calls`; images/s from the median call and from the best call."""
    for _ in range(warmup):
        fn()
    times, start = [], time.perf_counter()
    while len(times) < min_calls or time.perf_counter() - start < seconds:
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    med = statistics.median(times)
    return {"calls": len(times), "median_ms": 1e3 * med, "best_ms": 1e3 * min(times),
            "images_per_s": batch / med, "images_per_s_best": batch / min(times)}


def loadavg():
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


def machine_line():
    model, cpus = platform.processor() or platform.machine(), os.cpu_count()
    try:
        out = subprocess.run(["lscpu"], stdout=subprocess.PIPE, universal_newlines=True).stdout
        fields = dict(ln.split(":", 1) for ln in out.splitlines() if ":" in ln)
        model = fields.get("Model name", model).strip()
        cpus = fields.get("CPU(s)", str(cpus)).strip()
    except OSError:
        pass
    return "machine: %s, %s CPUs, %s; load average %s" % (model, cpus, platform.platform(), loadavg())


def versions():
    import onnxruntime
    import torch
    return "onnxruntime %s, torch %s (quantized engine %s), numpy %s" % (
        onnxruntime.__version__, torch.__version__, ptq.pick_engine("auto"), np.__version__)


def proc_status(pid, *fields):
    """Values in kB of /proc/PID/status fields (VmHWM, VmRSS, ...); None when gone."""
    try:
        with open("/proc/%d/status" % pid) as f:
            vals = dict(ln.split(":", 1) for ln in f)
    except (OSError, ValueError):
        return None
    return {k: int(vals[k].split()[0]) for k in fields if k in vals}
