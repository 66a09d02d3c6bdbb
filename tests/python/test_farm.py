"""The farm as real processes on loopback TCP: `autocalib broker`, `autocalib worker` and
`autocalib quantize --broker`, with short heartbeats (100 ms x 3), on the bundled
Fashion-MNIST models and Debian's Fashion-MNIST data.

What is checked (docs/protocol.md, docs/worker.md, coordinator/ac_farm_job.h):
- the result (scores, plan, every candidate's score, the calibration table) does not
  depend on the number of workers, and equals the single-process job's;
- a worker killed (-9) or stopped (SIGSTOP) while it runs a task costs a requeue, never
  a different result; a stopped worker is evicted and its late result is not used;
- a broker restarted mid-job: workers reconnect, the coordinator resubmits, same result;
- a task that kills its worker every time fails after 3 attempts and the search goes on;
- two searches share one broker and both finish;
- CURVE: listed keys work, unknown keys are refused, a removed key is cut off;
- garbage from a raw socket is dropped and counted, the broker keeps serving;
- --resume after the coordinator was killed gives the uninterrupted run's result;
- auto mode gives the same plan and reported scores with 1 and 2 workers although
  failing candidates of its pass/fail rounds are stopped early from their score bound
  (their tasks cancelled), and such a stop happens where it must.

Every process is killed at the end of its test (fixture finalizer), every wait is
bounded (a hang fails the test), and only 127.0.0.1 is used. Tests slower than ~30 s
carry the marker `long` and are deselected by default (tests/python/pytest.ini):
run them with `-m long`, or everything with `-m "long or not long"`.
"""

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import threading
import time

import pytest

import conftest as h

FMNIST = h.FMNIST_DIR
PP = "mean_value=72.93,scale=0.011109"
HEARTBEAT_MS = 100
LIVENESS = 3
HOST = "127.0.0.1"

# Bounds on waits: generous, they only turn a hang into a failure.
JOB_TIMEOUT = 300
EVENT_TIMEOUT = 60

TASK_START = re.compile(r"task (\S+)/(\d+)/(\d+)/(\d+): start \(attempt (\d+)\)")
TASK_DONE = re.compile(r"task (\S+)/(\d+)/(\d+)/(\d+): (ok|error|cancelled)")

# Rounds of a job's task keys (coordinator/ac_farm_job.c): 1-3 calibration (range,
# histogram, KL tuning), 4 the fp32 score, 5 and up the search. Candidate ids count
# from 0 (the fp32 reference) in submission order, so without a journal the search's
# i-th candidate in report.json has id i + 1.
FIRST_SEARCH_ROUND = 5


# ------------------------------------------------------------------ data and results

def data_args(test_batches=8, calib_batches=4, labels=True):
    """Without labels the score is the int8 model's top-1 agreement with fp32."""
    img = os.path.join(FMNIST, "train-images-idx3-ubyte.gz")
    if not os.path.exists(img):
        pytest.skip("%s is absent (Debian package dataset-fashion-mnist)" % img)
    lab = ["--test_idx_labels", os.path.join(FMNIST, "t10k-labels-idx1-ubyte.gz")] if labels else []
    return ["--calib_idx_images", img, "--calib_iterations", str(calib_batches),
            "--test_idx_images", os.path.join(FMNIST, "t10k-images-idx3-ubyte.gz")] + lab + [
            "--test_iterations", str(test_batches), "--data_preproccess_str", PP,
            "--input_data_shape", "(16,1,28,28)", "--threads", "1"]


def model_path(name):
    path = os.path.join(h.MODELS, name + ".onnx")
    if not os.path.exists(path):
        pytest.skip("bundled model %s is absent" % path)
    return path


def load_result(out):
    """What must not depend on the farm: the report's scores and plan, every candidate,
    and the calibration table (its comment lines aside)."""
    rep = json.load(open(os.path.join(str(out), "report.json")))
    table = [l for l in open(os.path.join(str(out), "calibration_table")) if not l.startswith("#")]
    return rep, table


def essence(rep, table, candidates=True):
    e = {"fp32_score": rep["fp32_score"], "int8_score": rep["int8_score"],
         "met_budget": rep["met_budget"], "strategy": rep["strategy"],
         "fp32_layers": rep["fp32_layers"], "calibration_table": table}
    if candidates:
        e["candidates"] = [(c["name"], c.get("int8_score", c.get("subset_score")), "subset_score" in c,
                            c["failed"], c.get("decided"), c["fp32_layers"]) for c in rep["candidates"]]
    return e


def assert_same_result(got, want, what):
    a, b = essence(*got), essence(*want)
    for k in b:
        assert a[k] == b[k], "%s: %s differs:\n got  %r\n want %r" % (what, k, a[k], b[k])


# ------------------------------------------------------------------ processes

def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def wait_for(pred, what, timeout=EVENT_TIMEOUT, step=0.02):
    end = time.monotonic() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() > end:
            raise AssertionError("timed out after %ds waiting for %s" % (timeout, what))
        time.sleep(step)


class Proc:
    """A started process whose stderr is collected line by line (and copied to a log
    file for the failure report)."""

    def __init__(self, name, cmd, logdir):
        self.name = name
        self.cmd = cmd
        self.log_path = os.path.join(str(logdir), "%s.log" % name)
        self.lines = []
        self._lock = threading.Lock()
        self.stopped = False
        self.p = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                  stderr=subprocess.PIPE, universal_newlines=True, bufsize=1)
        self._t = threading.Thread(target=self._read, daemon=True)
        self._t.start()

    def _read(self):
        with open(self.log_path, "a") as log:
            for line in self.p.stderr:
                log.write(line)
                log.flush()
                with self._lock:
                    self.lines.append(line.rstrip("\n"))

    def snapshot(self, since=0):
        with self._lock:
            return self.lines[since:]

    def count(self):
        with self._lock:
            return len(self.lines)

    def alive(self):
        return self.p.poll() is None

    def signal(self, sig):
        if self.alive():
            os.kill(self.p.pid, sig)
        if sig == signal.SIGSTOP:
            self.stopped = True
        elif sig == signal.SIGCONT:
            self.stopped = False

    def kill(self):
        if self.alive():
            if self.stopped:
                os.kill(self.p.pid, signal.SIGCONT)
            self.p.kill()
        try:
            self.p.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pass
        self._t.join(timeout=5)

    def stop(self):
        """SIGTERM (a worker says DISCONNECT), then SIGKILL."""
        if self.alive():
            if self.stopped:
                os.kill(self.p.pid, signal.SIGCONT)
            self.p.terminate()
            try:
                self.p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass
        self.kill()


