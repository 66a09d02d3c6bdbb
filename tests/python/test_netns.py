"""The farm across a real (virtual) network: the broker and the coordinator in one network
namespace, two workers in another, joined by a veth pair whose both ends delay and drop
packets with `tc netem`; then the link is cut for a few seconds mid-job (where the kernel lacks netem, a token-bucket
shaper and an nftables random drop stand in for it). The searches must
finish with the result of a fault-free run on loopback.

Needs root, `ip netns` and `tc` (iproute2); skips with a message where namespaces cannot
be created (containers without CAP_NET_ADMIN, for instance). The addresses are private
(10.213.x.x) and exist only inside the namespaces this test creates and deletes."""

import os
import subprocess
import time

import pytest

import conftest as h
from test_farm import Proc, Quantize, assert_same_result, data_args, model_path, wait_for

pytestmark = pytest.mark.long

BROKER_IP, WORKER_IP = "10.213.0.1", "10.213.0.2"
PORT = 5555
HEARTBEAT_MS, LIVENESS = 500, 6  # 3 s of silence evicts a worker (TCP retransmits on a lossy link take ~1 s)


def sh(*cmd, check=True):
    return subprocess.run(list(cmd), stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True,
                          check=check)


class Net:
    """Two namespaces and the veth pair between them; close() deletes everything."""

    def __init__(self):
        tag = "%d" % os.getpid()
        self.b, self.w = "acb" + tag, "acw" + tag
        self.vb, self.vw = "acvb" + tag[-8:], "acvw" + tag[-8:]
        self.made = []

    def setup(self):
        for ns in (self.b, self.w):
            sh("ip", "netns", "add", ns)
            self.made.append(ns)
            sh("ip", "-n", ns, "link", "set", "lo", "up")
        sh("ip", "link", "add", self.vb, "netns", self.b, "type", "veth", "peer", "name", self.vw, "netns", self.w)
        sh("ip", "-n", self.b, "addr", "add", BROKER_IP + "/30", "dev", self.vb)
        sh("ip", "-n", self.w, "addr", "add", WORKER_IP + "/30", "dev", self.vw)
        sh("ip", "-n", self.b, "link", "set", self.vb, "up")
        sh("ip", "-n", self.w, "link", "set", self.vw, "up")

    def impair(self):
        """Delay and 2% loss both ways: `tc netem` where the kernel has it; otherwise a
        token-bucket shaper (50 Mbit/s, up to 50 ms of queueing delay) with nftables
        dropping 2% of the packets at random. Returns what was used."""
        ends = ((self.b, self.vb), (self.w, self.vw))
        try:
            for ns, dev in ends:
                sh("ip", "netns", "exec", ns, "tc", "qdisc", "replace", "dev", dev, "root", "netem", "delay", "20ms",
                   "5ms", "loss", "2%")
            return "netem delay 20ms 5ms loss 2%"
        except subprocess.CalledProcessError as e:
            if "unknown" not in e.stderr:
                raise
        try:
            for ns, dev in ends:
                sh("ip", "netns", "exec", ns, "tc", "qdisc", "replace", "dev", dev, "root", "tbf", "rate", "50mbit",
                   "burst", "32kbit", "latency", "50ms")
                sh("ip", "netns", "exec", ns, "nft", "add", "table", "inet", "acnet")
                sh("ip", "netns", "exec", ns, "nft", "add", "chain", "inet", "acnet", "out",
                   "{ type filter hook output priority 0; }")
                sh("ip", "netns", "exec", ns, "nft", "add", "rule", "inet", "acnet", "out", "oifname", dev, "numgen",
                   "random", "mod", "100", "<", "2", "drop")
        except (subprocess.CalledProcessError, FileNotFoundError) as e:
            pytest.skip("neither tc netem nor tbf + nftables here: %s" % (getattr(e, "stderr", "") or e))
        return "tbf 50mbit latency 50ms + nftables 2% random drop (no netem in this kernel)"

    def link(self, up):
        sh("ip", "-n", self.w, "link", "set", self.vw, "up" if up else "down")

    def close(self):
        for ns in self.made:
            sh("ip", "netns", "del", ns, check=False)  # takes the veth pair with it


