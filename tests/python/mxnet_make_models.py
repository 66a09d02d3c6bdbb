"""Builds and exports the MXNet test models for test_mxnet.py, and MXNet's outputs.

Runs in the MXNet venv (.venv-mxnet: AC_MXNET=1 ./setup.sh, MXNet 1.9.1 from PyPI with
numpy 1.23). `mxnet_make_models.py OUTDIR` writes per model NAME: NAME-symbol.json,
NAME-0000.params (MXNet's own writers: Symbol.save and nd.save / HybridBlock.export),
NAME_in.npy (a random NCHW input), NAME_out.npy (MXNet's inference output on it) and
NAME.json ({"shape": ..., "ops": [...]}).

- symnet: the symbol API, every mapped op: Convolution (grouped, no_bias, 1x1), BatchNorm
  with its default fix_gamma=True, Activation relu/sigmoid/tanh, LeakyReLU, Pooling max
  with pooling_convention=full, avg with padding (count_include_pad default), global avg,
  elemwise_add, Concat, clip, Dropout, FullyConnected, SoftmaxOutput (whose label input
  is training-only).
- resnet18: Gluon's model_zoo resnet18_v1 (10 classes, 32x32) with random weights and
  random BN statistics (Gluon BN: fix_gamma=False), exported with HybridBlock.export.
"""

import json
import os
import sys

import mxnet as mx
import numpy as np


def ops_of(symfile):
    with open(symfile) as f:
        return sorted({n["op"] for n in json.load(f)["nodes"]})


def symnet(outdir, rng):
    d = mx.sym.var("data")
    c1 = mx.sym.Convolution(d, kernel=(3, 3), num_filter=8, pad=(1, 1), name="c1")
    b1 = mx.sym.BatchNorm(c1, name="bn1")
    a1 = mx.sym.Activation(b1, act_type="relu", name="r1")
    p1 = mx.sym.Pooling(a1, kernel=(3, 3), stride=(2, 2), pool_type="max", pooling_convention="full", name="p1")
    c2 = mx.sym.Convolution(p1, kernel=(3, 3), num_filter=8, num_group=8, pad=(1, 1), no_bias=True, name="dw")
    l2 = mx.sym.LeakyReLU(c2, act_type="leaky", slope=0.1, name="lr")
    c3 = mx.sym.Convolution(p1, kernel=(1, 1), num_filter=8, name="c3")
    s3 = mx.sym.Activation(c3, act_type="sigmoid", name="sg")
    add = mx.sym.elemwise_add(l2, s3, name="add")
    cat = mx.sym.Concat(add, p1, dim=1, name="cat")
    ap = mx.sym.Pooling(cat, kernel=(3, 3), stride=(1, 1), pad=(1, 1), pool_type="avg", name="ap")
    th = mx.sym.Activation(ap, act_type="tanh", name="th")
    cl = mx.sym.clip(th, a_min=-0.5, a_max=0.5, name="clip")
    gp = mx.sym.Pooling(cl, kernel=(1, 1), global_pool=True, pool_type="avg", name="gp")
    dr = mx.sym.Dropout(gp, p=0.5, name="drop")
    fc = mx.sym.FullyConnected(dr, num_hidden=10, name="fc")
    out = mx.sym.SoftmaxOutput(fc, name="softmax")
    shape = (1, 3, 17, 17)
    ex = out.simple_bind(mx.cpu(), data=shape, grad_req="null")
    params = {}
    for name, arr in ex.arg_dict.items():
        if name in ("data", "softmax_label"):
            continue
        arr[:] = rng.uniform(-0.5, 0.5, arr.shape).astype(np.float32)
        params["arg:" + name] = arr
    for name, arr in ex.aux_dict.items():
        lo, hi = (0.5, 2.0) if "var" in name else (-0.3, 0.3)
        arr[:] = rng.uniform(lo, hi, arr.shape).astype(np.float32)
        params["aux:" + name] = arr
    x = rng.uniform(-1, 1, shape).astype(np.float32)
    ex.arg_dict["data"][:] = x
    y = ex.forward(is_train=False)[0].asnumpy()
    out.save(os.path.join(outdir, "symnet-symbol.json"))
    mx.nd.save(os.path.join(outdir, "symnet-0000.params"), params)
    return "symnet", shape, x, y


def resnet18(outdir, rng):
    from mxnet.gluon.model_zoo import vision
    net = vision.resnet18_v1(classes=10)
    net.initialize(mx.init.Xavier())
    shape = (1, 3, 32, 32)
    x = rng.uniform(-1, 1, shape).astype(np.float32)
    net(mx.nd.array(x))  # materialise the deferred shapes
    for name, p in net.collect_params().items():
        if name.endswith("running_var"):
            p.set_data(mx.nd.array(rng.uniform(0.5, 2.0, p.shape)))
        elif name.endswith("running_mean") or name.endswith("beta"):
            p.set_data(mx.nd.array(rng.uniform(-0.3, 0.3, p.shape)))
        elif name.endswith("gamma"):
            p.set_data(mx.nd.array(rng.uniform(0.7, 1.3, p.shape)))
    net.hybridize()
    y = net(mx.nd.array(x)).asnumpy()
    net.export(os.path.join(outdir, "resnet18"), epoch=0)
    return "resnet18", shape, x, y


def main():
    outdir = sys.argv[1]
    os.makedirs(outdir, exist_ok=True)
    rng = np.random.RandomState(11)
    for make in (symnet, resnet18):
        name, shape, x, y = make(outdir, rng)
        np.save(os.path.join(outdir, name + "_in.npy"), x)
        np.save(os.path.join(outdir, name + "_out.npy"), y)
        with open(os.path.join(outdir, name + ".json"), "w") as f:
            json.dump({"shape": list(shape), "ops": ops_of(os.path.join(outdir, name + "-symbol.json"))}, f)
    return 0


if __name__ == "__main__":
    sys.exit(main())
