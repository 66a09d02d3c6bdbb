"""`autocalib quantize --task detect` against box labels (YOLO .txt files beside the
images), in one process and through the embedded farm (where the labels travel to the
workers inside the dataset blob).

The labels are made by a teacher outside autocalib's scoring path: onnxruntime runs the
full UltraFace model on the preprocessed images (`autocalib dataset dump`), and its
confident boxes, after NMS, are written as YOLO rows normalised to the original image.
autocalib must map them through its preprocessing (a plain resize here) into the frame
the detections decode to: the fp32 model then scores near-perfect mAP@0.5 against them,
which it cannot if the boxes land in the wrong frame."""

import json
import os
import subprocess

import numpy as np
import pytest

import conftest as h

MODEL = "faces/ulfd_version-RFB-320.onnx"
IMAGES = "faces/imgs"
PP = "resize_h=240,resize_w=320;mean_value=127:127:127,scale=0.0078125,bgr2rgb=True"


def _nms(boxes, scores, iou):
    order = np.argsort(-scores, kind="stable")
    keep = []
    while order.size:
        i = order[0]
        keep.append(i)
        x1 = np.maximum(boxes[i, 0], boxes[order[1:], 0])
        y1 = np.maximum(boxes[i, 1], boxes[order[1:], 1])
        x2 = np.minimum(boxes[i, 2], boxes[order[1:], 2])
        y2 = np.minimum(boxes[i, 3], boxes[order[1:], 3])
        inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
        area = lambda b: (b[..., 2] - b[..., 0]) * (b[..., 3] - b[..., 1])
        ov = inter / (area(boxes[i]) + area(boxes[order[1:]]) - inter)
        order = order[1:][ov <= iou]
    return keep