class Quantize:
    """`autocalib quantize` in the background, stdout and stderr to files."""

    def __init__(self, cmd, out, logdir, tag):
        self.out = str(out)
        self.stdout_path = os.path.join(str(logdir), "%s.stdout" % tag)
        self.stderr_path = os.path.join(str(logdir), "%s.stderr" % tag)
        self._so = open(self.stdout_path, "w")
        self._se = open(self.stderr_path, "w")
        self.started = time.monotonic()
        self.p = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=self._so, stderr=self._se)
        self.elapsed = None

    def wait(self, timeout=JOB_TIMEOUT):
        try:
            self.p.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.p.kill()
            self.p.wait(timeout=10)
            raise AssertionError("quantize did not finish within %ds\n%s" % (timeout, self.output()))
        finally:
            self._so.close()
            self._se.close()
        if self.elapsed is None:
            self.elapsed = time.monotonic() - self.started
        return self.p.returncode

    def output(self):
        so = open(self.stdout_path).read() if os.path.exists(self.stdout_path) else ""
        se = open(self.stderr_path).read() if os.path.exists(self.stderr_path) else ""
        return "stdout:\n%s\nstderr:\n%s" % (so[-3000:], se[-3000:])

    def kill(self):
        if self.p.poll() is None:
            self.p.kill()
            self.p.wait(timeout=10)
        self._so.close()
        self._se.close()

    def ok(self, timeout=JOB_TIMEOUT):
        rc = self.wait(timeout)
        assert rc == 0, "quantize failed (exit %d)\n%s" % (rc, self.output())
        return load_result(self.out)


def parse_status(text):
    """`autocalib status` output -> {"counters": {...}, "workers": [...], "jobs": [...],
    "in_flight": [...], key: value}. List entries are 'key value' pairs separated by
    two spaces (cmd_status.c)."""
    st = {"counters": {}, "workers": [], "jobs": [], "in_flight": []}
    section = None
    for line in text.splitlines():
        if line.startswith("  ") and section:
            entry = {}
            for part in line.strip().split("  "):
                k, _, v = part.partition(" ")
                entry[k] = v
            st[section].append(entry)
            continue
        section = None
        m = re.match(r"(\w+) \((\d+)\):$", line)
        if m:
            section = m.group(1) if m.group(1) in st else None
            continue
        k, _, v = line.partition(": ")
        if k == "counters":
            st["counters"] = {a: int(b) for a, b in re.findall(r"(\w+) (-?\d+)", v)}
        elif k:
            st[k] = v
    return st


class Farm:
    """Brokers, workers and quantize runs of one test; close() kills what is left."""

    def __init__(self, ac_bin, tmp):
        self.bin = ac_bin
        self.tmp = tmp
        self.logdir = tmp / "logs"
        self.logdir.mkdir()
        self.procs = []
        self.jobs = []
        self.port = free_port()
        self.endpoint = "tcp://%s:%d" % (HOST, self.port)
        self.client_keys = []  # --curve-key/--server-key for status and quantize
        self.broker_proc = None
        self.nbrokers = 0

    # -- processes
    def broker(self, *extra, wait=True):
        self.nbrokers += 1
        cmd = [self.bin, "broker", "--bind", self.endpoint, "--heartbeat-ms", str(HEARTBEAT_MS),
               "--liveness", str(LIVENESS)] + list(extra)
        p = Proc("broker%d" % self.nbrokers, cmd, self.logdir)
        self.procs.append(p)
        self.broker_proc = p
        if wait:
            wait_for(lambda: p.alive() and any("serving" in l for l in p.snapshot()) or
                     (not p.alive() and "exited"), "the broker to serve %s" % self.endpoint)
            assert p.alive(), "broker exited: %s" % "\n".join(p.snapshot())
        return p

    def worker(self, name, *extra, keys=()):
        cache = self.tmp / ("cache-" + name)
        cmd = [self.bin, "worker", "--connect", self.endpoint, "--threads", "1", "--heartbeat-ms",
               str(HEARTBEAT_MS), "--liveness", str(LIVENESS), "--cache-dir", str(cache), "--name", name,
               "--verbose"] + list(keys) + list(extra)
        p = Proc(name, cmd, self.logdir)
        self.procs.append(p)
        return p

    def workers_ready(self, names):
        """Waits until the broker lists every one of names."""
        wait_for(lambda: set(names) <= {w.get("name") for w in self.status()["workers"]},
                 "workers %s to register" % sorted(names))

    def quantize(self, model, out, *extra, tag=None, keys=None, test_batches=8, labels=True):
        cmd = [self.bin, "quantize", "--model", model_path(model), "--output_dir", str(out),
               "--broker", self.endpoint] + data_args(test_batches, labels=labels) + list(extra)
        cmd += list(self.client_keys if keys is None else keys)
        q = Quantize(cmd, out, self.logdir, tag or os.path.basename(str(out)))
        self.jobs.append(q)
        return q

    # -- observation
    def status_text(self, keys=None, timeout_ms=3000):
        cmd = [self.bin, "status", "--broker", self.endpoint, "--timeout-ms", str(timeout_ms)]
        cmd += list(self.client_keys if keys is None else keys)
        p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True,
                           timeout=timeout_ms / 1000.0 + 30)
        return p.returncode, p.stdout, p.stderr

    def status(self, keys=None):
        rc, out, err = self.status_text(keys)
        assert rc == 0, "autocalib status failed (%d): %s" % (rc, err)
        return parse_status(out)

    def close(self):
        for q in self.jobs:
            q.kill()
        for p in reversed(self.procs):
            if p.name.startswith("broker"):
                p.kill()
            else:
                p.stop()

    def logs(self):
        text = []
        for p in self.procs:
            text.append("---- %s: %s\n%s" % (p.name, " ".join(p.cmd[1:3]), "\n".join(p.snapshot()[-40:])))
        return "\n".join(text)


@pytest.fixture
def farm(ac_bin, tmp_path, request):
    f = Farm(ac_bin, tmp_path)
    failed_before = request.session.testsfailed
    yield f
    if request.session.testsfailed > failed_before:  # the call failed: show the processes' last words
        print(f.logs())
    f.close()
    # A sanitizer build (AC_SANITIZE=ON) reports into the processes' stderr.
    reports = [(p.name, l) for p in f.procs for l in p.snapshot()
               if "runtime error:" in l or "Sanitizer" in l]
    assert not reports, "sanitizer reports: %s\n%s" % (reports[:5], f.logs())


