"""Bad input, faults during training, interruption and resuming."""

import json
import os
import signal
import subprocess
import sys
import time
import warnings

import keras
import numpy as np
import pytest
from conftest import IMAGE_SHAPE, make_images, make_model, to_numpy

from keras_dcgan import GANCheckpoint, GANMonitor, restore_checkpoint
from keras_dcgan.callbacks import NonFiniteLossError
from keras_dcgan.checkpoints import (
    CheckpointError,
    list_checkpoints,
    save_checkpoint,
)

HERE = os.path.dirname(os.path.abspath(__file__))
RUN_SCRIPT = os.path.join(HERE, "training_run.py")
# Resuming in a new process repeats the same float32 operations in the
# same order, so weights agree to rounding.
RESUME_ATOL = 1e-6


def run_training(mode, folder, check=True):
    completed = subprocess.run(
        [sys.executable, RUN_SCRIPT, mode, str(folder)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    if check:
        assert completed.returncode == 0, completed.stderr[-3000:]
    return completed


# Bad input: a clear error before the first step.


@pytest.mark.parametrize(
    "images, message",
    [
        (np.zeros((16, 16, 16, 1), "float32"), r"shape \(16, 16, 16, 1\)"),
        (np.zeros((16, 8, 8, 3), "float32"), "3 given, 1 expected"),
        (np.zeros((16, 8, 8), "float32"), r"images\[\.\.\., None\]"),
        (np.full((16, *IMAGE_SHAPE), 255, "uint8"), r"\(x - 127\.5\) / 127\.5"),
        (np.full((16, *IMAGE_SHAPE), 0.9, "float32") + 0.5, "2 \\* x - 1"),
        (np.zeros((0, *IMAGE_SHAPE), "float32"), "Empty training data"),
        (np.zeros((4, *IMAGE_SHAPE), "float32"), "fewer than one batch"),
    ],
)
def test_bad_images_rejected_before_training(images, message):
    model = make_model()
    with pytest.raises(ValueError, match=message):
        model.fit(images, batch_size=8, verbose=0)
    assert int(model.g_optimizer.iterations) == 0


def test_non_finite_images_rejected():
    images = make_images(16)
    images[3, 2, 2, 0] = np.nan
    images[5, 0, 0, 0] = np.inf
    model = make_model()
    with pytest.raises(ValueError, match="contains 2 NaN or infinite values"):
        model.fit(images, batch_size=8, verbose=0)


def test_bad_first_batch_of_dataset_rejected():
    tf = pytest.importorskip("tensorflow", reason="tf.data needs TensorFlow")
    model = make_model()
    raw = np.full((16, *IMAGE_SHAPE), 200.0, "float32")
    with pytest.raises(ValueError, match="first batch of x has values"):
        model.fit(tf.data.Dataset.from_tensor_slices(raw).batch(8), verbose=0)
    empty = tf.data.Dataset.from_tensor_slices(make_images(8)).take(0).batch(8)
    with pytest.raises(ValueError, match="Empty dataset"):
        model.fit(empty, verbose=0)
    assert int(model.g_optimizer.iterations) == 0


# Faults during training.


class PoisonAfterEpoch(keras.callbacks.Callback):
    """Make the discriminator's weights NaN after the first epoch."""

    def on_epoch_end(self, epoch, logs=None):
        if epoch == 0:
            kernel = self.model.discriminator.trainable_variables[0]
            kernel.assign(np.full(kernel.shape, np.nan, "float32"))


def test_non_finite_loss_stops_and_keeps_checkpoint(tmp_path):
    model = make_model()
    # The checkpoint callback runs first, so epoch 1 is saved intact.
    callbacks = [GANCheckpoint(tmp_path, every_n_epochs=1), PoisonAfterEpoch()]
    with pytest.raises(NonFiniteLossError, match="epoch 2, step 1"):
        model.fit(
            make_images(16),
            batch_size=8,
            epochs=3,
            verbose=0,
            callbacks=callbacks,
        )
    assert [epoch for epoch, _ in list_checkpoints(tmp_path)] == [1]
    restored = make_model(seed=3)
    assert restore_checkpoint(restored, tmp_path) == 1
    for weight in to_numpy(restored.weights):
        assert np.all(np.isfinite(weight))


def test_killed_save_keeps_previous_checkpoint(tmp_path):
    process = subprocess.Popen(
        [sys.executable, RUN_SCRIPT, "slow_save", str(tmp_path)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 300
        while not (tmp_path / "saving").exists():
            assert process.poll() is None, "the training process ended early"
            assert time.monotonic() < deadline, "the save never started"
            time.sleep(0.2)
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    checkpoints = tmp_path / "checkpoints"
    names = sorted(os.listdir(checkpoints))
    # The unfinished save left only its temporary file.
    assert names[0].startswith(".tmp-")
    assert names[1:] == ["ckpt-0001.keras"]
    assert [epoch for epoch, _ in list_checkpoints(checkpoints)] == [1]
    assert restore_checkpoint(make_model(), checkpoints) == 1


def test_corrupted_checkpoint_detected_and_skipped(tmp_path):
    model = make_model()
    save_checkpoint(model, tmp_path, epoch=1)
    model.fit(make_images(8), batch_size=8, verbose=0)
    newest = save_checkpoint(model, tmp_path, epoch=2)
    data = open(newest, "rb").read()
    with open(newest, "wb") as file:
        file.write(data[: len(data) // 2])

    with pytest.raises(CheckpointError, match="ckpt-0002.keras"):
        restore_checkpoint(make_model(), tmp_path, fallback=False)
    with pytest.warns(UserWarning, match="Skipping checkpoint"):
        epoch = restore_checkpoint(make_model(), tmp_path)
    assert epoch == 1


def test_flipped_byte_detected(tmp_path):
    path = save_checkpoint(make_model(), tmp_path, epoch=1)
    data = bytearray(open(path, "rb").read())
    data[len(data) // 2] ^= 0xFF
    with open(path, "wb") as file:
        file.write(data)
    with pytest.raises(CheckpointError, match="No readable checkpoint"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            restore_checkpoint(make_model(), tmp_path)


def test_new_run_does_not_overwrite_checkpoints(tmp_path):
    model = make_model()
    model.fit(
        make_images(8),
        batch_size=8,
        epochs=2,
        verbose=0,
        callbacks=[GANCheckpoint(tmp_path, every_n_epochs=1)],
    )
    before = {
        name: open(tmp_path / name, "rb").read()
        for name in os.listdir(tmp_path)
    }
    fresh = make_model(seed=5)
    with pytest.raises(FileExistsError, match="overwrite=True"):
        fresh.fit(
            make_images(8),
            batch_size=8,
            epochs=2,
            verbose=0,
            callbacks=[GANCheckpoint(tmp_path, every_n_epochs=1)],
        )
    assert int(fresh.g_optimizer.iterations) == 0
    after = {
        name: open(tmp_path / name, "rb").read()
        for name in os.listdir(tmp_path)
    }
    assert after == before
    fresh.fit(
        make_images(8),
        batch_size=8,
        epochs=1,
        verbose=0,
        callbacks=[GANCheckpoint(tmp_path, every_n_epochs=1, overwrite=True)],
    )
    assert (
        open(tmp_path / "ckpt-0001.keras", "rb").read()
        != before["ckpt-0001.keras"]
    )


def test_new_run_does_not_overwrite_grids(tmp_path):
    grid = tmp_path / "image_at_epoch_0001.png"
    grid.write_bytes(b"earlier run")
    model = make_model()
    monitor = GANMonitor(tmp_path, num_images=4)
    with pytest.raises(FileExistsError, match="image_at_epoch_0001.png"):
        model.fit(make_images(8), batch_size=8, verbose=0, callbacks=[monitor])
    assert grid.read_bytes() == b"earlier run"
    # Resuming after epoch 1 writes only later grids.
    model.fit(
        make_images(8),
        batch_size=8,
        initial_epoch=1,
        epochs=2,
        verbose=0,
        callbacks=[GANMonitor(tmp_path, num_images=4, gif_name=None)],
    )
    assert grid.read_bytes() == b"earlier run"
    assert (tmp_path / "image_at_epoch_0002.png").exists()


# Resuming in a new process.


def test_backup_and_restore_resumes_in_new_process(tmp_path):
    crashed = run_training("crash", tmp_path, check=False)
    assert crashed.returncode != 0
    assert "simulated crash in epoch 3" in crashed.stderr
    run_training("resume", tmp_path)
    record = json.loads((tmp_path / "resume.json").read_text())
    assert record["first_epoch"] == 2
    assert record["d_iterations"] == 6
    assert record["g_iterations"] == 6
    # Ending where an uninterrupted run ends shows that the optimizers'
    # moments were restored too, not only their step counts.
    straight = tmp_path / "straight"
    straight.mkdir()
    run_training("straight", straight)
    assert_same_weights(straight / "weights.npz", tmp_path / "weights.npz")


def test_resumed_run_matches_straight_run(tmp_path):
    straight = tmp_path / "straight"
    halves = tmp_path / "halves"
    straight.mkdir()
    halves.mkdir()
    run_training("straight", straight)
    run_training("first_half", halves)
    run_training("second_half", halves)
    assert_same_weights(straight / "weights.npz", halves / "weights.npz")


def assert_same_weights(expected_path, actual_path):
    with np.load(expected_path) as expected, np.load(actual_path) as actual:
        assert len(expected.files) == len(actual.files) > 20
        for name in expected.files:
            np.testing.assert_allclose(
                actual[name],
                expected[name],
                rtol=0,
                atol=RESUME_ATOL,
                err_msg=name,
            )


# Security.


def test_loading_keeps_safe_mode(tmp_path):
    model = keras.Sequential(
        [keras.Input((2,)), keras.layers.Lambda(lambda x: x * 2)]
    )
    model.save(tmp_path / "lambda.keras")
    with pytest.raises(ValueError, match="safe_mode"):
        keras.saving.load_model(tmp_path / "lambda.keras")
    make_model().save(tmp_path / "dcgan.keras")
    assert keras.saving.load_model(tmp_path / "dcgan.keras").latent_dim == 6