def write_teacher_labels(ac_bin, model, images, out_dir, threshold=0.7):
    """YOLO label files of the fp32 model's confident faces; returns the box count."""
    ort = pytest.importorskip("onnxruntime")
    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    sess = ort.InferenceSession(model, opts, providers=["CPUExecutionProvider"])
    os.makedirs(out_dir)
    tensors = os.path.join(out_dir, "..", "inputs.npy")
    subprocess.run([ac_bin, "dataset", "dump", images, "--out", tensors, "--data_preproccess_str", PP,
                    "--height", "240", "--width", "320"], check=True, stdout=subprocess.DEVNULL)
    inputs = np.load(tensors)
    names = sorted(n for n in os.listdir(images) if n.endswith(".jpg"))  # the folder's order
    assert inputs.shape == (len(names), 3, 240, 320)
    total = 0
    for name, x in zip(names, inputs):
        scores, boxes = sess.run(None, {"input": x[None]})
        face = scores[0, :, 1]
        sel = face >= threshold
        b, s = np.clip(boxes[0][sel], 0, 1), face[sel]
        # UltraFace's NMS; at most 100 faces, as the score keeps per image (COCO's rule)
        rows = [b[i] for i in _nms(b, s, 0.3)[:100]] if len(s) else []
        with open(os.path.join(out_dir, name[:-4] + ".txt"), "w") as f:
            for x1, y1, x2, y2 in rows:
                f.write("0 %.6f %.6f %.6f %.6f\n" % ((x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1))
        total += len(rows)
    return total


@pytest.fixture(scope="module")
def teacher(ac_bin, tmp_path_factory):
    model, images = h.zoo_file(MODEL), h.zoo_file(IMAGES)
    labels = str(tmp_path_factory.mktemp("teacher") / "labels")
    nboxes = write_teacher_labels(ac_bin, model, images, labels)
    assert nboxes >= 24  # every picture shows at least one face
    return model, images, labels, nboxes


def quantize(ac_bin, out, model, images, *extra):
    p = subprocess.run([ac_bin, "quantize", "--model", model, "--calib_image_source", images,
                        "--test_image_source", images, "--data_preproccess_str", PP,
                        "--detect_decoder", "ultraface", "--output_dir", str(out)] + list(extra),
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True)
    assert p.returncode >= 0, "killed by signal %d\n%s" % (-p.returncode, p.stderr)
    return p


def test_detect_scores_against_yolo_labels(ac_bin, tmp_path, teacher):
    model, images, labels, nboxes = teacher
    out = tmp_path / "labelled"
    # --task detect is implied by box labels
    p = quantize(ac_bin, out, model, images, "--test_yolo_labels", labels, "--no_search")
    assert p.returncode in (0, 2), p.stderr
    rep = json.load(open(str(out / "report.json")))
    assert rep["task"] == "detect"
    fp32, int8 = rep["test"]["fp32"], rep["test"]["int8"]
    assert fp32["labelled"] is True and int8["labelled"] is True
    assert fp32["gt_boxes"] == nboxes == int8["gt_boxes"]
    # the model against its own confident boxes, in the right frame
    assert fp32["map50"] >= 0.99, fp32
    assert 0.3 < int8["map50"] <= 1.0
    assert rep["fp32_score"] == fp32["score"] == fp32["map50_95"]

    # Without labels the same run scores against the fp32 detections instead.
    out2 = tmp_path / "unlabelled"
    p2 = quantize(ac_bin, out2, model, images, "--task", "detect", "--no_search")
    assert p2.returncode in (0, 2), p2.stderr
    rep2 = json.load(open(str(out2 / "report.json")))
    assert rep2["test"]["fp32"]["labelled"] is False and rep2["fp32_score"] == 1.0
    assert rep2["test"]["int8"]["gt_boxes"] != nboxes or rep2["int8_score"] != rep["int8_score"]


def test_labelled_detection_through_the_farm_matches_one_process(ac_bin, tmp_path, teacher):
    """The embedded cluster's workers get the labels inside the dataset blob: the
    candidate the search evaluated in full scores exactly as in the single process."""
    model, images, labels, _ = teacher
    farm = tmp_path / "farm"
    p = quantize(ac_bin, farm, model, images, "--test_yolo_labels", labels, "--workers", "2",
                 "--accept_int8_decay", "0.9")
    assert p.returncode == 0, p.stderr
    b = json.load(open(str(farm / "report.json")))
    full = [c for c in b["candidates"] if "int8_score" in c]
    assert b["met_budget"] is True and full, b["candidates"]
    single = tmp_path / "single"
    p = quantize(ac_bin, single, model, images, "--test_yolo_labels", labels,
                 *h.strategy_args(full[0]["options"]))
    assert p.returncode in (0, 2), p.stderr
    a = json.load(open(str(single / "report.json")))
    assert b["fp32_score"] == a["fp32_score"] and full[0]["int8_score"] == a["int8_score"]


def test_yolo_labels_need_an_image_source(ac_bin, tmp_path, teacher):
    model, images, labels, _ = teacher
    out = tmp_path / "out"
    p = subprocess.run([ac_bin, "quantize", "--model", model, "--calib_image_source", images,
                        "--test_lmdb_path", str(tmp_path), "--test_yolo_labels", labels,
                        "--data_preproccess_str", PP, "--output_dir", str(out)],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True)
    assert p.returncode != 0 and p.returncode > 0
    assert "--test_yolo_labels" in p.stderr and "image" in p.stderr
    assert not out.exists()


def test_bad_yolo_label_is_named(ac_bin, tmp_path, teacher):
    model, images, labels, _ = teacher
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "1.txt").write_text("0 0.5 0.5 0.2\n")  # four numbers: a field is missing
    out = tmp_path / "out"
    p = quantize(ac_bin, out, model, images, "--test_yolo_labels", str(bad), "--no_search")
    assert p.returncode > 0
    assert "1.txt" in p.stderr and "line 1" in p.stderr
    assert not out.exists()


def test_detection_lmdb_scores_like_its_images(ac_bin, tmp_path, teacher):
    """`dataset import --yolo_labels` writes the boxes to data.label in the sample frame;
    quantizing against that LMDB gives the scores of the images + YOLO folder."""
    model, images, labels, nboxes = teacher
    db = tmp_path / "db"
    subprocess.run([ac_bin, "dataset", "import", "--image_source", images, "--yolo_labels", labels,
                    "--data_preproccess_str", PP, "--out", str(db)], check=True, stdout=subprocess.DEVNULL)
    ref = tmp_path / "images"
    p = quantize(ac_bin, ref, model, images, "--test_yolo_labels", labels, "--no_search")
    assert p.returncode in (0, 2), p.stderr
    out = tmp_path / "lmdb"
    p = subprocess.run([ac_bin, "quantize", "--model", model, "--calib_image_source", images,
                        "--test_lmdb_path", str(db), "--data_preproccess_str", PP,
                        "--detect_decoder", "ultraface", "--output_dir", str(out), "--no_search"],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True)
    assert p.returncode in (0, 2), p.stderr
    a = json.load(open(str(ref / "report.json")))
    b = json.load(open(str(out / "report.json")))
    assert b["task"] == "detect" and b["test"]["fp32"]["labelled"] is True
    assert b["test"]["fp32"]["gt_boxes"] == nboxes
    assert b["fp32_score"] == a["fp32_score"] and b["int8_score"] == a["int8_score"]
