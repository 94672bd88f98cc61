"""Pieces of the training step that do not depend on the backend."""

import keras

from keras_dcgan import losses


def real_images_from_batch(data):
    """Return the images of a batch given as `x`, `(x, y)` or `[x, y]`.

    Labels and sample weights are ignored because a DCGAN is unconditional.
    """
    images, _, _ = keras.utils.unpack_x_y_sample_weight(data)
    return images


def forward_losses(model, real_images, noise):
    """Run both networks once in training mode and return both losses.

    Returns `(d_loss, g_loss, scaled_d_loss, scaled_g_loss)`. The scaled
    losses are those of a `LossScaleOptimizer` under float16, and the
    losses themselves for other optimizers. Each backend's step calls
    this where it records the pass: inside its gradient tapes on
    TensorFlow, inside a stateless scope on JAX, under autograd on
    PyTorch.
    """
    generated_images = model.generator(noise, training=True)
    real_logits = model.discriminator(real_images, training=True)
    fake_logits = model.discriminator(generated_images, training=True)
    d_loss = losses.discriminator_loss(model.loss_fn, real_logits, fake_logits)
    g_loss = losses.generator_loss(model.loss_fn, fake_logits)
    scaled_d_loss = model.d_optimizer.scale_loss(d_loss)
    scaled_g_loss = model.g_optimizer.scale_loss(g_loss)
    return d_loss, g_loss, scaled_d_loss, scaled_g_loss