@pytest.fixture
def net():
    if os.geteuid() != 0:
        pytest.skip("network namespaces need root")
    n = Net()
    try:
        n.setup()
    except (subprocess.CalledProcessError, FileNotFoundError) as e:
        n.close()
        pytest.skip("cannot create network namespaces here: %s" % (getattr(e, "stderr", "") or e))
    yield n
    n.close()


def in_ns(ns, cmd):
    return ["ip", "netns", "exec", ns] + cmd


def run_farm(ac_bin, net, tmp, model, fault=None):
    """Broker + coordinator in net.b, two workers in net.w; fault(net, job) runs while the
    job does. Returns the job's result."""
    logs = tmp / "logs"
    logs.mkdir(exist_ok=True)
    ep = "tcp://%s:%d" % (BROKER_IP, PORT)
    procs = []
    try:
        broker = Proc("broker", in_ns(net.b, [ac_bin, "broker", "--bind", "tcp://*:%d" % PORT, "--heartbeat-ms",
                                              str(HEARTBEAT_MS), "--liveness", str(LIVENESS)]), logs)
        procs.append(broker)
        wait_for(lambda: any("serving" in l for l in broker.snapshot()), "the broker to serve")
        for k in range(2):
            procs.append(Proc("w%d" % k, in_ns(net.w, [
                ac_bin, "worker", "--connect", ep, "--threads", "1", "--heartbeat-ms", str(HEARTBEAT_MS),
                "--liveness", str(LIVENESS), "--cache-dir", str(tmp / ("cache%d" % k)), "--name", "w%d" % k,
                "--verbose"]), logs))
        job = Quantize(in_ns(net.b, [ac_bin, "quantize", "--model", model_path(model), "--output_dir",
                                     str(tmp / "out"), "--broker", ep, "--shard_batches", "1"] + data_args()),
                       tmp / "out", logs, "job")
        if fault:
            fault(net, job, procs)
        return job.ok(), procs
    finally:
        for p in procs:
            p.kill()


def reference(ac_bin, tmp):
    """The same job on the embedded cluster, no network at all."""
    cmd = [ac_bin, "quantize", "--model", model_path("fmnist_plain"), "--output_dir", str(tmp / "ref"),
           "--shard_batches", "1", "--workers", "2"] + data_args()
    q = Quantize(cmd, tmp / "ref", tmp, "ref")
    return q.ok()


def test_delay_and_loss_between_hosts(ac_bin, net, tmp_path):
    want = reference(ac_bin, tmp_path)
    how = net.impair()
    print("link impaired with", how)
    got, procs = run_farm(ac_bin, net, tmp_path, "fmnist_plain")
    assert_same_result(got, want, "over a lossy, delayed link")
    ran = [l for p in procs if p.name.startswith("w") for l in p.snapshot() if ": ok" in l]
    assert ran, "the workers in the other namespace ran the tasks"


def test_link_cut_mid_job(ac_bin, net, tmp_path):
    """The workers' link goes down for 5 s while tasks run: they are evicted, their tasks
    requeued; when it comes back they reconnect and the job finishes with the same result."""
    want = reference(ac_bin, tmp_path)

    def cut(net, job, procs):
        workers = [p for p in procs if p.name.startswith("w")]
        wait_for(lambda: any(": start" in l for p in workers for l in p.snapshot()), "a task to start")
        net.link(False)
        time.sleep(5)  # longer than the 3 s liveness
        net.link(True)

    got, procs = run_farm(ac_bin, net, tmp_path, "fmnist_plain", fault=cut)
    assert_same_result(got, want, "after a link cut")
    log = procs[0].snapshot()
    assert any("worker" in l and "dropped" in l for l in log), "the cut workers were evicted"
    assert sum(" ready (" in l for l in log) > 2, "and came back after the cut"
