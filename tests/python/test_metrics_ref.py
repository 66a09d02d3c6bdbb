"""The metrics library (metrics/) against independent implementations.

- mAP: our COCO mAP@[.5:.95] and AP50 (101-point) against pycocotools' COCOeval, and our
  all-point mAP@0.5 (VOC2010+) against a numpy reimplementation, on synthetic detections;
  the same numbers for 1, 2, 3 and 7 shards merged through encode/decode.
- Decoders: UltraFace's simplified model outputs raw prior regressions, the full model
  decoded corners; decoding the former with our prior config must give the latter's boxes.
  NMS and the YOLO decoder against numpy reimplementations.

The C side runs through metrics/ac_metric_tool from $AC_BUILD_DIR (default <repo>/build);
the tests skip with a message when it is absent, and the UltraFace test when the zoo is."""

import math
import os
import subprocess

import numpy as np
import pytest

from conftest import face_images, load_rgb, run_ort, zoo_file

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.fixture(scope="module")
def tool():
    build = os.environ.get("AC_BUILD_DIR", os.path.join(REPO, "build"))
    path = os.path.join(build, "metrics", "ac_metric_tool")
    if not os.access(path, os.X_OK):
        pytest.skip("%s not found (build the project, or set AC_BUILD_DIR)" % path)
    return path


# ------------------------------------------------------------------ synthetic detections

def synthetic(seed, nimg=40, ncls=3):
    """Ground truth boxes and detections (jittered copies, misses, false positives),
    as float32 values so that both sides see exactly the same numbers."""
    rng = np.random.default_rng(seed)
    gts, dets = [], []  # (img, cls, x1, y1, x2, y2) / (img, cls, score, x1, y1, x2, y2)
    for img in range(nimg):
        for _ in range(rng.integers(0, 7)):
            c = int(rng.integers(0, ncls))
            x, y = rng.uniform(0, 0.7, 2)
            w, h = rng.uniform(0.05, 0.3, 2)
            box = np.float32([x, y, x + w, y + h])
            gts.append((img, c, *box))
            if rng.uniform() < 0.85:  # found, with some localisation error
                j = rng.normal(0, 0.002 + 0.02 * rng.uniform(), 4)
                d = np.float32(box + j)
                d[2], d[3] = max(d[2], d[0] + np.float32(0.01)), max(d[3], d[1] + np.float32(0.01))
                dets.append((img, c if rng.uniform() < 0.9 else int(rng.integers(0, ncls)),
                             np.float32(rng.uniform(0.2, 1.0)), *d))
        for _ in range(rng.integers(0, 4)):  # false positives
            x, y = rng.uniform(0, 0.8, 2)
            w, h = rng.uniform(0.02, 0.2, 2)
            dets.append((img, int(rng.integers(0, ncls)), np.float32(rng.uniform(0.0, 0.7)),
                         *np.float32([x, y, x + w, y + h])))
    return nimg, ncls, gts, dets


def tool_map(tool, nimg, ncls, gts, dets, shards=1):
    lines = ["classes %d" % ncls] + ["sample %d" % i for i in range(nimg)]
    lines += ["gt %d %d %.9g %.9g %.9g %.9g" % (i, c, *map(float, b)) for i, c, *b in gts]
    lines += ["det %d %d %.9g %.9g %.9g %.9g %.9g" % (i, c, float(s), *map(float, b))
              for i, c, s, *b in dets]
    out = subprocess.run([tool, "map", "--shards", str(shards)], input="\n".join(lines) + "\n",
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True)
    assert out.returncode == 0, out.stderr
    return out.stdout, {k: float(v) for k, v in (l.split() for l in out.stdout.splitlines())}


def coco_eval(nimg, ncls, gts, dets):
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval
    gt = COCO()
    anns = []
    for k, (i, c, x1, y1, x2, y2) in enumerate(gts):
        w, h = float(x2) - float(x1), float(y2) - float(y1)
        anns.append({"id": k + 1, "image_id": i, "category_id": c, "iscrowd": 0,
                     "bbox": [float(x1), float(y1), w, h], "area": w * h})
    gt.dataset = {"images": [{"id": i} for i in range(nimg)],
                  "categories": [{"id": c} for c in range(ncls)], "annotations": anns}
    gt.createIndex()
    res = [{"image_id": i, "category_id": c, "score": float(s),
            "bbox": [float(x1), float(y1), float(x2) - float(x1), float(y2) - float(y1)]}
           for i, c, s, x1, y1, x2, y2 in dets]
    dt = gt.loadRes(res)
    ev = COCOeval(gt, dt, "bbox")
    ev.params.imgIds = list(range(nimg))
    ev.evaluate()
    ev.accumulate()
    ev.summarize()
    return ev.stats


