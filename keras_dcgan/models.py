"""Generator and discriminator networks of a DCGAN.

The defaults build the networks of the TensorFlow DCGAN tutorial for MNIST,
which follow Radford, Metz and Chintala, "Unsupervised Representation
Learning with Deep Convolutional Generative Adversarial Networks" (2015):
strided transposed convolutions with batch normalization in the generator,
strided convolutions with dropout in the discriminator, LeakyReLU in both.
"""

import keras
from keras import layers

from keras_dcgan.layers import (
    BatchNormalization,
    Conv2D,
    Conv2DTranspose,
    Dropout,
)

# Square images of side `start_size * 2**stages`, with `start_size` in this
# range and at least one stride-2 stage, can be built.
_MIN_START_SIZE = 4
_MAX_START_SIZE = 7
_KERNEL_SIZE = 5
_EXAMPLE_SIDES = (8, 12, 16, 28, 32, 48, 64, 128)


def upsampling_stages(image_shape):
    """Return the number of stride-2 stages for `image_shape`.

    A square side `s` is built as `start_size * 2**stages` with `start_size`
    between 4 and 7. MNIST's 28 pixels give 2 stages from 7x7, 32 pixels
    give 3 stages from 4x4 and 64 pixels give 4 stages from 4x4.

    Example:

    >>> upsampling_stages((28, 28, 1))
    2
    >>> upsampling_stages((64, 64, 3))
    4

    Raises:
        ValueError: if `image_shape` is not `(side, side, channels)` with
            such a side and at least one channel.
    """
    shape = tuple(image_shape) if _is_sequence(image_shape) else None
    valid = (
        shape is not None
        and len(shape) == 3
        and all(isinstance(dim, int) and dim > 0 for dim in shape)
        and shape[0] == shape[1]
    )
    stages = 0
    if valid:
        side = shape[0]
        while side % 2 == 0 and side // 2 >= _MIN_START_SIZE:
            side //= 2
            stages += 1
        valid = stages >= 1 and side <= _MAX_START_SIZE
    if not valid:
        examples = ", ".join(str(side) for side in _EXAMPLE_SIDES)
        raise ValueError(
            "Invalid `image_shape`: expected (height, width, channels) with "
            "height == width == s * 2**n for s in 4..7 and n >= 1 (for "
            f"example {examples}) and channels >= 1, such as (28, 28, 1) "
            f"or (32, 32, 3). Received: image_shape={image_shape!r}. "
            "Resize the images to one of these sizes."
        )
    return stages


def _is_sequence(value):
    return isinstance(value, (tuple, list))


def build_generator(
    latent_dim=100,
    image_shape=(28, 28, 1),
    base_filters=64,
    negative_slope=0.3,
    name="generator",
):
    """Build the DCGAN generator: noise vectors to images in [-1, 1].

    With the defaults this is the generator of the TensorFlow DCGAN
    tutorial: Dense(7*7*256) -> Reshape(7, 7, 256) -> Conv2DTranspose with
    128 filters and stride 1 -> Conv2DTranspose with 64 filters and stride 2
    -> Conv2DTranspose with 1 filter, stride 2 and tanh, every layer but the
    last followed by BatchNormalization and LeakyReLU, 5x5 kernels and no
    biases. Larger images get one more stride-2 stage per doubling of the
    side, and each stage halves the number of filters (DCGAN, Radford et
    al. 2015). The transposed convolutions are
    `keras_dcgan.layers.Conv2DTranspose`, which has the weights of Keras's
    `Conv2DTranspose` and computes the same convolution faster (see
    `keras_dcgan.layers`).

    Args:
        latent_dim: Length of the noise vector. Defaults to `100`.
        image_shape: `(side, side, channels)` of the generated images.
            Sides of the form `s * 2**n` with `s` in 4..7 and `n >= 1` work,
            such as 28, 32 or 64. Defaults to `(28, 28, 1)`.
        base_filters: Filters of the last hidden stage. The stages before
            it double this. Defaults to `64`.
        negative_slope: Slope of LeakyReLU for negative inputs. Defaults to
            `0.3`, the Keras default that the tutorial uses.
        name: Name of the model. Defaults to `"generator"`.

    Returns:
        A functional `keras.Model` from `(latent_dim,)` noise to images of
        `image_shape` in [-1, 1].

    Example:

    >>> generator = build_generator(latent_dim=16, image_shape=(8, 8, 1))
    >>> generator.output_shape
    (None, 8, 8, 1)
    """
    stages = upsampling_stages(image_shape)
    _check_positive_int("latent_dim", latent_dim)
    _check_positive_int("base_filters", base_filters)
    side, _, channels = image_shape
    start_size = side // 2**stages

    noise = keras.Input(shape=(latent_dim,), name="noise")
    x = layers.Dense(
        start_size * start_size * base_filters * 2**stages,
        use_bias=False,
        name="project",
    )(noise)
    x = BatchNormalization(name="project_bn")(x)
    x = layers.LeakyReLU(negative_slope=negative_slope, name="project_relu")(x)
    x = layers.Reshape(
        (start_size, start_size, base_filters * 2**stages), name="reshape"
    )(x)

    # A stride-1 stage refines the projected map before upsampling starts.
    # Each later stage doubles the side and halves the filters.
    for index in range(stages):
        filters = base_filters * 2 ** (stages - 1 - index)
        strides = 1 if index == 0 else 2
        x = Conv2DTranspose(
            filters,
            _KERNEL_SIZE,
            strides=strides,
            padding="same",
            use_bias=False,
            name=f"deconv_{index}",
        )(x)
        x = BatchNormalization(name=f"deconv_{index}_bn")(x)
        x = layers.LeakyReLU(
            negative_slope=negative_slope, name=f"deconv_{index}_relu"
        )(x)

    # tanh stays in float32 under mixed precision so images keep their range.
    images = Conv2DTranspose(
        channels,
        _KERNEL_SIZE,
        strides=2,
        padding="same",
        use_bias=False,
        activation="tanh",
        dtype="float32",
        name="to_image",
    )(x)
    return keras.Model(noise, images, name=name)


