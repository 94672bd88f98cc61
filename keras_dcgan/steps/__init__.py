"""Backend-specific DCGAN training steps, chosen by `KERAS_BACKEND`.

Each backend has its own module with the same phases in the same order:
1. real images and a noise batch of the same size;
2. one forward pass of both networks, and both losses;
3. each network's gradients from its own loss;
4. each optimizer updates its own network;
5. running means of both losses over the epoch.
"""

import keras

SUPPORTED_BACKENDS = ("tensorflow", "jax", "torch")


def backend_train_step():
    """Return the training step function of the active Keras backend.

    Raises:
        ValueError: if the backend has no DCGAN training step.
    """
    backend = keras.backend.backend()
    if backend == "tensorflow":
        from keras_dcgan.steps import tensorflow

        return tensorflow.train_step
    if backend == "jax":
        from keras_dcgan.steps import jax

        return jax.train_step
    if backend == "torch":
        from keras_dcgan.steps import torch

        return torch.train_step
    raise ValueError(
        f"Unsupported Keras backend: expected one of {SUPPORTED_BACKENDS}. "
        f"Received: KERAS_BACKEND={backend!r}. Set the environment "
        "variable KERAS_BACKEND to 'tensorflow', 'jax' or 'torch' before "
        "importing keras."
    )
