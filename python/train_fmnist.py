#!/usr/bin/python3
"""Train the three small Fashion-MNIST CNNs bundled in models/ and export them to ONNX.

The nets are the project's own demo models (the demo must not depend on the shared zoo):
  fmnist_plain   4 conv + 2 FC, ReLU, MaxPool
  fmnist_resnet  small ResNet: residual Add, GlobalAveragePool
  fmnist_mbv2    MobileNetV2-style: inverted residuals, depthwise 3x3 convs, ReLU6
                 (exported as Clip with min/max *inputs*, the opset-11+ form)

Data: Debian package dataset-fashion-mnist (idx files, read with gzip + numpy; nothing is
downloaded). Preprocessing: x/255, then (x - 0.2860)/0.3530; in the tool's preprocessing
syntax `mean_value=72.93,scale=0.011109` on 0..255 pixels.

Usage (CPU, about 14 minutes on 2 idle cores):
  /usr/bin/python3 python/train_fmnist.py --out models
  /usr/bin/python3 python/train_fmnist.py --out models --only fmnist_plain
  /work/main/.venv/bin/python python/train_fmnist.py --out models --check-only

After training, the exported ONNX files are scored on the 10k test set by torch and, when
onnxruntime is importable (the project's .venv has it), by onnxruntime as well; the two
top-1 figures must agree. --check-only skips training and scores existing ONNX files.
"""

import argparse
import gzip
import os
import sys
import time

import numpy as np

DATA_DIR = "/usr/share/datasets/fashion-mnist"
MEAN = 0.2860
STD = 0.3530
SEED = 20240601

# name -> (epochs, max_lr); chosen so all three train in ~14 min on 2 idle cores.
RECIPES = {
    "fmnist_plain": (4, 3e-3),
    "fmnist_resnet": (4, 4e-3),
    "fmnist_mbv2": (4, 4e-3),
}


def read_idx(path):
    """Read an idx (ubyte) gz file: images -> uint8 [N,28,28], labels -> uint8 [N]."""
    with gzip.open(path, "rb") as f:
        raw = f.read()
    magic = int.from_bytes(raw[0:4], "big")
    ndim = magic & 0xFF
    if (magic >> 8) != 0x08:
        raise ValueError("%s: idx magic 0x%08x is not ubyte data" % (path, magic))
    dims = [int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim)]
    data = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim)
    if data.size != int(np.prod(dims)):
        raise ValueError("%s: %d bytes of data, dims %s want %d" %
                         (path, data.size, dims, int(np.prod(dims))))
    return data.reshape(dims)


def load_split(split):
    """split is 'train' or 't10k'; returns (uint8 images [N,28,28], int64 labels [N])."""
    x = read_idx(os.path.join(DATA_DIR, "%s-images-idx3-ubyte.gz" % split))
    y = read_idx(os.path.join(DATA_DIR, "%s-labels-idx1-ubyte.gz" % split))
    return x, y.astype(np.int64)


def preprocess(x_u8):
    """uint8 [N,28,28] -> float32 [N,1,28,28], the same transform the tool applies."""
    x = x_u8.astype(np.float32) / 255.0
    x = (x - np.float32(MEAN)) / np.float32(STD)
    return x[:, None, :, :].astype(np.float32)


# ---------------------------------------------------------------- nets (torch imported lazily)

