"""`examples/mnist.py` end to end on a small MNIST-layout file."""

import os
import signal
import subprocess
import sys
import time

import keras
import numpy as np
import pytest
from conftest import MNIST_PATH, REPO_ROOT, requires_mnist

SCRIPT = os.path.join(REPO_ROOT, "examples", "mnist.py")


def run_example(*args):
    return subprocess.run(
        [sys.executable, SCRIPT, "--verbose", "0", *args],
        capture_output=True,
        text=True,
        timeout=900,
    )


def write_fake_mnist(path):
    rng = np.random.default_rng(0)
    np.savez(
        path,
        x_train=rng.integers(0, 256, (64, 28, 28), dtype="uint8"),
        x_test=rng.integers(0, 256, (8, 28, 28), dtype="uint8"),
    )


def test_example_trains_and_resumes(tmp_path):
    data = tmp_path / "mnist.npz"
    write_fake_mnist(data)
    output = tmp_path / "run"
    common = [
        "--data",
        str(data),
        "--output",
        str(output),
        "--batch-size",
        "32",
    ]

    # With the default of a checkpoint every 15 epochs, the checkpoint
    # saved after the last epoch is what the second run resumes from.
    first = run_example(*common, "--epochs", "2")
    assert first.returncode == 0, first.stderr[-3000:]
    images = sorted(os.listdir(output / "images"))
    assert images == [
        "dcgan.gif",
        "image_at_epoch_0001.png",
        "image_at_epoch_0002.png",
        "training_log.csv",
        "training_plot.png",
    ]
    assert os.listdir(output / "training_checkpoints") == ["ckpt-0002.keras"]

    second = run_example(
        *common,
        "--epochs",
        "3",
        "--checkpoint-every",
        "1",
        "--steps-per-epoch",
        "1",
    )
    assert second.returncode == 0, second.stderr[-3000:]
    assert "Resuming from the checkpoint after epoch 2" in second.stdout
    assert "image_at_epoch_0003.png" in os.listdir(output / "images")
    # The resumed run's log and plot cover the epochs of both runs.
    with open(output / "images" / "training_log.csv") as file:
        epochs = [line.split(",")[0] for line in file.read().splitlines()]
    assert epochs == ["epoch", "1", "2", "3"]
    assert sorted(os.listdir(output / "training_checkpoints")) == [
        "ckpt-0002.keras",
        "ckpt-0003.keras",
    ]


def test_example_keeps_grids_of_another_run(tmp_path):
    data = tmp_path / "mnist.npz"
    write_fake_mnist(data)
    grid = tmp_path / "run" / "images" / "image_at_epoch_0001.png"
    grid.parent.mkdir(parents=True)
    grid.write_bytes(b"earlier run")

    result = run_example("--data", str(data), "--output", str(tmp_path / "run"))
    assert result.returncode != 0
    assert "--overwrite" in result.stderr
    assert grid.read_bytes() == b"earlier run"


def test_example_rejects_bad_flag_value(tmp_path):
    result = run_example("--epochs", "0", "--output", str(tmp_path))
    assert result.returncode != 0
    assert "--epochs must be at least 1" in result.stderr


@pytest.mark.slow
@requires_mnist
def test_example_on_real_mnist(tmp_path):
    result = run_example(
        "--data",
        MNIST_PATH,
        "--output",
        str(tmp_path),
        "--epochs",
        "1",
        "--steps-per-epoch",
        "5",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert os.path.isfile(tmp_path / "images" / "image_at_epoch_0001.png")
    assert os.path.isfile(tmp_path / "images" / "dcgan.gif")


def test_ctrl_c_saves_checkpoint_and_resumes(tmp_path):
    data = tmp_path / "mnist.npz"
    write_fake_mnist(data)
    output = tmp_path / "run"
    common = [
        "--data",
        str(data),
        "--output",
        str(output),
        "--batch-size",
        "32",
    ]
    process = subprocess.Popen(
        [sys.executable, SCRIPT, "--verbose", "0", *common, "--epochs", "1000"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 600
        while not (output / "images" / "image_at_epoch_0001.png").exists():
            assert process.poll() is None, process.stderr.read()[-3000:]
            assert time.monotonic() < deadline, "no epoch finished in time"
            time.sleep(0.2)
        process.send_signal(signal.SIGINT)
        stdout, stderr = process.communicate(timeout=300)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 130, stderr[-3000:]
    assert "Interrupted. Saved" in stdout
    saved = sorted(os.listdir(output / "training_checkpoints"))
    assert len(saved) == 1
    epoch = int(saved[0][len("ckpt-") : -len(".keras")])
    assert epoch >= 1

    resumed = run_example(*common, "--epochs", str(epoch + 1))
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert (
        f"Resuming from the checkpoint after epoch {epoch}." in resumed.stdout
    )
    assert f"image_at_epoch_{epoch + 1:04d}.png" in os.listdir(
        output / "images"
    )


def test_example_precision_flag(tmp_path):
    data = tmp_path / "mnist.npz"
    write_fake_mnist(data)
    result = run_example(
        *("--data", str(data), "--output", str(tmp_path / "run")),
        *("--batch-size", "32", "--epochs", "1", "--steps-per-epoch", "1"),
        *("--precision", "mixed_float16"),
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert os.listdir(tmp_path / "run" / "training_checkpoints") == [
        "ckpt-0001.keras"
    ]


def test_example_data_parallel_two_devices(tmp_path):
    data = tmp_path / "mnist.npz"
    write_fake_mnist(data)
    output = tmp_path / "run"
    result = run_example(
        *("--data", str(data), "--output", str(output)),
        *("--batch-size", "32", "--epochs", "1", "--steps-per-epoch", "2"),
        *("--data-parallel", "--cpu-devices", "2"),
    )
    if keras.backend.backend() == "torch":
        assert result.returncode == 1
        last_line = result.stderr.strip().splitlines()[-1]
        assert last_line == (
            "error: --data-parallel needs KERAS_BACKEND=jax or tensorflow: "
            "Keras 3.15 has no data-parallel training on PyTorch. Leave out "
            "--data-parallel to train on one device."
        )
        assert not (output / "training_checkpoints").exists()
        return
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Training data-parallel on 2 device(s)." in result.stdout
    assert os.listdir(output / "training_checkpoints") == ["ckpt-0001.keras"]
    assert "image_at_epoch_0001.png" in os.listdir(output / "images")


def test_example_rejects_cpu_devices_alone(tmp_path):
    result = run_example(
        *("--output", str(tmp_path / "run"), "--cpu-devices", "2")
    )
    assert result.returncode != 0
    last_line = result.stderr.strip().splitlines()[-1]
    assert last_line == (
        "error: --multi-worker and --cpu-devices need --data-parallel"
    )
    assert not (tmp_path / "run").exists()
