import math
import warnings

import keras
import numpy as np
import pytest
from conftest import (
    IMAGE_SHAPE,
    LATENT_DIM,
    assert_same_training,
    make_images,
    make_model,
    to_numpy,
    train_on_array,
)

from keras_dcgan import DCGAN, build_discriminator, build_generator

# Noise that `FixedNoiseDCGAN` returns instead of drawing from its seed.
FIXED_NOISE = np.random.default_rng(7).standard_normal((64, LATENT_DIM))


class FixedNoiseDCGAN(DCGAN):
    """A DCGAN whose training noise is the first rows of `FIXED_NOISE`."""

    def sample_noise(self, batch_size):
        noise = keras.ops.convert_to_tensor(FIXED_NOISE.astype("float32"))
        return noise[:batch_size]


def moment_variables(optimizer):
    """Return Adam's first and second moment variables."""
    names = ("momentum", "velocity")
    return [v for v in optimizer.variables if any(n in v.path for n in names)]


# Construction and compile.


def test_latent_dim_read_from_generator():
    model = make_model()
    assert model.latent_dim == LATENT_DIM
    assert model.generator.name == "generator"
    assert model.discriminator.name == "discriminator"
    assert model.built


def test_latent_dim_mismatch_rejected():
    with pytest.raises(ValueError, match="latent_dim=7") as error:
        DCGAN(
            build_generator(LATENT_DIM, IMAGE_SHAPE),
            build_discriminator(IMAGE_SHAPE),
            latent_dim=7,
        )
    assert f"input size {LATENT_DIM}" in str(error.value)


def test_mismatched_networks_rejected():
    with pytest.raises(ValueError, match="do not fit together") as error:
        DCGAN(
            build_generator(LATENT_DIM, (8, 8, 1)),
            build_discriminator((16, 16, 1)),
        )
    assert "(8, 8, 1)" in str(error.value)
    assert "(16, 16, 1)" in str(error.value)


def test_non_model_network_rejected():
    with pytest.raises(ValueError, match="Invalid `generator`"):
        DCGAN(keras.layers.Dense(3), build_discriminator(IMAGE_SHAPE))


def test_compile_sets_optimizers_and_loss():
    model = make_model()
    assert isinstance(model.d_optimizer, keras.optimizers.Adam)
    assert isinstance(model.g_optimizer, keras.optimizers.Adam)
    assert model.d_optimizer is not model.g_optimizer
    assert isinstance(model.loss_fn, keras.losses.BinaryCrossentropy)
    assert model.loss_fn.get_config()["from_logits"] is True
    assert model.optimizer.optimizers == [model.d_optimizer, model.g_optimizer]


def test_shared_optimizer_rejected():
    model = DCGAN(
        build_generator(LATENT_DIM, IMAGE_SHAPE),
        build_discriminator(IMAGE_SHAPE),
    )
    optimizer = keras.optimizers.Adam()
    with pytest.raises(ValueError, match="same instance"):
        model.compile(d_optimizer=optimizer, g_optimizer=optimizer)


def test_compile_rejects_plain_optimizer_argument():
    model = DCGAN(
        build_generator(LATENT_DIM, IMAGE_SHAPE),
        build_discriminator(IMAGE_SHAPE),
    )
    with pytest.raises(ValueError, match="Invalid argument `optimizer`"):
        model.compile(d_optimizer="adam", g_optimizer="adam", optimizer="adam")


def test_fit_before_compile_rejected(images):
    model = DCGAN(
        build_generator(LATENT_DIM, IMAGE_SHAPE),
        build_discriminator(IMAGE_SHAPE),
    )
    with pytest.raises(ValueError, match="compile"):
        model.fit(images, batch_size=8, epochs=1, verbose=0)


def test_call_and_generate():
    model = make_model()
    noise = keras.random.normal((3, LATENT_DIM), seed=0)
    assert tuple(model(noise).shape) == (3, *IMAGE_SHAPE)
    generated = model.generate(5, seed=1)
    assert isinstance(generated, np.ndarray)
    assert generated.shape == (5, *IMAGE_SHAPE)
    assert generated.min() >= -1.0
    assert generated.max() <= 1.0
    np.testing.assert_array_equal(generated, model.generate(5, seed=1))
    with pytest.raises(ValueError, match="num_images=0"):
        model.generate(0)


