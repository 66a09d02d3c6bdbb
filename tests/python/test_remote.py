"""Remote test mode (docs/remote.md): real `autocalib quantize --test_source remote` server
processes driven by python/autocalib_client.py, against the built-in classify score on the
same Fashion-MNIST samples; a server killed and resumed mid-candidate; refusals of wrong
batches and foreign frames while the server keeps serving.

Runs $AC_BIN (see conftest.py)."""

import json
import os
import socket
import subprocess
import sys

import msgpack
import numpy as np
import pytest
import zmq

import conftest as h

sys.path.insert(0, os.path.join(h.REPO, "python"))
import autocalib_client  # noqa: E402
from autocalib_client import AutoCalibDebug, ProtocolError, TemporaryFail  # noqa: E402

FMNIST = h.FMNIST_DIR
MODEL = os.path.join(h.MODELS, "fmnist_plain.onnx")
PP = "mean_value=72.93,scale=0.011109"
BATCHES = 8   # test batches of 16 per candidate
TIMEOUT = 2   # the client's answer timeout: short, so a killed server is noticed soon


def idx(name):
    path = os.path.join(FMNIST, name)
    if not os.path.exists(path):
        pytest.skip("%s is absent (Debian package dataset-fashion-mnist)" % path)
    return path


def common_args(out):
    return ["quantize", "--model", MODEL, "--output_dir", str(out),
            "--calib_idx_images", idx("train-images-idx3-ubyte.gz"), "--calib_iterations", "4",
            "--data_preproccess_str", PP, "--input_data_shape", "(16,1,28,28)",
            "--accept_int8_decay", "0", "--test_iterations", str(BATCHES)]


def fmnist_batches():
    """The first BATCHES*16 test samples as the built-in run reads them: float32
    (pixel - 72.93) * 0.011109 (checked against `autocalib dataset dump` below)."""
    x = h.read_idx(idx("t10k-images-idx3-ubyte.gz"))[:BATCHES * 16]
    y = h.read_idx(idx("t10k-labels-idx1-ubyte.gz"))[:BATCHES * 16].astype(np.int64)
    x = (x.astype(np.float32) - np.float32(72.93)) * np.float32(0.011109)
    return [(x[i:i + 16, None], y[i:i + 16]) for i in range(0, len(y), 16)]


def free_tcp_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """One `autocalib quantize --test_source remote` process, its output in a log file."""

    def __init__(self, ac_bin, out, endpoint, extra=()):
        self.cmd = [ac_bin] + common_args(out) + ["--test_source", "remote", "--listen", endpoint] \
            + list(extra)
        self.log_path = str(out) + ".log"
        self.endpoint = endpoint
        self.proc = None
        self.start()

    def start(self, extra=()):
        with open(self.log_path, "a") as log:
            self.proc = subprocess.Popen(self.cmd + list(extra), stdout=log, stderr=subprocess.STDOUT)

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()

    def log(self):
        return open(self.log_path).read()[-3000:]

    def check_alive(self):
        """A client waits for a server that is gone for ever: say why it went."""
        if self.proc.poll() is not None:
            raise AssertionError("the server exited (%d):\n%s" % (self.proc.returncode, self.log()))


@pytest.fixture
def servers():
    started = []
    yield started
    for s in started:
        s.kill()