def worker_names(st):
    return {w.get("name") for w in st["workers"]}


# ------------------------------------------------------------------ references

_REFERENCE = {}
_SECONDS = {}

# The kill and stop tests need tasks long enough to be caught running: fmnist_mbv2 on
# one thread, 32 test batches in shards of 8 batches (128 samples, about 0.1-0.2 s).
LONG_TASKS = dict(model="fmnist_mbv2", test_batches=32, shard=["--shard_batches", "8"])


def reference(ac_bin, tmp_path_factory, model, test_batches=8):
    """The job on a farm of one worker with one-batch shards, computed once per model,
    test size and session."""
    key = (model, test_batches)
    if key not in _REFERENCE:
        tmp = tmp_path_factory.mktemp("ref-" + model)
        f = Farm(ac_bin, tmp)
        try:
            f.broker()
            f.worker("w1")
            q = f.quantize(model, tmp / "out", "--shard_batches", "1", test_batches=test_batches)
            _REFERENCE[key] = q.ok()
            _SECONDS[key] = q.elapsed
        finally:
            f.close()
    return _REFERENCE[key]


def task_starts(proc, since=0, with_end=False):
    """(line index, key tuple (job, round, cand, shard), attempt) of the task starts
    from line `since` on; with_end, also the index after the last line looked at."""
    out = []
    lines = proc.snapshot(since)
    for i, line in enumerate(lines, since):
        m = TASK_START.search(line)
        if m:
            out.append((i, (m.group(1), int(m.group(2)), int(m.group(3)), int(m.group(4))), int(m.group(5))))
    return (out, since + len(lines)) if with_end else out


def task_finished(proc, key):
    k = "task %s/%d/%d/%d: " % key
    return any(k in l and TASK_DONE.search(l) for l in proc.snapshot())


def signal_mid_task(farm, procs, sig, min_round, what):
    """Waits until one of procs starts a task of round >= min_round and sends it sig
    at once. Returns (proc, key). The tasks are a few hundred milliseconds long (one
    thread, fmnist_mbv2), so the signal lands while the task runs; whether it did is
    checked by the caller through the broker's requeue counter."""
    marks = {p.name: p.count() for p in procs}
    found = {}

    def started():
        for p in procs:
            starts, marks[p.name] = task_starts(p, marks[p.name], with_end=True)
            for _, key, _ in starts:
                if key[1] >= min_round:
                    found["hit"] = (p, key)
                    return True
        return False

    wait_for(started, what, step=0.002)
    p, key = found["hit"]
    p.signal(sig)
    return p, key


# ------------------------------------------------------------------ tests

def test_same_result_for_1_and_2_workers_and_single_process(ac_bin, farm, tmp_path, tmp_path_factory):
    """1 worker vs 2 workers (8 test shards, 4 calibration shards): the same scores, plan,
    candidates and calibration table; the single-process job with the chosen strategy
    gives the same scores and table."""
    ref = reference(ac_bin, tmp_path_factory, "fmnist_plain")
    farm.broker()
    farm.worker("w1")
    farm.worker("w2")
    farm.workers_ready(["w1", "w2"])
    got = farm.quantize("fmnist_plain", tmp_path / "w2", "--shard_batches", "1").ok()
    assert_same_result(got, ref, "2 workers vs 1")
    st = farm.status()
    done = {w["name"]: int(w["tasks_done"]) for w in st["workers"]}
    assert done["w1"] > 0 and done["w2"] > 0, "both workers must have worked: %s" % done
    # Shards of another size merge to the same result.
    got4 = farm.quantize("fmnist_plain", tmp_path / "w2s4", "--shard_batches", "4").ok()
    assert_same_result(got4, ref, "2 workers, 4-batch shards vs 1 worker, 1-batch shards")

    rep = ref[0]
    st = rep["strategy"]
    args = ["--no_search", "--th_method", st["th_method"]]
    for flag in ("per_channel", "accuracy_opt", "first_conv_fp32"):
        if st[flag]:
            args.append("--" + flag)
    if rep["fp32_layers"]:
        args += ["--fp32_layers", ",".join(rep["fp32_layers"])]
    p = subprocess.run([ac_bin, "quantize", "--model", model_path("fmnist_plain"), "--output_dir",
                        str(tmp_path / "single")] + data_args() + args, stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, universal_newlines=True, timeout=JOB_TIMEOUT)
    assert p.returncode == 0, p.stderr
    single = load_result(tmp_path / "single")
    for k in ("fp32_score", "int8_score", "fp32_layers"):
        assert single[0][k] == rep[k], (k, single[0][k], rep[k])
    assert single[1] == ref[1], "the single-process calibration table differs"

    # SIGTERM: workers say DISCONNECT and exit 0, then the broker exits 0.
    for p in farm.procs:
        if p.name.startswith("w"):
            p.p.terminate()
            assert p.p.wait(timeout=30) == 0, "%s exit %s" % (p.name, p.p.returncode)
    wait_for(lambda: not farm.status()["workers"], "the broker to forget the leaving workers")
    farm.broker_proc.p.terminate()
    assert farm.broker_proc.p.wait(timeout=30) == 0


@pytest.mark.long
def test_same_result_for_4_workers_and_embedded_cluster(ac_bin, farm, tmp_path, tmp_path_factory):
    ref = reference(ac_bin, tmp_path_factory, "fmnist_resnet")
    farm.broker()
    names = ["w%d" % i for i in range(1, 5)]
    for n in names:
        farm.worker(n)
    farm.workers_ready(names)
    got = farm.quantize("fmnist_resnet", tmp_path / "w4", "--shard_batches", "1").ok()
    assert_same_result(got, ref, "4 workers vs 1")
    busy = [w["name"] for w in farm.status()["workers"] if int(w["tasks_done"]) > 0]
    assert len(busy) >= 2, busy
    # The embedded cluster (no --broker) with 2 local workers.
    p = subprocess.run([ac_bin, "quantize", "--model", model_path("fmnist_resnet"), "--output_dir",
                        str(tmp_path / "embedded"), "--workers", "2", "--shard_batches", "3"] + data_args(),
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True,
                       timeout=JOB_TIMEOUT)
    assert p.returncode == 0, p.stderr
    assert_same_result(load_result(tmp_path / "embedded"), ref, "embedded cluster vs 1 worker")