def test_no_keras_attribute_shadowed():
    # Helper names must not replace attributes of keras.Model, such as the
    # private `_losses`, except for the methods a subclass is meant to
    # override.
    overridable = {
        "call",
        "compile",
        "compile_from_config",
        "fit",
        "from_config",
        "get_compile_config",
        "get_config",
        "load_own_variables",
        "metrics",
        "save_own_variables",
        "train_step",
    }
    keras_names = set(dir(keras.Model))
    plain_model = keras.Sequential([keras.Input((1,)), keras.layers.Dense(1)])
    plain_model.compile(optimizer="adam", loss="mse")
    set_by_keras = set(vars(plain_model))
    own_names = set(vars(DCGAN)) | (set(vars(make_model())) - set_by_keras)
    own_names = {name for name in own_names if not name.startswith("__")}
    assert (own_names & keras_names) - overridable == set()


# 1. State advances on every step.


def test_steps_advance_all_state(images):
    model = make_model()
    moving_stats = [
        v for v in model.generator.non_trainable_variables if "moving" in v.path
    ]
    moments_before = to_numpy(moment_variables(model.d_optimizer))
    assert len(moments_before) == 2 * len(model.discriminator.trainable_weights)
    seed_before = to_numpy([model.seed_generator.state])[0]
    seed_states_before = to_numpy(model.seed_states())
    assert len(seed_states_before) == 2  # The noise, and the dropout layer.

    model.fit(images, batch_size=8, epochs=1, verbose=0, shuffle=False)
    steps = math.ceil(len(images) / 8)

    assert int(model.d_optimizer.iterations) == steps
    assert int(model.g_optimizer.iterations) == steps
    moments_after = to_numpy(moment_variables(model.d_optimizer))
    for before, after in zip(moments_before, moments_after):
        assert not np.array_equal(before, after)
    for variable in moment_variables(model.g_optimizer):
        assert np.abs(to_numpy([variable])[0]).max() > 0, variable.path
    for variable in moving_stats:
        value = to_numpy([variable])[0]
        expected_start = 0.0 if "mean" in variable.path else 1.0
        assert not np.allclose(value, expected_start), variable.path
    # Each noise draw advances the seed state's counter by one.
    seed_after = to_numpy([model.seed_generator.state])[0]
    assert seed_after[1] - seed_before[1] == steps
    for before, after in zip(seed_states_before, to_numpy(model.seed_states())):
        assert not np.array_equal(before, after)


def test_consecutive_steps_draw_different_noise(images):
    model = make_model()
    noises = []
    for _ in range(2):
        # Draw the next step's noise from a copy of the seed state, the way
        # `DCGAN.sample_noise` does.
        copy = keras.random.SeedGenerator(0)
        copy.state.assign(model.seed_generator.state)
        noise = keras.random.normal((8, LATENT_DIM), seed=copy)
        noises.append(to_numpy([noise])[0])
        model.fit(images[:8], batch_size=8, epochs=1, verbose=0)
    assert not np.allclose(noises[0], noises[1])


def test_same_seed_reproduces_losses(images):
    histories = []
    for _ in range(2):
        model = make_model(seed=3)
        history = model.fit(images, batch_size=8, epochs=2, verbose=0)
        histories.append(history.history)
    assert histories[0]["d_loss"] == histories[1]["d_loss"]
    assert histories[0]["g_loss"] == histories[1]["g_loss"]
    other = make_model(seed=4).fit(images, batch_size=8, epochs=2, verbose=0)
    assert other.history["d_loss"] != histories[0]["d_loss"]


# 3. Each network learns only from its own loss.


