"""Client of autocalib's remote test mode (docs/remote.md): the search runs in
`autocalib quantize --test_source remote --listen EP`; this code scores its candidates.

    from autocalib_client import AutoCalibDebug, TemporaryFail
    with AutoCalibDebug("127.0.0.1:5556", timeout=10) as calib:
        for stat in calib:
            if stat == "temporary_fail":
                continue                  # server busy, restarted or silent: go on
            if stat == "finished":
                break
            try:                          # stat == "ready": calib.strategy describes the candidate
                outs = [calib.run_and_get_outputs(x)[0] for x in batches]
                calib.report_accuracy(my_score(outs))
            except TemporaryFail:
                continue                  # the candidate was lost; the server serves it again
        print(calib.result())

Reliability is the "lazy pirate" pattern: every request carries a new sequence number and
answers with another one are dropped; a request without an answer is resent once on a fresh
socket, and after `timeout` seconds in all the call gives up with TemporaryFail. A restarted
server answers ERROR stale_session; the client then says HELLO again.

Needs only Debian's python3-zmq, python3-msgpack and python3-numpy.
"""

import json
import math
import os
import re
import socket
import time

import msgpack
import numpy as np
import zmq

__all__ = ["AutoCalibDebug", "TemporaryFail", "ProtocolError", "pack", "unpack"]

SIGNATURE = "ACR"
VERSION = 1
MAX_SAMPLES = 4096   # per RUN (docs/remote.md §2 rule 3)
WAIT_PAUSE_S = 0.1   # between two questions to a server that answered WAIT


class TemporaryFail(Exception):
    """The server restarted, is busy or did not answer: the current candidate is lost, iterate on."""


class ProtocolError(Exception):
    """The server refused a request or speaks another protocol (`code` is its error code)."""

    def __init__(self, message, code=None):
        super().__init__(message)
        self.code = code


# ------------------------------------------------------------------ messages

def pack(command, seq, body):
    """One request frame: ["ACR", version, command, seq, body]."""
    return msgpack.packb([SIGNATURE, VERSION, command, seq, list(body)], use_bin_type=True)


def unpack(frame):
    """(command, seq, body) of a reply frame; ProtocolError when it is not this protocol."""
    try:
        msg = msgpack.unpackb(frame, raw=False)
    except Exception as e:
        raise ProtocolError("the server's answer is not msgpack (%s): is this an autocalib "
                            "remote server?" % type(e).__name__, "bad_reply")
    if not (isinstance(msg, list) and len(msg) == 5 and msg[0] == SIGNATURE):
        raise ProtocolError("the server's answer is not an autocalib remote message: %r"
                            % (msg if len(frame) < 200 else frame[:200]), "bad_reply")
    _, version, command, seq, body = msg
    if version != VERSION:
        raise ProtocolError("the server speaks remote protocol version %r, this client %d: "
                            "use the client of the same autocalib release" % (version, VERSION),
                            "version")
    if not (isinstance(command, str) and isinstance(seq, int) and isinstance(body, list)):
        raise ProtocolError("malformed answer from the server: %r" % (msg,), "bad_reply")
    return command, seq, body


# ------------------------------------------------------------------ connection setup

def endpoint(ip_port):
    """A ZeroMQ endpoint from "host:port" or a full endpoint; ConnectionError when unusable."""
    ep = ip_port if "://" in ip_port else "tcp://" + ip_port
    m = re.fullmatch(r"tcp://(\[[^\]]*\]|[^:/]+):(\d+)", ep)
    if ep.startswith("tcp://"):
        if not m or not 0 < int(m.group(2)) < 65536:
            raise ConnectionError("ip_port %r: expected host:port (e.g. 127.0.0.1:5556) "
                                  "or a ZeroMQ endpoint (tcp://host:port, ipc://path)" % ip_port)
        try:
            socket.getaddrinfo(m.group(1).strip("[]"), int(m.group(2)))
        except socket.gaierror as e:
            raise ConnectionError("ip_port %r: unknown host %r (%s)" % (ip_port, m.group(1), e))
    return ep


def _cert_keys(path):
    """{"public-key": z85, "secret-key": z85} from a czmq certificate file
    (`autocalib certs new NAME` writes NAME.key, secret, and NAME.pub, public)."""
    with open(path) as f:
        return dict(re.findall(r'^\s*(public-key|secret-key)\s*=\s*"([^"]{40})"', f.read(), re.M))


