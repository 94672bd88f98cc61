"""Data-parallel training on two devices matches one device.

Each run is a subprocess of `data_parallel.py`, because the number of
devices is fixed when the backend starts. JAX trains under
`keras.distribution.DataParallel`, TensorFlow under
`tf.distribute.MirroredStrategy`, on two virtual devices of this CPU.
"""

import os
import subprocess
import sys

import keras
import numpy as np
import pytest
from conftest import requires_data_parallel

from keras_dcgan import distribution
from keras_dcgan.layers import BatchNormalization, Dropout

SCRIPT = os.path.join(os.path.dirname(__file__), "data_parallel.py")

# Tolerances: two devices add the same numbers in another order (partial
# sums per replica, then an all-reduce), so results differ by rounding.
LOSS_RTOL = 1e-5
WEIGHT_ATOL = 1e-5


def train_on(devices, output_path):
    completed = subprocess.run(
        [sys.executable, SCRIPT, str(devices), str(output_path)],
        env=dict(os.environ),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    with np.load(output_path) as results:
        return dict(results)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    folder = tmp_path_factory.mktemp("data_parallel")
    return {
        devices: train_on(devices, folder / f"devices_{devices}.npz")
        for devices in (1, 2)
    }


@requires_data_parallel
def test_two_devices_split_batch(runs):
    assert int(runs[1]["replicas"]) == 1
    assert int(runs[2]["replicas"]) == 2
    state_size = int(runs[2]["state_size"])
    copies = [int(runs[2][f"copies_{i}"]) for i in range(state_size)]
    assert copies == [2] * state_size


@requires_data_parallel
def test_two_devices_log_global_losses(runs):
    # The logged losses are those of the whole batch of 16, not of one
    # device's 8 images, so they equal the single-device losses.
    for name in ("d_loss", "g_loss"):
        np.testing.assert_allclose(
            runs[2][name], runs[1][name], rtol=LOSS_RTOL, err_msg=name
        )


@requires_data_parallel
def test_two_devices_step_matches_single(runs):
    count = int(runs[1]["weight_count"])
    assert count == int(runs[2]["weight_count"]) > 0
    largest_change = 0.0
    for index in range(count):
        one, two = runs[1][f"step_1_{index}"], runs[2][f"step_1_{index}"]
        np.testing.assert_allclose(two, one, atol=WEIGHT_ATOL)
        change = np.abs(one - runs[1][f"initial_{index}"]).max()
        largest_change = max(largest_change, float(change))
    # Adam(1e-3) moves weights by about 1e-3 in the first step, far more
    # than the tolerance, so the comparison shows the update itself.
    assert largest_change > 100 * WEIGHT_ATOL


@requires_data_parallel
def test_seven_steps_replicas_agree(runs):
    state_size = int(runs[2]["state_size"])
    assert state_size == int(runs[1]["state_size"])
    for index in range(state_size):
        np.testing.assert_allclose(
            runs[2][f"final_{index}"],
            runs[1][f"final_{index}"],
            atol=WEIGHT_ATOL,
            err_msg=f"state variable {index}",
        )
        # Every weight, BatchNormalization statistic and optimizer
        # variable has the same value on both devices.
        assert float(runs[2][f"spread_{index}"]) == 0.0


def test_single_replica_outside_strategy():
    assert distribution.replica_position() == (0, 1)
    assert distribution.num_replicas() == 1
    value = keras.ops.convert_to_tensor(0.75)
    assert distribution.logged_loss(value) is value
    rows = distribution.replica_rows(lambda n: keras.ops.arange(n * 2), 3)
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(rows), range(6))


def test_replica_layers_match_keras():
    rng = np.random.default_rng(0)
    inputs = rng.standard_normal((6, 4, 4, 3)).astype("float32")
    ours, theirs = BatchNormalization(), keras.layers.BatchNormalization()
    for layer in (ours, theirs):
        layer.build(inputs.shape)
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(ours(inputs, training=True)),
        keras.ops.convert_to_numpy(theirs(inputs, training=True)),
        atol=1e-6,
    )
    assert ours.get_config()["synchronized"] is False
    dropout = Dropout(0.5, seed=4)
    reference = keras.layers.Dropout(0.5, seed=4)
    np.testing.assert_array_equal(
        keras.ops.convert_to_numpy(dropout(inputs, training=True)),
        keras.ops.convert_to_numpy(reference(inputs, training=True)),
    )


