"""bench/run nets: whole-network int8 inference, images/s at batch 1 and 8 on 2 threads
(and 1), ours against ONNX Runtime and PyTorch on the same machine in the same run.

    bench/run nets [--models mobilenet_v2,fmnist_plain,...] [--threads 1,2] [--rounds 2] [--seconds S]

- ours: the int8 model file `autocalib quantize --no_search --per_channel` writes (KL
  thresholds with the upward tuning step, 300 calibration inputs in batches of 10),
  timed by bench/bench_net (ac_qexec_new_shared, the shared-activation executor the
  workers use) with OpenMP as the user gets it (no OMP_* variables set).
- onnxruntime: a QDQ model by onnxruntime.quantization.quantize_static on the same 300
  calibration tensors (per-channel int8 weights, uint8 activations, MinMax), N intra-op
  threads, 1 inter-op; ONNX Runtime on the fp32 model is printed for context (2 threads).
- pytorch: onnx2torch + FX graph-mode PTQ (per-channel weights, MinMax activations: the
  observer does not change the speed) on the same tensors, torch.set_num_threads(N); the
  engine is the first of x86/fbgemm/onednn/qnnpack the torch build has.

Each round times every engine at every thread count and batch: every call of a
>= --seconds window after 3 warm-up calls, giving images/s from the median call and from
the best call. Per cell the best round is kept for each. The ratios use the best call, as
bench_int8_conv does: on a shared, oversubscribed machine a long call (a slow engine, a
large batch) is more often preempted than a short one, which biases the medians against
the slower engine; the medians are printed too. The top-1 of all engines on 8 test inputs
is compared (they run the same network). Final line per model, 2 threads, batch 8:
    model=<name> int8_net_vs_onnxruntime=<ours/ort> int8_net_vs_pytorch=<ours/torch>
"""

import argparse
import os
import sys
import time

import numpy as np

import bench_common as bc

BATCHES = (1, 8)
MAIN_THREADS = 2  # the thread count of the final line (issue #7)
LABELS = {"ours": "ours int8 (autocalib)", "ort_int8": "onnxruntime int8 QDQ",
          "torch": "pytorch int8 (FX PTQ)", "ort_fp32": "onnxruntime fp32"}


def ours_round(env, acq, net, threads, seconds, out_npy):
    """One bench_net process, both batch sizes; returns {batch: figures}."""
    cmd = [env.bench_net, acq, "--batch", ",".join(str(b) for b in BATCHES), "--threads", str(threads),
           "--seconds", str(seconds), "--input", net.sample_npy, "--output", out_npy]
    text = bc.run(cmd)
    res = {}
    for line in text.splitlines():
        if line.startswith("batch="):
            kv = dict(f.split("=", 1) for f in line.split())
            res[int(kv["batch"])] = {k: float(kv[k]) for k in ("images_per_s", "images_per_s_best", "median_ms",
                                                               "best_ms", "calls")}
    if set(res) != set(BATCHES):
        raise SystemExit("bench_net printed no figures:\n" + text)
    return res


def prepare(env, net, threads):
    """Ours (.acq), ONNX Runtime sessions, torch (a converted copy per thread count and
    batch size: Debian torch's onednn engine fails when either changes after a first run).
    Quantization is setup, not timed; its products are cached between runs."""
    ours = bc.acq_path(bc.quantize_ours(env, net, ["--no_search", "--per_channel"], "nets"))
    fp32 = bc.dynamic_batch(env, net)
    qdq = bc.ort_qdq(env, net)
    prepared, engine = bc.torch_calibrated(env, net, fp32, "minmax")
    bc.step("sessions and converted models ...")
    return {"ours": ours, "engine": engine,
            "ort_int8": {t: bc.ort_session(qdq, t) for t in threads},
            "ort_fp32": {MAIN_THREADS: bc.ort_session(fp32, MAIN_THREADS)},
            "torch": {(t, b): bc.torch_convert(prepared) for t in threads for b in BATCHES}}


def python_runner(engines, net, name, threads, batch, x):
    import torch
    if name == "torch":
        torch.set_num_threads(threads)
        model, xt = engines["torch"][(threads, batch)], torch.from_numpy(x)

        def fn():
            with torch.no_grad():
                return model(xt)
        return fn
    sess = engines[name][threads]
    return lambda: sess.run(None, {net.input_name: x})