def auto_on_1_then_2_workers(farm, tmp_path, model, *extra, **kw):
    """The same auto-mode job on a farm of one worker, then of two."""
    farm.broker()
    farm.worker("w1")
    farm.workers_ready(["w1"])
    one = farm.quantize(model, tmp_path / "w1", "--auto_calib", *extra, **kw).ok()
    farm.worker("w2")
    farm.workers_ready(["w1", "w2"])
    two = farm.quantize(model, tmp_path / "w2", "--auto_calib", *extra, **kw).ok()
    return one, two


def last_fast_round(rep):
    """The fast rounds (the baseline, the screen of the single options on the subset, their
    full evaluations and combinations: as many as the search needed) hold the candidates
    that keep no layer in fp32 by the search; every auto-mode candidate keeps some."""
    return max(c["round"] for c in rep["candidates"] if not c["fp32_layers"])


def check_pass_fail_reporting(rep):
    """Fast rounds report every score; later full-set rounds only decide pass or fail, and
    a failing candidate there has no score, stopped early or not."""
    for c in rep["candidates"]:
        if "subset_score" in c or c["failed"]:
            continue
        assert c["decided"] in ("pass", "fail"), c
        if c["decided"] == "pass" or c["round"] <= last_fast_round(rep):
            assert isinstance(c["int8_score"], (int, float)) and not isinstance(c["int8_score"], bool), c
        else:
            assert c["int8_score"] is None and "details" not in c, c


def test_auto_early_stop_by_bound_keeps_results_identical(ac_bin, farm, tmp_path):
    """An fp32 score no plan reaches (--fp32_score 0.99, zero budget; fmnist_plain scores
    about 0.94 on these 512 samples) sends the auto search backward: its k-ary probes fail,
    and last comes the pass/fail check with every ranked layer in fp32. Each of these
    candidates' bound, (right so far + samples still to come) / 512, falls below 0.99
    before its last 16-sample shard is in whatever the order (0.94 + 16/512 < 0.99), so the
    farm must stop each early and cancel what is left of it. The report is the same with 1
    and 2 workers: the stopped candidates say decided "fail" with no score, and only the
    timing counters may differ."""
    one, two = auto_on_1_then_2_workers(farm, tmp_path, "fmnist_plain", "--shard_batches", "1",
                                        "--accept_int8_decay", "0", "--fp32_score", "0.99",
                                        test_batches=32)
    assert_same_result(two, one, "auto mode, 2 workers vs 1")
    for n, (rep, _) in ((1, one), (2, two)):
        assert not rep["met_budget"]
        check_pass_fail_reporting(rep)
        checked = [c for c in rep["candidates"] if c["round"] > last_fast_round(rep) and "subset_score" not in c]
        assert checked and all(c["decided"] == "fail" and c["int8_score"] is None for c in checked), checked
        most = max(len(c["fp32_layers"]) for c in rep["candidates"])
        assert len(checked[-1]["fp32_layers"]) == most, "the all-fp32 check comes last: %s" % checked
        assert rep["search"]["early_stopped"] == len(checked), rep["search"]
        assert rep["search"]["cancelled_tasks"] >= 0
        print("early stops %d, cancelled tasks %d with %d worker(s)" %
              (rep["search"]["early_stopped"], rep["search"]["cancelled_tasks"], n))


@pytest.mark.long
def test_auto_mode_same_plan_and_scores_for_1_and_2_workers(ac_bin, farm, tmp_path):
    """Auto mode through every phase on fmnist_mbv2 scored by top-1 agreement with fp32 (no
    labels) with a zero budget: no fast candidate agrees on all 512 samples, so the
    passes that return layers to int8 from every layer in fp32 choose the fp32 layers. 1 and 2 workers give the
    same plan, candidates and reported scores, with candidates stopped early from their
    bound in the pass/fail rounds (how many may differ)."""
    one, two = auto_on_1_then_2_workers(farm, tmp_path, "fmnist_mbv2", "--shard_batches", "2",
                                        "--accept_int8_decay", "0", test_batches=32, labels=False)
    assert_same_result(two, one, "auto mode, 2 workers vs 1")
    rep = one[0]
    assert rep["met_budget"] and rep["fp32_layers"], rep["fp32_layers"]
    best = [c for c in rep["candidates"] if c.get("decided") == "pass" and c["int8_score"] == rep["int8_score"]
            and c["round"] > last_fast_round(rep)]
    assert best, "the plan must come from the auto rounds"
    for n, (r, _) in ((1, one), (2, two)):
        check_pass_fail_reporting(r)
        print("%d worker(s): %d rounds, %d evaluations, early stops %d, cancelled tasks %d" %
              (n, r["rounds"], r["evaluations"], r["search"]["early_stopped"],
               r["search"]["cancelled_tasks"]))
    assert one[0]["search"]["early_stopped"] + two[0]["search"]["early_stopped"] > 0


def test_kill9_worker_mid_task_requeues_and_gives_the_same_result(ac_bin, farm, tmp_path, tmp_path_factory):
    lt = LONG_TASKS
    ref = reference(ac_bin, tmp_path_factory, lt["model"], lt["test_batches"])
    farm.broker()
    w1, w2 = farm.worker("w1"), farm.worker("w2")
    farm.workers_ready(["w1", "w2"])
    q = farm.quantize(lt["model"], tmp_path / "out", *lt["shard"], test_batches=lt["test_batches"])
    victims, spare = [w1, w2], 3
    for attempt in range(3):
        # The fp32 score or a search candidate: after calibration, while tasks are long.
        p, key = signal_mid_task(farm, victims, signal.SIGKILL, 4, "a worker to start a scoring task")
        p.p.wait(timeout=10)
        replacement = farm.worker("w%d" % spare)
        spare += 1
        wait_for(lambda: p.name not in worker_names(farm.status()), "the broker to drop %s" % p.name)
        st = farm.status()
        if st["counters"]["requeued"] >= 1:
            break
        # The task ended just before the signal: try again on another task.
        victims = [v for v in victims if v is not p] + [replacement]
    else:
        pytest.fail("three kills all landed between tasks\n" + farm.logs())
    assert st["counters"]["expired_peers"] >= 1
    got = q.ok()
    assert_same_result(got, ref, "after kill -9 of %s during %s" % (p.name, "/".join(map(str, key))))
    assert got[0]["search"]["requeued_tasks"] >= 1, got[0]["search"]
    assert any("requeued (attempt 1 ended with worker %s)" % p.name in l for l in farm.broker_proc.snapshot())