def _losses(model, real_images, noise):
    generated = model.generator(noise, training=True)
    real_logits = model.discriminator(real_images, training=True)
    fake_logits = model.discriminator(generated, training=True)
    ones = keras.ops.ones_like(real_logits)
    zeros = keras.ops.zeros_like(fake_logits)
    d_loss = model.loss_fn(ones, real_logits) + model.loss_fn(
        zeros, fake_logits
    )
    g_loss = model.loss_fn(ones, fake_logits)
    return float(d_loss), float(g_loss)


def _central_difference(model, variable, index, real_images, noise, step):
    original = to_numpy([variable])[0]
    slopes = []
    for sign in (1.0, -1.0):
        shifted = original.copy()
        shifted.flat[index] += sign * step
        variable.assign(shifted)
        slopes.append(np.array(_losses(model, real_images, noise)))
    variable.assign(original)
    return (slopes[0] - slopes[1]) / (2 * step)


def test_each_network_updated_by_own_loss():
    learning_rate = 0.05
    keras.utils.set_random_seed(5)
    model = FixedNoiseDCGAN(
        build_generator(LATENT_DIM, IMAGE_SHAPE, base_filters=4),
        build_discriminator(IMAGE_SHAPE, base_filters=4, dropout_rate=0.0),
    )
    model.compile(
        d_optimizer=keras.optimizers.SGD(learning_rate),
        g_optimizer=keras.optimizers.SGD(learning_rate),
    )
    real_images = make_images(8, seed=5)
    noise = FIXED_NOISE[:8].astype("float32")
    before = {
        "d": to_numpy(model.discriminator.trainable_variables),
        "g": to_numpy(model.generator.trainable_variables),
    }
    model.fit(real_images, batch_size=8, epochs=1, verbose=0, shuffle=False)

    # With SGD, update = -learning_rate * gradient. Compare the largest
    # update of each variable with finite differences of both losses, taken
    # at the weights before the step.
    after = {
        "d": to_numpy(model.discriminator.trainable_variables),
        "g": to_numpy(model.generator.trainable_variables),
    }
    networks = {"d": model.discriminator, "g": model.generator}
    for name, network in networks.items():
        for variable, old in zip(network.trainable_variables, before[name]):
            variable.assign(old)
    checked = 0
    for own_loss, name in enumerate(("d", "g")):
        network = networks[name]
        for variable, old, new in zip(
            network.trainable_variables, before[name], after[name]
        ):
            update = new - old
            index = int(np.argmax(np.abs(update)))
            if abs(update.flat[index]) < 1e-4:
                continue
            slopes = _central_difference(
                model, variable, index, real_images, noise, step=1e-3
            )
            expected = -learning_rate * slopes[own_loss]
            other = -learning_rate * slopes[1 - own_loss]
            np.testing.assert_allclose(
                update.flat[index],
                expected,
                rtol=0.05,
                atol=1e-5,
                err_msg=f"{variable.path} not updated by its own loss",
            )
            assert abs(update.flat[index] - other) > 0.1 * abs(
                update.flat[index]
            ), variable.path
            checked += 1
    assert checked >= 4


def test_torch_step_leaves_no_grad(images):
    if keras.backend.backend() != "torch":
        pytest.skip("only PyTorch keeps gradients on the weights")
    model = make_model()
    model.fit(images, batch_size=8, epochs=1, verbose=0)
    assert int(model.d_optimizer.iterations) == 4
    # torch.autograd.grad returns the gradients, so no `.grad` buffer is
    # filled that a later step or the other network could add to.
    for variable in model.trainable_variables:
        assert variable.value.grad is None, variable.path


# 4. Input forms, and a last batch smaller than the others.


def _tf_dataset(images, labels=None):
    tf = pytest.importorskip("tensorflow", reason="tf.data needs TensorFlow")
    if labels is None:
        return tf.data.Dataset.from_tensor_slices(images).batch(8)
    return tf.data.Dataset.from_tensor_slices((images, labels)).batch(8)


class _ListBatches(keras.utils.PyDataset):
    """Batches given as `[images, labels]` lists."""

    def __init__(self, images, batch_size):
        super().__init__()
        self.images = images
        self.batch_size = batch_size

    def __len__(self):
        return math.ceil(len(self.images) / self.batch_size)

    def __getitem__(self, index):
        batch = self.images[
            index * self.batch_size : (index + 1) * self.batch_size
        ]
        return [batch, np.zeros(len(batch), dtype="int32")]


