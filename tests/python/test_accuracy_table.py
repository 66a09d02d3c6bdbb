"""bench/accuracy_table.py's doc writer: the generated section of docs/accuracy.md comes
from the results JSON alone, replaces the previous one in place (the hand-written sections
around it stay), and judges the goal from the figures."""

import importlib.util
import json
import os

import conftest as h

spec = importlib.util.spec_from_file_location(
    "accuracy_table", os.path.join(h.REPO, "bench", "accuracy_table.py"))
at = importlib.util.module_from_spec(spec)
spec.loader.exec_module(at)


def autocalib_row(score, met, evals, wall):
    return {"tool": "autocalib", "fp32_top1": 0.90, "int8_top1": score, "met_budget": met,
            "estimated_cost": 1.0, "fp32_layers": 0, "search_fp32_layers": 0,
            "chosen": "KL+per_channel", "evaluations": evals, "subset_evaluations": 0,
            "rounds": 1, "wall_s": wall,
            "candidates": [{"name": "baseline (KL, per-tensor)", "round": 1,
                            "int8_score": 0.88, "decided": "fail", "cost": 1.0,
                            "fp32_layers": 0},
                           {"name": "KL+per_channel", "round": 1, "int8_score": score,
                            "decided": "pass", "cost": 1.0, "fp32_layers": 0}]}


def results():
    peer = {"tool": "onnxruntime quantize_static", "method": "MinMax per-channel",
            "int8_top1": 0.898, "evaluations": 1, "wall_s": 2.0}
    nncf = {"tool": "NNCF 3.4.0", "method": "quantize_with_accuracy_control",
            "int8_top1": 0.897, "met_budget": True, "evaluations": 3, "wall_s": 50.0}
    check = {"tool": "check", "method": "m", "int8_top1": 0.999, "evaluations": 1,
             "wall_s": 1.0, "check": True}
    return {"meta": {"command": "bench/run accuracy", "date": "2026-01-01", "machine": "m"},
            "models": {"net": {"file": "models/net.onnx", "n_calib": 300, "n_test": 1000,
                               "fp32_top1": 0.90,
                               "rows": {"autocalib fast": autocalib_row(0.899, True, 2, 10.0),
                                        "ort MinMax per-channel": peer,
                                        "nncf accuracy control": nncf,
                                        "inc int8 symmetric check": check,
                                        "inc autotune": {"tool": "inc autotune",
                                                         "error": "SystemExit: 0"}}}}}


def test_section_replaced_in_place(tmp_path):
    doc = tmp_path / "accuracy.md"
    doc.write_text("# Accuracy\n\nhand-written\n")
    r = results()
    at.write_markdown(r, str(doc))
    first = doc.read_text()
    at.write_markdown(r, str(doc))
    assert doc.read_text() == first  # regenerating changes nothing
    doc.write_text(first + "\n## Later section\n\nkept\n")
    at.write_markdown(r, str(doc))
    text = doc.read_text()
    assert text.startswith("# Accuracy\n\nhand-written\n")
    assert text.count(at.BEGIN) == 1 and text.count(at.END) == 1
    assert text.endswith("## Later section\n\nkept\n")


def test_summary_figures():
    text = at.markdown(results())
    summary = [line for line in text.splitlines() if line.startswith("| net |")]
    assert len(summary) == 1
    line = summary[0]
    # the check row is not a peer result; the best peer is quantize_static at 0.2 pts
    assert "onnxruntime quantize_static: MinMax per-channel (0.20 pts)" in line
    assert "-0.10 (fast)" in line  # autocalib 0.1 pts lost, 0.1 less than the best peer
    assert "budget met; vs NNCF: fewer evals, less time (our command" in line
    assert "could not run: SystemExit: 0" in text  # a failed peer is listed with its reason
    assert "not run in this regeneration" in text  # auto mode absent


