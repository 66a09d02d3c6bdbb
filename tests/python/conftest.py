"""Shared helpers for the Python comparison tests (run with /work/main/.venv/bin/python -m pytest).

- ac_bin: the built `autocalib` binary, from $AC_BIN, default <repo>/build/cli/autocalib.
- zoo: the shared model/data zoo at <repo>/../shared/zoo; tests that need it skip with a
  message when it is absent (a fresh clone has no zoo).
- run_autocalib / run_ort: run one model on one input with autocalib and onnxruntime and
  return {output name: array}.
- rel_err: the agreement figure, max|a-b| / max(max|b|, 1e-6).
- first_divergence: when a model disagrees, find the first node whose output differs, by
  exposing every intermediate tensor as an extra graph output.
"""

import gzip
import os
import re
import subprocess

import numpy as np
import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ZOO = os.path.normpath(os.path.join(REPO, "..", "shared", "zoo"))
MODELS = os.path.join(REPO, "models")
FMNIST_DIR = "/usr/share/datasets/fashion-mnist"
FMNIST_MEAN, FMNIST_STD = 0.2860, 0.3530

# Agreement figures collected during the session: {case: (worst error, output name)},
# printed (worst output per case) in the terminal summary.
_FIGURES = {}


def record_figure(case, output, value):
    old = _FIGURES.get(case)
    if old is None or value > old[0]:
        _FIGURES[case] = (value, output)


def pytest_terminal_summary(terminalreporter):
    if not _FIGURES:
        return
    terminalreporter.section("agreement with onnxruntime: max|a-b| / max|ref|, worst output")
    for case in sorted(_FIGURES):
        value, output = _FIGURES[case]
        terminalreporter.write_line("%-60s %.3e  %s" % (case, value, output))


# ------------------------------------------------------------------ locations

def ac_bin_path():
    return os.environ.get("AC_BIN", os.path.join(REPO, "build", "cli", "autocalib"))


@pytest.fixture(scope="session")
def ac_bin():
    path = ac_bin_path()
    if not os.access(path, os.X_OK):
        pytest.skip("autocalib binary not found at %s (build it, or set AC_BIN)" % path)
    return path


@pytest.fixture(scope="session")
def zoo():
    if not os.path.isdir(ZOO):
        pytest.skip("model zoo %s is absent (only the bundled models are tested)" % ZOO)
    return ZOO


def zoo_file(rel):
    """Absolute path of a zoo file; skips the test when the zoo or the file is absent."""
    path = os.path.join(ZOO, rel)
    if not os.path.isdir(ZOO):
        pytest.skip("model zoo %s is absent" % ZOO)
    if not os.path.exists(path):
        pytest.skip("zoo file %s is absent" % path)
    return path


def bundled_models():
    return sorted(os.path.join(MODELS, f) for f in os.listdir(MODELS) if f.endswith(".onnx")) \
        if os.path.isdir(MODELS) else []


# ------------------------------------------------------------------ agreement