def curve_keys(server_key, client_cert):
    """(server public, client public, client secret), z85, or None without CURVE."""
    if server_key is None and client_cert is None:
        return None
    if server_key is None or client_cert is None:
        raise ValueError("CURVE needs both server_key (the server's public key or NAME.pub) "
                         "and client_cert (this client's secret certificate NAME.key)")
    if os.path.isfile(server_key):
        server = _cert_keys(server_key).get("public-key")
    else:
        server = server_key if re.fullmatch(r"[0-9A-Za-z.:+=^!/*?&<>()\[\]{}@%$#-]{40}", server_key) else None
    if not server:
        raise ValueError("server_key %r is neither a 40-character z85 key nor a certificate "
                         "file with a public-key (NAME.pub)" % server_key)
    keys = _cert_keys(client_cert)
    if "secret-key" not in keys or "public-key" not in keys:
        raise ValueError("client_cert %r has no secret-key: pass the secret certificate NAME.key "
                         "written by `autocalib certs new NAME`" % client_cert)
    return server, keys["public-key"], keys["secret-key"]


# ------------------------------------------------------------------ the client

class AutoCalibDebug:
    """Scores the candidates of a remote search; see the module docstring and docs/remote.md.

    After the server's WELCOME: `inputs` ([[name, dtype, shape]], shape with the model's
    batch), `outputs` (output names), `batch`, `model`, `test_iterations` (batches to run
    per candidate, 0: all). After a "ready": `strategy` (dict with id, name, kind and the
    strategy's options)."""

    def __init__(self, ip_port, timeout=10, server_key=None, client_cert=None):
        self.endpoint = endpoint(ip_port)
        self.timeout = float(timeout)
        self._curve = curve_keys(server_key, client_cert)
        self._ctx = zmq.Context()
        self._sock = None
        self._seq = 0
        self._session = None
        self._report = None
        self._fetched = False  # a RESULT was answered
        self.model = self.inputs = self.outputs = self.batch = self.test_iterations = None
        self.strategy = None
        self._connect()
        try:
            self._hello()
        except TemporaryFail:
            pass  # not up yet: the iteration says HELLO again
        except BaseException:
            self.close()
            raise

    # -------------------------------------------------------------- public API

    def __iter__(self):
        while True:
            try:
                if self._session is None:
                    self._hello()
                command, body = self._call("NEXT", self._session)
            except TemporaryFail:
                yield "temporary_fail"
                continue
            if command == "CANDIDATE":
                cid, name, kind, options = self._fields(command, body, int, str, str, str)
                self.strategy = dict(json.loads(options), id=cid, name=name, kind=kind)
                yield "ready"
            elif command == "WAIT":
                time.sleep(WAIT_PAUSE_S)
                yield "temporary_fail"
            else:
                self._expect(command, body, "FINISHED")
                yield "finished"
                return

    def run_and_get_outputs(self, batch):
        """Run a batch (float32 numpy array, the model input's shape with any batch size)
        on the current candidate; returns its outputs as float32 numpy arrays. Raises
        ValueError for a wrong batch, TemporaryFail when the candidate was lost."""
        if self.strategy is None:
            raise RuntimeError("no candidate: iterate until the client yields 'ready'")
        x = self._check_batch(batch)
        command, body = self._call("RUN", self._session, self.strategy["id"], "float32",
                                   list(x.shape), x.tobytes())
        self._expect(command, body, "OUTPUTS")
        _, outs = self._fields(command, body, int, list)
        result = []
        for out in outs:
            name, shape, data = self._fields("OUTPUTS output", out, str, list, bytes)
            if len(data) != 4 * int(np.prod(shape)):
                raise ProtocolError("output %r: %d bytes for shape %s" % (name, len(data), shape))
            result.append(np.frombuffer(data, dtype="<f4").reshape(shape).astype(np.float32))
        return result

    def report_accuracy(self, score):
        """Report the current candidate's score (higher is better); ends the candidate."""
        if self.strategy is None:
            raise RuntimeError("no candidate: iterate until the client yields 'ready'")
        score = float(score)
        if not math.isfinite(score):
            raise ValueError("the score must be finite, got %r" % score)
        command, body = self._call("SCORE", self._session, self.strategy["id"], score)
        self._expect(command, body, "ACK")
        self.strategy = None

    def result(self):
        """The final report (report.json's content, as a dict), waiting while the server
        finishes the search. Asking for it lets the server exit (docs/remote.md §1)."""
        while not self._fetched:
            had_session = self._session is not None
            try:
                if not had_session:
                    self._hello()
                command, body = self._call("RESULT", self._session)
            except TemporaryFail:
                if had_session and self._session is None:
                    continue  # restarted: its search goes on, ask the new one
                if self._report is not None:
                    break  # the server has left; its FINISHED came with NEXT
                raise
            if command == "WAIT":
                time.sleep(WAIT_PAUSE_S)
            else:
                self._expect(command, body, "FINISHED")
                self._fetched = True
        return self._report

    def close(self):
        if self._sock is not None:
            self._sock.close(linger=0)
            self._sock = None
            self._ctx.term()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # -------------------------------------------------------------- internals

    def _connect(self):
        if self._sock is not None:
            self._sock.close(linger=0)
        self._sock = self._ctx.socket(zmq.DEALER)
        self._sock.linger = 0
        if self._curve:
            server, public, secret = self._curve
            self._sock.curve_serverkey = server.encode()
            self._sock.curve_publickey = public.encode()
            self._sock.curve_secretkey = secret.encode()
        self._sock.connect(self.endpoint)

    def _hello(self):
        command, body = self._call("HELLO")
        self._expect(command, body, "WELCOME")
        (self._session, self.model, self.inputs, self.outputs, self.batch,
         self.test_iterations) = self._fields(command, body, str, str, list, list, int, int)

    def _call(self, command, *body):
        """Send a request, return (command, body) of its answer. Resent once on a fresh
        socket at half the timeout; TemporaryFail after the whole timeout or when the server
        restarted. FINISHED answers are kept for result(); ERROR answers raise."""
        deadline = time.monotonic() + self.timeout
        for attempt in range(2):
            self._seq += 1
            self._sock.send(pack(command, self._seq, body))
            until = deadline if attempt else time.monotonic() + self.timeout / 2
            reply = self._receive(self._seq, until)
            if reply is not None:
                break
            self._connect()  # lazy pirate: the old socket may hold a lost exchange
        else:
            raise TemporaryFail("no answer from %s to %s within %g s"
                                % (self.endpoint, command, self.timeout))
        answer, body = reply
        if answer == "FINISHED":
            (report,) = self._fields(answer, body, str)
            self._report = json.loads(report)
        elif answer == "ERROR":
            self._raise(command, *self._fields(answer, body, str, str))
        return answer, body

    def _receive(self, seq, until):
        while True:
            left = until - time.monotonic()
            if left <= 0 or not self._sock.poll(int(left * 1000) + 1):
                return None
            command, got, body = unpack(self._sock.recv())
            if got == seq:
                return command, body

    def _raise(self, request, code, message):
        if code == "stale_session":
            self._session = None
            self.strategy = None
            raise TemporaryFail("the server restarted (%s)" % message)
        if code == "stale_candidate":
            self.strategy = None
            raise TemporaryFail("the candidate is no longer served (%s)" % message)
        if code in ("bad_shape", "bad_dtype"):
            raise ValueError("the server refused the batch: %s" % message)
        if code == "version":
            raise ProtocolError("protocol version mismatch: %s (this client speaks version %d)"
                                % (message, VERSION), code)
        raise ProtocolError("the server refused %s: %s: %s" % (request, code, message), code)

    def _check_batch(self, batch):
        x = np.asarray(batch)
        name, _, shape = self.inputs[0]
        want = "(N, %s)" % ", ".join(str(d) for d in shape[1:])
        if x.dtype != np.float32:
            raise ValueError("batch dtype is %s, input %r takes float32 %s: convert it with "
                             ".astype(numpy.float32)" % (x.dtype, name, want))
        if x.ndim != len(shape) or list(x.shape[1:]) != list(shape[1:]) \
                or not 1 <= x.shape[0] <= MAX_SAMPLES:
            raise ValueError("batch shape %s does not fit input %r of shape %s (N: 1..%d samples)"
                             % (tuple(x.shape), name, want, MAX_SAMPLES))
        return np.ascontiguousarray(x, dtype="<f4")

    def _expect(self, command, body, want):
        if command != want:
            raise ProtocolError("expected %s from the server, got %s %r" % (want, command, body))

    @staticmethod
    def _fields(command, body, *types):
        if not isinstance(body, list) or len(body) != len(types) or \
                not all(isinstance(v, t) for v, t in zip(body, types)):
            raise ProtocolError("malformed %s body from the server: %r" % (command, body))
        return body
