"""lmdb_save: save calibration / test data as an autocalib LMDB.

    from lmdb_save import LMDB_Dataset
    ds = LMDB_Dataset("calib_lmdb")
    for images, labels, originals in my_loader():
        ds.put(images, labels=labels, original_images=originals)
    ds.close()

Each put() writes one LMDB record holding the batch (docs/formats.md):
a msgpack map {"format": "autocalib.tensors", "version": 1, "tensors": [...]},
each tensor {"shape": [N, ...], "dtype": "float32", "data": <raw little-endian
C-order bytes>}. autocalib splits records into samples when it reads them.

labels (optional, JSON-able) go to data.label beside data.mdb:
  classification: an int per sample (a list of N ints; an int when N == 1)
                  -> one line per record, "3,13,4,6";
  detection:      per sample a list of boxes [class, x1, y1, x2, y2] (pixels)
                  -> one line per image, boxes separated by ';'.
original_images (optional): the un-normalised uint8 images (N x H x W x C,
N x C x H x W, N x H x W, or a list of such images), saved as JPEGs in
original_images/ as <record:010d>_<sample:04d>.jpg, so refresh_lmdb.py can drop
the samples whose image the user deleted. Colour images are taken as RGB
(pass original_images_bgr=True for BGR arrays).

Needs Debian's python3-lmdb, python3-numpy, python3-msgpack (and python3-pil
for original_images).
"""

import json
import numbers
import os

import lmdb
import msgpack
import numpy as np

FORMAT = "autocalib.tensors"
VERSION = 1
DTYPES = ("float32", "float64", "float16", "uint8", "int8", "int16", "int32", "int64")
IMAGE_DIR = "original_images"
LABEL_FILE = "data.label"


def record_key(index):
    return b"%010d" % index


def image_name(record, sample):
    return "%010d_%04d.jpg" % (record, sample)


def encode_record(tensors):
    """msgpack bytes of one record holding the given arrays (same first dim)."""
    items = []
    for i, t in enumerate(tensors):
        a = np.asarray(t)
        if a.ndim < 1:
            raise ValueError("input %d: a record holds batches; got a 0-d array" % i)
        if a.dtype.name not in DTYPES:
            raise ValueError("input %d: dtype %s is not one of %s" % (i, a.dtype.name, ", ".join(DTYPES)))
        a = np.ascontiguousarray(a, dtype=a.dtype.newbyteorder("<"))
        items.append({"shape": [int(d) for d in a.shape], "dtype": a.dtype.name, "data": a.tobytes()})
    return msgpack.packb({"format": FORMAT, "version": VERSION, "tensors": items}, use_bin_type=True)


def decode_record(buf):
    """The arrays of one record (numpy, read-only views copied)."""
    m = msgpack.unpackb(buf, raw=False)
    if not isinstance(m, dict) or m.get("format") != FORMAT or m.get("version") != VERSION:
        raise ValueError("not an autocalib tensor record (format %r)" % (m.get("format") if isinstance(m, dict) else m))
    out = []
    for t in m["tensors"]:
        out.append(np.frombuffer(t["data"], dtype=np.dtype(t["dtype"]).newbyteorder("<"))
                   .reshape(t["shape"]).copy())
    return out


def _is_int(x):
    return isinstance(x, numbers.Integral) and not isinstance(x, bool)


def format_labels(labels, batch):
    """(kind, lines) for data.label: kind 'classification' or 'detection'."""
    json.dumps(labels, default=lambda o: o.tolist() if hasattr(o, "tolist") else str(o))  # JSON-able
    if hasattr(labels, "tolist"):
        labels = labels.tolist()
    if _is_int(labels):
        labels = [labels]
    if not isinstance(labels, (list, tuple)) or len(labels) != batch:
        raise ValueError("labels: need one entry per sample (%d), got %r" % (batch, labels))
    if all(_is_int(v) for v in labels):
        if any(v < 0 for v in labels):
            raise ValueError("labels: class indices must be >= 0, got %r" % (labels,))
        return "classification", [",".join(str(int(v)) for v in labels)]
    lines = []
    for s, boxes in enumerate(labels):
        if hasattr(boxes, "tolist"):
            boxes = boxes.tolist()
        if not isinstance(boxes, (list, tuple)):
            raise ValueError("labels[%d]: detection labels are a list of [class, x1, y1, x2, y2] boxes per sample, "
                             "got %r" % (s, boxes))
        parts = []
        for b, box in enumerate(boxes):
            if not isinstance(box, (list, tuple)) or len(box) != 5 or not _is_int(box[0]) or box[0] < 0:
                raise ValueError("labels[%d][%d]: a box is [class, x1, y1, x2, y2] with an integer class >= 0, got %r"
                                 % (s, b, box))
            x1, y1, x2, y2 = (float(v) for v in box[1:])
            if not (x1 <= x2 and y1 <= y2) or not all(np.isfinite([x1, y1, x2, y2])):
                raise ValueError("labels[%d][%d]: needs finite x1 <= x2 and y1 <= y2, got %r" % (s, b, box))
            parts.append("%d,%s,%s,%s,%s" % (box[0], _num(x1), _num(y1), _num(x2), _num(y2)))
        lines.append(";".join(parts))
    return "detection", lines


def _num(v):
    r = repr(float(v))
    return r[:-2] if r.endswith(".0") else r