def iou(a, b):
    w = min(a[2], b[2]) - max(a[0], b[0])
    h = min(a[3], b[3]) - max(a[1], b[1])
    if w <= 0 or h <= 0:
        return 0.0
    i = w * h
    return i / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - i)


def numpy_map(nimg, ncls, gts, dets, thr=0.5, points=None):
    """Per class: detections ranked by score (ties: image, then input order); each image's
    detections matched greedily to the best unmatched ground truth with IoU >= thr; AP by
    all-point interpolation (points=None) or at `points` recall thresholds."""
    aps = []
    for c in range(ncls):
        g = [(i, [float(v) for v in b]) for i, cc, *b in gts if cc == c]
        if not g:
            continue
        d = [(i, float(s), k, [float(v) for v in b]) for k, (i, cc, s, *b) in enumerate(dets) if cc == c]
        tp = {}
        for img in range(nimg):
            gi = [b for i, b in g if i == img]
            taken = [False] * len(gi)
            mine = sorted((x for x in d if x[0] == img), key=lambda x: (-x[1], x[2]))
            for _, _, k, b in mine:
                best, m = min(thr, 1 - 1e-10), -1
                for j, gb in enumerate(gi):
                    if taken[j]:
                        continue
                    v = iou(b, gb)
                    if v < best:
                        continue
                    best, m = v, j
                if m >= 0:
                    taken[m] = True
                tp[k] = m >= 0
        order = sorted(d, key=lambda x: (-x[1], x[0], x[2]))
        hits = np.array([tp[k] for _, _, k, _ in order], dtype=np.float64)
        ctp = np.cumsum(hits)
        rec = ctp / len(g)
        prec = ctp / np.arange(1, len(hits) + 1)
        if points is None:
            mrec = np.concatenate([[0.0], rec, [1.0]])
            mpre = np.concatenate([[0.0], prec, [0.0]])
            for i in range(len(mpre) - 2, -1, -1):
                mpre[i] = max(mpre[i], mpre[i + 1])
            idx = np.where(mrec[1:] != mrec[:-1])[0]
            aps.append(float(np.sum((mrec[idx + 1] - mrec[idx]) * mpre[idx + 1])))
        else:
            for i in range(len(prec) - 1, 0, -1):
                prec[i - 1] = max(prec[i - 1], prec[i])
            q = np.zeros(len(points))
            ind = np.searchsorted(rec, points, side="left")
            for r, p in enumerate(ind):
                if p < len(prec):
                    q[r] = prec[p]
            aps.append(float(np.mean(q)))
    return float(np.mean(aps))


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_map_against_numpy_and_pycocotools(tool, seed):
    nimg, ncls, gts, dets = synthetic(seed)
    _, ours = tool_map(tool, nimg, ncls, gts, dets)
    assert ours["samples"] == nimg and ours["gt_boxes"] == len(gts) and ours["detections"] == len(dets)
    ref50 = numpy_map(nimg, ncls, gts, dets)
    assert abs(ours["map50"] - ref50) < 1e-12, (ours["map50"], ref50)
    rec_thrs = np.linspace(0.0, 1.0, 101)
    ref101 = numpy_map(nimg, ncls, gts, dets, points=rec_thrs)
    assert abs(ours["map50_101"] - ref101) < 1e-12, (ours["map50_101"], ref101)
    try:
        import pycocotools  # noqa: F401
    except ImportError:
        pytest.skip("pycocotools is not installed (python/requirements-test.txt); numpy check passed")
    stats = coco_eval(nimg, ncls, gts, dets)
    print("seed %d: ours mAP50 %.6f mAP50:95 %.6f AP50(101) %.6f; pycocotools %.6f %.6f (|diff| %.1e %.1e)"
          % (seed, ours["map50"], ours["map50_95"], ours["map50_101"], stats[0], stats[1],
             abs(ours["map50_95"] - stats[0]), abs(ours["map50_101"] - stats[1])))
    assert abs(ours["map50_95"] - stats[0]) < 1e-12, (ours["map50_95"], stats[0])
    assert abs(ours["map50_101"] - stats[1]) < 1e-12, (ours["map50_101"], stats[1])
    assert 0.2 < stats[0] < 0.95  # the synthetic case is neither trivial nor hopeless


