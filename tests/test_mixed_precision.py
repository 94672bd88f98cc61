import keras
import numpy as np
import pytest
from conftest import IMAGE_SHAPE, LATENT_DIM, make_images, to_numpy

from keras_dcgan import DCGAN, build_discriminator, build_generator


@pytest.fixture
def policy(request):
    keras.mixed_precision.set_global_policy(request.param)
    yield request.param
    keras.mixed_precision.set_global_policy("float32")


def make_mixed_model(d_optimizer=None, g_optimizer=None):
    keras.utils.set_random_seed(0)
    model = DCGAN(
        build_generator(LATENT_DIM, IMAGE_SHAPE, base_filters=4),
        build_discriminator(IMAGE_SHAPE, base_filters=4),
        seed=0,
    )
    model.compile(
        d_optimizer=d_optimizer or keras.optimizers.Adam(1e-3),
        g_optimizer=g_optimizer or keras.optimizers.Adam(1e-3),
    )
    return model


@pytest.mark.parametrize(
    "policy", ["mixed_bfloat16", "mixed_float16"], indirect=True
)
def test_steps_under_policy_finite(policy):
    model = make_mixed_model()
    history = model.fit(make_images(24), batch_size=8, epochs=2, verbose=0)
    for name in ("d_loss", "g_loss"):
        losses = history.history[name]
        assert np.all(np.isfinite(losses))
        # Unscaled: binary cross-entropy of a fresh GAN is of order 1, and a
        # scaled loss would be about 32768 times larger.
        assert max(losses) < 10
    assert int(model.g_optimizer.iterations) == 6
    noise = np.ones((2, LATENT_DIM), "float32")
    assert keras.backend.standardize_dtype(model(noise).dtype) == "float32"
    logits = model.discriminator(make_images(2))
    assert keras.backend.standardize_dtype(logits.dtype) == "float32"
    compute_dtype = "float16" if policy == "mixed_float16" else "bfloat16"
    hidden = model.generator.get_layer("deconv_0")
    assert hidden.compute_dtype == compute_dtype


@pytest.mark.parametrize("policy", ["mixed_float16"], indirect=True)
def test_float16_wraps_optimizers(policy):
    model = make_mixed_model()
    for optimizer in (model.d_optimizer, model.g_optimizer):
        assert isinstance(optimizer, keras.optimizers.LossScaleOptimizer)
    assert model.d_optimizer is not model.g_optimizer


@pytest.mark.parametrize("policy", ["mixed_float16"], indirect=True)
def test_overflowing_step_leaves_weights(policy):
    # A loss scale of 2**60 overflows float16 gradients, so the step must be
    # skipped and the scale lowered.
    model = make_mixed_model(
        keras.optimizers.LossScaleOptimizer(
            keras.optimizers.Adam(1e-3), initial_scale=2.0**60
        ),
        keras.optimizers.LossScaleOptimizer(
            keras.optimizers.Adam(1e-3), initial_scale=2.0**60
        ),
    )
    before = to_numpy(model.trainable_weights)
    history = model.fit(make_images(8), batch_size=8, epochs=1, verbose=0)
    after = to_numpy(model.trainable_weights)
    for old, new in zip(before, after):
        np.testing.assert_array_equal(old, new)
    for optimizer in (model.d_optimizer, model.g_optimizer):
        assert float(optimizer.dynamic_scale) == 2.0**59
        assert int(optimizer.inner_optimizer.iterations) == 0
    assert np.isfinite(history.history["d_loss"][0])