def parse_label_file(text, batches):
    """data.label text -> (kind, per-sample label strings), by the C reader's rule:
    classification when there is one line per record holding batch integers,
    detection when there is one line per sample."""
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    lines = [ln.rstrip("\r") for ln in lines]
    if len(lines) == len(batches):
        per = []
        ok = True
        for ln, b in zip(lines, batches):
            vals = [v.strip() for v in ln.split(",")]
            if len(vals) != b or not all(v.isdigit() for v in vals):
                ok = False
                break
            per.extend(vals)
        if ok:
            return "classification", per
    if len(lines) == sum(batches):
        return "detection", lines
    raise ValueError("%s has %d lines; expected %d (classification) or %d (detection)"
                     % (LABEL_FILE, len(lines), len(batches), sum(batches)))


def _to_hwc(img, i):
    a = np.asarray(img)
    if a.dtype != np.uint8:
        raise ValueError("original_images[%d]: dtype %s; un-normalised images are uint8" % (i, a.dtype))
    if a.ndim == 3 and a.shape[0] in (1, 3) and a.shape[2] not in (1, 3):
        a = a.transpose(1, 2, 0)  # CHW -> HWC
    if a.ndim == 3 and a.shape[2] == 1:
        a = a[:, :, 0]
    if a.ndim not in (2, 3) or (a.ndim == 3 and a.shape[2] != 3):
        raise ValueError("original_images[%d]: shape %s is not HxW, HxWx1/3 or 1/3xHxW" % (i, a.shape))
    return np.ascontiguousarray(a)


class LMDB_Dataset:
    """An autocalib LMDB being written. Appends to an existing one."""

    def __init__(self, path, map_size=1 << 30, original_images_bgr=False):
        self.path = path
        self.bgr = original_images_bgr
        os.makedirs(path, exist_ok=True)
        self.env = lmdb.open(path, map_size=map_size, subdir=True, sync=False, metasync=False)
        with self.env.begin() as txn:
            self.records = txn.stat()["entries"]
        self.kind = None
        self.label_path = os.path.join(path, LABEL_FILE)
        self.labels_file = None
        if self.records and os.path.exists(self.label_path):
            self.kind = "existing"  # checked loosely: the C reader validates the whole file
        elif self.records:
            self.kind = "none"

    def put(self, inputs, labels=None, original_images=None):
        """Write one record: inputs is an array (a batch) or a list of arrays (one
        per model input, same first dimension)."""
        tensors = list(inputs) if isinstance(inputs, (list, tuple)) else [inputs]
        if not tensors:
            raise ValueError("put: no input array")
        arrays = [np.asarray(t) for t in tensors]
        batch = arrays[0].shape[0] if arrays[0].ndim else 0
        if batch < 1:
            raise ValueError("put: inputs[0] has shape %s; the first dimension is the batch (>= 1)"
                             % (arrays[0].shape,))
        for i, a in enumerate(arrays):
            if a.ndim < 1 or a.shape[0] != batch:
                raise ValueError("put: inputs[%d] has shape %s; every input needs batch %d first"
                                 % (i, a.shape, batch))
        # Validate everything before writing anything: a failed put changes nothing.
        lines, kind = None, "none"
        if labels is not None:
            kind, lines = format_labels(labels, batch)
        if self.kind not in (None, "existing") and self.kind != kind:
            raise ValueError("put: %s labels, but earlier records have %s" % (
                "no" if kind == "none" else kind,
                "them" if kind == "none" else ("no labels" if self.kind == "none" else self.kind + " labels")))
        images = None
        if original_images is not None:
            images = [_to_hwc(im, i) for i, im in enumerate(original_images)]
            if len(images) != batch:
                raise ValueError("put: %d original_images for a batch of %d" % (len(images), batch))
        value = encode_record(arrays)
        if images is not None:  # images first: a record never points at a missing image
            from PIL import Image
            d = os.path.join(self.path, IMAGE_DIR)
            os.makedirs(d, exist_ok=True)
            for s, im in enumerate(images):
                if im.ndim == 3 and self.bgr:
                    im = im[:, :, ::-1]
                Image.fromarray(np.ascontiguousarray(im)).save(os.path.join(d, image_name(self.records, s)),
                                                               quality=95)
        key = record_key(self.records)
        while True:
            try:
                with self.env.begin(write=True) as txn:
                    if not txn.put(key, value, overwrite=False):
                        raise ValueError("put: key %s already exists" % key.decode())
                break
            except lmdb.MapFullError:
                self.env.set_mapsize(self.env.info()["map_size"] * 2)
        if lines is not None:
            if self.labels_file is None:
                self.labels_file = open(self.label_path, "a")
            self.labels_file.write("".join(ln + "\n" for ln in lines))
            self.labels_file.flush()
        if self.kind != "existing":
            self.kind = kind
        self.records += 1

    def close(self):
        if self.env is not None:
            self.env.sync(True)
            self.env.close()
            self.env = None
        if self.labels_file is not None:
            self.labels_file.flush()
            os.fsync(self.labels_file.fileno())
            self.labels_file.close()
            self.labels_file = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    def __del__(self):
        try:
            self.close()
        except Exception:
            pass


def read_lmdb(path):
    """[(key, [arrays])] of every record, in key order (for tests and tools)."""
    env = lmdb.open(path, readonly=True, lock=False, subdir=True)
    try:
        with env.begin() as txn:
            return [(bytes(k), decode_record(bytes(v))) for k, v in txn.cursor()]
    finally:
        env.close()