def build_net(name):
    import torch.nn as nn

    def conv_bn(cin, cout, k=3, stride=1, groups=1, act="relu"):
        layers = [nn.Conv2d(cin, cout, k, stride, k // 2, groups=groups, bias=False),
                  nn.BatchNorm2d(cout)]
        if act == "relu":
            layers.append(nn.ReLU(inplace=True))
        elif act == "relu6":
            layers.append(nn.ReLU6(inplace=True))
        return nn.Sequential(*layers)

    class Plain(nn.Module):
        def __init__(self):
            super().__init__()
            self.features = nn.Sequential(
                nn.Conv2d(1, 16, 3, 1, 1), nn.BatchNorm2d(16), nn.ReLU(inplace=True),
                nn.Conv2d(16, 16, 3, 1, 1), nn.BatchNorm2d(16), nn.ReLU(inplace=True),
                nn.MaxPool2d(2),
                nn.Conv2d(16, 32, 3, 1, 1), nn.BatchNorm2d(32), nn.ReLU(inplace=True),
                nn.Conv2d(32, 32, 3, 1, 1), nn.BatchNorm2d(32), nn.ReLU(inplace=True),
                nn.MaxPool2d(2))
            self.classifier = nn.Sequential(
                nn.Flatten(), nn.Linear(32 * 7 * 7, 64), nn.ReLU(inplace=True),
                nn.Linear(64, 10))

        def forward(self, x):
            return self.classifier(self.features(x))

    class BasicBlock(nn.Module):
        def __init__(self, cin, cout, stride):
            super().__init__()
            self.c1 = conv_bn(cin, cout, 3, stride)
            self.c2 = conv_bn(cout, cout, 3, 1, act=None)
            self.short = None
            if stride != 1 or cin != cout:
                self.short = conv_bn(cin, cout, 1, stride, act=None)
            self.relu = nn.ReLU(inplace=True)

        def forward(self, x):
            s = x if self.short is None else self.short(x)
            return self.relu(self.c2(self.c1(x)) + s)

    class ResNet(nn.Module):
        def __init__(self):
            super().__init__()
            self.stem = conv_bn(1, 16)
            self.layers = nn.Sequential(BasicBlock(16, 16, 1), BasicBlock(16, 32, 2),
                                        BasicBlock(32, 64, 2))
            self.pool = nn.AdaptiveAvgPool2d(1)
            self.fc = nn.Linear(64, 10)

        def forward(self, x):
            x = self.pool(self.layers(self.stem(x)))
            return self.fc(x.flatten(1))

    class InvertedResidual(nn.Module):
        def __init__(self, cin, cout, stride, expand):
            super().__init__()
            hidden = cin * expand
            layers = []
            if expand != 1:
                layers.append(conv_bn(cin, hidden, 1, act="relu6"))
            layers += [conv_bn(hidden, hidden, 3, stride, groups=hidden, act="relu6"),
                       conv_bn(hidden, cout, 1, act=None)]
            self.conv = nn.Sequential(*layers)
            self.use_res = stride == 1 and cin == cout

        def forward(self, x):
            y = self.conv(x)
            return x + y if self.use_res else y

    class MBV2(nn.Module):
        def __init__(self):
            super().__init__()
            self.stem = conv_bn(1, 16, act="relu6")
            cfg = [  # cin, cout, stride, expand
                (16, 16, 1, 1), (16, 24, 2, 4), (24, 24, 1, 4), (24, 32, 2, 4),
                (32, 32, 1, 4), (32, 64, 1, 4), (64, 64, 1, 4)]
            self.layers = nn.Sequential(*[InvertedResidual(*c) for c in cfg])
            self.head = conv_bn(64, 128, 1, act="relu6")
            self.pool = nn.AdaptiveAvgPool2d(1)
            self.fc = nn.Linear(128, 10)

        def forward(self, x):
            x = self.pool(self.head(self.layers(self.stem(x))))
            return self.fc(x.flatten(1))

    return {"fmnist_plain": Plain, "fmnist_resnet": ResNet, "fmnist_mbv2": MBV2}[name]()


def torch_top1(net, x, y, batch=1000):
    import torch
    net.eval()
    correct = 0
    with torch.no_grad():
        for i in range(0, len(x), batch):
            logits = net(torch.from_numpy(x[i:i + batch]))
            correct += int((logits.argmax(1).numpy() == y[i:i + batch]).sum())
    return correct / len(x)


def train(name, xtr, ytr, xte, yte, log):
    import torch
    import torch.nn.functional as F

    epochs, max_lr = RECIPES[name]
    torch.manual_seed(SEED)
    rng = np.random.default_rng(SEED)
    net = build_net(name)
    nparams = sum(p.numel() for p in net.parameters())
    log("%s: %d parameters, %d epochs, max_lr %g" % (name, nparams, epochs, max_lr))
    batch = 128
    steps = (len(xtr) + batch - 1) // batch
    opt = torch.optim.Adam(net.parameters(), lr=max_lr)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=max_lr, epochs=epochs,
                                                steps_per_epoch=steps)
    xt = torch.from_numpy(xtr)
    yt = torch.from_numpy(ytr)
    for ep in range(epochs):
        net.train()
        t0 = time.time()
        order = torch.from_numpy(rng.permutation(len(xtr)))
        flip = torch.from_numpy(rng.random(len(xtr)) < 0.5)
        total_loss = 0.0
        for s in range(steps):
            idx = order[s * batch:(s + 1) * batch]
            xb = xt[idx]
            fb = flip[idx]
            xb[fb] = xb[fb].flip(3)  # random horizontal flip (xb is a copy)
            loss = F.cross_entropy(net(xb), yt[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            total_loss += float(loss)
        acc = torch_top1(net, xte, yte)
        log("%s: epoch %d/%d loss %.4f test top-1 %.2f %% (%.0f s)" %
            (name, ep + 1, epochs, total_loss / steps, 100 * acc, time.time() - t0))
    net.eval()
    return net


def export(net, path):
    import torch
    dummy = torch.zeros(1, 1, 28, 28)
    torch.onnx.export(net, dummy, path, opset_version=13,
                      input_names=["input"], output_names=["logits"],
                      dynamic_axes={"input": {0: "N"}, "logits": {0: "N"}},
                      do_constant_folding=True,
                      training=torch.onnx.TrainingMode.EVAL)


def ort_top1(path, x, y, batch=1000):
    import onnxruntime as ort
    sess = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    correct = 0
    for i in range(0, len(x), batch):
        logits = sess.run(["logits"], {"input": x[i:i + batch]})[0]
        correct += int((logits.argmax(1) == y[i:i + batch]).sum())
    return correct / len(x)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default="models", help="output folder for the .onnx files")
    ap.add_argument("--only", action="append", choices=sorted(RECIPES),
                    help="train only this net (repeatable)")
    ap.add_argument("--check-only", action="store_true",
                    help="do not train; score existing ONNX files with onnxruntime")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()

    def log(msg):
        print(msg, flush=True)

    names = args.only or ["fmnist_plain", "fmnist_resnet", "fmnist_mbv2"]
    os.makedirs(args.out, exist_ok=True)
    xte_u8, yte = load_split("t10k")
    xte = preprocess(xte_u8)

    # The small test batch the comparison tests use (first 16 test images).
    np.save(os.path.join(args.out, "fmnist_sample.npy"), np.ascontiguousarray(xte[:16]))
    np.save(os.path.join(args.out, "fmnist_sample_labels.npy"), yte[:16].astype(np.int64))

    try:
        import onnxruntime  # noqa: F401
        have_ort = True
    except ImportError:
        have_ort = False
        log("onnxruntime not importable: ONNX files will not be scored "
            "(rerun with /work/main/.venv/bin/python --check-only)")

    status = 0
    if not args.check_only:
        import torch
        torch.set_num_threads(args.threads)
        xtr_u8, ytr = load_split("train")
        xtr = preprocess(xtr_u8)
        t_all = time.time()
        for name in names:
            net = train(name, xtr, ytr, xte, yte, log)
            path = os.path.join(args.out, name + ".onnx")
            export(net, path)
            acc_t = torch_top1(net, xte, yte)
            log("%s: torch fp32 top-1 %.2f %%, ONNX %d bytes" %
                (name, 100 * acc_t, os.path.getsize(path)))
            if have_ort:
                acc_o = ort_top1(path, xte, yte)
                log("%s: onnxruntime fp32 top-1 %.2f %%" % (name, 100 * acc_o))
                if abs(acc_o - acc_t) > 0.0005:  # more than 5 of 10k images differ
                    log("%s: torch and onnxruntime disagree" % name)
                    status = 1
        log("total training time %.0f s" % (time.time() - t_all))
    elif have_ort:
        for name in names:
            path = os.path.join(args.out, name + ".onnx")
            log("%s: onnxruntime fp32 top-1 %.2f %%" % (name, 100 * ort_top1(path, xte, yte)))
    return status


if __name__ == "__main__":
    sys.exit(main())
