#!/usr/bin/python3
"""Score an autocalib remote search with your own test pipeline (docs/remote.md): a
PyTorch DataLoader over the Fashion-MNIST test set feeds each candidate, and this script
computes top-1 itself.

Start the server (calibration data on the server; no test data there), then this script:
  F=/usr/share/datasets/fashion-mnist
  build/cli/autocalib quantize --model models/fmnist_plain.onnx \\
      --calib_idx_images $F/train-images-idx3-ubyte.gz --calib_iterations 4 \\
      --data_preproccess_str mean_value=72.93,scale=0.011109 --input_data_shape '(16,1,28,28)' \\
      --test_source remote --listen tcp://*:5556 --test_iterations 8
  /usr/bin/python3 python/examples/remote_fmnist.py --server 127.0.0.1:5556

Data: Debian's dataset-fashion-mnist (idx files); preprocessing (pixel - 72.93) * 0.011109
in float32, the server's `mean_value=72.93,scale=0.011109`. Needs python3-torch,
python3-zmq, python3-msgpack and python3-numpy.
"""

import argparse
import gzip
import json
import os
import sys

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from autocalib_client import AutoCalibDebug, TemporaryFail  # noqa: E402

FMNIST = "/usr/share/datasets/fashion-mnist"


def read_idx(path):
    with gzip.open(path, "rb") as f:
        raw = f.read()
    dims = [int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(raw[3])]
    return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * len(dims)).reshape(dims)


class FashionMNISTTest(Dataset):
    """The 10k test images as float32 [1,28,28] tensors, preprocessed like the server's
    calibration data, with their labels."""

    def __init__(self, root=FMNIST):
        self.images = read_idx(os.path.join(root, "t10k-images-idx3-ubyte.gz"))
        self.labels = read_idx(os.path.join(root, "t10k-labels-idx1-ubyte.gz")).astype(np.int64)

    def __len__(self):
        return len(self.labels)

    def __getitem__(self, i):
        x = (self.images[i].astype(np.float32) - np.float32(72.93)) * np.float32(0.011109)
        return torch.from_numpy(x[None]), int(self.labels[i])


def top1(calib, loader, batches):
    """This candidate's top-1 over the first `batches` batches (0: all)."""
    correct = total = 0
    for i, (x, y) in enumerate(loader):
        if batches and i == batches:
            break
        logits = calib.run_and_get_outputs(x.numpy())[0]
        correct += int((logits.argmax(1) == y.numpy()).sum())
        total += len(y)
    return correct / total


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--server", default="127.0.0.1:5556", help="host:port or a ZeroMQ endpoint")
    ap.add_argument("--batches", type=int, default=None,
                    help="batches per candidate (default: the server's --test_iterations; 0: all)")
    ap.add_argument("--timeout", type=float, default=10, help="seconds to wait for an answer")
    args = ap.parse_args()

    with AutoCalibDebug(args.server, timeout=args.timeout) as calib:
        loader = None
        for stat in calib:
            if stat == "temporary_fail":
                continue
            if stat == "finished":
                break
            if loader is None:  # the server's batch size is known once it answered
                loader = DataLoader(FashionMNISTTest(), batch_size=calib.batch, shuffle=False)
            batches = calib.test_iterations if args.batches is None else args.batches
            name, kind = calib.strategy["name"], calib.strategy["kind"]
            try:
                score = top1(calib, loader, batches)
                calib.report_accuracy(score)
            except TemporaryFail as e:
                print("candidate '%s' lost (%s); going on" % (name, e), flush=True)
                continue
            print("%-30s %-5s top-1 %.4f" % (name, kind, score), flush=True)
        report = calib.result()
    print("result: fp32 %.4f, int8 %.4f (budget %s: %s), strategy %s, fp32 layers %s"
          % (report["fp32_score"], report["int8_score"], report["accept_int8_decay"],
             "met" if report["met_budget"] else "missed", json.dumps(report["strategy"]),
             report["fp32_layers"] or "none"))


if __name__ == "__main__":
    main()
