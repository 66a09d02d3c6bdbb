#!/usr/bin/env python3
"""Soak and chaos run of the farm (issue: reliability under load and faults).

One broker, 4 workers and 3 concurrent searches of different models run over loopback TCP
for a set time, each search started again as soon as it ends, while a chaos driver
kill -9s, SIGSTOPs (longer than the liveness) and restarts random workers, and restarts
the broker once. Every search must report the plan and scores of its fault-free run
(computed first, on a quiet farm). At the end it prints tasks run, requeues, failed
tasks, worker kills and stops survived, broker restarts survived, and the peak resident
memory of the broker and the workers with their trend (second vs last quarter of the last process life),
and exits non-zero when a search differed, failed, or memory kept growing.

    .venv/bin/python tests/soak.py [--minutes 20] [--seed 1] [--bin build/cli/autocalib]

tests/python/test_soak.py runs it for a minute and a half in CI (marker `long`). Needs
the bundled Fashion-MNIST models and Debian's dataset-fashion-mnist.
"""

import argparse
import json
import os
import random
import signal
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "python"))

import conftest as h  # noqa: E402
from test_farm import Proc, Quantize, data_args, essence, free_port, load_result, wait_for  # noqa: E402

MODELS = ["fmnist_plain", "fmnist_resnet", "fmnist_mbv2"]
HEARTBEAT_MS, LIVENESS = 100, 3
# Chaos may hit the same task several times; the result must not change, so a task gets
# more dispatches than the default 3 before it counts as failed.
MAX_ATTEMPTS = 12
# After the set time, running searches get this long to finish; a search still
# running then (a hang) is killed and fails the run.
DRAIN_S = 180


def rss_kb(pid):
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