def test_map_sharding_invariance(tool):
    nimg, ncls, gts, dets = synthetic(7, nimg=61)
    texts = [tool_map(tool, nimg, ncls, gts, dets, shards=k)[0] for k in (1, 2, 3, 7)]
    assert all(t == texts[0] for t in texts), texts


def test_map_perfect_and_empty(tool):
    nimg, ncls, gts, _ = synthetic(4)
    perfect = [(i, c, np.float32(0.9), *b) for i, c, *b in gts]
    _, ours = tool_map(tool, nimg, ncls, gts, perfect)
    assert ours["map50"] == 1.0 and ours["map50_95"] == 1.0
    _, none = tool_map(tool, nimg, ncls, gts, [])
    assert none["map50"] == 0.0 and none["map50_95"] == 0.0


# ------------------------------------------------------------------ decoders

def nms_ref(boxes, scores, classes, index, iou_thr, max_det):
    """Greedy per-class NMS: within a class by (score desc, index asc), drop a box whose IoU
    with a kept one is > iou_thr; result by (score desc, class, index), at most max_det."""
    kept = []
    for c in sorted(set(classes.tolist())):
        sel = [k for k in range(len(scores)) if classes[k] == c]
        sel.sort(key=lambda k: (-scores[k], index[k]))
        mine = []
        for k in sel:
            if all(iou(boxes[k], boxes[j]) <= iou_thr for j in mine):
                mine.append(k)
        kept += mine
    kept.sort(key=lambda k: (-scores[k], classes[k], index[k]))
    return kept[:max_det]


def run_decode(tool, tmp_path, preset, thr, arrays):
    args = [tool, "decode", preset, repr(thr)]
    for k, a in enumerate(arrays):
        path = os.path.join(str(tmp_path), "t%d.f32" % k)
        np.ascontiguousarray(a, dtype="<f4").tofile(path)
        args.append("%s:%s" % (path, ",".join(str(d) for d in a.shape)))
    out = subprocess.run(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True)
    assert out.returncode == 0, out.stderr
    rows = [l.split() for l in out.stdout.splitlines()]
    return [(int(r[0]), float(r[1]), np.array([float(v) for v in r[2:6]]), int(r[6])) for r in rows]


def test_ultraface_priors_match_the_full_model(tool, tmp_path):
    full = zoo_file("faces/ulfd_version-RFB-320.onnx")
    simple = zoo_file("faces/ulfd_version-RFB-320_simplified.onnx")
    for img in face_images(4):
        x = ((load_rgb(img, 320, 240).astype(np.float32) - 127) / 128).transpose(2, 0, 1)[None]
        x = np.ascontiguousarray(x, dtype=np.float32)
        f = run_ort(full, x)
        s = run_ort(simple, x)
        scores, boxes, raw = f["scores"], f["boxes"], s["boxes"]
        assert np.abs(raw - boxes).max() > 0.1  # the simplified model's boxes are not decoded
        # the same scores, with decoded corners or with raw regressions + our priors
        a = run_decode(tool, tmp_path, "ultraface", 0.3, [scores, boxes])
        b = run_decode(tool, tmp_path, "ultraface_raw", 0.3, [scores, raw])
        assert len(a) > 0 and [r[3] for r in a] == [r[3] for r in b], img
        err = max(float(np.abs(p[2] - q[2]).max()) for p, q in zip(a, b))
        assert err < 1e-5, (img, err)
        # and the detections are what a numpy threshold + NMS gives on the full model
        sc = scores[0, :, 1].astype(np.float32)
        cand = np.where(sc >= np.float32(0.3))[0]
        keep = nms_ref(boxes[0, cand].astype(np.float64), sc[cand], np.zeros(len(cand), int), cand, 0.3, 100)
        assert [int(cand[k]) for k in keep] == [r[3] for r in a], img
        print("%s: %d faces, prior-decoded boxes within %.2e of the full model's" % (
            os.path.basename(img), len(a), err))


