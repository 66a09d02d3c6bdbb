"""`autocalib quantize` end to end on the bundled Fashion-MNIST model and Debian's
Fashion-MNIST data: artefacts, report fields, options, and clean failures that leave
--output_dir untouched."""

import json
import os
import subprocess

import pytest

import conftest as h

FMNIST = h.FMNIST_DIR
PP = "mean_value=72.93,scale=0.011109"


def data_args(calib_batches=4, test_batches=8):
    img = os.path.join(FMNIST, "train-images-idx3-ubyte.gz")
    if not os.path.exists(img):
        pytest.skip("%s is absent (Debian package dataset-fashion-mnist)" % img)
    return ["--calib_idx_images", img, "--calib_iterations", str(calib_batches),
            "--test_idx_images", os.path.join(FMNIST, "t10k-images-idx3-ubyte.gz"),
            "--test_idx_labels", os.path.join(FMNIST, "t10k-labels-idx1-ubyte.gz"),
            "--test_iterations", str(test_batches), "--data_preproccess_str", PP,
            "--input_data_shape", "(16,1,28,28)"]


def quantize(ac_bin, model, out, *extra):
    p = subprocess.run([ac_bin, "quantize", "--model", model, "--output_dir", str(out)]
                       + data_args() + list(extra),
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True)
    assert p.returncode >= 0, "killed by signal %d\n%s" % (-p.returncode, p.stderr)
    return p


@pytest.mark.parametrize("name", ["fmnist_plain", "fmnist_resnet", "fmnist_mbv2"])
def test_quantize_writes_artefacts_and_report(ac_bin, tmp_path, name):
    model = os.path.join(h.MODELS, name + ".onnx")
    out = tmp_path / "out"
    p = quantize(ac_bin, model, out)
    assert p.returncode == 0, p.stderr
    assert "artefacts in" in p.stdout
    files = set(os.listdir(out))
    assert {"calibration_table", "qtable", "report.json", name + ".int8.acq"} <= files
    rep = json.load(open(out / "report.json"))
    for key in ("model", "fp32_score", "int8_score", "accept_int8_decay", "met_budget", "strategy",
                "fp32_layers", "int8_model", "evaluations", "elapsed_s", "layers"):
        assert key in rep, key
    assert rep["task"] == "classify"
    assert 0.8 < rep["fp32_score"] <= 1.0
    # The Fashion-MNIST nets lose little in int8 on this chip (spec §11).
    assert rep["fp32_score"] - rep["int8_score"] < 0.03
    assert rep["met_budget"] == (rep["fp32_score"] - rep["int8_score"] <= rep["accept_int8_decay"] + 1e-12)
    assert rep["int8_model"] == name + ".int8.acq"
    convs = [l for l in rep["layers"] if l["op"] == "Conv"]
    assert convs and all(l["mode"] in ("int8", "fp32") for l in rep["layers"])
    for l in convs:
        if l["mode"] == "int8":
            shifts = l["shift"] if isinstance(l["shift"], list) else [l["shift"]]
            assert shifts and all(isinstance(r, int) and 0 <= r <= 31 for r in shifts)
            assert isinstance(l["shift"], list) == rep["strategy"]["per_channel"]
            assert l["threshold"] > 0 and -1.0 <= l["cosine"] <= 1.0 + 1e-9
    # Calibration table: tpu-mlir format, one line per tensor, seven decimals.
    lines = [l for l in open(out / "calibration_table") if l.strip() and not l.startswith("#")]
    assert lines
    for l in lines:
        name_, th, lo, hi = l.split()
        assert float(th) > 0 and float(lo) <= float(hi) and len(th.split(".")[1]) == 7


def test_per_channel_and_forced_fp32_layers(ac_bin, tmp_path):
    model = os.path.join(h.MODELS, "fmnist_plain.onnx")
    base = tmp_path / "base"
    assert quantize(ac_bin, model, base).returncode == 0
    layers = json.load(open(base / "report.json"))["layers"]
    first_conv = next(l for l in layers if l["op"] == "Conv")
    out = tmp_path / "pc"
    p = quantize(ac_bin, model, out, "--no_search", "--per_channel", "--fp32_layers", first_conv["name"],
                 "--th_method", "MAX")
    assert p.returncode == 0, p.stderr
    rep = json.load(open(out / "report.json"))
    assert rep["strategy"]["per_channel"] and rep["strategy"]["th_method"] == "MAX"
    assert first_conv["name"] in rep["fp32_layers"]
    qtable = [l.split() for l in open(out / "qtable") if l.strip() and not l.startswith("#")]
    assert [first_conv["output"], "F32"] in qtable
    other = [l for l in rep["layers"] if l["op"] == "Conv" and l["mode"] == "int8"]
    assert other and all(isinstance(l["shift"], list) for l in other)