class Soak:
    def __init__(self, ac_bin, tmp, seed):
        self.bin = ac_bin
        self.tmp = tmp
        self.logdir = os.path.join(tmp, "logs")
        os.makedirs(self.logdir)
        self.rng = random.Random(seed)
        self.endpoint = "tcp://127.0.0.1:%d" % free_port()
        self.broker = None
        self.workers = {}
        self.generation = {}
        self.counts = {"worker_kills": 0, "worker_stops": 0, "broker_restarts": 0, "searches": 0,
                       "requeues": 0, "failed_tasks": 0, "tasks_run": 0}
        self.memory = {}  # role -> [(t, kb)]
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.chaos_error = None  # an exception that ended the chaos driver: the run fails

    # -- processes
    def start_broker(self):
        cmd = [self.bin, "broker", "--bind", self.endpoint, "--heartbeat-ms", str(HEARTBEAT_MS), "--liveness",
               str(LIVENESS), "--max-attempts", str(MAX_ATTEMPTS)]
        self.broker = Proc("broker-%d" % self.counts["broker_restarts"], cmd, self.logdir)
        wait_for(lambda: any("serving" in l for l in self.broker.snapshot()), "the broker to serve")

    def start_worker(self, name):
        gen = self.generation.get(name, 0) + 1
        self.generation[name] = gen
        cmd = [self.bin, "worker", "--connect", self.endpoint, "--threads", "1", "--heartbeat-ms",
               str(HEARTBEAT_MS), "--liveness", str(LIVENESS), "--cache-dir", os.path.join(self.tmp, "cache-" + name),
               "--name", name, "--verbose"]
        self.workers[name] = Proc("%s-%d" % (name, gen), cmd, self.logdir)

    def search(self, model, out):
        cmd = [self.bin, "quantize", "--model", os.path.join(h.MODELS, model + ".onnx"), "--output_dir", out,
               "--broker", self.endpoint, "--shard_batches", "1"] + data_args(test_batches=8)
        return Quantize(cmd, out, self.logdir, os.path.basename(out))

    # -- the fault-free references
    def references(self):
        self.start_broker()
        for k in range(4):
            self.start_worker("w%d" % k)
        refs = {}
        jobs = {m: self.search(m, os.path.join(self.tmp, "ref-" + m)) for m in MODELS}
        for m, q in jobs.items():
            refs[m] = essence(*q.ok(timeout=900))
        return refs

    # -- chaos
    def chaos(self, minutes):
        try:
            self._chaos(minutes)
        except Exception as e:  # noqa: BLE001 - any failure of the driver invalidates the run
            self.chaos_error = "%s: %s" % (type(e).__name__, e)

    def _chaos(self, minutes):
        end = time.monotonic() + minutes * 60
        broker_restart_at = time.monotonic() + minutes * 60 * self.rng.uniform(0.3, 0.6)
        while not self.stop.is_set() and time.monotonic() < end:
            time.sleep(self.rng.uniform(1.0, 4.0))
            name = self.rng.choice(sorted(self.workers))
            w = self.workers[name]
            if time.monotonic() > broker_restart_at and self.counts["broker_restarts"] == 0:
                self.broker.kill()
                time.sleep(0.5)
                with self.lock:
                    self.counts["broker_restarts"] += 1
                self.start_broker()
            elif self.rng.random() < 0.6:
                w.kill()
                with self.lock:
                    self.counts["worker_kills"] += 1
                time.sleep(self.rng.uniform(0.2, 1.5))
                self.start_worker(name)
            else:
                w.signal(signal.SIGSTOP)
                time.sleep(HEARTBEAT_MS * LIVENESS / 1000.0 * 2)  # evicted meanwhile
                w.signal(signal.SIGCONT)
                with self.lock:
                    self.counts["worker_stops"] += 1

    def sample_memory(self):
        t0 = time.monotonic()
        while not self.stop.is_set():
            procs = [("broker", self.broker)] + [("workers", w) for w in self.workers.values()]
            total, life = {}, {}
            for role, p in procs:
                kb = rss_kb(p.p.pid) if p and p.alive() else None
                if kb:
                    total[role] = max(total.get(role, 0), kb)
                    # the broker's process life (it is restarted once); the workers are
                    # measured as a fleet (max over them), one "life"
                    life[role] = p.p.pid if role == "broker" else 0
            with self.lock:
                for role, kb in total.items():
                    self.memory.setdefault(role, []).append((time.monotonic() - t0, kb, life[role]))
            time.sleep(0.5)

    # -- the run
    def run(self, minutes):
        refs = self.references()
        print("fault-free references: %s" % ", ".join("%s int8 %.4f" % (m, refs[m]["int8_score"]) for m in MODELS),
              flush=True)
        mismatches, failures = [], []
        chaos = threading.Thread(target=self.chaos, args=(minutes,), daemon=True)
        mem = threading.Thread(target=self.sample_memory, daemon=True)
        chaos.start()
        mem.start()
        end = time.monotonic() + minutes * 60
        n = 0
        running = {}
        while time.monotonic() < end or running:
            for m in MODELS:
                if m not in running and time.monotonic() < end:
                    n += 1
                    running[m] = self.search(m, os.path.join(self.tmp, "run%d-%s" % (n, m)))
            for m, q in list(running.items()):
                if q.p.poll() is None:
                    if time.monotonic() > end + DRAIN_S:  # a search that hangs fails the run
                        q.kill()
                        del running[m]
                        failures.append("%s: still running %d s after the end (hung)\n%s" % (m, DRAIN_S, q.output()))
                    continue
                del running[m]
                rc = q.wait()
                if rc != 0:
                    failures.append("%s: exit %d\n%s" % (m, rc, q.output()))
                    continue
                rep, table = load_result(q.out)
                with self.lock:
                    self.counts["searches"] += 1
                    self.counts["requeues"] += rep["search"]["requeued_tasks"]
                    self.counts["failed_tasks"] += rep["search"]["failed_tasks"]
                got = essence(rep, table)
                if got != refs[m]:
                    diff = [k for k in refs[m] if got.get(k) != refs[m][k]]
                    mismatches.append("%s (%s): %s differ" % (m, q.out, diff))
            time.sleep(0.2)
        self.stop.set()
        chaos.join(timeout=30)
        mem.join(timeout=5)
        # every generation of every worker logged its tasks
        self.counts["tasks_run"] = sum(
            sum(1 for line in open(os.path.join(self.logdir, f)) if ": ok" in line)
            for f in os.listdir(self.logdir) if f.startswith("w") and f.endswith(".log"))
        return mismatches, failures

    def close(self):
        self.stop.set()
        for w in self.workers.values():
            w.stop()
        if self.broker:
            self.broker.kill()