def test_yolo_decode_against_numpy(tool, tmp_path):
    rng = np.random.default_rng(5)
    anchors = np.array([[12, 18], [37, 49], [52, 132], [115, 73], [119, 199], [242, 238]], np.float64)
    heads = [(rng.normal(0, 2, (1, 255, 10, 10)).astype(np.float32), [3, 4, 5]),
             (rng.normal(0, 2, (1, 255, 20, 20)).astype(np.float32), [0, 1, 2])]
    for h, _ in heads:
        h[0].reshape(3, 85, -1)[:, 4] -= 3  # few confident cells
    thr = 0.25
    boxes, scores, classes, index = [], [], [], []
    base = 0
    sig = lambda v: 1.0 / (1.0 + np.exp(-np.float64(v)))  # noqa: E731
    for h, mask in heads:
        _, _, H, W = h.shape
        t = h[0].reshape(3, 85, H, W)
        for a in range(3):
            for y in range(H):
                for x in range(W):
                    obj = sig(t[a, 4, y, x])
                    if obj < thr:
                        continue
                    cx = (x + sig(t[a, 0, y, x])) / W
                    cy = (y + sig(t[a, 1, y, x])) / H
                    w = math.exp(t[a, 2, y, x]) * anchors[mask[a], 0] / 320
                    hh = math.exp(t[a, 3, y, x]) * anchors[mask[a], 1] / 320
                    box = np.float32([cx - w / 2, cy - hh / 2, cx + w / 2, cy + hh / 2])
                    for c in range(80):
                        s = np.float32(obj * sig(t[a, 5 + c, y, x]))
                        if s >= np.float32(thr):
                            boxes.append(box.astype(np.float64))
                            scores.append(s)
                            classes.append(c)
                            index.append(base + (a * H + y) * W + x)
        base += 3 * H * W
    keep = nms_ref(boxes, np.array(scores), np.array(classes), index, 0.45, 100)
    ours = run_decode(tool, tmp_path, "yolo_fastest", thr, [h for h, _ in heads])
    assert len(keep) > 5
    assert [(classes[k], index[k]) for k in keep] == [(r[0], r[3]) for r in ours]
    for k, r in zip(keep, ours):
        assert abs(scores[k] - r[1]) <= 1e-6
        assert np.abs(boxes[k] - r[2]).max() <= 1e-6


# ------------------------------------------------------------------ YuNet and BlazeFace

def face_outputs(model, images, size, prepare):
    """The model's outputs, in graph order, for each image resized to size x size."""
    out = []
    for img in images:
        d = run_ort(model, prepare(load_rgb(img, size, size).astype(np.float32)))
        out.append(list(d.values()))
    return out


def yunet_input(rgb):
    return np.ascontiguousarray(rgb[..., ::-1].transpose(2, 0, 1)[None])  # BGR 0..255, NCHW


def blazeface_input(rgb):
    return np.ascontiguousarray((rgb / np.float32(127.5) - 1)[None], dtype=np.float32)  # RGB NHWC


def centre_in(box, boxes):
    cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
    return any(b[0] <= cx <= b[2] and b[1] <= cy <= b[3] for b in boxes)


def ultraface_boxes(tool, tmp_path, images):
    full = zoo_file("faces/ulfd_version-RFB-320.onnx")
    outs = []
    for img in images:
        x = ((load_rgb(img, 320, 240).astype(np.float32) - 127) / 128).transpose(2, 0, 1)[None]
        f = run_ort(full, np.ascontiguousarray(x, dtype=np.float32))
        outs.append([r[2] for r in run_decode(tool, tmp_path, "ultraface", 0.5, [f["scores"], f["boxes"]])])
    return outs


def same_as_tool(tool, tmp_path, preset, thr, outputs, candidates, img, uboxes):
    """NMS (0.3) on the numpy decode's candidates (boxes, scores, decoder indices) equals
    the tool's detections for `preset`. Returns (detections, those centred in an UltraFace
    face)."""
    boxes, scores, index = candidates
    keep = nms_ref(boxes, np.array(scores), np.zeros(len(boxes), int), index, 0.3, 100)
    ours = run_decode(tool, tmp_path, preset, thr, outputs)
    assert [index[k] for k in keep] == [r[3] for r in ours], img
    for k, r in zip(keep, ours):
        assert abs(scores[k] - r[1]) <= 1e-6 and np.abs(boxes[k] - r[2]).max() <= 1e-5, img
    return len(ours), sum(centre_in(r[2], uboxes) for r in ours)