def rel_err(a, b):
    """Norm-based relative error of a against the reference b."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        raise AssertionError("shape %s != reference shape %s" % (a.shape, b.shape))
    if a.size == 0:
        return 0.0
    if not np.all(np.isfinite(a)):
        return float("inf")
    return float(np.max(np.abs(a - b)) / max(float(np.max(np.abs(b))), 1e-6))


# ------------------------------------------------------------------ runners

def run_ort(model, x, input_name=None):
    import onnxruntime as ort
    so = ort.SessionOptions()
    so.intra_op_num_threads = 2
    sess = ort.InferenceSession(model, so, providers=["CPUExecutionProvider"])
    name = input_name or sess.get_inputs()[0].name
    names = [o.name for o in sess.get_outputs()]
    return dict(zip(names, sess.run(names, {name: x})))


def exact_reference(model, workdir):
    """The model onnxruntime should run as the reference. onnxruntime's Sigmoid is the MLAS
    logistic approximation, whose absolute error is about 1e-7 (e.g. 9.54e-7 for the exact
    8.87e-7 at x = -13.94); on an output whose values all lie below ~1e-3 (YuNet's obj_32)
    that alone exceeds the 1e-4 relative bound. So each Sigmoid is rewritten as
    Reciprocal(1 + Exp(-x)), which onnxruntime computes to float rounding; other models are
    returned unchanged."""
    import onnx
    from onnx import helper, numpy_helper
    m = onnx.load(model)
    if not any(n.op_type == "Sigmoid" for n in m.graph.node):
        return model
    one = "exact_ref_one"
    m.graph.initializer.append(numpy_helper.from_array(np.ones((), np.float32), one))
    nodes = []
    for i, n in enumerate(m.graph.node):
        if n.op_type != "Sigmoid":
            nodes.append(n)
            continue
        t = "exact_ref_%d_" % i
        nodes += [helper.make_node("Neg", [n.input[0]], [t + "neg"]),
                  helper.make_node("Exp", [t + "neg"], [t + "exp"]),
                  helper.make_node("Add", [t + "exp", one], [t + "den"]),
                  helper.make_node("Reciprocal", [t + "den"], [n.output[0]])]
    del m.graph.node[:]
    m.graph.node.extend(nodes)
    path = os.path.join(str(workdir), "exact_ref_" + os.path.basename(model))
    onnx.save(m, path)
    return path


def output_names(model):
    import onnx
    m = onnx.load(model, load_external_data=False)
    return [o.name for o in m.graph.output]


def _output_file(out_npy, name, first):
    """Where `autocalib run --output OUT.npy` puts output `name`: OUT.npy for the first
    output, OUT.<name>.npy for the others (a sanitised name is also accepted)."""
    if first:
        return out_npy
    stem = out_npy[:-4] if out_npy.endswith(".npy") else out_npy
    candidates = ["%s.%s.npy" % (stem, re.sub(r"[^A-Za-z0-9_.-]", "_", name))]
    if "/" not in name:
        candidates.insert(0, "%s.%s.npy" % (stem, name))
    for c in candidates:
        if os.path.exists(c):
            return c
    return candidates[0]


def strategy_args(options):
    """`autocalib quantize` arguments that evaluate one strategy alone (--no_search):
    `options` is a report's "strategy" or a candidate's "options"."""
    args = ["--no_search", "--th_method", options["th_method"]]
    for flag in ("per_channel", "accuracy_opt", "first_conv_fp32"):
        if options[flag]:
            args.append("--" + flag)
    return args


def shape_arg(shape):
    return "(" + ",".join(str(int(d)) for d in shape) + ")"


def run_autocalib(ac_bin, model, x, workdir, tag="run", extra_args=(), force_ref=False):
    """Run `autocalib run` on x (float32 array) and return {output name: array}.
    force_ref runs the __ref kernels everywhere (AC_FORCE_REF=1)."""
    x = np.ascontiguousarray(x, dtype=np.float32)
    xin = os.path.join(str(workdir), "%s_in.npy" % tag)
    out = os.path.join(str(workdir), "%s_out.npy" % tag)
    np.save(xin, x)
    cmd = [ac_bin, "run", "--model", model, "--input_data_shape", shape_arg(x.shape),
           "--input", xin, "--output", out] + list(extra_args)
    env = dict(os.environ)
    env.pop("AC_FORCE_REF", None)
    if force_ref:
        env["AC_FORCE_REF"] = "1"
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          universal_newlines=True, env=env)
    if proc.returncode != 0:
        raise AssertionError("%s failed (exit %d)\nstdout: %s\nstderr: %s" %
                             (" ".join(cmd), proc.returncode, proc.stdout[-2000:],
                              proc.stderr[-2000:]))
    result = {}
    for i, name in enumerate(output_names(model)):
        path = _output_file(out, name, i == 0)
        if not os.path.exists(path):
            raise AssertionError("autocalib wrote no file for output '%s' (looked for %s)"
                                 % (name, path))
        result[name] = np.load(path)
    return result


# ------------------------------------------------------------------ first divergent node

def first_divergence(ac_bin, model, x, workdir, input_name=None, tol=1e-4, force_ref=False):
    """Expose every node output as a graph output (through Identity nodes named dbg_<i>,
    so file names stay plain), run both runtimes, and return a text naming the first node
    in graph order whose output disagrees, or why the search could not be done."""
    import onnx
    from onnx import helper
    try:
        m = onnx.load(model)
        existing = {o.name for o in m.graph.output}
        probes = []  # (probe name, node index, node, tensor), in graph order
        for i, node in enumerate(list(m.graph.node)):
            if node.op_type == "Constant":
                continue
            for t in node.output:
                if not t:
                    continue
                if t in existing:
                    probes.append((t, i, node, t))
                    continue
                p = "dbg_%d" % len(probes)
                m.graph.node.append(helper.make_node("Identity", [t], [p]))
                m.graph.output.append(helper.make_empty_tensor_value_info(p))
                probes.append((p, i, node, t))
        probe_path = os.path.join(str(workdir), "probe.onnx")
        onnx.save(m, probe_path)
        ref = run_ort(exact_reference(probe_path, workdir), x, input_name)
        got = run_autocalib(ac_bin, probe_path, x, workdir, tag="probe", force_ref=force_ref)
    except Exception as e:  # a diagnostic only: say why it could not run
        return "first-divergence search failed: %s" % str(e).splitlines()[0][:300]
    for p, i, node, t in probes:
        if p not in got or p not in ref:
            continue
        try:
            err = rel_err(got[p], ref[p])
        except AssertionError as e:
            return "node #%d '%s' (%s) output '%s': %s" % (i, node.name, node.op_type, t, e)
        if err > tol:
            return ("first divergent node #%d '%s' (%s) output '%s': rel err %.3e"
                    % (i, node.name, node.op_type, t, err))
    return "no intermediate tensor exceeds %.0e" % tol


# ------------------------------------------------------------------ real inputs

def read_idx(path):
    with gzip.open(path, "rb") as f:
        raw = f.read()
    ndim = raw[3]
    dims = [int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


def fmnist_test(n):
    """First n Fashion-MNIST test images, preprocessed as float32 [n,1,28,28], and labels."""
    img = os.path.join(FMNIST_DIR, "t10k-images-idx3-ubyte.gz")
    lab = os.path.join(FMNIST_DIR, "t10k-labels-idx1-ubyte.gz")
    if not os.path.exists(img):
        pytest.skip("%s is absent (Debian package dataset-fashion-mnist)" % img)
    x = read_idx(img)[:n].astype(np.float32) / 255.0
    x = (x - np.float32(FMNIST_MEAN)) / np.float32(FMNIST_STD)
    return x[:, None].astype(np.float32), read_idx(lab)[:n].astype(np.int64)


def load_rgb(path, w, h):
    """Decode a JPEG to uint8 RGB HWC resized to w x h (bilinear)."""
    from PIL import Image
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB").resize((w, h), Image.BILINEAR), dtype=np.uint8)


def imagenet_images(n):
    """Paths of the first n images listed in the zoo's val1300 dataset.txt."""
    root = zoo_file("imagenet/val1300")
    with open(os.path.join(root, "dataset.txt")) as f:
        rels = [line.split(",")[0].strip() for line in f if line.strip()]
    return [os.path.normpath(os.path.join(root, r)) for r in rels[:n]]


def face_images(n):
    root = zoo_file("faces/imgs")
    names = sorted((f for f in os.listdir(root) if f.lower().endswith(".jpg")),
                   key=lambda s: (len(s), s))
    return [os.path.join(root, f) for f in names[:n]]
