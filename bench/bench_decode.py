#!/usr/bin/python3
"""Decode + preprocess throughput: autocalib (bench_decode, C) against Pillow and,
when installed, OpenCV doing the same pipeline, in the same run, 1 and 2 threads.

    /usr/bin/python3 bench/bench_decode.py [--bin BUILD/datasets/bench_decode] [--source LIST|DIR]

Pipeline (the ssd_vgg_tensorflow template): decode, bilinear resize to 256x256,
(x - BGR mean) * 1.0, BGR -> RGB, centre crop 224x224, float32 CHW.
Prints images/s per implementation and thread count, and autocalib / peer ratios.
"""

import argparse
import os
import re
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_SOURCE = os.path.normpath(os.path.join(REPO, "..", "shared", "zoo", "imagenet", "val1300", "dataset.txt"))
PP = "resize_h=256,resize_w=256;mean_value=103.94:116.78:123.68,scale=1.0,bgr2rgb=True;crop_h=224,crop_w=224"
MEAN_BGR = np.array([103.94, 116.78, 123.68], np.float32)


def list_images(source):
    if os.path.isdir(source):
        return sorted(os.path.join(source, f) for f in os.listdir(source)
                      if f.lower().endswith((".jpg", ".jpeg", ".png")))
    base = os.path.dirname(source)
    out = []
    for ln in open(source):
        ln = ln.strip()
        if ln and not ln.startswith("#"):
            p = ln.split(",")[0].strip() if "," in ln else ln.split()[0]
            out.append(os.path.join(base, p))
    return out


def finish(bgr):
    """float32 HWC BGR 256x256 -> the rest of the pipeline, as numpy does it."""
    x = (bgr - MEAN_BGR) * np.float32(1.0)
    x = x[:, :, ::-1][16:240, 16:240]
    return np.ascontiguousarray(x.transpose(2, 0, 1))


def pil_one(path):
    from PIL import Image
    with Image.open(path) as im:
        rgb = im.convert("RGB").resize((256, 256), Image.BILINEAR)
    return finish(np.asarray(rgb, dtype=np.float32)[:, :, ::-1])


def cv2_one(path):
    import cv2
    bgr = cv2.imread(path, cv2.IMREAD_COLOR)
    return finish(cv2.resize(bgr, (256, 256), interpolation=cv2.INTER_LINEAR).astype(np.float32))


def time_peer(fn, paths, threads):
    t0 = time.perf_counter()
    with ThreadPoolExecutor(max_workers=threads) as ex:
        for _ in ex.map(fn, paths, chunksize=16):
            pass
    return len(paths) / (time.perf_counter() - t0)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    build = os.environ.get("AC_BUILD_DIR", os.path.join(REPO, "build"))
    ap.add_argument("--bin", default=os.path.join(build, "datasets", "bench_decode"))
    ap.add_argument("--source", default=DEFAULT_SOURCE)
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    a = ap.parse_args()
    if not os.path.exists(a.source):
        print("bench_decode: %s is absent (the zoo); nothing to measure" % a.source)
        return 0
    paths = list_images(a.source)
    peers = [("pillow", pil_one)]
    try:
        import cv2
        cv2.setNumThreads(1)
        peers.append(("opencv", cv2_one))
    except ImportError:
        print("(python3-opencv is not installed: comparing with Pillow only)")
    results = {}
    # warm the page cache so the first implementation measured is not charged for disk reads
    for p in paths:
        with open(p, "rb") as f:
            f.read()
    out = subprocess.run([a.bin, a.source, PP] + [str(t) for t in a.threads], stdout=subprocess.PIPE,
                         universal_newlines=True, check=True).stdout
    for m in re.finditer(r"autocalib threads=(\d+) images=\d+ seconds=\S+ images_per_s=(\S+)", out):
        results[("autocalib", int(m.group(1)))] = float(m.group(2))
    for name, fn in peers:
        fn(paths[0])  # imports, first-call setup
        for t in a.threads:
            results[(name, t)] = time_peer(fn, paths, t)
    print("decode + preprocess (%s), %d images from %s" % (PP, len(paths), a.source))
    print("%-10s %s" % ("", "".join("%14s" % ("%d thread%s" % (t, "s" if t > 1 else "")) for t in a.threads)))
    for name in ["autocalib"] + [p[0] for p in peers]:
        print("%-10s %s" % (name, "".join("%10.1f im/s" % results[(name, t)] for t in a.threads)))
    for name, _ in peers:
        print("%-10s %s" % ("ac/" + name, "".join("%12.2fx " % (results[("autocalib", t)] / results[(name, t)])
                                                  for t in a.threads)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
