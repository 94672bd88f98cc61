"""Train a tiny DCGAN data-parallel on N devices of this CPU; save results.

Usage: KERAS_BACKEND=... python tests/data_parallel.py DEVICES OUTPUT.npz
       [--plain-loss]

JAX gets DEVICES host devices from `XLA_FLAGS` (set here, before JAX
loads) and trains under `keras.distribution.DataParallel`; TensorFlow gets
DEVICES logical CPUs and trains under `tf.distribute.MirroredStrategy`.
With DEVICES=1 no distribution is set: that run is the single-device
result the others are compared with.

The script runs one step on a batch of 16 (saving the logged losses and
the weights after it), then six more steps. It saves every weight and
optimizer variable as seen by each device, so the test can check that
the replicas agree. `--plain-loss` compiles with a plain function as
`loss_fn` instead of a `keras.losses.Loss`.
"""

import contextlib
import os
import sys

if __name__ == "__main__" and os.environ.get("KERAS_BACKEND") == "jax":
    # Before JAX starts; `multi_worker.py` imports this file without it.
    os.environ["XLA_FLAGS"] = (
        f"--xla_force_host_platform_device_count={int(sys.argv[1])}"
    )

import keras  # noqa: E402
import numpy as np  # noqa: E402

from keras_dcgan import DCGAN, build_discriminator, build_generator  # noqa: E402

LATENT_DIM = 6
IMAGE_SHAPE = (8, 8, 1)
BATCH_SIZE = 16
IMAGES = np.random.default_rng(12).uniform(-1, 1, (112, *IMAGE_SHAPE))


def distribution_scope(devices):
    """Set up `devices` devices; return the scope to build the model in."""
    if keras.backend.backend() == "jax":
        import jax

        if devices > 1:
            keras.distribution.set_distribution(
                keras.distribution.DataParallel(devices=jax.devices())
            )
        return contextlib.nullcontext()
    import tensorflow as tf

    (cpu,) = tf.config.list_physical_devices("CPU")
    tf.config.set_logical_device_configuration(
        cpu, [tf.config.LogicalDeviceConfiguration()] * devices
    )
    if devices == 1:
        return contextlib.nullcontext()
    names = [f"/cpu:{index}" for index in range(devices)]
    return tf.distribute.MirroredStrategy(names).scope()


def set_fixed_weights(network, seed):
    rng = np.random.default_rng(seed)
    for variable in network.trainable_weights:
        variable.assign(0.2 * rng.standard_normal(variable.shape))


def per_device_values(variable):
    """Return the variable's value on each device, as NumPy arrays."""
    value = variable.value
    if keras.backend.backend() == "jax":
        return [np.asarray(shard.data) for shard in value.addressable_shards]
    replicas = getattr(value, "values", (value,))
    return [np.asarray(replica.numpy()) for replica in replicas]


def build_model(loss_fn=None):
    """Build and compile the tiny DCGAN with fixed weights and seeds."""
    # Fixes the seeds of the dropout layers as well as the weights.
    keras.utils.set_random_seed(0)
    model = DCGAN(
        build_generator(LATENT_DIM, IMAGE_SHAPE, base_filters=4),
        build_discriminator(IMAGE_SHAPE, base_filters=4),
        seed=3,
    )
    set_fixed_weights(model.generator, seed=1)
    set_fixed_weights(model.discriminator, seed=2)
    model.compile(
        d_optimizer=keras.optimizers.Adam(1e-3),
        g_optimizer=keras.optimizers.Adam(1e-3),
        loss_fn=loss_fn,
    )
    return model


def replica_count(model):
    """Return the number of devices the training step ran on."""
    if keras.backend.backend() == "jax":
        distribution = keras.distribution.distribution()
        return 1 if distribution is None else distribution.device_mesh.shape[0]
    return model.distribute_strategy.num_replicas_in_sync


def main(devices, output_path):
    with distribution_scope(devices):
        loss_fn = None
        if "--plain-loss" in sys.argv:
            loss_fn = keras.losses.binary_crossentropy
        model = build_model(loss_fn)

    # One step on the first global batch.
    initial = [keras.ops.convert_to_numpy(w) for w in model.weights]
    images = IMAGES.astype("float32")
    first = model.fit(
        images[:BATCH_SIZE], batch_size=BATCH_SIZE, shuffle=False, verbose=0
    )
    results = {
        "d_loss": first.history["d_loss"][0],
        "g_loss": first.history["g_loss"][0],
    }
    for index, weight in enumerate(model.weights):
        results[f"step_1_{index}"] = keras.ops.convert_to_numpy(weight)
        results[f"initial_{index}"] = initial[index]
    results["weight_count"] = len(model.weights)

    # Six more steps, then every variable as seen by each device.
    model.fit(
        images[BATCH_SIZE:], batch_size=BATCH_SIZE, shuffle=False, verbose=0
    )
    state = model.weights + model.optimizer.variables
    for index, variable in enumerate(state):
        copies = per_device_values(variable)
        results[f"final_{index}"] = copies[0]
        results[f"copies_{index}"] = len(copies)
        spread = max(float(np.max(np.abs(c - copies[0]))) for c in copies)
        results[f"spread_{index}"] = spread
    results["state_size"] = len(state)

    results["replicas"] = replica_count(model)
    np.savez(output_path, **results)


if __name__ == "__main__":
    main(int(sys.argv[1]), sys.argv[2])
