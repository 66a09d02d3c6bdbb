"""datasets: Python lmdb_save -> C reader round trips, refresh_lmdb, JPEG/PNG
decoding against Pillow, preprocessing against an independent numpy version,
folder == LMDB bit-identity, Caffe Datum and idx import, error messages.

Runs `autocalib dataset ...` ($AC_BIN, see conftest.py)."""

import os
import shutil
import struct
import subprocess
import sys

import numpy as np
import pytest

from conftest import REPO, ZOO, read_idx

sys.path.insert(0, os.path.join(REPO, "python"))
import lmdb_save  # noqa: E402
import refresh_lmdb  # noqa: E402

FMNIST = "/usr/share/datasets/fashion-mnist"


@pytest.fixture(scope="session")
def ds_bin(ac_bin):
    p = subprocess.run([ac_bin, "dataset", "--help"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    if p.returncode != 0:
        pytest.skip("%s has no 'dataset' command yet" % ac_bin)
    return ac_bin


def run(ds_bin, *args, ok=True):
    p = subprocess.run([ds_bin, "dataset"] + [str(a) for a in args], stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, universal_newlines=True)
    if ok and p.returncode != 0:
        raise AssertionError("autocalib dataset %s failed (%d): %s" % (" ".join(map(str, args)), p.returncode,
                                                                       p.stderr))
    return p


def dump(ds_bin, source, tmp_path, *extra, tag="dump"):
    out = os.path.join(str(tmp_path), tag + ".npy")
    lab = os.path.join(str(tmp_path), tag + ".labels")
    run(ds_bin, "dump", source, "--out", out, "--labels_out", lab, *extra)
    labels = open(lab).read().split("\n")[:-1] if os.path.exists(lab) else None
    return np.load(out), labels


# ------------------------------------------------------------------ round trips

def test_python_writes_c_reads(ds_bin, tmp_path):
    d = str(tmp_path / "db")
    rng = np.random.default_rng(0)
    x1 = rng.standard_normal((3, 2, 4, 5)).astype(np.float32)
    x2 = rng.standard_normal((2, 2, 4, 5)).astype(np.float32)
    with lmdb_save.LMDB_Dataset(d) as ds:
        ds.put(x1, labels=[3, 13, 4])
        ds.put(x2, labels=np.array([6, 0]))
    assert open(os.path.join(d, "data.label")).read() == "3,13,4\n6,0\n"
    info = run(ds_bin, "info", d).stdout
    assert "samples: 5" in info and "records: 2" in info and "shape [2,4,5] dtype float32" in info
    assert "labels: classification" in info
    got, labels = dump(ds_bin, d, tmp_path)
    assert got.dtype == np.float32 and np.array_equal(got, np.concatenate([x1, x2]))
    assert labels == ["3", "13", "4", "6", "0"]
    part, _ = dump(ds_bin, d, tmp_path, "--begin", 2, "--count", 2, tag="part")
    assert np.array_equal(part, np.concatenate([x1, x2])[2:4])
    # Python reads back what it wrote
    recs = lmdb_save.read_lmdb(d)
    assert [k for k, _ in recs] == [b"0000000000", b"0000000001"] and np.array_equal(recs[1][1][0], x2)


@pytest.mark.parametrize("dtype", ["uint8", "int8", "int16", "int32", "int64", "float16", "float64"])
def test_dtypes_and_two_inputs(ds_bin, tmp_path, dtype):
    d = str(tmp_path / "db")
    a = (np.arange(2 * 3 * 2) % 100).reshape(2, 3, 2).astype(dtype)
    b = np.linspace(-1, 1, 2 * 7).reshape(2, 7).astype(np.float32)
    with lmdb_save.LMDB_Dataset(d) as ds:
        ds.put([a, b])
    info = run(ds_bin, "info", d).stdout
    assert "input 0: shape [3,2] dtype %s" % dtype in info and "input 1: shape [7] dtype float32" in info
    got, _ = dump(ds_bin, d, tmp_path)
    assert np.array_equal(got, a.astype(np.float32))
    assert np.array_equal(np.load(str(tmp_path / "dump.1.npy")), b)


def test_detection_labels_round_trip(ds_bin, tmp_path):
    d = str(tmp_path / "db")
    x = np.zeros((2, 3, 4, 4), np.float32)
    with lmdb_save.LMDB_Dataset(d) as ds:
        ds.put(x, labels=[[[1, 0, 0, 2.5, 3], [7, 1, 1, 2, 2]], []])
        ds.put(x[:1], labels=[[[2, 0.5, 0.25, 1, 1]]])
    assert open(os.path.join(d, "data.label")).read() == "1,0,0,2.5,3;7,1,1,2,2\n\n2,0.5,0.25,1,1\n"
    info = run(ds_bin, "info", d).stdout
    assert "labels: detection (3 boxes)" in info
    _, labels = dump(ds_bin, d, tmp_path)
    assert labels == ["1,0,0,2.5,3;7,1,1,2,2", "", "2,0.5,0.25,1,1"]


def test_put_errors(tmp_path):
    with lmdb_save.LMDB_Dataset(str(tmp_path / "db")) as ds:
        with pytest.raises(ValueError, match="one entry per sample"):
            ds.put(np.zeros((2, 3), np.float32), labels=[1])
        with pytest.raises(ValueError, match="batch 2 first"):
            ds.put([np.zeros((2, 3), np.float32), np.zeros((3, 3), np.float32)])
        with pytest.raises(ValueError, match="a box is"):
            ds.put(np.zeros((1, 3), np.float32), labels=[[[1, 2, 3]]])
        with pytest.raises(ValueError, match="dtype bool"):
            ds.put(np.zeros((1, 3), bool))
        ds.put(np.zeros((1, 3), np.float32), labels=[1])
        with pytest.raises(ValueError, match="earlier records have them"):
            ds.put(np.zeros((1, 3), np.float32))


def test_c_rejects_bad_records_and_label_counts(ds_bin, tmp_path):
    d = str(tmp_path / "db")
    with lmdb_save.LMDB_Dataset(d) as ds:
        ds.put(np.zeros((2, 4), np.float32), labels=[1, 2])
        ds.put(np.zeros((1, 4), np.float32), labels=[3])
    with open(os.path.join(d, "data.label"), "w") as f:
        f.write("1,2\n3,4\n")
    p = run(ds_bin, "info", d, ok=False)
    assert p.returncode == 1 and "data.label: line 2 has 2 labels but its record holds 1 samples" in p.stderr
    d2 = str(tmp_path / "db2")
    with lmdb_save.LMDB_Dataset(d2) as ds:
        ds.put(np.zeros((1, 4), np.float32))
        ds.put(np.zeros((1, 5), np.float32))
    p = run(ds_bin, "info", d2, ok=False)
    assert "record 1 (key 0000000001)" in p.stderr and "sample shape [5] float32 differs" in p.stderr


# ------------------------------------------------------------------ refresh_lmdb

def _images(n, seed):
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (n, 6, 8, 3), dtype=np.uint8)


def _make_refreshable(d):
    x = [np.full((3, 2), r, np.float32) + np.arange(3, dtype=np.float32)[:, None] / 10 for r in range(3)]
    with lmdb_save.LMDB_Dataset(d) as ds:
        ds.put(x[0], labels=[0, 1, 2], original_images=_images(3, 0))
        ds.put(x[1], labels=[3, 4, 5], original_images=_images(3, 1).transpose(0, 3, 1, 2))  # CHW
        ds.put(x[2], labels=[6, 7, 8], original_images=_images(3, 2))
    return x


def test_refresh_keeps_samples_with_images(ds_bin, tmp_path):
    d = str(tmp_path / "db")
    x = _make_refreshable(d)
    imgs = os.path.join(d, "original_images")
    assert sorted(os.listdir(imgs))[:2] == ["0000000000_0000.jpg", "0000000000_0001.jpg"]
    for name in ["0000000000_0001.jpg", "0000000001_0000.jpg", "0000000001_0001.jpg", "0000000001_0002.jpg"]:
        os.remove(os.path.join(imgs, name))
    kept, total, recs = refresh_lmdb.refresh(d, log=lambda *a: None)
    assert (kept, total, recs) == (5, 9, 2)
    assert open(os.path.join(d, "data.label")).read() == "0,2\n6,7,8\n"
    assert sorted(os.listdir(imgs)) == ["0000000000_0000.jpg", "0000000000_0001.jpg", "0000000001_0000.jpg",
                                        "0000000001_0001.jpg", "0000000001_0002.jpg"]
    got, labels = dump(ds_bin, d, tmp_path)
    assert np.array_equal(got, np.concatenate([x[0][[0, 2]], x[2]]))
    assert labels == ["0", "2", "6", "7", "8"]
    assert not os.path.exists(d + ".refresh-new") and not os.path.exists(d + ".refresh-old")


def test_refresh_crash_leaves_old_data(tmp_path):
    d = str(tmp_path / "db")
    _make_refreshable(d)
    os.remove(os.path.join(d, "original_images", "0000000002_0000.jpg"))
    before = {k: [a.copy() for a in v] for k, v in lmdb_save.read_lmdb(d)}
    label_before = open(os.path.join(d, "data.label")).read()

    def crash():
        raise RuntimeError("simulated crash")

    with pytest.raises(RuntimeError):
        refresh_lmdb.refresh(d, before_swap=crash, log=lambda *a: None)
    after = dict(lmdb_save.read_lmdb(d))
    assert before.keys() == after.keys() and all(np.array_equal(before[k][0], after[k][0]) for k in before)
    assert open(os.path.join(d, "data.label")).read() == label_before
    # an interrupted two-rename swap is undone by the next run
    os.rename(d, d + ".refresh-old")
    kept, total, _ = refresh_lmdb.refresh(d, log=lambda *a: None)
    assert (kept, total) == (8, 9) and not os.path.exists(d + ".refresh-new")


def test_refresh_cli(tmp_path):
    d = str(tmp_path / "db")
    _make_refreshable(d)
    p = subprocess.run([sys.executable, os.path.join(REPO, "python", "refresh_lmdb.py"), "--lmdb_dir", d],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True)
    assert p.returncode == 0 and "kept 9 of 9 samples in 3 records" in p.stdout


# ------------------------------------------------------------------ images

def _pil_bgr(path):
    from PIL import Image
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"))[:, :, ::-1]


def test_jpeg_decode_matches_pillow_on_zoo_images(ds_bin, tmp_path):
    root = os.path.join(ZOO, "imagenet", "val1300")
    if not os.path.isdir(root):
        pytest.skip("zoo %s is absent" % root)
    with open(os.path.join(root, "dataset.txt")) as f:
        lines = [ln for ln in f if ln.strip()][:24]
    lst = tmp_path / "list.txt"
    lst.write_text("".join(os.path.join(root, ln.split(",")[0].strip()) + "\n" for ln in lines))
    got, _ = dump(ds_bin, str(lst), tmp_path, "--layout", "NHWC")
    assert got.shape[0] == 24
    for i, ln in enumerate(lines):
        ref = _pil_bgr(os.path.join(root, ln.split(",")[0].strip()))
        assert got.shape[1:] == ref.shape
        assert np.array_equal(got[i], ref.astype(np.float32)), "image %d differs from Pillow" % i


def test_gray_cmyk_palette_images_match_pillow(ds_bin, tmp_path):
    from PIL import Image
    rng = np.random.default_rng(1)
    rgb = rng.integers(0, 256, (20, 30, 3), dtype=np.uint8)
    folder = tmp_path / "imgs"
    folder.mkdir()
    Image.fromarray(rgb).convert("L").save(str(folder / "a_gray.jpg"), quality=90)
    Image.fromarray(rgb).convert("CMYK").save(str(folder / "b_cmyk.jpg"), quality=90)
    Image.fromarray(rgb).convert("P").save(str(folder / "c_palette.png"))
    Image.fromarray(rgb).convert("RGBA").save(str(folder / "d_rgba.png"))
    Image.fromarray(rgb).save(str(folder / "e_rgb.jpg"), quality=90)
    (folder / "notes.txt").write_text("not an image")
    got, _ = dump(ds_bin, str(folder), tmp_path, "--layout", "NHWC")
    names = sorted(f for f in os.listdir(str(folder)) if not f.endswith(".txt"))
    assert got.shape == (5, 20, 30, 3)
    for i, n in enumerate(names):
        assert np.array_equal(got[i], _pil_bgr(str(folder / n)).astype(np.float32)), n
    gray, _ = dump(ds_bin, str(folder), tmp_path, "--channels", 1, tag="gray")
    with Image.open(str(folder / "d_rgba.png")) as im:
        ref = np.asarray(im.convert("RGB").convert("L"), dtype=np.float32)
    assert gray.shape == (5, 1, 20, 30) and np.array_equal(gray[3, 0], ref)


def _ref_resize(img, oh, ow):
    """Independent numpy bilinear resize, half-pixel centres, clamped (float32 taps)."""
    ih, iw = img.shape[:2]

    def taps(n_in, n_out):
        s = (np.arange(n_out, dtype=np.float64) + 0.5) * (n_in / n_out) - 0.5
        s = np.maximum(s, 0)
        i0 = np.minimum(s.astype(np.int64), n_in - 1)
        i1 = np.minimum(i0 + 1, n_in - 1)
        return i0, i1, (s - i0).astype(np.float32)

    y0, y1, fy = taps(ih, oh)
    x0, x1, fx = taps(iw, ow)
    fx, fy = fx[None, :, None], fy[:, None, None]
    gx, gy = np.float32(1) - fx, np.float32(1) - fy
    top = gx * img[y0][:, x0] + fx * img[y0][:, x1]
    bot = gx * img[y1][:, x0] + fx * img[y1][:, x1]
    return (gy * top + fy * bot).astype(np.float32)


def test_preprocessing_matches_numpy_reference(ds_bin, tmp_path):
    from PIL import Image
    rng = np.random.default_rng(2)
    folder = tmp_path / "imgs"
    folder.mkdir()
    for i in range(3):
        Image.fromarray(rng.integers(0, 256, (37 + i, 51, 3), dtype=np.uint8)).save(str(folder / ("%d.png" % i)))
    pp = "resize_h=40,resize_w=44;mean_value=103.94:116.78:123.68,scale=0.5:1:2,bgr2rgb=True;crop_h=32,crop_w=30"
    got, _ = dump(ds_bin, str(folder), tmp_path, "--data_preproccess_str", pp)
    for i in range(3):
        bgr = _pil_bgr(str(folder / ("%d.png" % i))).astype(np.float32)
        x = _ref_resize(bgr, 40, 44)
        x = (x - np.array([103.94, 116.78, 123.68], np.float32)) * np.array([0.5, 1, 2], np.float32)
        x = x[:, :, ::-1][4:36, 7:37]
        assert np.array_equal(got[i], x.transpose(2, 0, 1)), "image %d" % i
    # and agrees with PyTorch's bilinear (align_corners=False, no antialias) up to rounding
    import torch
    bgr = _pil_bgr(str(folder / "0.png")).astype(np.float32)
    t = torch.nn.functional.interpolate(torch.from_numpy(bgr.transpose(2, 0, 1).copy())[None], size=(40, 44),
                                        mode="bilinear", align_corners=False)[0].numpy()
    mine, _ = dump(ds_bin, str(folder), tmp_path, "--data_preproccess_str", "resize_h=40,resize_w=44", tag="r")
    assert np.max(np.abs(mine[0] - t)) < 1e-3


def test_folder_and_its_lmdb_are_bit_identical(ds_bin, tmp_path):
    root = os.path.join(ZOO, "imagenet", "val1300")
    if not os.path.isdir(root):
        pytest.skip("zoo %s is absent" % root)
    with open(os.path.join(root, "dataset.txt")) as f:
        lines = [ln for ln in f if ln.strip()][:40]
    lst = tmp_path / "list.txt"
    lst.write_text("".join(os.path.join(root, ln.split(",")[0].strip()) + ", " + ln.split(",")[1].strip() + "\n"
                           for ln in lines))
    out = str(tmp_path / "lmdb")
    run(ds_bin, "import", "--image_source", lst, "--image_data_preproccess", "vgg_tensorflow", "--out", out,
        "--batch", 8, "--threads", 2)
    direct, lab1 = dump(ds_bin, str(lst), tmp_path, "--image_data_preproccess", "vgg_tensorflow", "--threads", 1,
                        tag="direct")
    stored, lab2 = dump(ds_bin, out, tmp_path, tag="stored")
    assert direct.shape == (40, 3, 224, 224)
    assert direct.tobytes() == stored.tobytes()
    assert lab1 == lab2 == [ln.split(",")[1].strip() for ln in lines]
    # Python reads the same tensors from the LMDB
    recs = lmdb_save.read_lmdb(out)
    assert np.concatenate([r[1][0] for r in recs]).tobytes() == direct.tobytes()


def _expected_yolo_boxes(txt, resize, crop):
    """YOLO rows of an image -> boxes in pixels of the sample (resize to resize x
    resize, then a centre crop x crop), clipped; boxes cut away are dropped."""
    off = (resize - crop) // 2
    out = []
    for ln in open(txt):
        if not ln.strip():
            continue
        c, cx, cy, bw, bh = ln.split()
        cx, cy, bw, bh = float(cx), float(cy), float(bw), float(bh)
        x1, x2 = [min(max(v * resize - off, 0), crop) for v in (cx - bw / 2, cx + bw / 2)]
        y1, y2 = [min(max(v * resize - off, 0), crop) for v in (cy - bh / 2, cy + bh / 2)]
        if x2 > x1 and y2 > y1:
            out.append([int(c), x1, y1, x2, y2])
    return out


def test_yolo_labels(ds_bin, tmp_path):
    """YOLO labels (normalised to the original image) come out in pixels of the
    preprocessed sample: scaled by the resize, shifted and clipped by the crop."""
    root = os.path.join(ZOO, "coco128")
    if not os.path.isdir(root):
        pytest.skip("zoo %s is absent" % root)
    imgs = os.path.join(root, "images", "val2017")
    labs = os.path.join(root, "object_detection", "labels", "val2017")
    n = 6
    _, labels = dump(ds_bin, imgs, tmp_path, "--yolo_labels", labs, "--data_preproccess_str",
                     "resize_h=80,resize_w=80;crop_h=64,crop_w=64", "--count", n)
    names = sorted(f for f in os.listdir(imgs) if f.endswith(".jpg"))[:n]
    assert len(labels) == n
    dropped = 0
    for line, name in zip(labels, names):
        txt = os.path.join(labs, name[:-4] + ".txt")
        want, given = [], 0
        if os.path.exists(txt):
            want = _expected_yolo_boxes(txt, 80, 64)
            given = sum(1 for ln in open(txt) if ln.strip())
        dropped += given - len(want)
        got = [[float(v) for v in b.split(",")] for b in line.split(";")] if line.strip() else []
        assert len(got) == len(want), name
        for g, w in zip(got, want):
            assert int(g[0]) == w[0]
            assert np.allclose(g[1:], w[1:], atol=1e-3), (name, g, w)
    assert dropped > 0  # the crop cut some boxes away: the case is exercised


# ------------------------------------------------------------------ Caffe, idx

def _varint(v):
    out = b""
    while True:
        b = v & 0x7F
        v >>= 7
        if v:
            out += bytes([b | 0x80])
        else:
            return out + bytes([b])


def _datum(c, h, w, data, label, encoded=False):
    """Caffe Datum, hand-encoded protobuf."""
    msg = b"\x08" + _varint(c) + b"\x10" + _varint(h) + b"\x18" + _varint(w)
    msg += b"\x22" + _varint(len(data)) + data + b"\x28" + _varint(label)
    if encoded:
        msg += b"\x38\x01"
    return msg


def test_caffe_datum_lmdb(ds_bin, tmp_path):
    import lmdb
    from PIL import Image
    rng = np.random.default_rng(3)
    chw = rng.integers(0, 256, (3, 5, 7), dtype=np.uint8)
    png = tmp_path / "x.png"
    Image.fromarray(chw[::-1].transpose(1, 2, 0).copy()).save(str(png))  # RGB HWC of the same BGR pixels
    d = str(tmp_path / "caffe")
    env = lmdb.open(d, map_size=1 << 24)
    with env.begin(write=True) as txn:
        txn.put(b"00000000_a.jpg", _datum(3, 5, 7, chw.tobytes(), 11))
        txn.put(b"00000001_b.png", _datum(3, 5, 7, png.read_bytes(), 12, encoded=True))
    env.close()
    info = run(ds_bin, "info", d).stdout
    assert "lmdb (caffe datum)" in info and "samples: 2" in info and "labels: classification" in info
    got, labels = dump(ds_bin, d, tmp_path)
    assert np.array_equal(got[0], chw.astype(np.float32)) and np.array_equal(got[1], chw.astype(np.float32))
    assert labels == ["11", "12"]


def test_idx_import_fashion_mnist(ds_bin, tmp_path):
    img = os.path.join(FMNIST, "t10k-images-idx3-ubyte.gz")
    lab = os.path.join(FMNIST, "t10k-labels-idx1-ubyte.gz")
    if not os.path.exists(img):
        pytest.skip("%s is absent (dataset-fashion-mnist)" % img)
    out = str(tmp_path / "fm")
    run(ds_bin, "import", "--idx_images", img, "--idx_labels", lab, "--data_preproccess_str",
        "mean_value=72.93,scale=0.011109", "--out", out, "--batch", 100)
    info = run(ds_bin, "info", out).stdout
    assert "samples: 10000" in info and "records: 100" in info and "shape [1,28,28]" in info
    got, labels = dump(ds_bin, out, tmp_path, "--count", 300)
    ref = (read_idx(img)[:300].astype(np.float32) - np.float32(72.93)) * np.float32(0.011109)
    assert np.array_equal(got[:, 0], ref)
    assert [int(v) for v in labels] == read_idx(lab)[:300].tolist()


# ------------------------------------------------------------------ errors

def test_error_messages(ds_bin, tmp_path):
    from PIL import Image
    folder = tmp_path / "imgs"
    folder.mkdir()
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(str(folder / "a.jpg"))
    p = run(ds_bin, "info", folder, "--data_preproccess_str", "resize_h=4,resize_w=x4", ok=False)
    assert p.returncode == 1 and "column 21" in p.stderr and "'x4' is not an integer" in p.stderr
    p = run(ds_bin, "info", folder, "--data-preprocess-str", "resize_h=4,resize_w=4;blur=2", ok=False)
    assert "unknown parameter 'blur'" in p.stderr
    p = run(ds_bin, "info", folder, "--image_data_preproccess", "vgg", ok=False)
    assert "unknown template 'vgg'" in p.stderr
    (tmp_path / "list.txt").write_text("imgs/a.jpg 1\nimgs/missing.jpg 2\n")
    p = run(ds_bin, "info", tmp_path / "list.txt", ok=False)
    assert "list.txt line 2" in p.stderr and "missing.jpg" in p.stderr
    (tmp_path / "empty").mkdir()
    p = run(ds_bin, "info", tmp_path / "empty", ok=False)
    assert "holds no .jpg/.jpeg/.png" in p.stderr
    data = (folder / "a.jpg").read_bytes()
    (folder / "b.jpg").write_bytes(data[: len(data) // 2])
    out = str(tmp_path / "out")
    p = run(ds_bin, "import", "--image_source", folder, "--out", out, ok=False)
    assert p.returncode == 1 and "b.jpg" in p.stderr and not os.path.exists(out)
    assert not [f for f in os.listdir(str(tmp_path)) if f.startswith("out.tmp")]
    p = run(ds_bin, "import", "--image_source", folder, "--out", out, "--skip_bad_images")
    assert "1 samples" in p.stdout and "1 skipped" in p.stdout and "b.jpg" in p.stderr