def test_sigstop_worker_is_evicted_and_its_late_result_ignored(ac_bin, farm, tmp_path, tmp_path_factory):
    lt = LONG_TASKS
    ref = reference(ac_bin, tmp_path_factory, lt["model"], lt["test_batches"])
    farm.broker()
    w1, w2 = farm.worker("w1"), farm.worker("w2")
    farm.workers_ready(["w1", "w2"])
    q = farm.quantize(lt["model"], tmp_path / "out", *lt["shard"], test_batches=lt["test_batches"])
    for attempt in range(3):
        p, key = signal_mid_task(farm, [w1], signal.SIGSTOP, 4, "w1 to start a scoring task")
        wait_for(lambda: "w1" not in worker_names(farm.status()), "the broker to evict the stopped w1")
        st = farm.status()
        if st["counters"]["requeued"] >= 1:
            break
        # The stop landed just after the task ended: let w1 back in and try again.
        p.signal(signal.SIGCONT)
        wait_for(lambda: "w1" in worker_names(farm.status()), "w1 to come back")
    else:
        pytest.fail("three stops all landed between tasks\n" + farm.logs())
    marks = p.count()
    before = st["counters"]
    p.signal(signal.SIGCONT)
    # Back: it notices the broker's DISCONNECT / silence, drops the stale task, says READY.
    wait_for(lambda: any("reconnecting" in l for l in p.snapshot(marks)), "w1 to reconnect after SIGCONT")
    got = q.ok()
    assert_same_result(got, ref, "after SIGSTOP/SIGCONT of w1 during %s" % "/".join(map(str, key)))
    assert got[0]["search"]["requeued_tasks"] >= 1
    after = farm.status()
    # Its late result never counted: either the worker dropped the stale task on
    # reconnecting, or the broker refused the message of an evicted worker
    # (unknown_peer) or counted a duplicate.
    # The stopped attempt's result: an 'ok' for the key before w1 starts it again (the
    # requeued task may well come back to w1 as a new attempt).
    late_ok = False
    for l in p.snapshot(marks):
        if ("task %s/%d/%d/%d: start" % key) in l:
            break
        if ("task %s/%d/%d/%d: ok" % key) in l:
            late_ok = True
            break
    if late_ok:
        c = after["counters"]
        assert c["unknown_peer"] + c["duplicate_results"] > before["unknown_peer"] + before["duplicate_results"]
    assert "w1" in worker_names(after), "w1 should be serving again after SIGCONT"


def test_broker_restart_mid_job(ac_bin, farm, tmp_path, tmp_path_factory):
    ref = reference(ac_bin, tmp_path_factory, "fmnist_mbv2")
    b1 = farm.broker()
    w1, w2 = farm.worker("w1"), farm.worker("w2")
    farm.workers_ready(["w1", "w2"])
    q = farm.quantize("fmnist_mbv2", tmp_path / "out", "--shard_batches", "2")
    signal_mid_task(farm, [w1, w2], 0, FIRST_SEARCH_ROUND, "the search to start")  # signal 0: just watch
    b1.kill()
    marks = {w.name: w.count() for w in (w1, w2)}
    b2 = None
    for _ in range(20):  # the port is free again once the old listener is closed
        b2 = farm.broker(wait=False)
        wait_for(lambda: not b2.alive() or any("serving" in l for l in b2.snapshot()), "the new broker")
        if b2.alive():
            break
        time.sleep(0.2)
    assert b2 is not None and b2.alive(), "the new broker could not bind %s" % farm.endpoint
    got = q.ok()
    assert_same_result(got, ref, "after a broker restart")
    assert got[0]["search"]["broker_restarts"] >= 1, got[0]["search"]
    st = farm.status()
    assert {"w1", "w2"} <= worker_names(st)
    assert st["counters"]["dispatched"] > 0 and st["counters"]["results"] > 0
    for w in (w1, w2):
        assert any("reconnecting" in l for l in w.snapshot(marks[w.name])), w.name


@pytest.mark.long
def test_task_that_kills_its_worker_fails_after_3_attempts(ac_bin, farm, tmp_path):
    """The test plays the crash: any worker that starts a task of search candidate
    CRASH is killed at once (and a fresh worker started), so that task's every attempt
    ends with a dead worker. The broker fails it after 3 attempts; the search reports
    the candidate as failed and still chooses a plan."""
    # Task key candidate ids count submissions from 0; with --fp32_score there is no fp32
    # scoring (the search's rounds start one earlier), so id 3 is the report's candidate 3,
    # the fourth plan of the screen in round 1.
    CRASH = 3
    first_round = FIRST_SEARCH_ROUND - 1
    farm.broker()
    live = [farm.worker("w1"), farm.worker("w2")]
    farm.workers_ready(["w1", "w2"])
    # One 512-sample shard per candidate: a task runs long enough to be caught. The
    # claimed fp32 score makes the baseline miss the budget, so round 2 runs.
    q = farm.quantize("fmnist_mbv2", tmp_path / "out", "--shard_batches", "32", "--fp32_score", "0.95",
                      "--accept_int8_decay", "0", test_batches=32)
    seen = {p.name: 0 for p in live}
    kills, spare = [], 3
    end = time.monotonic() + JOB_TIMEOUT
    while q.p.poll() is None:
        assert time.monotonic() < end, "quantize did not finish\n" + farm.logs()
        for p in list(live):
            starts, seen[p.name] = task_starts(p, seen[p.name], with_end=True)
            hit = [k for _, k, _ in starts if k[1] >= first_round and k[2] == CRASH]
            if hit and p.alive():
                p.kill()
                kills.append((p.name, hit[0]))
                live.remove(p)
                n = farm.worker("w%d" % spare)
                spare += 1
                live.append(n)
                seen[n.name] = 0
        time.sleep(0.002)
    rep, table = q.ok(timeout=5)
    assert len(kills) == 3, kills
    cands = rep["candidates"]
    bad = cands[CRASH]
    assert bad["failed"], bad
    assert "failed after 3 attempts" in bad.get("error", ""), bad
    assert [c["name"] for c in cands if c["failed"]] == [bad["name"]]
    assert rep["search"]["failed_tasks"] >= 1
    assert rep["strategy"] and rep["int8_score"] > 0
    st = farm.status()
    assert st["counters"]["failed"] >= 1 and st["counters"]["requeued"] >= 2
    assert any("failed after 3 attempts" in l for l in farm.broker_proc.snapshot())


