#!/usr/bin/python3
"""refresh_lmdb.py --lmdb_dir DIR: after deleting unwanted pictures from
DIR/original_images/, rewrite the LMDB and data.label keeping only the samples
whose image still exists.

Records keep their remaining samples together (an emptied record disappears),
records and images are renumbered, and the new folder replaces the old one in
one step: the new data is built in DIR.refresh-new and swapped with DIR by
renameat2(RENAME_EXCHANGE) (or, where that is missing, two renames with
DIR.refresh-old kept until the second succeeds). A crash at any point leaves
the old data intact: the next run removes a stale DIR.refresh-new and puts a
DIR.refresh-old back if DIR is missing.
"""

import argparse
import ctypes
import os
import shutil
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import lmdb  # noqa: E402

import lmdb_save  # noqa: E402


def _exchange(a, b):
    """Atomically swap two paths (Linux renameat2 RENAME_EXCHANGE); False if unsupported."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        fn = libc.renameat2
    except (OSError, AttributeError):
        return False
    AT_FDCWD, RENAME_EXCHANGE = -100, 2
    fn.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    if fn(AT_FDCWD, os.fsencode(a), AT_FDCWD, os.fsencode(b), RENAME_EXCHANGE) == 0:
        return True
    return False


def recover(lmdb_dir):
    """Finish or undo an interrupted refresh."""
    new, old = lmdb_dir + ".refresh-new", lmdb_dir + ".refresh-old"
    if not os.path.exists(lmdb_dir) and os.path.exists(old):
        os.rename(old, lmdb_dir)
    if os.path.exists(new):
        shutil.rmtree(new)
    if os.path.exists(old) and os.path.exists(lmdb_dir):
        shutil.rmtree(old)


def refresh(lmdb_dir, before_swap=None, log=print):
    """Returns (kept samples, total samples, kept records)."""
    lmdb_dir = os.path.normpath(lmdb_dir)
    recover(lmdb_dir)
    if not os.path.exists(os.path.join(lmdb_dir, "data.mdb")):
        raise SystemExit("refresh_lmdb: %s has no data.mdb" % lmdb_dir)
    img_dir = os.path.join(lmdb_dir, lmdb_save.IMAGE_DIR)
    if not os.path.isdir(img_dir):
        raise SystemExit("refresh_lmdb: %s has no %s/ folder (save with original_images=...)"
                         % (lmdb_dir, lmdb_save.IMAGE_DIR))
    records = lmdb_save.read_lmdb(lmdb_dir)
    batches = [r[1][0].shape[0] for r in records]
    label_path = os.path.join(lmdb_dir, lmdb_save.LABEL_FILE)
    kind, labels = None, None
    if os.path.exists(label_path):
        with open(label_path) as f:
            kind, labels = lmdb_save.parse_label_file(f.read(), batches)
    present = set(os.listdir(img_dir))

    new = lmdb_dir + ".refresh-new"
    os.makedirs(os.path.join(new, lmdb_save.IMAGE_DIR))
    env = lmdb.open(new, map_size=max(1 << 30, 2 * os.path.getsize(os.path.join(lmdb_dir, "data.mdb"))),
                    subdir=True, sync=False, metasync=False)
    out_lines = []
    kept_records = kept = total = 0
    sample0 = 0
    try:
        with env.begin(write=True) as txn:
            for r, (_key, arrays) in enumerate(records):
                n = batches[r]
                keep = [s for s in range(n) if lmdb_save.image_name(r, s) in present]
                total += n
                if keep:
                    txn.put(lmdb_save.record_key(kept_records),
                            lmdb_save.encode_record([a[keep] for a in arrays]))
                    for j, s in enumerate(keep):
                        os.link(os.path.join(img_dir, lmdb_save.image_name(r, s)),
                                os.path.join(new, lmdb_save.IMAGE_DIR, lmdb_save.image_name(kept_records, j)))
                    if kind == "classification":
                        out_lines.append(",".join(labels[sample0 + s] for s in keep))
                    elif kind == "detection":
                        out_lines.extend(labels[sample0 + s] for s in keep)
                    kept_records += 1
                    kept += len(keep)
                sample0 += n
        env.sync(True)
    finally:
        env.close()
    if kept == 0:
        shutil.rmtree(new)
        raise SystemExit("refresh_lmdb: no image left in %s; nothing would remain (old data kept)" % img_dir)
    if kind is not None:
        with open(os.path.join(new, lmdb_save.LABEL_FILE), "w") as f:
            f.write("".join(ln + "\n" for ln in out_lines))
            f.flush()
            os.fsync(f.fileno())
    if before_swap:
        before_swap()
    old = lmdb_dir + ".refresh-old"
    if _exchange(new, lmdb_dir):
        shutil.rmtree(new)  # now the old data
    else:
        os.rename(lmdb_dir, old)
        os.rename(new, lmdb_dir)
        shutil.rmtree(old)
    log("refresh_lmdb: %s: kept %d of %d samples in %d records" % (lmdb_dir, kept, total, kept_records))
    return kept, total, kept_records


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--lmdb_dir", "--lmdb-dir", required=True, help="the LMDB folder (holds data.mdb)")
    a = ap.parse_args(argv)
    refresh(a.lmdb_dir)
    return 0


if __name__ == "__main__":
    sys.exit(main())
