"""The `DCGAN` model: a generator and a discriminator trained by `fit`."""

import warnings

import keras
import numpy as np

from keras_dcgan import data, distribution, losses, steps, validation
from keras_dcgan.callbacks import StopOnNonFiniteLoss
from keras_dcgan.optimizers import OptimizerPair

# Keys that `DCGAN.compile` handles itself instead of passing to Keras.
_OWN_COMPILE_ARGS = ("optimizer", "loss", "metrics", "loss_weights")


@keras.saving.register_keras_serializable(package="keras_dcgan")
class DCGAN(keras.Model):
    """A deep convolutional GAN trained with `fit`.

    One training step draws a standard-normal noise batch the size of the
    real batch, runs the generator once, and runs the discriminator on the
    real and on the generated images. Each network is then updated by its
    own optimizer from its own loss. The discriminator's loss is binary
    cross-entropy with real images labelled 1 and generated ones 0, and the
    generator's labels its generated images 1 (Radford et al. 2015, as in
    the TensorFlow DCGAN tutorial). The step runs on the TensorFlow, JAX
    and PyTorch backends with the same phases, see `keras_dcgan.steps`.

    `History` records `d_loss` and `g_loss`, each the mean over the epoch's
    batches. Batches may be images alone or `(images, labels)`, and labels
    are ignored.

    Args:
        generator: A `keras.Model` from noise of shape `(latent_dim,)` to
            images.
        discriminator: A `keras.Model` from images to one logit per image.
            Its input shape must equal the generator's output shape.
        latent_dim: Length of the noise vector. Defaults to the generator's
            input size, and must equal it when given.
        seed: Seed of the training noise. Defaults to `None`, a random seed.

    Example:

    >>> import keras
    >>> from keras_dcgan import DCGAN, build_discriminator, build_generator
    >>> model = DCGAN(
    ...     build_generator(latent_dim=8, image_shape=(8, 8, 1)),
    ...     build_discriminator(image_shape=(8, 8, 1)),
    ... )
    >>> model.compile(
    ...     d_optimizer=keras.optimizers.Adam(1e-4),
    ...     g_optimizer=keras.optimizers.Adam(1e-4),
    ... )
    >>> model.generate(4).shape
    (4, 8, 8, 1)
    """

    def __init__(
        self, generator, discriminator, latent_dim=None, seed=None, **kwargs
    ):
        super().__init__(**kwargs)
        self._backend_train_step = steps.backend_train_step()
        self.latent_dim = _check_networks(generator, discriminator, latent_dim)
        self.generator = generator
        self.discriminator = discriminator
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(
            seed, name="noise_seed_generator"
        )
        self.d_loss_tracker = keras.metrics.Mean(name="d_loss")
        self.g_loss_tracker = keras.metrics.Mean(name="g_loss")
        self.d_optimizer = None
        self.g_optimizer = None
        self.loss_fn = None
        self._dcgan_compile_kwargs = {}
        # Both networks are built, and `fit` must not build this model by
        # calling it on a batch of images: it takes noise.
        self.built = True

    @property
    def metrics(self):
        return [self.d_loss_tracker, self.g_loss_tracker]

    def call(self, noise, training=False):
        """Generate images from a batch of noise vectors."""
        return self.generator(noise, training=training)

    def compile(self, d_optimizer, g_optimizer, loss_fn=None, **kwargs):
        """Configure the model for training.

        Args:
            d_optimizer: Optimizer of the discriminator, an instance or a
                name such as `"adam"`.
            g_optimizer: Optimizer of the generator. It must be a different
                instance from `d_optimizer`, since each keeps its own state.
            loss_fn: Loss on logits, called as `loss_fn(labels, logits)`.
                Defaults to `keras.losses.BinaryCrossentropy(from_logits=True)`.
            **kwargs: Passed to `keras.Model.compile`, such as
                `steps_per_execution`, `jit_compile` or `run_eagerly`. As
                in Keras, `auto_scale_loss=True` (the default) wraps both
                optimizers in `keras.optimizers.LossScaleOptimizer` when
                the networks compute in float16 (`"mixed_float16"`): a
                step whose gradients are not finite then leaves the
                weights as they were, and the logged losses are unscaled.
        """
        for name in _OWN_COMPILE_ARGS:
            if name in kwargs:
                raise ValueError(
                    f"Invalid argument `{name}` for DCGAN.compile(): a DCGAN "
                    "takes `d_optimizer`, `g_optimizer` and `loss_fn` "
                    f"instead. Received: {name}={kwargs[name]!r}."
                )
        steps_per_execution = kwargs.get("steps_per_execution", 1)
        if keras.backend.backend() == "torch" and steps_per_execution != 1:
            raise ValueError(
                "Invalid `steps_per_execution` for the PyTorch backend: "
                "Keras runs one step per call there. Pass "
                "steps_per_execution=1 (the default), or set KERAS_BACKEND to "
                "'tensorflow' or 'jax' to run several steps per call. "
                f"Received: steps_per_execution={steps_per_execution!r}."
            )
        d_optimizer = keras.optimizers.get(d_optimizer)
        g_optimizer = keras.optimizers.get(g_optimizer)
        if d_optimizer is g_optimizer:
            raise ValueError(
                "Invalid optimizers: `d_optimizer` and `g_optimizer` are the "
                "same instance, so the networks would share one optimizer "
                "state. Pass two instances, for example "
                "d_optimizer=keras.optimizers.Adam(1e-4), "
                "g_optimizer=keras.optimizers.Adam(1e-4). "
                f"Received: d_optimizer=g_optimizer={d_optimizer!r}."
            )
        super().compile(**kwargs)
        self._dcgan_compile_kwargs = dict(kwargs)
        if kwargs.get("auto_scale_loss", True) and self._uses_float16():
            d_optimizer = _with_loss_scaling(d_optimizer)
            g_optimizer = _with_loss_scaling(g_optimizer)
        self.d_optimizer = d_optimizer
        self.g_optimizer = g_optimizer
        self.loss_fn = losses.default_loss_fn() if loss_fn is None else loss_fn
        self.optimizer = OptimizerPair(
            d_optimizer, g_optimizer, self.discriminator, self.generator
        )
        # Optimizer variables exist from here on, so that checkpoints and
        # saved models can be loaded into a freshly compiled model.
        self.optimizer.build()

    def _uses_float16(self):
        return any(
            network.dtype_policy.compute_dtype == "float16"
            for network in (self.generator, self.discriminator)
        )

    def train_step(self, *args):
        """Run one training step of the active backend.

        On TensorFlow and PyTorch this is `train_step(data)`, and on JAX
        the pure `train_step(state, data)` that Keras jits. See
        `keras_dcgan.steps`.
        """
        return self._backend_train_step(self, *args)

    def fit(self, x=None, y=None, batch_size=None, callbacks=None, **kwargs):
        """Train the model; see `keras.Model.fit` for the arguments.

        Before the first step the images are checked: their shape must be
        the discriminator's input shape, their values finite and in
        [-1, 1], and there must be at least one batch. Only the first batch
        of a dataset is checked. During training, a NaN or infinite
        `d_loss` or `g_loss` stops it with a `NonFiniteLossError` that
        names the epoch and step. On several devices `batch_size` must be
        a multiple of the number of devices, see
        `keras_dcgan.distribution.fit_data_for_devices`.
        """
        if not self.compiled:
            raise ValueError(
                "The model is not compiled: call "
                "model.compile(d_optimizer=..., g_optimizer=...) before "
                "model.fit()."
            )
        image_shape = tuple(self.discriminator.inputs[0].shape[1:])
        validation.check_training_data(x, image_shape, batch_size)
        distribution.warn_replica_layers(self)
        x = distribution.fit_data_for_devices(self, x, batch_size)
        if "shuffle" not in kwargs and data.is_dataset(x):
            # Keras ignores `shuffle` for these, and would warn about the
            # default that the caller never passed.
            kwargs["shuffle"] = False
        x = data.loader_for_keras(x)
        if not isinstance(callbacks, keras.callbacks.CallbackList):
            callbacks = [*(callbacks or []), StopOnNonFiniteLoss()]
        return super().fit(
            x, y, batch_size=batch_size, callbacks=callbacks, **kwargs
        )

    def sample_noise(self, batch_size):
        """Draw a standard-normal noise batch from the training seed."""
        return keras.random.normal(
            (batch_size, self.latent_dim), seed=self.seed_generator
        )

    def generate(self, num_images, seed=None, batch_size=256):
        """Generate images from fresh standard-normal noise.

        The noise comes from NumPy, so the training noise stream is left
        untouched and the same `seed` gives the same images on every
        backend.

        Args:
            num_images: Number of images.
            seed: Seed of the noise. Defaults to `None`, a random seed.
            batch_size: Images generated per call of the generator.
                Defaults to `256`.

        Returns:
            A float32 NumPy array of shape `(num_images, *image_shape)`
            with values in [-1, 1].
        """
        if (
            isinstance(num_images, bool)
            or not isinstance(num_images, (int, np.integer))
            or num_images < 1
        ):
            raise ValueError(
                "Invalid `num_images`: expected a positive integer. "
                f"Received: num_images={num_images!r}."
            )
        rng = np.random.default_rng(seed)
        noise = rng.standard_normal((int(num_images), self.latent_dim))
        return self.generate_from_noise(noise.astype("float32"), batch_size)

    def generate_from_noise(self, noise, batch_size=256):
        """Generate images from given noise, in inference mode.

        Returns:
            A float32 NumPy array, one image per noise vector.
        """
        batches = []
        for start in range(0, len(noise), batch_size):
            images = self.generator(noise[start : start + batch_size])
            batches.append(keras.ops.convert_to_numpy(images))
        return np.concatenate(batches).astype("float32")

    def seed_states(self):
        """Return the seed state variables of the noise and of dropout.

        A `.keras` file does not hold these by itself, so `DCGAN` saves them
        with its own variables, and a resumed run draws the same noise and
        dropout masks as an uninterrupted one.
        """
        weight_ids = {id(weight) for weight in self.weights}
        return [v for v in self.variables if id(v) not in weight_ids]

    def save_own_variables(self, store):
        for index, state in enumerate(self.seed_states()):
            store[f"seed_state_{index}"] = keras.ops.convert_to_numpy(state)

    def load_own_variables(self, store):
        states = self.seed_states()
        if len(store.keys()) != len(states):
            raise ValueError(
                f"Invalid saved DCGAN state: expected {len(states)} seed "
                f"states, found {len(store.keys())}. The file was saved from "
                "a model with a different number of dropout layers; build "
                "the same generator and discriminator as when it was saved."
            )
        for index, state in enumerate(states):
            state.assign(store[f"seed_state_{index}"])

    def get_config(self):
        return {
            "name": self.name,
            "trainable": self.trainable,
            "dtype": keras.saving.serialize_keras_object(self.dtype_policy),
            "generator": keras.saving.serialize_keras_object(self.generator),
            "discriminator": keras.saving.serialize_keras_object(
                self.discriminator
            ),
            "latent_dim": self.latent_dim,
            "seed": self.seed,
        }

    @classmethod
    def from_config(cls, config, custom_objects=None):
        config = dict(config)
        for name in ("generator", "discriminator", "dtype"):
            if name in config:
                config[name] = keras.saving.deserialize_keras_object(
                    config[name], custom_objects=custom_objects
                )
        return cls(**config)

    def get_compile_config(self):
        if not self.compiled:
            return {}
        return {
            "d_optimizer": _portable_config(
                keras.saving.serialize_keras_object(self.d_optimizer)
            ),
            "g_optimizer": _portable_config(
                keras.saving.serialize_keras_object(self.g_optimizer)
            ),
            "loss_fn": keras.saving.serialize_keras_object(self.loss_fn),
            **self._dcgan_compile_kwargs,
        }

    def compile_from_config(self, config):
        config = dict(config)
        for name in ("d_optimizer", "g_optimizer", "loss_fn"):
            config[name] = keras.saving.deserialize_keras_object(
                _portable_config(config[name])
            )
        steps_per_execution = config.get("steps_per_execution", 1)
        if keras.backend.backend() == "torch" and steps_per_execution != 1:
            # A setting of the saving backend that PyTorch cannot run, and
            # that the user loading the model did not choose.
            warnings.warn(
                f"The saved model was compiled with steps_per_execution="
                f"{steps_per_execution!r}, which the PyTorch backend does not "
                "support. It is compiled with steps_per_execution=1.",
                stacklevel=2,
            )
            config["steps_per_execution"] = 1
        self.compile(**config)