@pytest.fixture(scope="module")
def builtin(ac_bin, tmp_path_factory):
    """The built-in classify run on the same samples: its report. --baseline_first: the
    search order of remote test mode, where the client's subset score is its own metric."""
    out = tmp_path_factory.mktemp("builtin") / "out"
    p = subprocess.run([ac_bin] + common_args(out) + ["--baseline_first",
        "--test_idx_images", idx("t10k-images-idx3-ubyte.gz"),
        "--test_idx_labels", idx("t10k-labels-idx1-ubyte.gz"), "--task", "classify"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True)
    assert p.returncode == 0, p.stderr
    return json.load(open(out / "report.json"))


def drive(calib, server, on_run=lambda name, nscored, batch: None, on_wait=lambda: None):
    """Score every candidate with top-1 on fmnist_batches(); returns the statuses seen (a lost
    candidate adds "lost NAME") and [(name, kind, score)] reported. on_run is called before
    each batch, on_wait at each "temporary_fail" (then the server must be running)."""
    batches, stats, scored = fmnist_batches(), [], []
    for stat in calib:
        stats.append(stat)
        if stat == "finished":
            break
        if stat == "temporary_fail":
            on_wait()
            server.check_alive()
            continue
        name, kind = calib.strategy["name"], calib.strategy["kind"]
        assert calib.test_iterations == BATCHES
        try:
            correct = 0
            for i, (x, y) in enumerate(batches):
                on_run(name, len(scored), i)
                logits = calib.run_and_get_outputs(x)[0]
                assert logits.shape == (16, 10) and logits.dtype == np.float32
                correct += int((logits.argmax(1) == y).sum())
            score = correct / (16 * len(batches))
            calib.report_accuracy(score)
        except TemporaryFail:
            stats.append("lost " + name)
            continue
        scored.append((name, kind, score))
    return stats, scored


def assert_same_plan(report, builtin):
    """The remote search chose what the built-in one chose, from the same scores."""
    assert report["strategy"] == builtin["strategy"]
    assert report["fp32_layers"] == builtin["fp32_layers"]
    assert report["fp32_score"] == builtin["fp32_score"]
    assert report["int8_score"] == builtin["int8_score"]
    want = [(c["name"], c["int8_score"], c["decided"]) for c in builtin["candidates"]]
    assert [(c["name"], c["int8_score"], c["decided"]) for c in report["candidates"]] == want


def builtin_order(builtin):
    """What the client should score: the fp32 model, then each candidate in the search's order."""
    return [("fp32", "fp32", builtin["fp32_score"])] + \
        [(c["name"], "int8", c["int8_score"]) for c in builtin["candidates"]]


# ------------------------------------------------------------------ the data fed

def test_client_samples_are_autocalibs(ac_bin, tmp_path):
    """The client's numpy preprocessing gives exactly the samples the built-in run scores."""
    out = str(tmp_path / "dump.npy")
    p = subprocess.run([ac_bin, "dataset", "dump", "--idx_images", idx("t10k-images-idx3-ubyte.gz"),
                        "--idx_labels", idx("t10k-labels-idx1-ubyte.gz"), "--data_preproccess_str", PP,
                        "--count", str(BATCHES * 16), "--out", out, "--labels_out", out + ".labels"],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True)
    assert p.returncode == 0, p.stderr
    x = np.concatenate([b for b, _ in fmnist_batches()])
    y = np.concatenate([l for _, l in fmnist_batches()])
    assert np.array_equal(np.load(out), x)
    assert open(out + ".labels").read().split() == [str(v) for v in y]


# ------------------------------------------------------------------ whole searches

def test_remote_search_chooses_the_builtin_plan(ac_bin, builtin, tmp_path, servers):
    out = tmp_path / "out"
    servers.append(Server(ac_bin, out, "ipc://%s/s.ipc" % tmp_path))
    with AutoCalibDebug("ipc://%s/s.ipc" % tmp_path, timeout=10) as calib:
        assert calib.inputs == [["input", "float32", [16, 1, 28, 28]]] and calib.outputs == ["logits"]
        assert calib.batch == 16 and "fmnist_plain" in calib.model
        stats, scored = drive(calib, servers[0])
        report = calib.result()
    assert stats[-1] == "finished" and not [s for s in stats if s.startswith("lost")]
    assert scored == builtin_order(builtin)
    assert_same_plan(report, builtin)
    assert servers[0].proc.wait() == 0, servers[0].log()
    assert json.load(open(out / "report.json")) == report
    assert {"calibration_table", "qtable", "fmnist_plain.int8.acq"} <= set(os.listdir(out))


def test_server_killed_mid_candidate_and_resumed(ac_bin, builtin, tmp_path, servers):
    """kill -9 during the first int8 candidate (after the fp32 model was scored); the
    client's next request goes unanswered, so the candidate is lost and the iteration says
    "temporary_fail"; then the server is restarted with --resume, which serves the
    interrupted candidate again and not the fp32 model (its score is in the journal)."""
    ep = "tcp://127.0.0.1:%d" % free_tcp_port()
    server = Server(ac_bin, tmp_path / "out", ep)
    servers.append(server)
    killed = []

    def on_run(name, nscored, batch):
        if not killed and nscored == 1 and batch == 3:
            server.kill()
            killed.append(name)

    def on_wait():
        if killed and server.proc.poll() is not None:
            server.start(["--resume"])

    with AutoCalibDebug(ep.replace("tcp://", ""), timeout=TIMEOUT) as calib:
        stats, scored = drive(calib, server, on_run, on_wait)
        report = calib.result()
    lost = killed[0]
    assert "temporary_fail" in stats[stats.index("lost " + lost):] and stats[-1] == "finished"
    assert_same_plan(report, builtin)
    assert server.proc.wait() == 0, server.log()
    # the interrupted candidate is scored after the restart, the journal skips the others
    assert scored == builtin_order(builtin), "the client scored %s" % scored


def test_example_script(ac_bin, builtin, tmp_path, servers):
    """python/examples/remote_fmnist.py (a torch DataLoader) drives the same search."""
    pytest.importorskip("torch")
    ep = "ipc://%s/s.ipc" % tmp_path
    servers.append(Server(ac_bin, tmp_path / "out", ep))
    example = subprocess.Popen(["/usr/bin/python3", os.path.join(h.REPO, "python", "examples", "remote_fmnist.py"),
                                "--server", ep, "--timeout", "10"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True)
    while example.poll() is None:  # the example waits for ever for a server that is gone
        if servers[0].proc.poll() not in (None, 0):
            example.kill()
            servers[0].check_alive()
        try:
            example.wait(1)
        except subprocess.TimeoutExpired:
            pass
    out, err = example.communicate()
    assert example.returncode == 0, err + servers[0].log()
    lines = out.splitlines()
    want = ["%-30s %-5s top-1 %.4f" % (c["name"], "int8", c["int8_score"]) for c in builtin["candidates"]]
    assert lines[0].split()[-3:] == ["fp32", "top-1", "%.4f" % builtin["fp32_score"]]
    assert lines[1:-1] == want
    assert lines[-1].startswith("result: fp32 %.4f, int8 %.4f" % (builtin["fp32_score"], builtin["int8_score"]))
    assert json.dumps(builtin["strategy"]) in lines[-1]
    assert servers[0].proc.wait() == 0, servers[0].log()


# ------------------------------------------------------------------ refusals

def first_candidate(calib, server):
    for stat in calib:
        if stat == "ready":
            return
        server.check_alive()
    raise AssertionError("no candidate before %s" % stat)


def raw_request(server, frame):
    """Send one frame on a fresh DEALER; returns the decoded answer."""
    with zmq.Context() as ctx, ctx.socket(zmq.DEALER) as s:
        s.linger = 0
        s.connect(server.endpoint)
        s.send(frame)
        while not s.poll(1000):
            server.check_alive()
        return msgpack.unpackb(s.recv(), raw=False)


def test_wrong_batches_are_refused_and_the_server_keeps_serving(ac_bin, tmp_path, servers):
    ep = "ipc://%s/s.ipc" % tmp_path
    servers.append(Server(ac_bin, tmp_path / "out", ep))
    with AutoCalibDebug(ep, timeout=10) as calib:
        first_candidate(calib, servers[0])
        x = fmnist_batches()[0][0]
        with pytest.raises(ValueError) as e:
            calib.run_and_get_outputs(x[:, :, :, :27])
        assert "(16, 1, 28, 27)" in str(e.value) and "(N, 1, 28, 28)" in str(e.value)
        with pytest.raises(ValueError, match="float64"):
            calib.run_and_get_outputs(x.astype(np.float64))
        # the same mistakes sent past the client's checks: the server names both shapes ...
        cid, session, bad = calib.strategy["id"], calib._session, x[:, :, :, :27]
        reply = raw_request(servers[0], autocalib_client.pack(
            "RUN", 5, [session, cid, "float32", list(bad.shape), bad.tobytes()]))
        assert reply[2:4] == ["ERROR", 5] and reply[4][0] == "bad_shape", reply
        assert "28,27" in reply[4][1].replace(" ", "") and "28,28" in reply[4][1].replace(" ", ""), reply
        # ... and the client turns its refusals into ValueError
        with pytest.raises(ValueError, match="bad_dtype|float64"):
            calib._call("RUN", session, cid, "float64", list(x.shape), x.astype(np.float64).tobytes())
        # ... and keeps serving: any batch size, split into batches of 16 and padded
        full = calib.run_and_get_outputs(x)[0]
        assert full.shape == (16, 10)
        assert np.array_equal(calib.run_and_get_outputs(x[:5])[0], full[:5])
        two = np.concatenate([x, x[:4]])
        got = calib.run_and_get_outputs(two)[0]
        assert got.shape == (20, 10) and np.array_equal(got[:16], full) and np.array_equal(got[16:], full[:4])


def test_foreign_frames_are_refused_and_the_server_keeps_serving(ac_bin, tmp_path, servers, monkeypatch):
    ep = "tcp://127.0.0.1:%d" % free_tcp_port()
    servers.append(Server(ac_bin, tmp_path / "out", ep))
    reply = raw_request(servers[0], msgpack.packb(["ACR", 2, "HELLO", 7, []]))
    assert reply[:3] == ["ACR", 1, "ERROR"] and reply[4][0] == "version" and "2" in reply[4][1], reply
    for garbage in [b"\xc1garbage", msgpack.packb(["ACR", 1, "NEXT", 8, [17]]),
                    msgpack.packb(["ACR", 1, "FLY", 9, []]), msgpack.packb({"ACR": 1})]:
        reply = raw_request(servers[0], garbage)
        assert reply[2] == "ERROR" and reply[4][0] == "bad_request", (garbage, reply)
    assert raw_request(servers[0], autocalib_client.pack("HELLO", 10, []))[2:4] == ["WELCOME", 10]
    with AutoCalibDebug(ep, timeout=10) as calib:  # a session of an earlier server: HELLO again
        calib._session = "an earlier server's"
        stats = iter(calib)
        assert next(stats) == "temporary_fail" and calib._session is None
        first_candidate(calib, servers[0])
        assert calib.strategy["kind"] == "fp32" and calib._session
    # a client of another protocol version is told so
    monkeypatch.setattr(autocalib_client, "VERSION", 2)
    with pytest.raises(ProtocolError, match="version") as e:
        AutoCalibDebug(ep, timeout=10)
    assert e.value.code == "version"


def test_curve_admits_only_listed_clients(ac_bin, tmp_path, servers):
    keys, admitted = tmp_path / "keys", tmp_path / "admitted"
    for name in ("server", "me", "stranger"):
        subprocess.run([ac_bin, "certs", "new", name, "--dir", str(keys)], check=True, stdout=subprocess.PIPE)
    admitted.mkdir()
    (admitted / "me.pub").write_bytes((keys / "me.pub").read_bytes())
    port = free_tcp_port()
    servers.append(Server(ac_bin, tmp_path / "out", "tcp://127.0.0.1:%d" % port,
                          ["--listen_curve_dir", str(admitted), "--curve_key", str(keys / "server.key")]))
    with AutoCalibDebug("127.0.0.1:%d" % port, timeout=10, server_key=str(keys / "server.pub"),
                        client_cert=str(keys / "me.key")) as calib:
        first_candidate(calib, servers[0])
        assert calib.strategy["kind"] == "fp32"
    # a client without CURVE, or with a key not in the folder, gets no answer at all
    for cert in (None, keys / "stranger.key"):
        curve = dict(server_key=str(keys / "server.pub"), client_cert=str(cert)) if cert else {}
        with AutoCalibDebug("127.0.0.1:%d" % port, timeout=1, **curve) as calib:
            assert calib.inputs is None and next(iter(calib)) == "temporary_fail"


def test_unusable_ip_port_raises_connection_error():
    for bad in ["127.0.0.1", "127.0.0.1:0", "127.0.0.1:port", "no-such-host.invalid:5556", "tcp://x"]:
        with pytest.raises(ConnectionError, match="ip_port"):
            AutoCalibDebug(bad, timeout=1)


def test_alias_module():
    import auto_calib_debug
    assert auto_calib_debug.AutoCalibDebug is AutoCalibDebug
    assert auto_calib_debug.TemporaryFail is TemporaryFail
