"""Builds and freezes the TensorFlow test models for test_tensorflow.py, and TF's outputs.

Runs in the TensorFlow venv (.venv-tf: `python3 -m venv .venv-tf && .venv-tf/bin/pip
install -r python/requirements-tf.txt`; it is separate from .venv because tensorflow
pulls numpy 2 and a newer protobuf, which Debian's torch in .venv cannot use).

    tf_make_models.py OUTDIR

writes, per model NAME: NAME.pb (a frozen GraphDef: convert_variables_to_constants_v2),
NAME_in.npy (a random NHWC input), NAME_out<i>.npy (TF's outputs on it, in the order of
NAME.json's "outputs": the names of the frozen graph's output nodes).

- mobilenetv2: Keras MobileNetV2 (alpha 0.35, 96x96, 10 classes) with random weights and
  random batch-norm statistics (so BN is not the identity), as Keras freezes it: BN as
  Rsqrt/Mul/Sub/AddV2 over constants, ZeroPadding2D as Pad, the head as Mean + MatMul +
  BiasAdd + Softmax.
- smallnet: raw tf ops for what Keras does not emit: Conv2D SAME/VALID strided and
  dilated + BiasAdd, FusedBatchNormV3, Relu, MaxPool/AvgPool (SAME and VALID),
  DepthwiseConv2dNative with a channel multiplier, ConcatV2 on channels, Pad, nearest and
  bilinear resizes in TF's three coordinate modes, Sigmoid, a Mul of two activations,
  Mean with keep_dims, Reshape, MatMul, Squeeze and two outputs (one 4-D NHWC).
- badop: Cumsum, which the importer does not support (the error must name node and op).
"""

import json
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np
import tensorflow as tf
from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2


def freeze(fn, shape, outdir, name, x):
    conc = tf.function(fn).get_concrete_function(tf.TensorSpec(shape, tf.float32, name="input"))
    frozen = convert_variables_to_constants_v2(conc)
    gd = frozen.graph.as_graph_def()
    with open(os.path.join(outdir, name + ".pb"), "wb") as f:
        f.write(gd.SerializeToString())
    outs = frozen(tf.constant(x))
    if not isinstance(outs, (list, tuple)):
        outs = [outs]
    names = [t.name.split(":")[0] for t in frozen.outputs]
    np.save(os.path.join(outdir, name + "_in.npy"), x)
    for i, o in enumerate(outs):
        np.save(os.path.join(outdir, "%s_out%d.npy" % (name, i)), o.numpy())
    ops = sorted({n.op for n in gd.node})
    with open(os.path.join(outdir, name + ".json"), "w") as f:
        json.dump({"outputs": names, "ops": ops, "shape": list(shape)}, f)


def mobilenetv2(outdir, rng):
    tf.keras.utils.set_random_seed(1)
    m = tf.keras.applications.MobileNetV2(input_shape=(96, 96, 3), weights=None, classes=10, alpha=0.35)
    for layer in m.layers:
        if isinstance(layer, tf.keras.layers.BatchNormalization):
            c = layer.moving_mean.shape[0]
            layer.moving_mean.assign(rng.uniform(-0.3, 0.3, c).astype(np.float32))
            layer.moving_variance.assign(rng.uniform(0.5, 2.0, c).astype(np.float32))
            layer.gamma.assign(rng.uniform(0.7, 1.3, c).astype(np.float32))
            layer.beta.assign(rng.uniform(-0.2, 0.2, c).astype(np.float32))
    x = rng.uniform(-1, 1, (1, 96, 96, 3)).astype(np.float32)
    freeze(lambda t: m(t, training=False), [1, 96, 96, 3], outdir, "mobilenetv2", x)


def smallnet(outdir, rng):
    def w(*shape, scale=0.3):
        return tf.constant(rng.uniform(-scale, scale, shape).astype(np.float32))

    k1, b1 = w(3, 3, 3, 8), w(8)
    bn = [tf.constant(rng.uniform(0.7, 1.3, 8).astype(np.float32)), w(8),
          w(8), tf.constant(rng.uniform(0.5, 2.0, 8).astype(np.float32))]
    dw = w(3, 3, 8, 2)
    k2 = w(1, 1, 16, 8)
    k3 = w(3, 3, 8, 8)
    k4 = w(3, 3, 24, 6)
    fc, fcb = w(6, 5), w(5)

    def fn(x):
        y = tf.nn.bias_add(tf.nn.conv2d(x, k1, strides=1, padding="SAME"), b1)
        y, _, _ = tf.compat.v1.nn.fused_batch_norm(y, bn[0], bn[1], mean=bn[2], variance=bn[3],
                                                   epsilon=1e-3, is_training=False)
        y = tf.nn.relu(y)
        p = tf.nn.max_pool2d(y, 3, 2, "SAME")                        # 16 -> 8
        d = tf.nn.relu6(tf.nn.depthwise_conv2d(p, dw, [1, 1, 1, 1], "SAME"))  # 16 channels
        d = tf.nn.conv2d(d, k2, strides=1, padding="VALID")          # 8 channels
        a = tf.nn.avg_pool2d(tf.pad(p, [[0, 0], [1, 1], [1, 1], [0, 0]]), 3, 1, "VALID")
        s = tf.sigmoid(tf.nn.conv2d(p, k3, strides=1, padding="SAME", dilations=2))
        c = tf.concat([d * s, a, tf.nn.avg_pool2d(p, 2, 1, "SAME")], axis=3)   # 24 channels
        up1 = tf.compat.v1.image.resize_nearest_neighbor(c, [13, 11])
        up2 = tf.compat.v1.image.resize_bilinear(c, [13, 11], half_pixel_centers=True)
        up3 = tf.compat.v1.image.resize_bilinear(c, [13, 11], align_corners=True)
        up4 = tf.compat.v1.image.resize_nearest_neighbor(c, [16, 16], half_pixel_centers=True)
        up = up1 + up2 - up3
        z = tf.nn.conv2d(up, k4, strides=2, padding="SAME")           # 7x6x6
        m = tf.reduce_mean(z, axis=[1, 2], keepdims=True)            # 1x1x1x6
        v = tf.squeeze(tf.reshape(m, [1, 1, 6]), axis=[1])
        logits = tf.matmul(v, fc) + fcb
        return tf.nn.softmax(logits), tf.nn.max_pool2d(up4, 2, 2, "VALID")

    x = rng.uniform(-1, 1, (1, 16, 16, 3)).astype(np.float32)
    freeze(fn, [1, 16, 16, 3], outdir, "smallnet", x)


def badop(outdir, rng):
    """A graph with an op the importer lacks (Cumsum), for the error message."""
    x = rng.uniform(-1, 1, (1, 4, 4, 3)).astype(np.float32)
    freeze(lambda t: tf.nn.relu(tf.math.cumsum(t, axis=3)), [1, 4, 4, 3], outdir, "badop", x)


def main():
    outdir = sys.argv[1]
    os.makedirs(outdir, exist_ok=True)
    rng = np.random.RandomState(5)
    smallnet(outdir, rng)
    badop(outdir, rng)
    mobilenetv2(outdir, rng)
    return 0


if __name__ == "__main__":
    sys.exit(main())
