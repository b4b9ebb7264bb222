"""``make_model()``: the one place the CNN is defined (keras-io style).

Preprocessing travels inside the model: it takes raw gray pixels 0..255 (float), so the int8
export's input quantization is exactly "uint8 - 128" and the edge needs no scaling code.
Augmentation layers are inside too; Keras runs them only when training.
"""
from __future__ import annotations

import functools
from pathlib import Path

from edge.machine import cpu_flags
from trainer.hparams import HParams, load_run_hparams


def custom_objects() -> dict:
    """What ``keras.models.load_model`` needs to read a saved moodcam model."""
    return {"RandomErase": _random_erase_class(), "InputBlur": _input_blur_class()}


def _augmenter(hp: HParams):
    import keras

    layers = []
    if hp.flip:
        layers.append(keras.layers.RandomFlip("horizontal"))
    if hp.rotation_deg:
        layers.append(keras.layers.RandomRotation(hp.rotation_deg / 360.0, fill_mode="nearest"))
    if hp.zoom:
        layers.append(keras.layers.RandomZoom(hp.zoom, fill_mode="nearest"))
    if hp.shift:
        layers.append(keras.layers.RandomTranslation(hp.shift, hp.shift, fill_mode="nearest"))
    if hp.brightness:
        layers.append(keras.layers.RandomBrightness(hp.brightness, value_range=(0, 255)))
    if hp.contrast:
        layers.append(keras.layers.RandomContrast(hp.contrast))
    if hp.erase:
        layers.append(RandomErase(hp.erase))
    return keras.Sequential(layers, name="augment")