def test_two_searches_share_one_broker(ac_bin, farm, tmp_path, tmp_path_factory):
    refs = {m: reference(ac_bin, tmp_path_factory, m) for m in ("fmnist_plain", "fmnist_resnet")}
    farm.broker()
    farm.worker("w1")
    farm.worker("w2")
    farm.workers_ready(["w1", "w2"])
    jobs = {m: farm.quantize(m, tmp_path / m, "--shard_batches", "1") for m in refs}
    both_served = False
    end = time.monotonic() + JOB_TIMEOUT
    while any(q.p.poll() is None for q in jobs.values()) and time.monotonic() < end:
        js = farm.status()["jobs"]
        if len(js) == 2 and all(int(j.get("done", 0)) > 0 for j in js):
            both_served = True
        time.sleep(0.05)
    for m, q in jobs.items():
        assert_same_result(q.ok(), refs[m], "%s next to another search" % m)
    assert both_served, "the broker never had both jobs progressing at once"
    alone = sum(_SECONDS[(m, 8)] for m in refs)
    print("two searches at once: %s; alone on one worker: %.1fs in all" %
          (", ".join("%s %.1fs" % (m, q.elapsed) for m, q in jobs.items()), alone))


def make_keys(farm, names):
    keys = farm.tmp / "keys"
    for n in names:
        p = subprocess.run([farm.bin, "certs", "new", n, "--dir", str(keys)], stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, universal_newlines=True, timeout=30)
        assert p.returncode == 0, p.stderr
    assert oct(os.stat(keys / "broker.key").st_mode & 0o777) == "0o600"
    return keys


def curve_args(keys, name):
    return ["--curve-key", str(keys / (name + ".key")), "--server-key", str(keys / "broker.pub")]


def test_curve_admits_listed_keys_and_refuses_others(ac_bin, farm, tmp_path, tmp_path_factory):
    ref = reference(ac_bin, tmp_path_factory, "fmnist_plain")
    keys = make_keys(farm, ["broker", "worker", "coord", "stranger"])
    admitted = tmp_path / "admitted"
    admitted.mkdir()
    for n in ("worker", "coord"):
        shutil.copy(keys / (n + ".pub"), admitted)
    farm.client_keys = curve_args(keys, "coord")
    farm.broker("--curve-dir", str(admitted), "--curve-key", str(keys / "broker.key"))
    good = farm.worker("w1", keys=curve_args(keys, "worker"))
    bad = farm.worker("ws", keys=curve_args(keys, "stranger"))
    farm.workers_ready(["w1"])
    st = farm.status()
    assert st["curve"] == "yes"
    # A listed coordinator key: the job runs over CURVE with the same result.
    got = farm.quantize("fmnist_plain", tmp_path / "ok", "--shard_batches", "1").ok()
    assert_same_result(got, ref, "over CURVE")
    st = farm.status()
    assert worker_names(st) == {"w1"}, "the stranger's worker must never register: %s" % worker_names(st)
    assert not task_starts(bad), "the stranger's worker got a task"
    assert task_starts(good)
    # An unknown coordinator key: no status answer, and quantize fails cleanly.
    rc, _, err = farm.status_text(keys=curve_args(keys, "stranger"), timeout_ms=1000)
    assert rc == 1 and "no answer" in err
    q = farm.quantize("fmnist_plain", tmp_path / "refused", "--shard_batches", "1", "--max_search_seconds", "10",
                      keys=["--curve_key", str(keys / "stranger.key"), "--server_key", str(keys / "broker.pub")])
    rc = q.wait(timeout=120)
    assert rc == 1, "quantize with an unknown key must fail (exit %d)\n%s" % (rc, q.output())
    # Refused at once (no connection takes its messages), or, when its first messages
    # were queued before the handshake failed, cancelled at --max_search_seconds.
    err = open(q.stderr_path).read()
    assert "no connection" in err or "cancelled" in err, err
    assert not os.path.exists(tmp_path / "refused" / "report.json")
    # Plain (no CURVE) is refused too.
    rc, _, err = farm.status_text(keys=[], timeout_ms=1000)
    assert rc == 1


def test_curve_removed_key_is_revoked(ac_bin, farm, tmp_path, tmp_path_factory):
    ref = reference(ac_bin, tmp_path_factory, "fmnist_mbv2")
    keys = make_keys(farm, ["broker", "worker", "worker2", "coord"])
    admitted = tmp_path / "admitted"
    admitted.mkdir()
    for n in ("worker", "worker2", "coord"):
        shutil.copy(keys / (n + ".pub"), admitted)
    farm.client_keys = curve_args(keys, "coord")
    farm.broker("--curve-dir", str(admitted), "--curve-key", str(keys / "broker.key"))
    farm.worker("w1", keys=curve_args(keys, "worker"))
    w2 = farm.worker("w2", keys=curve_args(keys, "worker2"))
    farm.workers_ready(["w1", "w2"])
    q = farm.quantize("fmnist_mbv2", tmp_path / "out", "--shard_batches", "2")
    wait_for(lambda: any(TASK_DONE.search(l) for l in w2.snapshot()), "w2 to finish a task")
    os.remove(admitted / "worker2.pub")
    wait_for(lambda: "w2" not in worker_names(farm.status()), "the broker to cut w2 off")
    st = farm.status()
    assert st["counters"]["revoked"] >= 1
    cut = w2.count()
    got = q.ok()
    assert_same_result(got, ref, "with w2 revoked mid-job")
    assert not task_starts(w2, cut), "w2 got a task after its key was removed"
    assert "w2" not in worker_names(farm.status())


def _dealer(ctx, endpoint):
    import zmq
    s = ctx.socket(zmq.DEALER)
    s.setsockopt(zmq.LINGER, 0)
    s.setsockopt(zmq.RCVTIMEO, 3000)
    s.connect(endpoint)
    return s