def _portable_config(config):
    """Return a serialized object whose built-in optimizers load anywhere.

    On PyTorch, Keras's optimizers are subclasses in backend modules such as
    `keras.src.backend.torch.optimizers.torch_adam`, and a `.keras` file
    saved there would rebuild the PyTorch class on the other backends. The
    public module `keras.optimizers` resolves to each backend's own class.
    Nested configs (the inner optimizer of a `LossScaleOptimizer`) are
    rewritten too. Files saved before this rewrite load through it.
    """
    if isinstance(config, list):
        return [_portable_config(item) for item in config]
    if not isinstance(config, dict):
        return config
    portable = {key: _portable_config(value) for key, value in config.items()}
    module = portable.get("module")
    if (
        isinstance(module, str)
        and module.startswith("keras.src.backend.")
        and ".optimizers" in module
    ):
        portable["module"] = "keras.optimizers"
    return portable


def _with_loss_scaling(optimizer):
    if isinstance(optimizer, keras.optimizers.LossScaleOptimizer):
        return optimizer
    return keras.optimizers.LossScaleOptimizer(optimizer)


def _check_networks(generator, discriminator, latent_dim):
    """Check that the networks fit together; return the latent size."""
    noise_shape = _single_shape(generator, "generator", "inputs")
    image_shape = _single_shape(generator, "generator", "outputs")
    input_shape = _single_shape(discriminator, "discriminator", "inputs")
    logit_shape = _single_shape(discriminator, "discriminator", "outputs")

    if len(noise_shape) != 1 or noise_shape[0] is None:
        raise ValueError(
            "Invalid `generator`: expected one input of shape (latent_dim,), "
            f"a batch of noise vectors. Received input shape {noise_shape}."
        )
    if latent_dim is None:
        latent_dim = noise_shape[0]
    elif latent_dim != noise_shape[0]:
        raise ValueError(
            "Invalid `latent_dim`: it must equal the generator's input size "
            f"{noise_shape[0]}. Received: latent_dim={latent_dim!r}. Omit "
            "`latent_dim` to read it from the generator."
        )
    if image_shape != input_shape:
        raise ValueError(
            "The generator and discriminator do not fit together: the "
            f"generator outputs images of shape {image_shape}, but the "
            f"discriminator expects {input_shape}. Build both for the same "
            "`image_shape`."
        )
    if logit_shape != (1,):
        raise ValueError(
            "Invalid `discriminator`: expected one logit per image, an "
            f"output of shape (batch, 1). Received output shape "
            f"(batch, *{logit_shape}). End it with `Dense(1)`."
        )
    return int(latent_dim)


def _single_shape(model, name, attribute):
    tensors = getattr(model, attribute, None)
    if not isinstance(model, keras.Model) or not tensors or len(tensors) != 1:
        raise ValueError(
            f"Invalid `{name}`: expected a functional or Sequential "
            "keras.Model with one input and one output, built with "
            f"keras.Input, such as keras_dcgan.build_{name}(). "
            f"Received: {name}={model!r}."
        )
    return tuple(tensors[0].shape[1:])