def test_bad_input_leaves_output_dir_untouched(ac_bin, tmp_path):
    model = os.path.join(h.MODELS, "fmnist_plain.onnx")
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("previous results")
    cases = [
        (["--th_method", "BOGUS"], "BOGUS", 2),
        (["--fp32_layers", "no_such_layer"], "no_such_layer", 1),
        (["--task", "segment"], "segment", 1),
        (["--input_data_shape", "(16,3,28,28)"], "", 1),
    ]
    for extra, needle, code in cases:
        p = quantize(ac_bin, model, out, *extra)
        assert p.returncode == code, (extra, p.stdout, p.stderr)
        assert needle in p.stderr, (extra, p.stderr)
        assert sorted(os.listdir(out)) == ["keep.txt"], extra
    broken = tmp_path / "broken.onnx"
    broken.write_bytes(open(model, "rb").read()[:500])
    p = quantize(ac_bin, str(broken), out)
    assert p.returncode == 1 and "broken.onnx" in p.stderr
    assert sorted(os.listdir(out)) == ["keep.txt"]
    assert not [f for f in os.listdir(tmp_path) if ".tmp." in f]


def test_search_is_the_default_and_reports_candidates(ac_bin, tmp_path):
    model = os.path.join(h.MODELS, "fmnist_plain.onnx")
    out = tmp_path / "s"
    p = quantize(ac_bin, model, out, "--calib_debug")
    assert p.returncode == 0, p.stderr
    assert "embedded cluster" in p.stdout and "search: round 1" in p.stdout
    rep = json.load(open(out / "report.json"))
    assert rep["search"]["mode"] == "fast"
    # Round 1 screens plain int8 and the 8 single-option variants on the subset (scored by
    # output cosine against fp32). Plain int8 meets the default budget on this model, and so
    # does every plan as cheap: the one with the best screen among the cheapest is evaluated
    # in full, and passes. One full evaluation.
    cands = rep["candidates"]
    screen = [c for c in cands if c["round"] == 1]
    assert len(screen) == 9 and all("subset_score" in c and 0 < c["subset_score"] <= 1 for c in screen), screen
    assert {"baseline (KL, per-tensor)", "KL+per_channel", "MAX"} <= {c["name"] for c in screen}
    full = [c for c in cands if "subset_score" not in c]
    order = screen_order(screen)
    assert len(full) == 1 and full[0]["name"] == order[0]["name"] and full[0]["round"] == 2, (full, order[0])
    assert rep["evaluations"] == 1 and rep["rounds"] == 2 and rep["chosen_candidate"] == cands.index(full[0])
    assert rep["search"]["subset_evaluations"] == 9
    assert all(c["shards"] >= 1 for c in rep["candidates"])
    assert rep["met_budget"] and rep["estimated_cost"] == 1.0
    assert not os.path.exists(out / "journal.acj")  # the finished search replaced the folder
    # A budget nothing meets (a claimed fp32 score no int8 plan reaches): after the screen,
    # the baseline and the options the screen says repair it are evaluated in full in screen
    # order (cheapest first, then best screen), at most two, then their combination(s).
    out2 = tmp_path / "missed"
    p = quantize(ac_bin, model, out2, "--fp32_score", "0.99", "--accept_int8_decay", "0")
    assert p.returncode == 0, p.stderr
    rep = json.load(open(out2 / "report.json"))
    cands = rep["candidates"]
    screen = [c for c in cands if c["round"] == 1]
    assert len(screen) == 9 and screen[0]["name"].startswith("baseline"), screen
    full = [c for c in cands if "subset_score" not in c]
    order = screen_order(screen)
    singles = [c for c in full if c["round"] in (2, 3)]
    assert [c["name"] for c in singles] == [c["name"] for c in order[:2]], (singles, order)
    assert [c["round"] for c in singles] == [2, 3][:len(singles)]
    assert rep["evaluations"] == len(full) and rep["search"]["subset_evaluations"] == 9
    assert not rep["met_budget"]


def screen_order(screen):
    """The order in which fast mode evaluates screened candidates in full: the baseline
    (screen[0]) and the options that screen above it, cheapest first, then best screen."""
    base = screen[0]
    pick = [base] + [c for c in screen[1:] if c["subset_score"] > base["subset_score"] + 1e-12]
    return sorted(pick, key=lambda c: (round(c["cost"], 9), -c["subset_score"], screen.index(c)))


def test_same_plan_and_scores_for_1_and_2_workers_and_single_process(ac_bin, tmp_path):
    model = os.path.join(h.MODELS, "fmnist_resnet.onnx")
    reps = []
    for w in ("1", "2"):
        out = tmp_path / ("w" + w)
        p = quantize(ac_bin, model, out, "--workers", w, "--shard_batches", "2")
        assert p.returncode == 0, p.stderr
        reps.append(json.load(open(out / "report.json")))
    a, b = reps
    assert a["fp32_score"] == b["fp32_score"] and a["int8_score"] == b["int8_score"]
    assert a["strategy"] == b["strategy"] and a["fp32_layers"] == b["fp32_layers"]
    assert [(c.get("int8_score"), c.get("subset_score")) for c in a["candidates"]] == \
        [(c.get("int8_score"), c.get("subset_score")) for c in b["candidates"]]
    assert open(tmp_path / "w1" / "calibration_table").read() == open(tmp_path / "w2" / "calibration_table").read()
    # The single-process job with the chosen strategy gives the same scores.
    out = tmp_path / "single"
    p = quantize(ac_bin, model, out, *h.strategy_args(a["strategy"]))
    assert p.returncode == 0, p.stderr
    c = json.load(open(out / "report.json"))
    assert c["fp32_score"] == a["fp32_score"] and c["int8_score"] == a["int8_score"]
    assert open(out / "calibration_table").read().split("\n")[2:] == \
        open(tmp_path / "w1" / "calibration_table").read().split("\n")[2:]