def bench_model(env, name, args):
    net = bc.load_net(env, name)
    bc.log("== %s (%s)" % (name, os.path.relpath(net.onnx, bc.REPO)))
    engines = prepare(env, net, args.threads)
    samples = np.load(net.sample_npy)
    batches = {b: np.ascontiguousarray(np.resize(samples, (b,) + samples.shape[1:])) for b in BATCHES}
    cells = [(n, t, b) for t in args.threads for n in ("ours", "ort_int8", "torch", "ort_fp32")
             for b in BATCHES if n != "ort_fp32" or t == MAIN_THREADS]
    best = {}
    out_npy = env.path(name, "ours_out.npy")
    for r in range(args.rounds):
        figs = {}
        for t in args.threads:
            for b, f in ours_round(env, engines["ours"], net, t, args.seconds, out_npy).items():
                figs[("ours", t, b)] = f
        for c in cells:
            if c[0] != "ours":
                time.sleep(0.2)  # let the previous engine's spinning threads go idle
                figs[c] = bc.time_calls(python_runner(engines, net, *c, batches[c[2]]), c[2], args.seconds)
        bc.log("   round %d (load %s): %s" % (r + 1, bc.loadavg(), ", ".join(
            "%s t%d b%d %.1f" % (n, t, b, figs[(n, t, b)]["images_per_s"]) for n, t, b in cells)))
        for c, f in figs.items():
            kept = best.setdefault(c, {"images_per_s": 0.0, "images_per_s_best": 0.0})
            for k in kept:
                kept[k] = max(kept[k], f[k])
    agree = top1_agreement(engines, net, batches[8], np.load(out_npy))
    report(name, best, agree, args.threads)


def top1_agreement(engines, net, x, ours_out):
    """Top-1 of each int8 engine on the 8 sample inputs, counted against ONNX Runtime fp32."""
    import torch
    ref = np.argmax(engines["ort_fp32"][MAIN_THREADS].run(None, {net.input_name: x})[0], 1)
    with torch.no_grad():
        outs = {"ours": ours_out,
                "ort_int8": next(iter(engines["ort_int8"].values())).run(None, {net.input_name: x})[0],
                "torch": engines["torch"][(MAIN_THREADS, 8)](torch.from_numpy(x)).float().numpy()}
    return {k: int(np.sum(np.argmax(v.reshape(len(x), -1), 1) == ref)) for k, v in outs.items()}


def report(name, best, agree, threads):
    bc.log("   %-24s %7s %21s %21s" % ("images/s", "threads", "batch 1 median/best", "batch 8 median/best"))
    for t in threads:
        for k in ("ours", "ort_int8", "torch", "ort_fp32"):
            if (k, t, 1) in best:
                c1, c8 = best[(k, t, 1)], best[(k, t, 8)]
                bc.log("   %-24s %7d %10.1f / %8.1f %10.1f / %8.1f" % (
                    LABELS[k], t, c1["images_per_s"], c1["images_per_s_best"], c8["images_per_s"],
                    c8["images_per_s_best"]))
    ratio = {}
    for t in threads:
        for b in BATCHES:
            o, ort, pt = (best[(k, t, b)] for k in ("ours", "ort_int8", "torch"))
            ratio[(t, b)] = [o[m] / peer[m] for m in ("images_per_s_best", "images_per_s") for peer in (ort, pt)]
            bc.log("   %d thread(s), batch %d: ours/onnxruntime %.3f, ours/pytorch %.3f (medians: %.3f, %.3f)"
                   % (t, b, *ratio[(t, b)]))
    bc.log("   top-1 equal to onnxruntime fp32 on 8 inputs: ours %d, onnxruntime int8 %d, pytorch int8 %d" % (
        agree["ours"], agree["ort_int8"], agree["torch"]))
    main = ratio.get((MAIN_THREADS, 8))
    if main:
        bc.log("model=%s int8_net_vs_onnxruntime=%.3f int8_net_vs_pytorch=%.3f" % (name, main[0], main[1]))


def main(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--build", default=os.path.join(bc.REPO, "build"))
    p.add_argument("--models", default=",".join(bc.NETS))
    p.add_argument("--threads", default="1,2", help="thread counts (the final line is at 2)")
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--seconds", type=float, default=1.0, help="timing window per engine, threads and batch")
    args = p.parse_args(argv)
    args.threads = [int(t) for t in args.threads.split(",") if t]
    env = bc.Env(args.build)
    bc.log(bc.machine_line())
    bc.log(bc.versions() + "; ours = the --no_search --per_channel plan")
    for name in [m for m in args.models.split(",") if m]:
        if name not in bc.NETS:
            raise SystemExit("unknown model %s (known: %s)" % (name, ", ".join(bc.NETS)))
        try:
            bench_model(env, name, args)
        except bc.Skip as e:
            bc.log("== %s: skipped: %s" % (name, e))
    bc.log("load average at the end: %s" % bc.loadavg())
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