def test_garbage_frames_are_dropped_and_counted(ac_bin, farm, tmp_path, tmp_path_factory):
    zmq = pytest.importorskip("zmq")
    msgpack = pytest.importorskip("msgpack")
    ref = reference(ac_bin, tmp_path_factory, "fmnist_plain")
    farm.broker()
    farm.worker("w1")
    farm.workers_ready(["w1"])
    C, W = b"ACPC\x01", b"ACPW\x01"
    pk = msgpack.packb
    garbage = [
        [b"hello"],                                              # one frame
        [b"ACPX\x01", b"\x02", pk([0, 100, 3])],                # unknown signature
        [b"ACPC\x02", b"\x02", pk([0, 100, 3])],                # version 2
        [C, b"\x7f", pk([])],                                   # unknown command
        [C, b"\x01", pk(["w", 1, "avx2", "cpu", b""])],         # READY on the client side
        [C, b"\x0d", b"\xc1"],                                  # not msgpack
        [C, b"\x0d", pk([]) + b"\x00"],                         # bytes after the body
        [C, b"\x0d", b""],                                      # empty body
        [C, b"\x0d", pk([]), b"extra"],                         # a frame too many
        [C, b"\x0d\x0d", pk([])],                               # a 2-byte command
        [C, b"\x0a", b"\xdd\xff\xff\xff\xff"],                  # SUBMIT claiming 4G elements
        [C, b"\x0a", pk(["job", [[1, 2, 3]]])],                 # SUBMIT with a bad task
        [C, b"\x0a", pk(["bad job id", []])],                   # job id with a space
        [C, b"\x0b", pk(["j", b"\x00" * 31, 0, 10]), b"x"],     # BLOB_PUT, 31-byte hash
        [C, b"\x0c", pk(["j" * 80])],                           # JOB_END, id too long
        [W, b"\x01", pk(["w", 1, "avx2"])],                     # READY with 3 fields
        [W, b"\x01", pk(["w", 1, "avx2", "cpu", b"\x01" * 33])],  # cached not a multiple of 32
        [W, b"\x05", pk([["j", 0, 0, 0, 0], 0, "", float("nan"), b""])],  # RESULT, NaN seconds
        [W, b"\x02", pk([0, 100])],                             # HEARTBEAT, 2 fields
        [W, b"\x06", pk([b"\x00" * 32, 0, 0])],                 # BLOB_REQ of 0 bytes
    ]
    ctx = zmq.Context()
    try:
        s = _dealer(ctx, farm.endpoint)
        replies = []
        for frames in garbage:
            s.send_multipart(frames)
        for _ in garbage:
            try:
                replies.append(s.recv_multipart())
            except zmq.Again:
                break
        # Every malformed message is answered with DISCONNECT and the codec's reason.
        assert len(replies) == len(garbage), replies
        for r in replies:
            assert len(r) == 3 and r[0] in (C, W) and r[1] == b"\x03", r
            assert msgpack.unpackb(r[2])[0].startswith("malformed"), r
        # A registered worker that sends garbage is dropped.
        w = _dealer(ctx, farm.endpoint)
        w.send_multipart([W, b"\x01", pk(["rawworker", 1, "generic", "none", b""])])
        wait_for(lambda: "rawworker" in worker_names(farm.status()), "the raw worker to register")
        w.send_multipart([W, b"\x04", b"\x93\x01"])  # PROGRESS with a truncated body
        wait_for(lambda: "rawworker" not in worker_names(farm.status()), "the broker to drop the raw worker")
        w.close()
        s.close()
    finally:
        ctx.term()
    st = farm.status()
    assert st["counters"]["malformed"] == len(garbage) + 1, st["counters"]
    _, text, _ = farm.status_text()
    assert "malformed %d" % (len(garbage) + 1) in text
    # Still serving: a job completes with the usual result.
    got = farm.quantize("fmnist_plain", tmp_path / "after", "--shard_batches", "1").ok()
    assert_same_result(got, ref, "after garbage")
    assert "w1" in worker_names(farm.status())


def test_oversized_frames_and_a_flood_do_not_stop_service(ac_bin, farm, tmp_path, tmp_path_factory):
    """One peer sends a frame over the broker's size limit (libzmq drops that connection
    before the broker sees it) and another floods it with STATUS requests for the whole
    job; the job of a well-behaved coordinator finishes with the usual result, and the
    broker's per-peer rate limit has dropped part of the flood."""
    zmq = pytest.importorskip("zmq")
    msgpack = pytest.importorskip("msgpack")
    ref = reference(ac_bin, tmp_path_factory, "fmnist_plain")
    farm.broker()
    farm.worker("w1")
    farm.workers_ready(["w1"])
    C = b"ACPC\x01"
    ctx = zmq.Context()
    stop = threading.Event()
    sent = [0]

    def flood():
        f = _dealer(ctx, farm.endpoint)
        f.setsockopt(zmq.SNDHWM, 0)
        status = [C, b"\x0d", msgpack.packb([])]
        while not stop.is_set():
            for _ in range(1000):
                f.send_multipart(status)
            sent[0] += 1000
            try:  # read what comes back so the broker's replies do not pile up here
                while True:
                    f.recv_multipart(flags=zmq.NOBLOCK)
            except zmq.Again:
                pass
        f.close()

    try:
        big = _dealer(ctx, farm.endpoint)
        big.send_multipart([C, b"\x0a", b"\x00" * (80 << 20)])  # 80 MB > AC_MSG_MAX_BYTES (64 MB)
        t = threading.Thread(target=flood, daemon=True)
        t.start()
        got = farm.quantize("fmnist_plain", tmp_path / "out", "--shard_batches", "1").ok()
        stop.set()
        t.join(timeout=30)
        big.close()
    finally:
        stop.set()
        ctx.term()
    assert_same_result(got, ref, "during a flood")
    st = farm.status()
    assert sent[0] > 20000 and st["counters"]["rate_dropped"] > 0, (sent[0], st["counters"])
    assert "w1" in worker_names(st)


@pytest.mark.long
def test_resume_after_the_coordinator_is_killed(ac_bin, farm, tmp_path):
    """An fp32 score the int8 plans cannot reach (--fp32_score 0.95, zero budget) makes
    the auto search go through every phase: round 1 (the screen of the baseline and the
    single options on the subset), their full evaluations and combination, the removal
    probes on the subset, the k-ary searches and the all-fp32 check. Each round is
    journaled as it ends. The coordinator is killed (-9) once round 1 is journaled;
    --resume takes those scores from the journal and finishes with the uninterrupted
    run's plan and scores, evaluating fewer candidates."""
    extra = ["--shard_batches", "2", "--auto_calib", "--accept_int8_decay", "0", "--fp32_score", "0.95"]
    farm.broker()
    farm.worker("w1")
    farm.worker("w2")
    farm.workers_ready(["w1", "w2"])
    full = farm.quantize("fmnist_mbv2", tmp_path / "full", *extra).ok()
    assert full[0]["rounds"] >= 3, "the search needs several rounds for this test: %s" % full[0]["rounds"]
    n_round1 = sum(1 for c in full[0]["candidates"] if c["round"] == 1)

    out = tmp_path / "killed"
    q = farm.quantize("fmnist_mbv2", out, *extra, tag="killed")
    journal = out / "journal.acj"

    def journaled():
        if not journal.exists():
            return 0
        return sum(1 for l in open(journal) if l.startswith("cand ") and l.endswith("\n"))

    wait_for(lambda: journaled() >= n_round1 or q.p.poll() is not None,
             "the journal to hold round 1 (%d evaluations)" % n_round1, timeout=JOB_TIMEOUT)
    q.p.send_signal(signal.SIGKILL)
    q.wait(timeout=30)
    assert q.p.returncode == -signal.SIGKILL, "the search finished before it could be killed\n" + q.output()
    kept = journaled()
    assert not (out / "report.json").exists()

    r = farm.quantize("fmnist_mbv2", out, *extra, "--resume", tag="resumed")
    got = r.ok()
    assert_same_result(got, full, "resumed vs uninterrupted")
    out_text = open(r.stdout_path).read()
    m = re.search(r"resume: (\d+) evaluation\(s\)", out_text)
    assert m and int(m.group(1)) == kept, out_text[-2000:]
    reused = [c for c in got[0]["candidates"] if c.get("error") == "from the journal"]
    fresh = [c for c in got[0]["candidates"] if c["shards"] > 0]
    fresh_full = [c for c in full[0]["candidates"] if c["shards"] > 0]
    assert len(reused) >= n_round1
    assert len(fresh) < len(fresh_full)
    assert len(fresh) + len(reused) == len(fresh_full)
    print("resume: %d candidate(s) from the journal, %d evaluated again (uninterrupted: %d)" %
          (len(reused), len(fresh), len(fresh_full)))


