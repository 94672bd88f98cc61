"""Deep convolutional GANs trained with Keras 3 `fit` on TensorFlow, JAX or
PyTorch."""

from keras_dcgan.callbacks import GANCheckpoint, GANMonitor
from keras_dcgan.checkpoints import latest_checkpoint, restore_checkpoint
from keras_dcgan.data import load_mnist
from keras_dcgan.dcgan import DCGAN
from keras_dcgan.distribution import data_parallel_scope
from keras_dcgan.memory import retain_freed_memory
from keras_dcgan.models import build_discriminator, build_generator

__version__ = "0.1.0"

__all__ = [
    "DCGAN",
    "GANCheckpoint",
    "GANMonitor",
    "build_discriminator",
    "build_generator",
    "data_parallel_scope",
    "latest_checkpoint",
    "load_mnist",
    "restore_checkpoint",
    "retain_freed_memory",
]
