"""bench/run memory: peak resident memory (VmHWM, /proc/PID/status) of a real farm worker
evaluating MobileNetV2 on a 250-image shard, against an ONNX Runtime process running the
same model over the same 250 images in the same batch size.

    bench/run memory [--evaluations 3]

Ours: `autocalib broker` on an ipc endpoint, one `autocalib worker --threads 2`, and
`autocalib quantize --broker EP` with batch 10 and --shard_batches 25, so each evaluation
is one task over the 250 test images (val1300 lines 301-550, JPEGs decoded by the worker,
a list of relative paths beside a link to the zoo). Calibration uses the first 10 images
(one batch per pass) to keep the run short; the search is stopped once --evaluations
evaluation tasks have finished (the fp32 reference, then int8 candidates; the worker keeps
3 prepared executors, so 3 evaluations fill them).
The worker's peak is reset (`echo 5 > /proc/PID/clear_refs`) when each task starts, so
every task's own peak is known; the figure is the largest peak of the evaluation tasks
(the fp32 reference and the int8 candidates), next to the calibration tasks' peak and the
worker's idle RSS once connected.

Peer: a Python process (onnxruntime, 2 intra-op threads, default CPU arena) that decodes
the same 250 JPEGs batch by batch (Pillow, 224x224 bilinear) and runs the fp32 model
(dynamic batch), and one that runs ONNX Runtime's QDQ int8 model (bench/run nets makes
it); each prints its own VmHWM after the last batch, and its RSS after the imports and
the session alone.

Final line: model=mobilenet_v2 worker_peak_rss_vs_onnxruntime=<ours eval peak / ORT fp32 peak>
"""

import argparse
import os
import re
import shutil
import subprocess
import sys
import threading
import time

import bench_common as bc

BATCH = 10
SHARD_BATCHES = 25  # 25 batches of 10 = the 250-image shard


class RssWatch:
    """Samples a process's VmRSS / VmHWM every 20 ms and resets its peak on request, so
    the peak of each interval (a task) is known."""

    def __init__(self, pid):
        self.pid, self.lock, self.stop = pid, threading.Lock(), False
        self.peak = 0
        self.thread = threading.Thread(target=self._loop, daemon=True)
        self.thread.start()

    def _sample(self):
        v = bc.proc_status(self.pid, "VmHWM", "VmRSS")
        if v:
            with self.lock:
                self.peak = max(self.peak, v.get("VmHWM", 0), v.get("VmRSS", 0))
        return v

    def _loop(self):
        while not self.stop and self._sample() is not None:
            time.sleep(0.02)

    def take(self):
        """The peak since the last take (kB), then a reset of the kernel's VmHWM."""
        self._sample()
        with self.lock:
            peak, self.peak = self.peak, 0
        try:
            with open("/proc/%d/clear_refs" % self.pid, "w") as f:
                f.write("5")
        except OSError:
            pass
        v = self._sample()
        if v:
            with self.lock:
                self.peak = v.get("VmRSS", 0)
        return peak


def run_worker(env, net, evaluations):
    work = env.path("memory", "run")
    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(work)
    ep = "ipc://" + os.path.join(work, "broker.ipc")
    procs = []
    try:
        procs.append(subprocess.Popen([env.ac, "broker", "--bind", ep, "--quiet"]))
        time.sleep(0.3)
        worker = subprocess.Popen([env.ac, "worker", "--connect", ep, "--threads", "2", "--cache-dir",
                                   os.path.join(work, "cache"), "--verbose"],
                                  stderr=subprocess.PIPE, universal_newlines=True)
        procs.append(worker)
        watch = RssWatch(worker.pid)
        tasks = []  # [key, phase, peak kB, status]
        phase = {"now": "calibration"}
        idle = {}

        def read_worker():
            for line in worker.stderr:
                if ": connected to " in line:
                    time.sleep(0.2)
                    idle["kB"] = bc.proc_status(worker.pid, "VmRSS")["VmRSS"]
                m = re.search(r"task (\S+): (start|ok|cancelled|error)", line)
                if m and m.group(2) == "start":
                    peak = watch.take()
                    if tasks:
                        tasks[-1][2] = max(tasks[-1][2], peak)
                    tasks.append([m.group(1), phase["now"], 0, None])
                elif m and tasks:
                    # The phase when it ends: the coordinator prints the end of calibration
                    # after the last calibration result, long before an evaluation ends.
                    tasks[-1][1], tasks[-1][3] = phase["now"], m.group(2)
        reader = threading.Thread(target=read_worker, daemon=True)
        reader.start()
        coord = subprocess.Popen(
            [env.ac, "quantize", "--broker", ep, "--model", net.onnx,
             "--calib_image_source", net.lists["calib300"], "--calib_iterations", "1",
             "--test_image_source", net.lists["test250"], "--data_preproccess_str", bc.IMAGENET_PP,
             "--input_data_shape", net.shape(BATCH), "--shard_batches", str(SHARD_BATCHES),
             "--output_dir", os.path.join(work, "out")],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, universal_newlines=True)
        procs.append(coord)
        log = []

        def read_coord():
            for line in coord.stdout:
                log.append(line)
                if "calibration:" in line and " tensors in " in line:
                    phase["now"] = "evaluation"
        threading.Thread(target=read_coord, daemon=True).start()
        # Enough once `evaluations` tasks have finished: the measurement is the worker's.
        while coord.poll() is None and \
                sum(1 for t in tasks if t[1] == "evaluation" and t[3] == "ok") < evaluations:
            time.sleep(0.1)
        time.sleep(0.3)  # the last task's peak is taken before anything stops
        if tasks:
            tasks[-1][2] = max(tasks[-1][2], watch.take())
        watch.stop = True
        stopped = coord.poll() is None
        if stopped:
            coord.terminate()
        coord.wait()
        if coord.returncode != 0 and not stopped:
            sys.stdout.write("".join(log))
            raise SystemExit("autocalib quantize --broker failed (%d)" % coord.returncode)
        return tasks, idle.get("kB", 0), log
    finally:
        for p in reversed(procs):
            if p.poll() is None:
                p.terminate()
                try:
                    p.wait(10)
                except subprocess.TimeoutExpired:
                    p.kill()


