"""The DCGAN training step on the TensorFlow backend.

Keras runs this step inside a `tf.function`, so it may read and assign
variables directly. The phases match `steps/jax.py` one for one.

Every stateful op of the step waits for the batch. At the end of a
dataset of unknown length Keras calls the step once more, and that call
fails in reading the batch; ops that do not read the batch (optimizer
iterations, metric counts, the noise seed state) would otherwise still
run, and the epoch's mean losses and Adam's bias correction would be
wrong.
"""

import tensorflow as tf

from keras_dcgan import distribution
from keras_dcgan.steps.common import forward_losses, real_images_from_batch


def train_step(model, data):
    """Run one adversarial step on a batch and return the running logs."""
    real_images = real_images_from_batch(data)
    with tf.control_dependencies([real_images]):
        # Phase 1: real images and a noise batch of the same size. On
        # several replicas each one takes its rows of the global batch's
        # noise.
        batch_size = tf.shape(real_images)[0]
        distribution.check_replica_loss(model.loss_fn)
        noise = distribution.replica_rows(model.sample_noise, batch_size)

        # Phase 2: one forward pass of both networks, and both losses.
        with tf.GradientTape() as d_tape, tf.GradientTape() as g_tape:
            d_loss, g_loss, scaled_d_loss, scaled_g_loss = forward_losses(
                model, real_images, noise
            )

        # Phase 3: each network's gradients from its own loss.
        d_variables = model.discriminator.trainable_variables
        g_variables = model.generator.trainable_variables
        d_grads = d_tape.gradient(scaled_d_loss, d_variables)
        g_grads = g_tape.gradient(scaled_g_loss, g_variables)

        # Phase 4: each optimizer updates its own network.
        model.d_optimizer.apply_gradients(zip(d_grads, d_variables))
        model.g_optimizer.apply_gradients(zip(g_grads, g_variables))

        # Phase 5: running means of both losses over the epoch, as
        # global-batch values when the step runs on several replicas.
        model.d_loss_tracker.update_state(distribution.logged_loss(d_loss))
        model.g_loss_tracker.update_state(distribution.logged_loss(g_loss))
        logs = {metric.name: metric.result() for metric in model.metrics}
    return distribution.per_replica_logs(logs)