def test_yunet_decode_against_numpy(tool, tmp_path):
    """YuNet's 12 outputs decoded as OpenCV's FaceDetectorYN does (score sqrt(cls*obj),
    centre (col + dx, row + dy) * stride, size exp(dw, dh) * stride), then NMS 0.3: the
    tool's detections equal a numpy decode; and a different detector (UltraFace) finds a
    face wherever most of YuNet's confident detections are, which a wrong decode cannot."""
    model = zoo_file("faces/yunet_n_320_320.onnx")
    images = face_images(24)
    outs = face_outputs(model, images, 320, yunet_input)
    ultra = ultraface_boxes(tool, tmp_path, images)
    thr, agree, total = 0.5, 0, 0
    for img, o, uboxes in zip(images, outs, ultra):
        boxes, scores, index, base = [], [], [], 0
        for lvl, stride in enumerate((8, 16, 32)):
            cls, obj, bbox = o[lvl][0, :, 0], o[3 + lvl][0, :, 0], o[6 + lvl][0]
            cols = 320 // stride
            for k in range(len(cls)):
                s = np.float32(math.sqrt(np.float32(np.clip(cls[k], 0, 1) * np.clip(obj[k], 0, 1))))
                if s < np.float32(thr):
                    continue
                cx, cy = (k % cols + bbox[k, 0]) * stride / 320, (k // cols + bbox[k, 1]) * stride / 320
                w, h = math.exp(bbox[k, 2]) * stride / 320, math.exp(bbox[k, 3]) * stride / 320
                boxes.append(np.array([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2]))
                scores.append(s)
                index.append(base + k)
            base += len(cls)
        n, m = same_as_tool(tool, tmp_path, "yunet", thr, o, (boxes, scores, index), img, uboxes)
        total, agree = total + n, agree + m
    print("yunet: %d faces on 24 images, %d centred in an UltraFace face" % (total, agree))
    assert total > 100 and agree >= 0.8 * total, (agree, total)


def test_blazeface_decode_against_numpy(tool, tmp_path):
    """BlazeFace (MediaPipe front model) decoded with MediaPipe's anchors (strides 8 and
    16: 2 anchors per 16x16 cell, 6 per 8x8 cell, unit size at the cell centre), scores
    sigmoid(clamp(logit, +-100)), boxes centre + (x, y) / 128 and (w, h) / 128: equal to a
    numpy decode, and centred on UltraFace's faces."""
    model = zoo_file("faces/face_detection_front_128x128_barracuda.onnx")
    images = face_images(24)
    outs = face_outputs(model, images, 128, blazeface_input)
    ultra = ultraface_boxes(tool, tmp_path, images)
    thr, agree, total = 0.5, 0, 0
    for img, o, uboxes in zip(images, outs, ultra):
        boxes, scores, index, base = [], [], [], 0
        for logits, regs, grid, per_cell in ((o[0], o[2], 16, 2), (o[1], o[3], 8, 6)):
            for k in range(logits.shape[1]):
                s = np.float32(1 / (1 + math.exp(-min(max(float(logits[0, k, 0]), -100), 100))))
                if s < np.float32(thr):
                    continue
                cell = k // per_cell
                ax, ay = (cell % grid + 0.5) / grid, (cell // grid + 0.5) / grid
                r = regs[0, k].astype(np.float64)
                cx, cy, w, h = ax + r[0] / 128, ay + r[1] / 128, r[2] / 128, r[3] / 128
                boxes.append(np.array([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2]))
                scores.append(s)
                index.append(base + k)
            base += logits.shape[1]
        n, m = same_as_tool(tool, tmp_path, "blazeface", thr, o, (boxes, scores, index), img, uboxes)
        total, agree = total + n, agree + m
    print("blazeface: %d faces on 24 images, %d centred in an UltraFace face" % (total, agree))
    assert total >= 15 and agree >= 0.8 * total, (agree, total)