def trend(samples):
    """(peak kB over the run, early mean, late mean). The trend is read within the last
    process life (a restarted broker starts empty, so a mean across the restart says
    nothing) and after its warm-up: its first quarter, while the searches' blobs and
    plans are still arriving, is left out; early is the second quarter, late the last."""
    peak = max((kb for _, kb, _ in samples), default=0)
    life = [kb for _, kb, pid in samples if pid == samples[-1][2]] if samples else []
    if len(life) < 8:
        return (peak, None, None)
    q = len(life) // 4
    early = sum(life[q:2 * q]) / q
    late = sum(life[-q:]) / q
    return peak, early, late


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, default=20.0)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--bin", default=os.environ.get("AC_BIN", os.path.join(h.REPO, "build", "cli", "autocalib")))
    ap.add_argument("--keep", help="keep logs and outputs in this folder")
    args = ap.parse_args()
    if not os.path.exists(os.path.join(h.FMNIST_DIR, "train-images-idx3-ubyte.gz")):
        print("soak: %s is absent (Debian package dataset-fashion-mnist)" % h.FMNIST_DIR)
        return 77
    tmp = args.keep or tempfile.mkdtemp(prefix="ac-soak-")
    os.makedirs(tmp, exist_ok=True)
    soak = Soak(args.bin, tmp, args.seed)
    t0 = time.monotonic()
    try:
        mismatches, failures = soak.run(args.minutes)
    finally:
        soak.close()
    c = soak.counts
    print("soak: %.1f min, %d searches (3 models at once), %d tasks run, %d requeued, %d failed tasks" % (
        (time.monotonic() - t0) / 60, c["searches"], c["tasks_run"], c["requeues"], c["failed_tasks"]))
    print("soak: survived %d worker kills (-9), %d worker stops (SIGSTOP), %d broker restart(s)" % (
        c["worker_kills"], c["worker_stops"], c["broker_restarts"]))
    growing = []
    for role in ("broker", "workers"):
        peak, first, last = trend(soak.memory.get(role, []))
        if first is None:
            print("soak: peak RSS %s %.1f MB (too few samples for a trend)" % (role, peak / 1024))
            continue
        print("soak: peak RSS %s %.1f MB; mean of its last life's second quarter %.1f MB, last quarter %.1f MB" % (
            role, peak / 1024, first / 1024, last / 1024))
        # Only a clear rise of the late mean over the early one counts.
        if last > first * 1.5 + 10 * 1024:
            growing.append(role)
    for m in mismatches:
        print("soak: MISMATCH " + m)
    for f in failures:
        print("soak: FAILED " + f)
    for role in growing:
        print("soak: MEMORY GROWTH " + role)
    if soak.chaos_error:
        print("soak: CHAOS DRIVER FAILED " + soak.chaos_error)
    broker_due = args.minutes >= 1.0
    if broker_due and c["broker_restarts"] != 1:
        print("soak: the broker restart did not happen")
    ok = (not mismatches and not failures and not growing and c["searches"] >= 3 and not soak.chaos_error and
          (c["broker_restarts"] == 1 or not broker_due))
    print("soak: %s (logs in %s)" % ("PASS" if ok else "FAIL", tmp))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
