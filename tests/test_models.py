import keras
import pytest

from keras_dcgan import build_discriminator, build_generator
from keras_dcgan.models import upsampling_stages


def test_generator_matches_tutorial():
    generator = build_generator()
    assert generator.name == "generator"
    assert generator.input_shape == (None, 100)
    assert generator.output_shape == (None, 28, 28, 1)
    # The TensorFlow DCGAN tutorial's generator summary: 2,330,944 weights.
    assert generator.count_params() == 2_330_944
    deconvs = [
        layer
        for layer in generator.layers
        if isinstance(layer, keras.layers.Conv2DTranspose)
    ]
    assert [layer.filters for layer in deconvs] == [128, 64, 1]
    assert [layer.strides for layer in deconvs] == [(1, 1), (2, 2), (2, 2)]
    assert all(layer.kernel_size == (5, 5) for layer in deconvs)
    assert not any(layer.use_bias for layer in deconvs)
    assert deconvs[-1].activation.__name__ == "tanh"


def test_generator_output_in_tanh_range():
    generator = build_generator(latent_dim=100)
    noise = keras.random.normal((4, 100), seed=1) * 10
    images = keras.ops.convert_to_numpy(generator(noise))
    assert images.min() >= -1.0
    assert images.max() <= 1.0


def test_discriminator_matches_tutorial():
    discriminator = build_discriminator()
    assert discriminator.name == "discriminator"
    assert discriminator.output_shape == (None, 1)
    # The TensorFlow DCGAN tutorial's discriminator summary: 212,865 weights.
    assert discriminator.count_params() == 212_865
    dropouts = [
        layer
        for layer in discriminator.layers
        if isinstance(layer, keras.layers.Dropout)
    ]
    assert [layer.rate for layer in dropouts] == [0.3, 0.3]


@pytest.mark.parametrize(
    "image_shape, stages",
    [((8, 8, 1), 1), ((28, 28, 1), 2), ((32, 32, 3), 3), ((64, 64, 3), 4)],
)
def test_other_image_shapes(image_shape, stages):
    assert upsampling_stages(image_shape) == stages
    generator = build_generator(latent_dim=8, image_shape=image_shape)
    discriminator = build_discriminator(image_shape=image_shape)
    assert generator.output_shape == (None, *image_shape)
    assert discriminator.input_shape == (None, *image_shape)
    strided = [
        layer
        for layer in discriminator.layers
        if isinstance(layer, keras.layers.Conv2D)
    ]
    assert len(strided) == stages


@pytest.mark.parametrize(
    "image_shape",
    [(30, 30, 1), (28, 32, 1), (6, 6, 1), (28, 28), (28, 28, 0), "28x28"],
)
def test_unbuildable_shape_rejected(image_shape):
    with pytest.raises(ValueError, match="Invalid `image_shape`") as error:
        build_generator(image_shape=image_shape)
    assert repr(image_shape) in str(error.value)
    assert "(32, 32, 3)" in str(error.value)
    with pytest.raises(ValueError, match="Invalid `image_shape`"):
        build_discriminator(image_shape=image_shape)


def test_invalid_sizes_rejected():
    with pytest.raises(ValueError, match="latent_dim=0"):
        build_generator(latent_dim=0)
    with pytest.raises(ValueError, match="dropout_rate=1.5"):
        build_discriminator(dropout_rate=1.5)
