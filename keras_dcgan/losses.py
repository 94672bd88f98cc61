"""Adversarial losses of the DCGAN training step.

Both losses take the discriminator's logits. With the default
`loss_fn`, binary cross-entropy on logits, they are the losses of
Goodfellow et al. (2014) in the non-saturating form that the TensorFlow
DCGAN tutorial trains with.
"""

import keras
from keras import ops


def default_loss_fn():
    """Return binary cross-entropy on logits, the default `loss_fn`."""
    return keras.losses.BinaryCrossentropy(from_logits=True)


def discriminator_loss(loss_fn, real_logits, fake_logits):
    """Compute the discriminator loss: real images labelled 1, generated 0."""
    real_loss = loss_fn(ops.ones_like(real_logits), real_logits)
    fake_loss = loss_fn(ops.zeros_like(fake_logits), fake_logits)
    return real_loss + fake_loss


def generator_loss(loss_fn, fake_logits):
    """Compute the generator loss: generated images labelled 1."""
    return loss_fn(ops.ones_like(fake_logits), fake_logits)
