"""bench/run calib: the calibration pass over 300 images, ours against PyTorch's
HistogramObserver calibration of the same model on the same preprocessed tensors.

    bench/run calib [--model mobilenet_v2|fmnist_plain|...]

- ours: `autocalib quantize --no_search --per_channel --no_kl_tune` on an LMDB made by
  `autocalib dataset import` (300 images, batches of 10, 2 threads); the figure is
  report.json `calibration.seconds`: the range pass, the histogram pass and the KL
  threshold search, as quantize runs them (the upward KL tuning step, on by default,
  is left out: PyTorch has none).
- pytorch: onnx2torch + prepare_fx with HistogramObserver activations (symmetric
  per-tensor, as bench/peer_torch_ptq.py) and per-channel weight observers,
  torch.set_num_threads(2); timed: the observer forward passes over the same 300 tensors
  (dumped from the same LMDB) in batches of 10, plus convert_fx, which computes the
  qparams (HistogramObserver's L2 search; ours counts its KL search too). prepare_fx
  is printed, not counted (ours does not count loading the model either).
- with --context: one plain fp32 forward pass over the 300 tensors, no statistics, on each
  side (`autocalib run`, wall time of the process; torch on the fp32 module), to see what
  the statistics cost on top of the forward passes.

Final line: calib_speedup_vs_pytorch=<pytorch seconds / our seconds> (above 1: ours faster).
"""

import argparse
import json
import os
import shutil
import sys
import time

import numpy as np

import bench_common as bc


def ours_calibration(env, net):
    """A fresh quantize run (never the cache: the time is the figure)."""
    out = env.path(net.name, "calib-run")
    shutil.rmtree(out, ignore_errors=True)
    args = ["--model", net.onnx] + net.calib_args + ["--calib_iterations", bc.N_CALIB // bc.CALIB_BATCH] \
        + net.test_args + ["--test_iterations", 1, "--input_data_shape", net.shape(bc.CALIB_BATCH),
                           "--threads", 2, "--no_search", "--per_channel", "--no_kl_tune", "--output_dir", out]
    text = env.autocalib("quantize", *args)
    line = next((ln for ln in text.splitlines() if "calibration:" in ln and " tensors in " in ln), "")
    with open(os.path.join(out, "report.json")) as f:
        cal = json.load(f)["calibration"]
    return cal["seconds"], cal["samples"], line.strip()


def ours_fp32_pass(env, net):
    """`autocalib run` of the fp32 model over the 300 calibration tensors (wall time)."""
    t0 = time.perf_counter()
    env.autocalib("run", "--model", net.onnx, *net.calib_run_args, "--input_data_shape", net.shape(bc.CALIB_BATCH),
                  "--test_iterations", bc.N_CALIB // bc.CALIB_BATCH, "--threads", 2,
                  "--output", env.path(net.name, "fp32_out.npy"))
    return time.perf_counter() - t0


def torch_calibration(env, net, context):
    import torch
    torch.set_num_threads(2)
    x = np.load(net.calib_npy)
    fp32 = bc.dynamic_batch(env, net)
    t0 = time.perf_counter()
    prepared, engine = bc.torch_prepare(net, fp32, "histogram")
    t_prepare = time.perf_counter() - t0
    t0 = time.perf_counter()
    bc.torch_calibrate(prepared, x)
    t_observe = time.perf_counter() - t0
    t0 = time.perf_counter()
    bc.torch_convert(prepared)
    t_convert = time.perf_counter() - t0
    t_fp32 = None
    if context:
        gm = bc.ptq.to_torch(fp32)
        t0 = time.perf_counter()
        with torch.no_grad():
            for i in range(0, len(x), bc.CALIB_BATCH):
                gm(torch.from_numpy(x[i:i + bc.CALIB_BATCH]))
        t_fp32 = time.perf_counter() - t0
    return {"prepare": t_prepare, "observe": t_observe, "convert": t_convert, "fp32": t_fp32, "engine": engine}


def main(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--build", default=os.path.join(bc.REPO, "build"))
    p.add_argument("--model", default="mobilenet_v2", choices=bc.NETS)
    p.add_argument("--context", action="store_true", help="also time one plain fp32 pass on each side")
    args = p.parse_args(argv)
    env = bc.Env(args.build)
    bc.log(bc.machine_line())
    bc.log(bc.versions() + "; 2 threads; %d calibration inputs in batches of %d" % (bc.N_CALIB, bc.CALIB_BATCH))
    try:
        net = bc.load_net(env, args.model)
    except bc.Skip as e:
        bc.log("== %s: skipped: %s" % (args.model, e))
        return 0
    bc.log("== %s (%s)" % (net.name, os.path.relpath(net.onnx, bc.REPO)))
    ours_s, n, line = ours_calibration(env, net)
    bc.log("   ours: %s  [%d samples; load %s]" % (line, n, bc.loadavg()))
    t = torch_calibration(env, net, args.context)
    torch_s = t["observe"] + t["convert"]
    bc.log("   pytorch (%s): observer passes %.2fs + convert_fx %.2fs = %.2fs (prepare_fx %.2fs, not counted)"
           "  [load %s]" % (t["engine"], t["observe"], t["convert"], torch_s, t["prepare"], bc.loadavg()))
    if args.context:
        bc.log("   one plain fp32 pass over the %d inputs: ours %.2fs (autocalib run, whole process), pytorch %.2fs"
               % (bc.N_CALIB, ours_fp32_pass(env, net), t["fp32"]))
    bc.log("   calibration seconds: ours %.2f, pytorch %.2f" % (ours_s, torch_s))
    bc.log("model=%s calib_speedup_vs_pytorch=%.3f" % (net.name, torch_s / ours_s))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