def test_detector_section_and_screened_rows():
    r = results()
    fast = autocalib_row(0.38, False, 4, 11.0)
    fast["candidates"].insert(1, {"name": "KL+per_channel", "round": 2, "int8_score": None,
                                  "decided": None, "cost": 1.0, "fp32_layers": 0,
                                  "subset_score": 0.98917})
    peer = {"tool": "onnxruntime quantize_static", "method": "MinMax per-tensor", "int8_top1": 0.25,
            "evaluations": 1, "wall_s": 1.0}
    check = {"tool": "cross-check", "python_score": 0.38, "autocalib_score": 0.38, "equal": True,
             "peer_model": "face.opset13.onnx", "opset_diff": 0.0}
    options = {"tool": "autocalib options", "options": [
        {"name": "baseline (KL, per-tensor)", "fp32_top1": 1.0, "int8_top1": 0.38,
         "met_budget": False, "cost": 1.0, "wall_s": 7.0}]}
    r["models"]["face"] = {"kind": "detect", "file": "zoo/face.onnx", "n_calib": 24,
                           "n_test": 24, "fp32_top1": 1.0,
                           "rows": {"autocalib fast": fast, "ort MinMax per-tensor": peer,
                                    "autocalib cross-check": check, "autocalib options": options}}
    text = at.markdown(r)
    # a detector is not a classifier: no summary line, its own section with mAP columns
    assert not [line for line in text.splitlines() if line.startswith("| face |")]
    section = text.split("### face (detector)", 1)[1].split("### Not run", 1)[0]
    assert "int8 mAP %" in section and "against the fp32 model's own" in section
    # the peers' rows, scored in Python, and the check that the Python score is autocalib's
    assert "| onnxruntime quantize_static | MinMax per-tensor | 25.00 | 75.00 | no | 1 (0) | — / 1 |" in section
    assert "give 0.3800000000; autocalib reported 0.3800000000 (equal)" in section
    assert "converted to ONNX opset 13" in section
    # each single option by itself, outside the search
    assert ("| autocalib, one option by itself | baseline (KL, per-tensor) | 38.00 | 62.00 | no | 1 (0) "
            "| — / 7 | cost 1.00; `--no_search`, outside the search |") in section
    # a subset screen has a cosine, not a decision
    assert ("| autocalib fast, round 2 | KL+per_channel | — | — | screened | — | — | cost 1.00; "
            "mean output cosine on the subset 0.98917 |") in section
    assert "None" not in section


def test_evaluation_verdicts():
    assert at.evals_verdict(2, 3) == "fewer"
    assert at.evals_verdict(1, 1) == "**not fewer** (1 = 1, the least possible)"
    assert at.evals_verdict(12, 9) == "**not fewer** (12 vs 9)"
    # a plan dearer than plain int8 needs a cheaper plan seen to miss first: 2 at least
    assert at.evals_verdict(2, 2, 2) == "**not fewer** (2 = 2, the least possible for a plan dearer than plain int8)"
    assert at.evals_verdict(2, 2) == "**not fewer** (2 vs 2)"
    assert at.least_evaluations({"estimated_cost": 1.11}) == 2
    assert at.least_evaluations({"estimated_cost": 1.0}) == 1


def test_goal_cell_does_not_rank_against_a_peer_that_missed_the_budget():
    ours = {"met_budget": True, "evaluations": 2, "wall_s": 110.0}
    nncf = {"met_budget": True, "evaluations": 2, "wall_s": 299.0}
    inc = {"met_budget": False, "evaluations": 6, "wall_s": 63.0}
    cell = at.goal_cell(ours, [("NNCF", nncf), ("INC", inc)])
    assert cell == ("budget met; vs NNCF: **not fewer** (2 vs 2) evals, less time (our command 110.0 s "
                    "vs its call 299.0 s); vs INC: it missed the budget (6 evals, 63 s)")
    # When both miss, the effort is still compared.
    ours_missed = dict(ours, met_budget=False)
    assert "vs INC: fewer evals, **not less** time" in at.goal_cell(ours_missed, [("INC", inc)])


def test_time_goal_compares_whole_commands_where_measured():
    """A peer's call (data in memory) is shorter than its whole command; autocalib's
    seconds are its whole command, so the goal compares that to the peer's command."""
    ours = {"met_budget": True, "evaluations": 1, "wall_s": 3.0}
    inc = {"met_budget": True, "evaluations": 1, "wall_s": 1.5, "command_s": 4.2}
    assert at.goal_cell(ours, [("INC", inc)]) == (
        "budget met; vs INC: **not fewer** (1 = 1, the least possible) evals, "
        "less time (whole commands 3.0 vs 4.2 s)")
    # within 10 %, the order of two single measurements is not a verdict
    close = dict(inc, command_s=3.1)
    assert "**about the same** time (whole commands 3.0 vs 3.1 s, within 10 %)" in at.goal_cell(ours, [("INC", close)])
    assert at.peer_secs(inc) == "2 (whole command 4)"
    assert at.peer_secs(inc, " s") == "2 s (whole command 4 s)"
    assert at.peer_secs({"wall_s": 1.5}, " s") == "2 s"
    # The child's clock time at the call's return, less the launch time, replaces done_at.
    rows = at.with_command_time({"inc autotune": {"wall_s": 1.5, "done_at": 1004.25}}, 1000.0)
    assert rows == {"inc autotune": {"wall_s": 1.5, "command_s": 4.25}}


