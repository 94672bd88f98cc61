"""Deep convolutional GANs trained with Keras 3 `fit` on TensorFlow or JAX."""

from keras_dcgan.dcgan import DCGAN
from keras_dcgan.models import build_discriminator, build_generator

__all__ = [
    "DCGAN",
    "build_discriminator",
    "build_generator",
]