@pytest.mark.long
def test_resume_after_repeated_kills_at_any_moment(ac_bin, farm, tmp_path):
    """The coordinator is killed (-9) again and again at moments spread over the job
    (calibration, the fp32 score, rounds, writing the journal); every restart with
    --resume goes on from what the journal holds, and the last one finishes with the
    uninterrupted run's plan and scores. Until then the output folder never holds a
    report or artefacts (they appear together, by rename)."""
    extra = ["--shard_batches", "2", "--auto_calib", "--accept_int8_decay", "0", "--fp32_score", "0.95"]
    farm.broker()
    farm.worker("w1")
    farm.worker("w2")
    farm.workers_ready(["w1", "w2"])
    full = farm.quantize("fmnist_mbv2", tmp_path / "full", *extra).ok()
    out = tmp_path / "killed"
    kills = 0
    for k, delay in enumerate([0.4, 1.3, 0.9, 2.2, 1.7, 3.0]):
        q = farm.quantize("fmnist_mbv2", out, *extra, *(["--resume"] if k else []), tag="run%d" % k)
        time.sleep(delay)
        if q.p.poll() is not None:
            break  # it finished before this kill
        q.p.send_signal(signal.SIGKILL)
        q.wait(timeout=30)
        kills += 1
        assert not (out / "report.json").exists() and not (out / "calibration_table").exists(), \
            "a killed run left artefacts: %s" % sorted(os.listdir(out))
    got = farm.quantize("fmnist_mbv2", out, *extra, "--resume", tag="last").ok()
    assert kills >= 3
    assert_same_result(got, full, "after %d kills and resumes" % kills)


def replace_farm(farm, broker, workers):
    """Kills the broker and its workers, starts a new broker on the same endpoint (its
    port may take a moment to be free) and two new workers, w3 and w4, with empty caches."""
    broker.kill()
    for w in workers:
        w.kill()
    for _ in range(20):
        b2 = farm.broker(wait=False)
        wait_for(lambda: not b2.alive() or any("serving" in l for l in b2.snapshot()), "the new broker")
        if b2.alive():
            break
        time.sleep(0.2)
    assert b2.alive()
    farm.worker("w3")
    farm.worker("w4")
    return b2


@pytest.mark.long
@pytest.mark.parametrize("delay", [0.3, 1.0, 1.7, 2.4, 3.1])
def test_broker_restart_at_any_moment_with_fresh_workers(ac_bin, farm, tmp_path, tmp_path_factory, delay):
    """The broker is killed `delay` seconds into the job (upload, calibration, fp32 score,
    search or between them) and the old workers with it; the new broker gets workers
    with empty caches, so every blob must come from the coordinator again (a task that
    reaches a worker before its blobs would fail with 'the broker holds no blob')."""
    ref = reference(ac_bin, tmp_path_factory, "fmnist_plain")
    b1 = farm.broker()
    old = [farm.worker("w1"), farm.worker("w2")]
    farm.workers_ready(["w1", "w2"])
    q = farm.quantize("fmnist_plain", tmp_path / "out", "--shard_batches", "1")
    time.sleep(delay)
    replace_farm(farm, b1, old)
    rc = q.wait()
    assert rc == 0, "quantize failed after a broker restart at %.1fs\n%s" % (delay, q.output())
    assert_same_result(load_result(tmp_path / "out"), ref, "broker restarted at %.1fs" % delay)


def test_broker_restart_between_runs_with_fresh_workers(ac_bin, farm, tmp_path, tmp_path_factory):
    """The broker restarts while the coordinator computes between two batches of tasks
    (the calibration tables, after the histogram pass), and the new broker gets workers
    with empty caches. The coordinator is frozen (SIGSTOP) at that moment while the
    farm is replaced, then let go: before submitting the next batch it must notice the
    new broker (which does not know it and holds none of its blobs) and upload again;
    otherwise the new workers ask for blobs the broker does not have and the tasks fail."""
    ref = reference(ac_bin, tmp_path_factory, "fmnist_mbv2")
    b1 = farm.broker()
    old = [farm.worker("w1"), farm.worker("w2")]
    farm.workers_ready(["w1", "w2"])
    q = farm.quantize("fmnist_mbv2", tmp_path / "out", "--shard_batches", "1")
    n_calib_shards = 4  # 4 calibration batches in 1-batch shards

    def histogram_pass_done():
        done = set()
        for w in old:
            for l in w.snapshot():
                m = TASK_DONE.search(l)
                if m and m.group(2) == "2" and m.group(5) == "ok":
                    done.add(m.group(4))
        return len(done) == n_calib_shards or q.p.poll() is not None

    wait_for(histogram_pass_done, "the histogram pass (round 2) to end", step=0.002)
    q.p.send_signal(signal.SIGSTOP)
    try:
        assert q.p.poll() is None, q.output()
        replace_farm(farm, b1, old)
        farm.workers_ready(["w3", "w4"])
    finally:
        q.p.send_signal(signal.SIGCONT)
    got = q.ok()
    assert_same_result(got, ref, "broker restarted between runs")
    assert got[0]["search"]["broker_restarts"] >= 1
