"""Shared fixtures: tiny networks so every test runs in seconds.

The backend comes from `KERAS_BACKEND`, set by the nox session.
"""

import os

import keras
import numpy as np
import pytest

from keras_dcgan import DCGAN, build_discriminator, build_generator

IMAGE_SHAPE = (8, 8, 1)
LATENT_DIM = 6
REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MNIST_PATH = os.path.join(REPO_ROOT, "..", "shared", "data", "mnist.npz")

requires_data_parallel = pytest.mark.skipif(
    keras.backend.backend() == "torch",
    reason="Keras 3.15 trains data-parallel only on JAX and TensorFlow",
)
requires_mnist = pytest.mark.skipif(
    not os.path.isfile(MNIST_PATH),
    reason=f"the MNIST file {MNIST_PATH} is absent",
)


def make_model(seed=0, dropout_rate=0.3, model_class=DCGAN, learning_rate=1e-3):
    """Build and compile a tiny DCGAN with reproducible weights."""
    keras.utils.set_random_seed(seed)
    model = model_class(
        build_generator(LATENT_DIM, IMAGE_SHAPE, base_filters=4),
        build_discriminator(
            IMAGE_SHAPE, base_filters=4, dropout_rate=dropout_rate
        ),
        seed=seed,
    )
    model.compile(
        d_optimizer=keras.optimizers.Adam(learning_rate),
        g_optimizer=keras.optimizers.Adam(learning_rate),
    )
    return model


def make_images(count, seed=0):
    """Return `count` float32 images in [-1, 1] of the tiny shape."""
    rng = np.random.default_rng(seed)
    return rng.uniform(-1.0, 1.0, (count, *IMAGE_SHAPE)).astype("float32")


def train_on_array(images, seed, epochs=2):
    """Train a fresh model on `images` in order, in batches of 8.

    The reference for other forms of the same data: returns the model and
    its `History`.
    """
    model = make_model(seed=seed)
    history = model.fit(
        images, batch_size=8, epochs=epochs, shuffle=False, verbose=0
    )
    return model, history


def assert_same_training(model, history, reference_model, reference_history):
    """Check that two runs logged the same losses and end with equal weights."""
    for name in ("d_loss", "g_loss"):
        np.testing.assert_allclose(
            history.history[name],
            reference_history.history[name],
            rtol=1e-6,
            err_msg=name,
        )
    for actual, expected in zip(
        to_numpy(model.weights), to_numpy(reference_model.weights)
    ):
        np.testing.assert_allclose(actual, expected, rtol=0, atol=1e-6)


def to_numpy(values):
    return [keras.ops.convert_to_numpy(value) for value in values]


@pytest.fixture
def images():
    return make_images(32)
