import keras
import numpy as np
import pytest
from conftest import to_numpy

from keras_dcgan import build_generator
from keras_dcgan.layers import Conv2DTranspose as SubPixelConv2DTranspose
from keras_dcgan.layers import Dropout

# Forward and backward passes agree with keras.layers.Conv2DTranspose within
# this absolute tolerance, on values of order 1.
TOLERANCE = 1e-5

CASES = [
    # kernel_size, strides, input side, in channels, filters, use_bias
    (5, 2, 7, 8, 4, False),
    (5, 2, 4, 3, 6, True),
    (4, 2, 5, 3, 2, True),
    (3, 3, 4, 2, 2, False),
    (2, 2, 3, 2, 3, False),
]


def gradients(layer, kernel, inputs, weights):
    """Gradients of sum(weights * layer(inputs)) for the kernel and inputs."""
    backend = keras.backend.backend()
    if backend == "jax":
        import jax

        def loss(kernel_value, inputs_value):
            values = [kernel_value] + [
                v.value for v in layer.trainable_variables[1:]
            ]
            outputs, _ = layer.stateless_call(values, [], inputs_value)
            return keras.ops.sum(outputs * weights)

        return jax.grad(loss, argnums=(0, 1))(kernel.value, inputs)
    if backend == "torch":
        import torch

        inputs = torch.tensor(inputs, requires_grad=True)
        loss = torch.sum(layer(inputs) * torch.as_tensor(weights))
        return torch.autograd.grad(loss, [kernel.value, inputs])
    import tensorflow as tf

    inputs = tf.convert_to_tensor(inputs)
    with tf.GradientTape() as tape:
        tape.watch(inputs)
        loss = tf.reduce_sum(layer(inputs) * weights)
    return tape.gradient(loss, [kernel.value, inputs])


def sub_pixel_on_every_backend(layer, monkeypatch):
    # On TensorFlow the layer runs the parent's computation; force the
    # sub-pixel one so that its arithmetic is checked there too.
    monkeypatch.setattr(
        SubPixelConv2DTranspose, "call", SubPixelConv2DTranspose._sub_pixel_call
    )


@pytest.mark.parametrize(
    "kernel_size, strides, side, channels, filters, use_bias", CASES
)
def test_matches_conv2d_transpose(
    kernel_size, strides, side, channels, filters, use_bias, monkeypatch
):
    arguments = dict(strides=strides, padding="same", use_bias=use_bias)
    reference = keras.layers.Conv2DTranspose(filters, kernel_size, **arguments)
    sub_pixel = SubPixelConv2DTranspose(filters, kernel_size, **arguments)
    rng = np.random.default_rng(0)
    inputs = rng.standard_normal((2, side, side, channels)).astype("float32")
    reference.build(inputs.shape)
    sub_pixel.build(inputs.shape)
    assert sub_pixel._phase_plan is not None
    weights = [
        rng.standard_normal(w.shape).astype("float32")
        for w in reference.weights
    ]
    reference.set_weights(weights)
    sub_pixel.set_weights(weights)
    sub_pixel_on_every_backend(sub_pixel, monkeypatch)

    expected = to_numpy([reference(inputs)])[0]
    actual = to_numpy([sub_pixel(inputs)])[0]
    assert actual.shape == (2, side * strides, side * strides, filters)
    np.testing.assert_allclose(actual, expected, atol=TOLERANCE, rtol=0)

    output_weights = rng.standard_normal(expected.shape).astype("float32")
    expected_grads = gradients(
        reference, reference.kernel, inputs, output_weights
    )
    actual_grads = gradients(
        sub_pixel, sub_pixel.kernel, inputs, output_weights
    )
    for name, expected_grad, actual_grad in zip(
        ("kernel", "inputs"), expected_grads, actual_grads
    ):
        scale = max(1.0, float(np.abs(to_numpy([expected_grad])[0]).max()))
        np.testing.assert_allclose(
            to_numpy([actual_grad])[0] / scale,
            to_numpy([expected_grad])[0] / scale,
            atol=TOLERANCE,
            rtol=0,
            err_msg=f"gradient of the {name}",
        )


def test_unsupported_configuration_uses_parent():
    layer = SubPixelConv2DTranspose(2, 5, strides=1, padding="same")
    layer.build((None, 4, 4, 1))
    assert layer._phase_plan is None
    valid = SubPixelConv2DTranspose(2, 5, strides=2, padding="valid")
    valid.build((None, 4, 4, 1))
    assert valid._phase_plan is None
    assert tuple(valid(np.ones((1, 4, 4, 1), "float32")).shape) == (
        1,
        11,
        11,
        2,
    )


def test_weights_interchange_with_conv2d_transpose(tmp_path):
    generator = build_generator(
        latent_dim=4, image_shape=(8, 8, 1), base_filters=2
    )
    plain = keras.models.clone_model(
        generator,
        clone_function=lambda layer: (
            keras.layers.Conv2DTranspose.from_config(layer.get_config())
            if isinstance(layer, SubPixelConv2DTranspose)
            else layer.__class__.from_config(layer.get_config())
        ),
    )
    assert not any(
        isinstance(layer, SubPixelConv2DTranspose) for layer in plain.layers
    )
    path = tmp_path / "generator.weights.h5"
    generator.save_weights(path)
    plain.load_weights(path)
    noise = np.random.default_rng(0).standard_normal((3, 4)).astype("float32")
    np.testing.assert_allclose(
        to_numpy([plain(noise)])[0],
        to_numpy([generator(noise)])[0],
        atol=TOLERANCE,
    )
    plain.save_weights(tmp_path / "plain.weights.h5")
    generator.load_weights(tmp_path / "plain.weights.h5")


def test_generator_round_trips_through_keras_file(tmp_path):
    generator = build_generator(
        latent_dim=4, image_shape=(8, 8, 1), base_filters=2
    )
    generator.save(tmp_path / "generator.keras")
    loaded = keras.saving.load_model(tmp_path / "generator.keras")
    assert isinstance(loaded.get_layer("to_image"), SubPixelConv2DTranspose)
    noise = np.ones((2, 4), "float32")
    np.testing.assert_array_equal(
        to_numpy([loaded(noise)])[0], to_numpy([generator(noise)])[0]
    )


def test_dropout_follows_seed_state():
    layer = Dropout(0.5, seed=None)
    inputs = np.ones((4, 16), "float32")
    state = to_numpy([layer.seed_generator.state])[0]
    first = to_numpy([layer(inputs, training=True)])[0]
    advanced = to_numpy([layer.seed_generator.state])[0]
    assert not np.array_equal(advanced, state)
    assert 0 < np.count_nonzero(first) < first.size

    # Reseeding every global generator (torch's too) changes nothing: the
    # mask comes from the layer's own state, as a checkpoint restores it.
    keras.utils.set_random_seed(123)
    layer.seed_generator.state.assign(state)
    np.testing.assert_array_equal(
        to_numpy([layer(inputs, training=True)])[0], first
    )
