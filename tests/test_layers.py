import keras
import numpy as np
import pytest
from conftest import make_images, make_model, to_numpy

from keras_dcgan import DCGAN, build_discriminator, build_generator, fourier
from keras_dcgan.layers import Conv2D as PhaseConv2D
from keras_dcgan.layers import Conv2DTranspose as SubPixelConv2DTranspose
from keras_dcgan.layers import Dropout

# Forward and backward passes agree with Keras's layers within this
# tolerance, relative to the largest value of the Keras result (or 1).
TOLERANCE = 1e-5

TRANSPOSE_CASES = [
    # kernel_size, strides, input side, in channels, filters, use_bias
    (5, 2, 7, 8, 4, False),
    (5, 2, 4, 3, 6, True),
    (4, 2, 5, 3, 2, True),
    (3, 3, 4, 2, 2, False),
    (2, 2, 3, 2, 3, False),
    (5, 1, 7, 8, 4, False),
    (4, 1, 5, 3, 2, True),
]

CONV_CASES = [
    # kernel_size, strides, input side, in channels, filters, use_bias
    (5, 2, 14, 3, 4, False),
    (5, 2, 8, 2, 3, True),
    (4, 2, 6, 2, 2, False),
    (3, 3, 6, 2, 2, True),
    (2, 2, 4, 1, 1, False),
    (5, 1, 6, 3, 2, True),
    (4, 1, 5, 2, 3, False),
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


def assert_close(actual, expected, description):
    actual, expected = to_numpy([actual, expected])
    assert actual.shape == expected.shape, description
    scale = max(1.0, float(np.abs(expected).max()))
    np.testing.assert_allclose(
        actual / scale,
        expected / scale,
        atol=TOLERANCE,
        rtol=0,
        err_msg=description,
    )


def assert_same_layer(layer, reference, side, channels):
    """Check outputs and both gradients of built `layer` against `reference`."""
    rng = np.random.default_rng(0)
    inputs = rng.standard_normal((2, side, side, channels)).astype("float32")
    reference.build(inputs.shape)
    weights = [
        rng.standard_normal(w.shape).astype("float32")
        for w in reference.weights
    ]
    reference.set_weights(weights)
    layer.set_weights(weights)

    expected = reference(inputs)
    assert_close(layer(inputs), expected, "outputs")
    output_weights = rng.standard_normal(expected.shape).astype("float32")
    expected_grads = gradients(
        reference, reference.kernel, inputs, output_weights
    )
    actual_grads = gradients(layer, layer.kernel, inputs, output_weights)
    for name, expected_grad, actual_grad in zip(
        ("kernel", "inputs"), expected_grads, actual_grads
    ):
        assert_close(actual_grad, expected_grad, f"gradient of the {name}")


def use_fourier(monkeypatch, enabled):
    """Make layers built from now on take the DFT path, or never take it."""
    monkeypatch.setattr(fourier, "is_faster", lambda *args: enabled)


@pytest.mark.parametrize("path", ["fourier", "direct", "overlap_add"])
@pytest.mark.parametrize(
    "kernel_size, strides, side, channels, filters, use_bias",
    TRANSPOSE_CASES,
)
def test_matches_conv2d_transpose(
    path, kernel_size, strides, side, channels, filters, use_bias, monkeypatch
):
    arguments = dict(strides=strides, padding="same", use_bias=use_bias)
    use_fourier(monkeypatch, path == "fourier")
    layer = SubPixelConv2DTranspose(filters, kernel_size, **arguments)
    layer.build((None, side, side, channels))
    assert layer._phase_plan is not None
    assert (layer._fourier_plan is not None) == (path == "fourier")
    # The layer takes these paths for some shapes and backends only. Force
    # them, so that their arithmetic is checked everywhere.
    if path == "direct":
        forced = SubPixelConv2DTranspose._sub_pixel_call
        monkeypatch.setattr(SubPixelConv2DTranspose, "call", forced)
    if path == "overlap_add":
        forced = SubPixelConv2DTranspose._overlap_add_call
        monkeypatch.setattr(SubPixelConv2DTranspose, "call", forced)
    reference = keras.layers.Conv2DTranspose(filters, kernel_size, **arguments)
    assert_same_layer(layer, reference, side, channels)


@pytest.mark.parametrize(
    "kernel_size, strides, side, channels, filters, use_bias", CONV_CASES
)
def test_matches_conv2d(
    kernel_size, strides, side, channels, filters, use_bias, monkeypatch
):
    arguments = dict(strides=strides, padding="same", use_bias=use_bias)
    use_fourier(monkeypatch, True)
    layer = PhaseConv2D(filters, kernel_size, **arguments)
    layer.build((None, side, side, channels))
    assert layer._fourier_plan is not None
    reference = keras.layers.Conv2D(filters, kernel_size, **arguments)
    assert_same_layer(layer, reference, side, channels)


@pytest.mark.parametrize(
    "layer_class, reference_class",
    [
        (SubPixelConv2DTranspose, keras.layers.Conv2DTranspose),
        (PhaseConv2D, keras.layers.Conv2D),
    ],
)
def test_other_input_side_matches_keras(
    layer_class, reference_class, monkeypatch
):
    # A plan is for the side the layer was built for; a larger input must
    # not be reshaped into it.
    use_fourier(monkeypatch, True)
    layer = layer_class(3, 5, strides=2, padding="same")
    reference = reference_class(3, 5, strides=2, padding="same")
    layer.build((None, 4, 4, 2))
    reference.build((None, 4, 4, 2))
    assert layer._fourier_plan is not None
    reference.set_weights(layer.get_weights())
    inputs = np.random.default_rng(0).standard_normal((1, 8, 8, 2))
    inputs = inputs.astype("float32")
    assert_close(layer(inputs), reference(inputs), "outputs")


def test_fourier_plan_of_the_mnist_generator():
    # Offsets -2..2 need a DFT of length 9 on a 7x7 grid: 9 rows times
    # 5 columns of a real input's conjugate-symmetric spectrum.
    plan = fourier.plan(7, [-2, -1, 0, 1, 2])
    assert (plan.size, plan.taps, plan.frequencies) == (7, 5, 45)
    # Three real products per frequency instead of a complex one's four.
    assert plan.forward.shape == (135, 49)
    assert plan.kernel.shape == (135, 25)
    assert plan.inverse.shape == (49, 135)
    # The tap at offset 0 (flat index 12 of 5x5) has the spectrum 1 at
    # every frequency, so multiplying by it gives any grid back.
    grid = np.random.default_rng(0).standard_normal(49)
    identity = plan.kernel[:, 12]
    np.testing.assert_allclose(
        plan.inverse @ (identity * (plan.forward @ grid)), grid, atol=1e-5
    )


def fourier_convolve(inputs, kernel, plan):
    spectra = fourier.kernel_spectra(kernel, plan)
    return to_numpy([fourier.convolve(inputs, spectra, plan)])[0]


def test_fourier_convolution_is_a_linear_convolution():
    # One input pixel and one kernel tap give one output pixel, shifted by
    # the tap's offset, with no wrap-around at the grid's edge.
    plan = fourier.plan(5, [2, 0, -2])
    inputs = np.zeros((1, 5, 5, 1), "float32")
    inputs[0, 4, 0, 0] = 1.0
    kernel = np.zeros((3, 3, 1, 1), "float32")
    kernel[0, 2, 0, 0] = 3.0  # offsets (2, -2): output (4 + 2, 0 - 2)
    outputs = fourier_convolve(inputs, kernel, plan)
    np.testing.assert_allclose(outputs, 0.0, atol=1e-6)
    kernel[0, 2, 0, 0] = 0.0
    kernel[2, 1, 0, 0] = 3.0  # offsets (-2, 0): output (2, 0)
    outputs = fourier_convolve(inputs, kernel, plan)
    expected = np.zeros_like(outputs)
    expected[0, 2, 0, 0] = 3.0
    np.testing.assert_allclose(outputs, expected, atol=1e-6)


def fourier_layers(model):
    return {
        layer.name: layer._fourier_plan is not None
        for layer in model.layers
        if hasattr(layer, "_fourier_plan")
    }


def test_mnist_layers_fourier_choice():
    generator = build_generator()
    discriminator = build_discriminator()
    stride_two = keras.backend.backend() != "tensorflow"
    assert fourier_layers(generator) == {
        "deconv_0": True,
        "deconv_1": stride_two,
        "to_image": False,
    }
    assert fourier_layers(discriminator) == {
        "conv_0": False,
        "conv_1": stride_two,
    }
    # The generator's last layer has few channels, so JAX and PyTorch
    # compute it from the products of every tap.
    overlap_add = {
        layer.name: layer._use_overlap_add
        for layer in generator.layers
        if isinstance(layer, SubPixelConv2DTranspose)
    }
    assert overlap_add == {
        "deconv_0": False,
        "deconv_1": False,
        "to_image": keras.backend.backend() in ("jax", "torch"),
    }


def test_mixed_precision_keeps_direct_convolutions():
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    try:
        generator = build_generator()
        discriminator = build_discriminator()
    finally:
        keras.mixed_precision.set_global_policy("float32")
    assert generator.get_layer("deconv_0").compute_dtype == "bfloat16"
    assert not any(fourier_layers(generator).values())
    assert not any(fourier_layers(discriminator).values())


def test_unsupported_configuration_uses_parent():
    valid = SubPixelConv2DTranspose(2, 5, strides=2, padding="valid")
    valid.build((None, 4, 4, 1))
    assert valid._phase_plan is None
    assert tuple(valid(np.ones((1, 4, 4, 1), "float32")).shape) == (
        1,
        11,
        11,
        2,
    )
    # An odd side cannot be split into two phases of equal size.
    odd = PhaseConv2D(2, 5, strides=2, padding="same")
    odd.build((None, 7, 7, 1))
    assert odd._phase_plan is None
    assert tuple(odd(np.ones((1, 7, 7, 1), "float32")).shape) == (1, 4, 4, 2)


def with_keras_layers(model):
    """Clone `model` with Keras's own convolution classes."""

    def clone(layer):
        config = layer.get_config()
        if isinstance(layer, SubPixelConv2DTranspose):
            return keras.layers.Conv2DTranspose.from_config(config)
        if isinstance(layer, PhaseConv2D):
            return keras.layers.Conv2D.from_config(config)
        return layer.__class__.from_config(config)

    plain = keras.models.clone_model(model, clone_function=clone)
    assert not any(hasattr(layer, "_phase_plan") for layer in plain.layers)
    return plain


@pytest.mark.parametrize("path", ["fourier", "direct"])
def test_weights_interchange_with_keras_layers(path, tmp_path, monkeypatch):
    use_fourier(monkeypatch, path == "fourier")
    rng = np.random.default_rng(0)
    networks = [
        (
            build_generator(
                latent_dim=4, image_shape=(8, 8, 1), base_filters=2
            ),
            rng.standard_normal((3, 4)).astype("float32"),
        ),
        (
            build_discriminator(image_shape=(8, 8, 1), base_filters=2),
            rng.uniform(-1, 1, (3, 8, 8, 1)).astype("float32"),
        ),
    ]
    for network, inputs in networks:
        assert any(fourier_layers(network).values()) == (path == "fourier")
        plain = with_keras_layers(network)
        weights_path = tmp_path / f"{network.name}.weights.h5"
        network.save_weights(weights_path)
        plain.load_weights(weights_path)
        assert_close(plain(inputs), network(inputs), network.name)
        plain.save_weights(tmp_path / "plain.weights.h5")
        network.load_weights(tmp_path / "plain.weights.h5")


@pytest.mark.parametrize("path", ["fourier", "overlap_add"])
def test_layers_train_like_keras_layers(path, monkeypatch):
    # The same networks built from Keras's classes train to the same
    # losses and weights over three steps. Without dropout, whose cloned
    # layers would draw other masks, the noise is the only random draw.
    use_fourier(monkeypatch, path == "fourier")
    our_model = make_model(seed=3, dropout_rate=0.0)
    assert fourier_layers(our_model.generator)["deconv_0"] == (
        path == "fourier"
    )
    assert fourier_layers(our_model.discriminator)["conv_0"] == (
        path == "fourier"
    )
    if path == "overlap_add":
        # Every transposed convolution multiplies by its taps first,
        # whatever its channels.
        monkeypatch.setattr(
            SubPixelConv2DTranspose,
            "call",
            SubPixelConv2DTranspose._overlap_add_call,
        )
    generator = with_keras_layers(our_model.generator)
    discriminator = with_keras_layers(our_model.discriminator)
    generator.set_weights(our_model.generator.get_weights())
    discriminator.set_weights(our_model.discriminator.get_weights())
    keras_model = DCGAN(generator, discriminator, seed=3)
    keras_model.compile(
        d_optimizer=keras.optimizers.Adam(1e-3),
        g_optimizer=keras.optimizers.Adam(1e-3),
    )
    initial = to_numpy(our_model.weights)

    images = make_images(24)
    histories = [
        model.fit(
            images, batch_size=8, epochs=1, shuffle=False, verbose=0
        ).history
        for model in (our_model, keras_model)
    ]

    for name in ("d_loss", "g_loss"):
        np.testing.assert_allclose(
            histories[0][name], histories[1][name], rtol=1e-5, err_msg=name
        )
    changed = 0
    for before, actual, expected in zip(
        initial, to_numpy(our_model.weights), to_numpy(keras_model.weights)
    ):
        np.testing.assert_allclose(actual, expected, rtol=0, atol=1e-5)
        changed += not np.array_equal(before, actual)
    assert changed >= 10


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
