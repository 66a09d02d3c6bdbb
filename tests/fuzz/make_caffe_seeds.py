#!/usr/bin/env python3
"""Writes the seed corpus of the caffe fuzz target (tests/fuzz/corpus/caffe/).

Input format of the target (tests/fuzz/fuzz_caffe.c): the prototxt text, optionally a NUL
byte and the .caffemodel bytes. Seeds: a small network using most layer kinds with a
complete caffemodel (protobuf encoded here by hand: field numbers of graph/caffe_min.proto),
the same truncated, the prototxt alone; an SSD head (PriorBox, DetectionOutput); the zoo's UltraFace RFB-320 prototxt alone and
with the first 16 KiB of its caffemodel.

    /usr/bin/python3 tests/fuzz/make_caffe_seeds.py [ZOO_DIR]
"""
import os
import struct
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ZOO = sys.argv[1] if len(sys.argv) > 1 else os.path.join(HERE, "..", "..", "..", "shared", "zoo")
OUT = os.path.join(HERE, "corpus", "caffe")

NET = """name: "seed"
input: "data"
input_shape { dim: 1 dim: 2 dim: 8 dim: 8 }
layer { name: "conv" type: "Convolution" bottom: "data" top: "conv"
  convolution_param { num_output: 4 kernel_size: 3 pad: 1 stride: 1 group: 2 } }
layer { name: "bn" type: "BatchNorm" bottom: "conv" top: "conv" batch_norm_param { eps: 1e-5 } }
layer { name: "sc" type: "Scale" bottom: "conv" top: "conv" scale_param { bias_term: true } }
layer { name: "relu" type: "ReLU" bottom: "conv" top: "conv" relu_param { negative_slope: 0.1 } }
layer { name: "pool" type: "Pooling" bottom: "conv" top: "pool" pooling_param { pool: MAX kernel_size: 3 stride: 2 } }
layer { name: "sp" type: "Split" bottom: "pool" top: "a" top: "b" }
layer { name: "sum" type: "Eltwise" bottom: "a" bottom: "b" top: "sum" eltwise_param { coeff: 1 coeff: 0.5 } }
layer { name: "pr" type: "PReLU" bottom: "sum" top: "sum" }
layer { name: "perm" type: "Permute" bottom: "sum" top: "perm" permute_param { order: 0 order: 2 order: 3 order: 1 } }
layer { name: "flat" type: "Flatten" bottom: "perm" top: "flat" }
layer { name: "ip" type: "InnerProduct" bottom: "flat" top: "ip" inner_product_param { num_output: 3 } }
layer { name: "prob" type: "Softmax" bottom: "ip" top: "prob" }
"""

# an SSD head: PriorBox computed at import, DetectionOutput ends the graph
SSD = """layer { name: "data" type: "Input" top: "data" input_param { shape { dim: 1 dim: 3 dim: 32 dim: 32 } } }
layer { name: "f" type: "Pooling" bottom: "data" top: "f" pooling_param { pool: AVE kernel_size: 8 stride: 8 } }
layer { name: "up" type: "Upsample" bottom: "f" top: "up" upsample_param { scale: 2 } }
layer { name: "loc" type: "Flatten" bottom: "up" top: "loc" }
layer { name: "conf" type: "Sigmoid" bottom: "loc" top: "conf" }
layer { name: "pb" type: "PriorBox" bottom: "up" bottom: "data" top: "pb"
  prior_box_param { min_size: 4 max_size: 9 aspect_ratio: 2 aspect_ratio: 3 flip: true clip: true variance: 0.1 } }
layer { name: "det" type: "DetectionOutput" bottom: "loc" bottom: "conf" bottom: "pb" top: "det"
  detection_output_param { num_classes: 2 } }
"""

# (layer name, blob sizes)
BLOBS = [("conv", [4 * 1 * 9, 4]), ("bn", [4, 4, 1]), ("sc", [4, 4]), ("pr", [4]), ("ip", [3 * 64, 3])]


def varint(v):
    out = b""
    while True:
        b = v & 0x7F
        v >>= 7
        if v:
            out += bytes([b | 0x80])
        else:
            return out + bytes([b])


def field(num, wire, payload):
    key = varint(num << 3 | wire)
    return key + (varint(len(payload)) + payload if wire == 2 else payload)


def blob(n, seed):
    vals = [0.5 + 0.25 * ((i * 7 + seed) % 5) for i in range(n)]
    shape = field(1, 2, b"".join(varint(d) for d in [n]))
    return field(7, 2, shape) + field(5, 2, struct.pack("<%df" % n, *vals))


def caffemodel():
    out = b""
    for k, (name, sizes) in enumerate(BLOBS):
        layer = field(1, 2, name.encode()) + b"".join(field(7, 2, blob(n, k + i)) for i, n in enumerate(sizes))
        out += field(100, 2, layer)
    return out


def write(name, data):
    with open(os.path.join(OUT, name), "wb") as f:
        f.write(data)


def main():
    os.makedirs(OUT, exist_ok=True)
    model = caffemodel()
    write("net-complete", NET.encode() + b"\0" + model)
    write("net-truncated", NET.encode() + b"\0" + model[:len(model) // 2])
    write("net-prototxt-only", NET.encode())
    write("ssd-prototxt-only", SSD.encode())
    proto = os.path.join(ZOO, "faces", "caffe", "RFB-320.prototxt")
    if os.path.exists(proto):
        with open(proto, "rb") as f:
            text = f.read()
        with open(proto[:-9] + ".caffemodel", "rb") as f:
            head = f.read(16384)
        write("rfb320-prototxt-only", text)
        write("rfb320-truncated-caffemodel", text + b"\0" + head)
    else:
        print("zoo absent: the RFB-320 seeds are not rewritten", file=sys.stderr)


if __name__ == "__main__":
    main()