# ------------------------------------------------------------------ the peer process

def peer_main(model, listing, batch):
    """Runs in its own process: ONNX Runtime over the listed JPEGs, batch by batch."""
    import numpy as np
    from PIL import Image
    sess = bc.ort_session(model, 2)
    name = sess.get_inputs()[0].name
    rss_session = bc.proc_status(os.getpid(), "VmRSS")["VmRSS"]
    root = os.path.dirname(listing)
    with open(listing) as f:
        paths = [os.path.join(root, ln.strip().rpartition(",")[0]) for ln in f if ln.strip()]
    for i in range(0, len(paths), batch):
        x = np.empty((len(paths[i:i + batch]), 3, 224, 224), np.float32)
        for k, p in enumerate(paths[i:i + batch]):
            with Image.open(p) as im:
                rgb = np.asarray(im.convert("RGB").resize((224, 224), Image.BILINEAR), np.float32)
            x[k] = ((rgb - 128.0) / 128.0).transpose(2, 0, 1)
        sess.run(None, {name: x})
    v = bc.proc_status(os.getpid(), "VmHWM")
    print("images=%d session_rss_kB=%d peak_kB=%d" % (len(paths), rss_session, v["VmHWM"]))
    return 0


def run_peer(model, listing):
    out = bc.run([sys.executable, os.path.abspath(__file__), "--peer", model, listing, str(BATCH)])
    line = [ln for ln in out.splitlines() if ln.startswith("images=")][-1]
    return {k: int(v) for k, v in (f.split("=") for f in line.split())}


def mib(kb):
    return kb / 1024.0


def main(argv):
    if argv and argv[0] == "--peer":
        return peer_main(argv[1], argv[2], int(argv[3]))
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--build", default=os.path.join(bc.REPO, "build"))
    p.add_argument("--evaluations", type=int, default=3,
                   help="evaluation tasks of the 250-image shard to wait for before stopping")
    args = p.parse_args(argv)
    env = bc.Env(args.build)
    bc.log(bc.machine_line())
    try:
        net = bc.mobilenet_v2(env)
    except bc.Skip as e:
        bc.log("== mobilenet_v2: skipped: %s" % e)
        return 0
    bc.log("== mobilenet_v2: worker with --threads 2, batch %d, %d-image shards" % (BATCH, BATCH * SHARD_BATCHES))
    tasks, idle, log = run_worker(env, net, args.evaluations)
    for key, phase, peak, status in tasks:
        bc.log("   task %-28s %-11s %-9s peak %7.1f MiB" % (key, phase, status or "-", mib(peak)))
    evals = [t[2] for t in tasks if t[1] == "evaluation" and t[3] == "ok"]
    calib = [t[2] for t in tasks if t[1] == "calibration"]
    if not evals:
        sys.stdout.write("".join(log))
        raise SystemExit("no evaluation task finished")
    ours = max(evals)
    bc.log("   ours: worker idle %.1f MiB, calibration tasks peak %.1f MiB, evaluation tasks peak %.1f MiB "
           "(%d evaluations of the 250-image shard)  [load %s]"
           % (mib(idle), mib(max(calib or [0])), mib(ours), len(evals), bc.loadavg()))
    fp32 = run_peer(bc.dynamic_batch(env, net), net.lists["test250"])
    qdq = run_peer(bc.ort_qdq(env, net), net.lists["test250"])
    for name, r in (("fp32", fp32), ("int8 QDQ", qdq)):
        bc.log("   onnxruntime %-8s: %d images, peak %.1f MiB (after imports + session: %.1f MiB)"
               % (name, r["images"], mib(r["peak_kB"]), mib(r["session_rss_kB"])))
    bc.log("   peak RSS: ours %.1f MiB, onnxruntime fp32 %.1f MiB (ratio %.3f), onnxruntime int8 %.1f MiB (ratio %.3f)"
           % (mib(ours), mib(fp32["peak_kB"]), ours / fp32["peak_kB"], mib(qdq["peak_kB"]), ours / qdq["peak_kB"]))
    bc.log("model=mobilenet_v2 worker_peak_rss_vs_onnxruntime=%.3f" % (ours / fp32["peak_kB"]))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
