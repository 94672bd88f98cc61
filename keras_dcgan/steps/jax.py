"""The DCGAN training step on the JAX backend.

Keras jits this step and empties the model's variables for the length of
an epoch, so the step is pure: every value it reads comes in through
`state` and every value it changes goes out through the returned state.
That covers both networks' weights, BatchNormalization statistics, the
noise and dropout seed states (non-trainable variables), both optimizers'
variables (`model.optimizer` is an `OptimizerPair`) and the loss metrics.
The phases match `steps/tensorflow.py` one for one.
"""

import jax
from keras import StatelessScope

from keras_dcgan.steps.common import forward_losses, real_images_from_batch


def train_step(model, state, data):
    """Run one adversarial step on a batch; return (logs, new state)."""
    (
        trainable_values,
        non_trainable_values,
        optimizer_values,
        metrics_values,
    ) = state
    d_variables = model.discriminator.trainable_variables
    g_variables = model.generator.trainable_variables
    d_values = _select(model.trainable_variables, trainable_values, d_variables)
    g_values = _select(model.trainable_variables, trainable_values, g_variables)

    # Phase 1: real images and a noise batch of the same size.
    # Phase 2: one forward pass of both networks, and both losses. The noise
    # is drawn inside the pass because its seed state is a non-trainable
    # variable that only the stateless scope can read here.
    real_images = real_images_from_batch(data)

    def forward(d_values, g_values):
        state_mapping = list(zip(d_variables, d_values))
        state_mapping += list(zip(g_variables, g_values))
        state_mapping += list(
            zip(model.non_trainable_variables, non_trainable_values)
        )
        # The loss scale of a LossScaleOptimizer is an optimizer variable.
        state_mapping += list(zip(model.optimizer.variables, optimizer_values))
        with StatelessScope(state_mapping=state_mapping) as scope:
            noise = model.sample_noise(real_images.shape[0])
            d_loss, g_loss, scaled_d_loss, scaled_g_loss = forward_losses(
                model, real_images, noise
            )
        new_non_trainable_values = _updated_values(
            scope, model.non_trainable_variables, non_trainable_values
        )
        return (scaled_d_loss, scaled_g_loss), (
            new_non_trainable_values,
            d_loss,
            g_loss,
        )

    _, backward, (non_trainable_values, d_loss, g_loss) = jax.vjp(
        forward, d_values, g_values, has_aux=True
    )

    # Phase 3: each network's gradients from its own loss. Each backward
    # pass also yields the other network's gradients, which jit discards.
    ones = jax.numpy.ones_like(d_loss)
    zeros = jax.numpy.zeros_like(d_loss)
    d_grads, _ = backward((ones, zeros))
    _, g_grads = backward((zeros, ones))

    # Phase 4: each optimizer updates its own network.
    d_optimizer_values, g_optimizer_values = model.optimizer.split_variables(
        optimizer_values
    )
    d_values, d_optimizer_values = model.d_optimizer.stateless_apply(
        d_optimizer_values, d_grads, d_values
    )
    g_values, g_optimizer_values = model.g_optimizer.stateless_apply(
        g_optimizer_values, g_grads, g_values
    )
    trainable_values = _merge(
        model.trainable_variables,
        trainable_values,
        [(d_variables, d_values), (g_variables, g_values)],
    )
    optimizer_values = d_optimizer_values + g_optimizer_values

    # Phase 5: running means of both losses over the epoch.
    metrics_mapping = list(zip(model.metrics_variables, metrics_values))
    with StatelessScope(state_mapping=metrics_mapping) as scope:
        model.d_loss_tracker.update_state(d_loss)
        model.g_loss_tracker.update_state(g_loss)
        logs = {metric.name: metric.result() for metric in model.metrics}
    metrics_values = _updated_values(
        scope, model.metrics_variables, metrics_values
    )

    state = (
        trainable_values,
        non_trainable_values,
        optimizer_values,
        metrics_values,
    )
    return logs, state


def _select(all_variables, all_values, requested_variables):
    positions = {id(variable): i for i, variable in enumerate(all_variables)}
    return [
        all_values[positions[id(variable)]] for variable in requested_variables
    ]


def _merge(all_variables, all_values, updates):
    positions = {id(variable): i for i, variable in enumerate(all_variables)}
    merged = list(all_values)
    for variables, values in updates:
        for variable, value in zip(variables, values):
            merged[positions[id(variable)]] = value
    return merged


def _updated_values(scope, variables, old_values):
    new_values = []
    for variable, old_value in zip(variables, old_values):
        new_value = scope.get_current_value(variable)
        new_values.append(old_value if new_value is None else new_value)
    return new_values
