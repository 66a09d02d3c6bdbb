#!/usr/bin/python3
"""Writes the seed corpus of the darknet fuzz target (tests/fuzz/corpus/darknet/).

An input is a cfg, optionally followed by a NUL byte and .weights bytes
(tests/fuzz/fuzz_darknet.c). Seeds: the zoo's Yolo-Fastest cfg alone and with a
truncated weights file (its first 4 KiB), and small networks with complete weights
files covering every layer kind and header version the importer reads.

    /usr/bin/python3 tests/fuzz/make_darknet_seeds.py [ZOO_DIR]
"""
import os
import struct
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "corpus", "darknet")
ZOO = sys.argv[1] if len(sys.argv) > 1 else os.path.join(HERE, "..", "..", "..", "shared", "zoo")

DET = """[net]
width=6
height=6
channels=2
[convolutional]
batch_normalize=1
filters=4
size=3
stride=1
pad=1
activation=leaky
[maxpool]
size=2
stride=2
[convolutional]
filters=4
size=1
groups=2
activation=mish
[shortcut]
from=-2
[route]
layers=-1,-3
groups=2
group_id=1
[upsample]
stride=2
[convolutional]
filters=6
size=3
stride=2
pad=1
activation=swish
[maxpool]
size=3
stride=1
[dropout]
probability=.15
[convolutional]
filters=12
size=1
activation=linear
[yolo]
mask=0,1
anchors=2,3,4,5,6,7
num=3
classes=1
"""
# parameters per conv: biases (+ 3 batch norm arrays) + weights
DET_PARAMS = (4 * 4 + 4 * 18) + (4 + 8) + (6 + 216) + (12 + 72)

CLS = """[net]
width=4
height=4
channels=3
[convolutional]
batch_normalize=1
filters=5
size=3
stride=2
pad=1
activation=relu
[avgpool]
[connected]
output=7
batch_normalize=1
activation=tanh
[dropout]
[connected]
output=6
activation=logistic
[softmax]
groups=2
temperature=2
[cost]
"""
CLS_PARAMS = (5 * 4 + 5 * 27) + (7 + 35 + 3 * 7) + (6 + 42)


def weights(major, minor, n, seed):
    rng = np.random.default_rng(seed)
    seen = struct.pack("<Q", 1000) if major * 10 + minor >= 2 and major < 1000 and minor < 1000 \
        else struct.pack("<I", 1000)
    # variances among the parameters must stay positive: use magnitudes
    return struct.pack("<3i", major, minor, 0) + seen + np.abs(rng.normal(0, 1, n)).astype("<f4").tobytes()


def write(name, data):
    with open(os.path.join(OUT, name), "wb") as f:
        f.write(data)


def main():
    os.makedirs(OUT, exist_ok=True)
    write("det-0.2.5", DET.encode() + b"\0" + weights(0, 2, DET_PARAMS, 1))
    write("det-cfg-only", DET.encode())
    write("cls-0.1.0", CLS.encode() + b"\0" + weights(0, 1, CLS_PARAMS, 2))
    write("cls-transposed-1001.0", CLS.encode() + b"\0" + weights(1001, 0, CLS_PARAMS, 3))
    write("cls-truncated", CLS.encode() + b"\0" + weights(0, 2, CLS_PARAMS, 4)[:300])
    cfg = os.path.join(ZOO, "darknet", "yolo-fastest-1.1.cfg")
    if os.path.exists(cfg):
        with open(cfg, "rb") as f:
            text = f.read()
        with open(cfg[:-4] + ".weights", "rb") as f:
            head = f.read(4096)
        write("yolo-fastest-1.1-cfg-only", text)
        write("yolo-fastest-1.1-truncated-weights", text + b"\0" + head)
    else:
        print("zoo absent: the Yolo-Fastest seeds are not rewritten", file=sys.stderr)


if __name__ == "__main__":
    main()
