#!/usr/bin/env python3
"""PyTorch -> ONNX for autocalib (docs/importers.md, "PyTorch").

    export_pytorch.py MODEL --input_shape S --output OUT.onnx [--weights STATE_DICT] [--opset N]

MODEL is either
  - a TorchScript file (torch.jit.save: .pt/.pth/.torchscript), loaded with torch.jit.load, or
  - `module.py:ClassName`: the class is imported from that file and built with no
    arguments; --weights names a state dict (torch.save(model.state_dict())) to load
    into it (strict: every key must match).
S is one shape per input: "1,3,224,224" or "(1,3,224,224),(1,10)". The model is
traced/exported on zero inputs of those shapes with the user's torch (torch.onnx.export,
the TorchScript-based exporter), in eval mode, at a fixed batch (no dynamic axes), so the
ONNX graph has the shapes the C importer will run.

autocalib runs this script (never links Python): `autocalib export-pytorch` and
`--model X.pt` spawn it. Errors go to stderr as one line and exit status 2 (bad
arguments, unreadable model) or 3 (the export itself failed)."""

import argparse
import importlib.util
import os
import re
import sys


def fail(code, msg):
    sys.stderr.write("export_pytorch: %s\n" % msg)
    sys.exit(code)


def parse_shapes(text):
    """'1,3,32,32' or '(1,3,32,32),(1,10)' or with brackets/semicolons -> [[1,3,32,32],...]"""
    text = re.sub(r"\s+", "", text)
    groups = re.findall(r"[\(\[]([0-9,]*)[\)\]]", text) if re.search(r"[\(\[]", text) else [text]
    shapes = []
    for g in groups:
        if not g:
            continue
        try:
            dims = [int(d) for d in g.split(",") if d != ""]
        except ValueError:
            fail(2, "--input_shape '%s': dims must be integers" % text)
        if not dims or any(d <= 0 for d in dims):
            fail(2, "--input_shape '%s': every dim must be a positive integer" % text)
        shapes.append(dims)
    if not shapes:
        fail(2, "--input_shape '%s': no shape given" % text)
    return shapes


def load_module(spec, weights, torch):
    path, _, cls_name = spec.rpartition(":")
    if not os.path.isfile(path):
        fail(2, "%s: no such module file (MODEL is module.py:ClassName)" % path)
    modspec = importlib.util.spec_from_file_location("ac_user_model", path)
    mod = importlib.util.module_from_spec(modspec)
    sys.path.insert(0, os.path.dirname(os.path.abspath(path)))
    try:
        modspec.loader.exec_module(mod)
    except Exception as e:  # the user's code: report, do not trace back
        fail(2, "%s: importing the module failed: %s: %s" % (path, type(e).__name__, e))
    cls = getattr(mod, cls_name, None)
    if cls is None:
        fail(2, "%s: has no class '%s'" % (path, cls_name))
    try:
        model = cls()
    except Exception as e:
        fail(2, "%s: %s() failed (the class must be constructible without arguments): %s"
             % (path, cls_name, e))
    if weights:
        try:
            state = torch.load(weights, map_location="cpu")
        except Exception as e:
            fail(2, "%s: cannot read the state dict: %s" % (weights, e))
        if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
            state = state["state_dict"]
        try:
            model.load_state_dict(state, strict=True)
        except Exception as e:
            fail(2, "%s: does not fit %s: %s" % (weights, cls_name, str(e).splitlines()[0]))
    return model


def load_model(model, weights, torch):
    if ":" in os.path.basename(model) and model.rpartition(":")[0].endswith(".py"):
        return load_module(model, weights, torch)
    if weights:
        fail(2, "%s: --weights goes with module.py:ClassName; a TorchScript file holds its weights"
             % model)
    if not os.path.isfile(model):
        fail(2, "%s: no such file" % model)
    try:
        return torch.jit.load(model, map_location="cpu")
    except Exception as e:
        msg = str(e).strip().splitlines()
        fail(2, "%s: not a TorchScript file (torch.jit.load: %s); save the model with "
             "torch.jit.save(torch.jit.script(m) or torch.jit.trace(m, x)), or pass "
             "module.py:ClassName --weights state_dict.pt" % (model, msg[0] if msg else type(e).__name__))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("model")
    ap.add_argument("--input_shape", required=True)
    ap.add_argument("--output", "-o", required=True)
    ap.add_argument("--weights")
    ap.add_argument("--opset", type=int, default=13)
    a = ap.parse_args()
    shapes = parse_shapes(a.input_shape)
    try:
        import torch
    except ImportError:
        fail(2, "torch is not installed for %s (Debian: apt install python3-torch)" % sys.executable)
    model = load_model(a.model, a.weights, torch)
    model.eval()
    args = tuple(torch.zeros(*s, dtype=torch.float32) for s in shapes)
    names = ["input"] if len(shapes) == 1 else ["input%d" % i for i in range(len(shapes))]
    try:
        with torch.no_grad():
            torch.onnx.export(model, args if len(args) > 1 else args[0], a.output,
                              input_names=names, opset_version=a.opset,
                              do_constant_folding=True)
    except Exception as e:
        msg = str(e).strip().splitlines()
        fail(3, "%s: torch.onnx.export failed: %s" % (a.model, msg[0] if msg else type(e).__name__))
    return 0


if __name__ == "__main__":
    sys.exit(main())