def test_plain_loss_rejected_on_replicas(tmp_path):
    if keras.backend.backend() != "tensorflow":
        pytest.skip("only tf.distribute divides losses by the replica count")
    completed = subprocess.run(
        [
            sys.executable,
            SCRIPT,
            "2",
            str(tmp_path / "out.npz"),
            "--plain-loss",
        ],
        env=dict(os.environ),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert completed.returncode != 0
    assert "Invalid `loss_fn` for training on 2 replicas" in completed.stderr
    assert not (tmp_path / "out.npz").exists()


WARNING_SCRIPT = """
import warnings
import keras
import numpy as np
import tensorflow as tf
from keras_dcgan import DCGAN

(cpu,) = tf.config.list_physical_devices("CPU")
tf.config.set_logical_device_configuration(
    cpu, [tf.config.LogicalDeviceConfiguration()] * 2
)
with tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"]).scope():
    generator = keras.Sequential([
        keras.Input((4,)), keras.layers.Dense(16),
        keras.layers.BatchNormalization(name="plain_bn"),
        keras.layers.Reshape((4, 4, 1)),
    ])
    discriminator = keras.Sequential([
        keras.Input((4, 4, 1)), keras.layers.Flatten(),
        keras.layers.Dropout(0.3, name="plain_dropout"), keras.layers.Dense(1),
    ])
    model = DCGAN(generator, discriminator)
    model.compile(d_optimizer=keras.optimizers.Adam(),
                  g_optimizer=keras.optimizers.Adam())
images = np.zeros((8, 4, 4, 1), "float32")
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    model.fit(images, batch_size=8, verbose=0)
for warning in caught:
    print("WARNING", warning.message)
"""


def test_per_replica_layers_warn():
    if keras.backend.backend() != "tensorflow":
        pytest.skip("only tf.distribute runs the step once per replica")
    completed = subprocess.run(
        [sys.executable, "-c", WARNING_SCRIPT],
        env=dict(os.environ),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    warnings = [
        line
        for line in completed.stdout.splitlines()
        if line.startswith("WARNING")
    ]
    assert len(warnings) == 2, completed.stdout
    assert "'plain_bn' is a keras.layers.BatchNormalization" in warnings[0]
    assert "each of the 2 replicas" in warnings[0]
    assert "'plain_dropout' is a keras.layers.Dropout" in warnings[1]


UNEVEN_SCRIPT = """
import warnings
import keras
import numpy as np
from keras_dcgan import (
    DCGAN, build_discriminator, build_generator, data_parallel_scope,
)

with data_parallel_scope(cpu_devices=2):
    model = DCGAN(
        build_generator(6, (8, 8, 1), base_filters=4),
        build_discriminator((8, 8, 1), base_filters=4),
    )
    model.compile(d_optimizer=keras.optimizers.Adam(),
                  g_optimizer=keras.optimizers.Adam())
images = np.zeros((13, 8, 8, 1), "float32")
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    history = model.fit(images, batch_size=8, verbose=0)
print("STEPS", len(history.history["d_loss"]))
for warning in caught:
    if "Dropped" in str(warning.message):
        print("WARNING", warning.message)
try:
    model.fit(images, batch_size=7, verbose=0)
except ValueError as error:
    print("ERROR", error)
"""


@requires_data_parallel
def test_uneven_batches_on_two_devices():
    completed = subprocess.run(
        [sys.executable, "-c", UNEVEN_SCRIPT],
        env=dict(os.environ),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    lines = completed.stdout.splitlines()
    # 13 images at batch 8 leave a last batch of 5, which loses one image
    # so that both devices get 2.
    assert "STEPS 1" in lines
    assert (
        "WARNING Dropped the last 1 of 13 images, so that the last batch "
        "of 5 splits evenly over 2 devices. Pass a number of images that "
        "is a multiple of the number of devices to keep them all."
    ) in lines
    assert (
        "ERROR Invalid `batch_size` for data-parallel training on 2 "
        "devices: expected a multiple of 2, such as 8, so that every device "
        "gets an equal share of each batch. Received: batch_size=7."
    ) in lines


def test_torch_scope_rejected():
    if keras.backend.backend() != "torch":
        pytest.skip("the other backends have a data-parallel scope")
    with pytest.raises(ValueError) as caught:
        distribution.data_parallel_scope()
    message = str(caught.value)
    assert "supports the TensorFlow and JAX backends" in message
    assert "Received: KERAS_BACKEND='torch'" in message