@functools.cache
def _random_erase_class():
    import keras
    import tensorflow as tf

    @keras.saving.register_keras_serializable(package="moodcam")
    class RandomErase(keras.layers.Layer):
        """Cutout: with probability ``rate`` blank a random rectangle (1/8..1/3 of the side)."""

        def __init__(self, rate: float = 0.25, **kwargs):
            super().__init__(**kwargs)
            self.rate = rate

        def call(self, images, training=None):
            if not training:
                return images
            shape = tf.shape(images)
            n, h, w = shape[0], shape[1], shape[2]
            size = tf.cast(tf.cast(h, tf.float32) * tf.random.uniform([n, 1, 1, 1], 0.125, 0.33), tf.int32)
            cy = tf.random.uniform([n, 1, 1, 1], 0, h, dtype=tf.int32)
            cx = tf.random.uniform([n, 1, 1, 1], 0, w, dtype=tf.int32)
            ys = tf.reshape(tf.range(h), [1, -1, 1, 1])
            xs = tf.reshape(tf.range(w), [1, 1, -1, 1])
            inside = (tf.abs(ys - cy) <= size // 2) & (tf.abs(xs - cx) <= size // 2)
            apply = tf.random.uniform([n, 1, 1, 1]) < self.rate
            mean = tf.reduce_mean(images, axis=[1, 2, 3], keepdims=True)
            return tf.where(inside & apply, mean, images)

        def get_config(self):
            return super().get_config() | {"rate": self.rate}

    return RandomErase


def RandomErase(rate: float):  # noqa: N802 - reads like the layer it builds
    return _random_erase_class()(rate)


@functools.cache
def _input_blur_class():
    import keras
    import numpy as np

    @keras.saving.register_keras_serializable(package="moodcam")
    class InputBlur(keras.layers.Layer):
        """A fixed Gaussian blur (borders mirrored), put in front of a trained model for prediction:
        see ``HParams.input_blur`` for why. Converts to TFLite MIRROR_PAD + DEPTHWISE_CONV_2D."""

        def __init__(self, sigma: float = 0.6, **kwargs):
            # float32 whatever the global policy: blurred in bfloat16, the 0..255 pixels would keep
            # only 8 significant bits before the int8 input quantization
            kwargs.setdefault("dtype", "float32")
            kwargs["trainable"] = False
            super().__init__(**kwargs)
            self.sigma = float(sigma)
            self.radius = max(1, int(np.ceil(3.0 * self.sigma)))
            taps = np.exp(-0.5 * (np.arange(-self.radius, self.radius + 1) / self.sigma) ** 2)
            taps /= taps.sum()
            self.kernel = np.outer(taps, taps).astype(np.float32)[:, :, None, None]

        def call(self, images):
            r = self.radius
            padded = keras.ops.pad(images, [[0, 0], [r, r], [r, r], [0, 0]], mode="symmetric")
            return keras.ops.depthwise_conv(padded, keras.ops.convert_to_tensor(self.kernel), padding="valid")

        def get_config(self):
            return super().get_config() | {"sigma": self.sigma}

    return InputBlur


def InputBlur(sigma: float):  # noqa: N802 - reads like the layer it builds
    return _input_blur_class()(sigma)


def inference_model(model, input_blur: float = 0.0):
    """A copy of ``model`` for prediction, sharing its weights: without the augmentation block
    (a no-op at inference anyway, but some of its random ops have no int8 TFLite kernel) and,
    with ``input_blur`` > 0, with an :func:`InputBlur` of that sigma in front."""
    import keras

    inputs = keras.Input(model.input_shape[1:], name="gray")
    x = InputBlur(input_blur)(inputs) if input_blur > 0 else inputs
    for layer in model.layers[1:]:
        if layer.name == "augment":
            continue
        x = layer(x)
    return keras.Model(inputs, x, name=model.name)


def load_for_inference(keras_file: Path, input_blur: float | None = None):
    """A saved ``.keras`` model ready to predict or export: float32 (see :func:`as_float32`),
    no augmentation, and the input blur of the run it belongs to (its ``hparams.json``; a bare
    file gets the default), or ``input_blur`` when given. The blur is never applied in training,
    so it can be chosen after a run ends, on its validation faces."""
    import keras

    keras_file = Path(keras_file)
    hp = load_run_hparams(keras_file.parent) if (keras_file.parent / "hparams.json").is_file() else HParams()
    model = as_float32(keras.models.load_model(keras_file, custom_objects=custom_objects(), compile=False))
    return inference_model(model, hp.input_blur if input_blur is None else input_blur)


def make_model(hp: HParams = HParams(), num_classes: int = 7):
    """The expression CNN: VGG-style conv blocks, BatchNorm, global average pooling.

    Sized for the Pi: under a million parameters (under 1 MB as int8) and about 100 M
    multiply-adds per face with the default widths.
    """
    import keras

    inputs = keras.Input((hp.input_size, hp.input_size, 1), name="gray")
    augment = _augmenter(hp)
    x = augment(inputs) if augment.layers else inputs
    x = keras.layers.Rescaling(1.0 / 127.5, offset=-1.0, name="to_unit")(x)
    for block, (width, convs) in enumerate(zip(hp.widths, hp.convs_per_block)):
        last = block == len(hp.widths) - 1
        for conv in range(convs):
            x = keras.layers.Conv2D(width, 3, padding="same", use_bias=False, name=f"b{block}c{conv}")(x)
            x = keras.layers.BatchNormalization(name=f"b{block}n{conv}")(x)
            x = keras.layers.ReLU(name=f"b{block}r{conv}")(x)
        if not last:
            x = keras.layers.MaxPooling2D(2, name=f"b{block}pool")(x)
    x = keras.layers.GlobalAveragePooling2D(name="gap")(x)
    x = keras.layers.Dropout(hp.dropout, name="dropout")(x)
    # float32 softmax even under mixed precision: bf16 probabilities are too coarse for the loss
    outputs = keras.layers.Dense(num_classes, activation="softmax", name="probs", dtype="float32")(x)
    return keras.Model(inputs, outputs, name="moodcam_cnn")


def resolve_precision(precision: str) -> str:
    """The Keras dtype policy for ``HParams.precision`` on this machine."""
    if precision != "auto":
        return precision
    # Only where bf16 runs in hardware; emulated it is about 12x slower than float32
    # (bench/train_throughput.py on an AVX2-only EPYC: 10 against 122 faces/s).
    return "mixed_bfloat16" if cpu_flags() & {"amx_bf16", "avx512_bf16"} else "float32"


def as_float32(model):
    """A float32 copy of a model trained under mixed precision (same weights); export and
    evaluation work in float32 so the int8 conversion sees no bf16 casts."""
    import keras

    policies = {layer.dtype_policy.name for layer in _all_layers(model)}
    if policies <= {"float32"}:
        return model

    def clone(layer):
        config = layer.get_config()
        config["dtype"] = "float32"
        if isinstance(layer, keras.Sequential):  # the augmentation block: its layers carry their own dtype
            config["layers"] = [_float32_layer_config(c) for c in config["layers"]]
        return layer.__class__.from_config(config)

    copy = keras.models.clone_model(model, clone_function=clone)
    copy.set_weights(model.get_weights())
    return copy


def _float32_layer_config(serialized: dict) -> dict:
    serialized = dict(serialized)
    serialized["config"] = dict(serialized["config"], dtype="float32")
    return serialized


def _all_layers(model):
    for layer in model.layers:
        yield layer
        if hasattr(layer, "layers"):
            yield from _all_layers(layer)
