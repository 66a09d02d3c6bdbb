#!/usr/bin/python3
"""Writes the hand-made seed models of corpus/onnx/ (small stand-ins for the zoo's
CNNs, whose files are too large for a seed corpus). Run with Debian's python3:
    /usr/bin/python3 tests/fuzz/make_seed_models.py tests/fuzz/corpus/onnx
"""
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


def init(name, shape, seed):
    rng = np.random.default_rng(seed)
    return numpy_helper.from_array(rng.standard_normal(shape).astype(np.float32), name)


def tiny_mbv2():
    """Conv -> Clip(Constant 0, 6) -> depthwise Conv -> Add -> GAP -> Flatten -> Gemm, batch 'N'."""
    nodes = [
        helper.make_node("Conv", ["x", "w1", "b1"], ["c1"], name="stem", pads=[1, 1, 1, 1], strides=[2, 2]),
        helper.make_node("Constant", [], ["lo"], value=numpy_helper.from_array(np.array(0, np.float32))),
        helper.make_node("Constant", [], ["hi"], value=numpy_helper.from_array(np.array(6, np.float32))),
        helper.make_node("Clip", ["c1", "lo", "hi"], ["r1"]),
        helper.make_node("Conv", ["r1", "w2"], ["c2"], name="dw", group=4, pads=[1, 1, 1, 1]),
        helper.make_node("Add", ["c2", "r1"], ["s"]),
        helper.make_node("GlobalAveragePool", ["s"], ["p"]),
        helper.make_node("Flatten", ["p"], ["f"], axis=1),
        helper.make_node("Gemm", ["f", "wf", "bf"], ["y"], transB=1),
    ]
    graph = helper.make_graph(
        nodes, "tiny_mbv2",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 1, 8, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 3])],
        [init("w1", (4, 1, 3, 3), 1), init("b1", (4,), 2), init("w2", (4, 1, 3, 3), 3),
         init("wf", (3, 4), 4), init("bf", (3,), 5)])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])


def tiny_detector():
    """Opset 9 with BatchNormalization, Shape/Gather/Unsqueeze/Concat/Reshape, Softmax."""
    bn = [init(n, (4,), i) for i, n in enumerate(["g", "bb", "mean"])]
    bn.append(numpy_helper.from_array(np.ones(4, np.float32), "var"))
    nodes = [
        helper.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1]),
        helper.make_node("BatchNormalization", ["c", "g", "bb", "mean", "var"], ["n"], epsilon=1e-5),
        helper.make_node("Relu", ["n"], ["r"]),
        helper.make_node("Shape", ["r"], ["shp"]),
        helper.make_node("Constant", [], ["i0"], value=numpy_helper.from_array(np.array(0, np.int64))),
        helper.make_node("Gather", ["shp", "i0"], ["b"], axis=0),
        helper.make_node("Unsqueeze", ["b"], ["b1"], axes=[0]),
        helper.make_node("Constant", [], ["rest"], value=numpy_helper.from_array(np.array([-1, 2], np.int64))),
        helper.make_node("Concat", ["b1", "rest"], ["newshape"], axis=0),
        helper.make_node("Reshape", ["r", "newshape"], ["rs"]),
        helper.make_node("Softmax", ["rs"], ["scores"], axis=2),
    ]
    graph = helper.make_graph(
        nodes, "tiny_detector",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 6, 6])],
        [helper.make_tensor_value_info("scores", TensorProto.FLOAT, [1, 72, 2])],
        [init("w", (4, 3, 3, 3), 7)] + bn)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 9)])


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else "."
    for make in (tiny_mbv2, tiny_detector):
        model = make()
        onnx.checker.check_model(model)
        onnx.save(model, f"{out}/{make.__name__}.onnx")


if __name__ == "__main__":
    main()