@pytest.mark.parametrize(
    "input_form",
    ["numpy", "numpy_with_labels", "tf_dataset", "tf_dataset_tuples", "lists"],
)
def test_fit_accepts_input_forms(input_form):
    # 20 images in batches of 8, so the last batch has 4 images.
    images = make_images(20)
    labels = np.arange(20) % 10
    model = make_model()
    if input_form == "numpy":
        history = model.fit(images, batch_size=8, verbose=0)
    elif input_form == "numpy_with_labels":
        history = model.fit(images, labels, batch_size=8, verbose=0)
    elif input_form == "tf_dataset":
        history = model.fit(_tf_dataset(images), verbose=0)
    elif input_form == "tf_dataset_tuples":
        history = model.fit(_tf_dataset(images, labels), verbose=0)
    else:
        history = model.fit(_ListBatches(images, 8), verbose=0)
    assert int(model.d_optimizer.iterations) == 3
    assert int(model.g_optimizer.iterations) == 3
    assert np.isfinite(history.history["d_loss"][0])


# 5. History records the mean over each epoch's batches.


def test_history_is_mean_of_batch_losses():
    images = make_images(20)
    epoch_model = make_model(seed=2)
    history = epoch_model.fit(
        images, batch_size=8, epochs=2, shuffle=False, verbose=0
    )
    assert sorted(history.history) == ["d_loss", "g_loss"]
    assert len(history.history["d_loss"]) == 2

    # The same training one batch per `fit` call gives each batch's loss.
    batch_model = make_model(seed=2)
    batch_losses = {"d_loss": [], "g_loss": []}
    for _ in range(2):
        for start in range(0, 20, 8):
            batch = images[start : start + 8]
            logs = batch_model.fit(
                batch,
                batch_size=len(batch),
                shuffle=False,
                verbose=0,
            ).history
            batch_losses["d_loss"].append(logs["d_loss"][0])
            batch_losses["g_loss"].append(logs["g_loss"][0])
    for name in ("d_loss", "g_loss"):
        per_epoch = np.reshape(batch_losses[name], (2, 3)).mean(axis=1)
        assert np.all(np.isfinite(history.history[name]))
        np.testing.assert_allclose(
            history.history[name], per_epoch, rtol=1e-5, atol=1e-6
        )


def test_unknown_length_matches_array():
    tf = pytest.importorskip("tensorflow", reason="tf.data needs TensorFlow")
    images = make_images(20)
    unknown = (
        tf.data.Dataset.from_tensor_slices(images)
        .filter(lambda image: True)
        .batch(8)
    )
    assert int(unknown.cardinality()) == tf.data.UNKNOWN_CARDINALITY
    streamed = make_model(seed=5)
    with warnings.catch_warnings():
        # Keras notes that the stream ran out, which ends each epoch.
        warnings.filterwarnings("ignore", "Your input ran out of data")
        history = streamed.fit(unknown, epochs=2, verbose=0)

    # On TensorFlow, the call that finds the stream empty must leave no
    # trace: no optimizer step, no metric count, no seed advance.
    assert int(streamed.d_optimizer.iterations) == 6
    assert int(streamed.g_optimizer.iterations) == 6
    assert_same_training(streamed, history, *train_on_array(images, seed=5))


# 7. Compile options do not change the number of optimizer steps.


@pytest.mark.parametrize(
    "compile_kwargs",
    [{"steps_per_execution": 3}, {"jit_compile": True}, {"run_eagerly": True}],
)
def test_compile_options_keep_step_count(compile_kwargs):
    if keras.backend.backend() == "torch" and "steps_per_execution" in (
        compile_kwargs
    ):
        pytest.skip("Keras runs one step per call on PyTorch")
    keras.utils.set_random_seed(0)
    model = DCGAN(
        build_generator(LATENT_DIM, IMAGE_SHAPE, base_filters=4),
        build_discriminator(IMAGE_SHAPE, base_filters=4),
    )
    model.compile(
        d_optimizer=keras.optimizers.Adam(1e-3),
        g_optimizer=keras.optimizers.Adam(1e-3),
        **compile_kwargs,
    )
    history = model.fit(make_images(40), batch_size=8, epochs=2, verbose=0)
    assert int(model.d_optimizer.iterations) == 10
    assert int(model.g_optimizer.iterations) == 10
    assert np.all(np.isfinite(history.history["g_loss"]))


