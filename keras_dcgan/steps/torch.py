"""The DCGAN training step on the PyTorch backend.

Keras runs this step eagerly, one call per batch (through
`torch.compile` with `jit_compile=True`). The phases match
`steps/tensorflow.py` one for one. Each network's gradients come from
`torch.autograd.grad` on its own loss, so neither loss leaves gradients in
the other network's `.grad` buffers and nothing needs zeroing between
steps.
"""

import torch

from keras_dcgan.steps.common import forward_losses, real_images_from_batch


def train_step(model, data):
    """Run one adversarial step on a batch and return the running logs."""
    # Phase 1: real images and a noise batch of the same size.
    real_images = real_images_from_batch(data)
    batch_size = real_images.shape[0]
    noise = model.sample_noise(batch_size)

    # Phase 2: one forward pass of both networks, and both losses.
    d_loss, g_loss, scaled_d_loss, scaled_g_loss = forward_losses(
        model, real_images, noise
    )

    # Phase 3: each network's gradients from its own loss. The graph of
    # the forward pass is kept for the second call.
    d_variables = model.discriminator.trainable_variables
    g_variables = model.generator.trainable_variables
    d_grads = torch.autograd.grad(
        scaled_d_loss, [v.value for v in d_variables], retain_graph=True
    )
    g_grads = torch.autograd.grad(scaled_g_loss, [v.value for v in g_variables])

    # Phase 4: each optimizer updates its own network.
    with torch.no_grad():
        model.d_optimizer.apply(list(d_grads), d_variables)
        model.g_optimizer.apply(list(g_grads), g_variables)

    # Phase 5: running means of both losses over the epoch.
    model.d_loss_tracker.update_state(d_loss.detach())
    model.g_loss_tracker.update_state(g_loss.detach())
    return {metric.name: metric.result() for metric in model.metrics}