def build_discriminator(
    image_shape=(28, 28, 1),
    base_filters=64,
    dropout_rate=0.3,
    negative_slope=0.3,
    name="discriminator",
):
    """Build the DCGAN discriminator: images to one real-vs-fake logit.

    With the defaults this is the discriminator of the TensorFlow DCGAN
    tutorial: Conv2D with 64 filters and Conv2D with 128 filters, both 5x5
    with stride 2 and each followed by LeakyReLU and Dropout(0.3), then
    Flatten and Dense(1). Larger images get one more stride-2 stage per
    doubling of the side, and each stage doubles the number of filters.
    The convolutions are `keras_dcgan.layers.Conv2D`, which has the
    weights of Keras's `Conv2D` and computes the same convolution faster
    where it can (see `keras_dcgan.layers`).

    Args:
        image_shape: `(side, side, channels)` of the input images, with the
            same rule as in `build_generator`. Defaults to `(28, 28, 1)`.
        base_filters: Filters of the first stage. Defaults to `64`.
        dropout_rate: Dropout rate after each convolution. Defaults to `0.3`.
        negative_slope: Slope of LeakyReLU for negative inputs. Defaults to
            `0.3`.
        name: Name of the model. Defaults to `"discriminator"`.

    Returns:
        A functional `keras.Model` from images of `image_shape` to logits of
        shape `(batch, 1)`. The logits are float32 under mixed precision.

    Example:

    >>> discriminator = build_discriminator(image_shape=(8, 8, 1))
    >>> discriminator.output_shape
    (None, 1)
    """
    stages = upsampling_stages(image_shape)
    _check_positive_int("base_filters", base_filters)
    if not 0.0 <= dropout_rate < 1.0:
        raise ValueError(
            "Invalid `dropout_rate`: expected a float in [0, 1). "
            f"Received: dropout_rate={dropout_rate!r}."
        )

    images = keras.Input(shape=tuple(image_shape), name="images")
    x = images
    for index in range(stages):
        x = Conv2D(
            base_filters * 2**index,
            _KERNEL_SIZE,
            strides=2,
            padding="same",
            name=f"conv_{index}",
        )(x)
        x = layers.LeakyReLU(
            negative_slope=negative_slope, name=f"conv_{index}_relu"
        )(x)
        x = Dropout(dropout_rate, name=f"conv_{index}_dropout")(x)
    x = layers.Flatten(name="flatten")(x)
    logits = layers.Dense(1, dtype="float32", name="logit")(x)
    return keras.Model(images, logits, name=name)


def _check_positive_int(name, value):
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(
            f"Invalid `{name}`: expected a positive integer. "
            f"Received: {name}={value!r}."
        )