def test_torch_rejects_steps_per_execution():
    if keras.backend.backend() != "torch":
        pytest.skip("TensorFlow and JAX run several steps per call")
    model = DCGAN(
        build_generator(LATENT_DIM, IMAGE_SHAPE, base_filters=4),
        build_discriminator(IMAGE_SHAPE, base_filters=4),
    )
    with pytest.raises(ValueError) as caught:
        model.compile(
            d_optimizer=keras.optimizers.Adam(1e-3),
            g_optimizer=keras.optimizers.Adam(1e-3),
            steps_per_execution=3,
        )
    assert "for the PyTorch backend" in str(caught.value)
    assert "Received: steps_per_execution=3." in str(caught.value)
    assert not model.compiled


# 8. Saving to `.keras`.


def test_compile_config_names_public_optimizers():
    config = make_model().get_compile_config()
    for name in ("d_optimizer", "g_optimizer"):
        assert config[name]["module"] == "keras.optimizers", config[name]
        assert config[name]["class_name"] == "Adam"


def test_torch_optimizer_config_loads_anywhere(images):
    # What PyTorch wrote before the module was made public.
    config = make_model().get_compile_config()
    for name in ("d_optimizer", "g_optimizer"):
        config[name]["module"] = "keras.src.backend.torch.optimizers.torch_adam"
    model = make_model()
    model.compile_from_config(config)
    assert isinstance(model.d_optimizer, keras.optimizers.Adam)
    model.fit(images, batch_size=8, verbose=0)
    assert int(model.g_optimizer.iterations) == 4


def test_torch_load_runs_one_step_per_execution():
    if keras.backend.backend() != "torch":
        pytest.skip("the other backends run several steps per execution")
    config = make_model().get_compile_config()
    config["steps_per_execution"] = 2
    model = make_model()
    with pytest.warns(UserWarning, match="steps_per_execution=2"):
        model.compile_from_config(config)
    assert model.steps_per_execution == 1


def test_keras_file_round_trip(tmp_path, images):
    model = make_model()
    model.fit(images, batch_size=8, epochs=1, verbose=0)
    path = tmp_path / "dcgan.keras"
    model.save(path)

    with warnings.catch_warnings():
        # Keras warns when a custom compile() is not restored on load.
        warnings.simplefilter("error")
        loaded = keras.saving.load_model(path)

    assert isinstance(loaded, DCGAN)
    assert loaded.compiled
    assert loaded.latent_dim == LATENT_DIM
    noise = np.random.default_rng(3).standard_normal((5, LATENT_DIM))
    np.testing.assert_array_equal(
        model.generate_from_noise(noise.astype("float32")),
        loaded.generate_from_noise(noise.astype("float32")),
    )
    for original, restored in (
        (model.d_optimizer, loaded.d_optimizer),
        (model.g_optimizer, loaded.g_optimizer),
    ):
        assert int(restored.iterations) == 4
        for a, b in zip(
            to_numpy(original.variables), to_numpy(restored.variables)
        ):
            np.testing.assert_array_equal(a, b)
    for a, b in zip(
        to_numpy(model.seed_states()), to_numpy(loaded.seed_states())
    ):
        np.testing.assert_array_equal(a, b)


def test_loaded_model_keeps_training(tmp_path, images):
    model = make_model()
    model.fit(images, batch_size=8, epochs=1, verbose=0)
    model.save(tmp_path / "dcgan.keras")
    loaded = keras.saving.load_model(tmp_path / "dcgan.keras")
    loaded.fit(images, batch_size=8, epochs=1, verbose=0)
    assert int(loaded.g_optimizer.iterations) == 8