def test_python_detection_score_is_autocalibs(tmp_path):
    """The table scores the peers' detectors in Python (DetectScore: autocalib's decoder,
    NMS and mAP through metrics/ac_metric_tool). On autocalib's own int8 model and fp32
    model, run by `autocalib run`, it must give the score autocalib reported."""
    import subprocess
    name = "ultraface_rfb320"
    d = at.DETECTORS[name]
    model, images, preprocess, decoder = h.zoo_file(d.model), h.zoo_file(d.images), d.preprocess, d.decoder
    for tool in ("autocalib", "metric"):
        if not os.access(at.ac_tool(tool), os.X_OK):
            import pytest
            pytest.skip("%s not built" % at.ac_tool(tool))
    out = tmp_path / "q"
    p = subprocess.run([at.ac_tool("autocalib"), "quantize", "--model", model,
                        "--calib_image_source", images, "--test_image_source", images,
                        "--data_preproccess_str", preprocess, "--task", "detect",
                        "--detect_decoder", decoder, "--no_search", "--output_dir", str(out),
                        "--quiet"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       universal_newlines=True)
    assert p.returncode in (0, 2), p.stderr
    rep = json.load(open(out / "report.json"))
    x = at.dumped_inputs(str(tmp_path), name)
    assert x.shape == (24, 3, 240, 320)
    import onnx
    names = [o.name for o in onnx.load(model).graph.output]
    int8 = os.path.join(str(out), rep["int8_model"]) if not os.path.isabs(rep["int8_model"]) \
        else rep["int8_model"]
    outs = {tag: [at.autocalib_outputs(m, names, x[i:i + 1], str(tmp_path / tag))[0]
                  for i in range(len(x))] for tag, m in (("fp32", model), ("int8", int8))}
    score = at.DetectScore(decoder, outs["fp32"], str(tmp_path)).score(outs["int8"])
    assert 0.2 < score < 1 and abs(score - rep["int8_score"]) <= 1e-9, (score, rep["int8_score"])
    # the fp32 model against itself scores 1
    assert at.DetectScore(decoder, outs["fp32"], str(tmp_path)).score(outs["fp32"]) == 1.0


def test_test_set_passes():
    """Full evaluations count 1 and subset ones their share of the test set; NNCF's recorded
    validation calls count item by item, its fp32 call left out."""
    ours = {"tool": "autocalib", "evaluations": 2, "subset_evaluations": 73}
    assert abs(at.test_set_passes(ours, 1000) - (2 + 73 * 0.256)) < 1e-9
    assert at.test_set_passes(ours, 100) == 2 + 73  # a subset as large as the test set
    nncf = {"tool": "NNCF", "evaluations": 2, "validation_sizes": [1, 1000, 1000, 300, 300, 1000]}
    assert abs(at.test_set_passes(nncf, 1000) - 2.601) < 1e-9  # its 1-item check call too
    assert at.test_set_passes({"tool": "INC", "evaluations": 6}, 1000) is None
    assert "= 20.7 test-set passes" in at.evals_text(ours, 1000)


def test_models_keep_the_scripts_order_after_a_rerun():
    results = {"models": {"mobilenet_v2": {}, "yolo_fastest_1.1": {}, "old_model": {},
                          "fmnist_plain": {}, "ultraface_rfb320": {}}}
    names = [n for n, _ in at.ordered_models(results)]
    assert names == ["fmnist_plain", "mobilenet_v2", "ultraface_rfb320", "yolo_fastest_1.1", "old_model"]


def test_peer_model_text_says_whether_the_file_was_converted():
    exported = at.peer_model_text("yolo_fastest_1.1", {"peer_model": "y.onnx", "zoo_opset": 13})
    assert "autocalib export-onnx" in exported and "as it is" in exported and "converted" not in exported
    converted = at.peer_model_text("ultraface_rfb320", {"peer_model": "u.opset13.onnx", "zoo_opset": 9,
                                                        "opset_diff": 0.0})
    assert "converted to ONNX opset 13" in converted and "the zoo file is opset 9" in converted
