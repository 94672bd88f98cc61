"""The `keras-dcgan` command end to end, on a tiny folder of images."""

import argparse
import csv
import importlib.metadata
import os
import subprocess
import sys

import imageio.v3 as iio
import keras
import numpy as np
import pytest

import keras_dcgan
from keras_dcgan import cli, plotting


def run_cli(*args):
    return subprocess.run(
        [sys.executable, "-m", "keras_dcgan.cli", *args],
        capture_output=True,
        text=True,
        timeout=900,
    )


def assert_one_line_error(result, status, message):
    """Check the exit status and that the error is one line, the last.

    On TensorFlow the backend's own start-up log lines come first; they
    are not part of the command's output.
    """
    assert result.returncode == status, result.stderr[-3000:]
    assert "Traceback" not in result.stderr
    last_line = result.stderr.strip().splitlines()[-1]
    assert last_line.startswith(message), result.stderr[-3000:]


def write_image_folder(folder, count=20):
    """Write `count` PNG photos of mixed sizes into two subfolders."""
    rng = np.random.default_rng(0)
    for index in range(count):
        subfolder = folder / ("cats" if index % 2 else "dogs")
        subfolder.mkdir(parents=True, exist_ok=True)
        height, width = (30, 40) if index % 3 else (50, 20)
        pixels = rng.integers(0, 256, (height, width, 3), dtype="uint8")
        iio.imwrite(subfolder / f"photo_{index}.png", pixels)
    return folder


def test_console_script_is_registered():
    scripts = importlib.metadata.entry_points(group="console_scripts")
    (entry,) = [script for script in scripts if script.name == "keras-dcgan"]
    assert entry.value == "keras_dcgan.cli:main"


def test_train_folder_then_sample(tmp_path, monkeypatch):
    folder = write_image_folder(tmp_path / "photos")
    output = tmp_path / "run"
    trained = run_cli(
        "train",
        *("--images", str(folder), "--image-size", "8"),
        *("--batch-size", "8", "--epochs", "2", "--steps-per-epoch", "2"),
        *("--output", str(output), "--verbose", "0"),
    )
    assert trained.returncode == 0, trained.stderr[-3000:]
    assert sorted(os.listdir(output / "images")) == [
        "dcgan.gif",
        "image_at_epoch_0001.png",
        "image_at_epoch_0002.png",
        "training_log.csv",
        "training_plot.png",
    ]
    assert os.listdir(output / "training_checkpoints") == ["ckpt-0002.keras"]
    with open(output / "images" / "training_log.csv") as file:
        rows = list(csv.DictReader(file))
    assert [row["epoch"] for row in rows] == ["1", "2"]
    for row in rows:
        for name in ("d_loss", "g_loss"):
            assert np.isfinite(float(row[name]))
            assert float(row[name]) > 0

    # RGB by default for a folder, at the requested size.
    model = keras.saving.load_model(
        output / "training_checkpoints" / "ckpt-0002.keras"
    )
    assert tuple(model.generator.output.shape) == (None, 8, 8, 3)

    grid = tmp_path / "grid.png"
    sampled = run_cli(
        "sample",
        str(output / "training_checkpoints"),
        *("--num-images", "9", "--seed", "3", "--output", str(grid)),
    )
    assert sampled.returncode == 0, sampled.stderr[-3000:]
    # A 3x3 grid at 100 pixels per image.
    assert iio.imread(grid).shape[:2] == (300, 300)

    # An existing PNG is kept unless --overwrite is given.
    grid_bytes = grid.read_bytes()
    again = run_cli(
        "sample", str(output / "training_checkpoints"), "--output", str(grid)
    )
    assert_one_line_error(
        again,
        1,
        f"error: {grid} exists; pass another --output or --overwrite to "
        "replace it",
    )
    assert grid.read_bytes() == grid_bytes

    # Resuming with options for other images stops before loading weights.
    # Run in this process, train would set malloc to keep freed memory
    # before anything else, unless --return-freed-memory is given. The
    # call is recorded instead.
    retain_calls = []
    monkeypatch.setattr(
        keras_dcgan, "retain_freed_memory", lambda: retain_calls.append(1)
    )
    checkpoint = output / "training_checkpoints" / "ckpt-0002.keras"
    checkpoint_bytes = checkpoint.read_bytes()
    mismatched = [
        *("train", "--images", str(folder), "--image-size", "8"),
        *("--color-mode", "grayscale", "--output", str(output)),
        *("--epochs", "3", "--verbose", "0"),
    ]
    with pytest.raises(SystemExit) as exit_info:
        cli.main(mismatched)
    assert retain_calls == [1]
    with pytest.raises(SystemExit):
        cli.main([*mismatched, "--return-freed-memory"])
    assert retain_calls == [1]
    assert exit_info.value.code == (
        f"error: cannot resume from {checkpoint}: it was trained on 8x8x3 "
        "images with --latent-dim 100, and the options request 8x8x1 "
        "images with --latent-dim 100. Use the same --image-size, "
        "--color-mode and --latent-dim, or another --output."
    )
    assert checkpoint.read_bytes() == checkpoint_bytes
    assert len(os.listdir(output / "images")) == 5


def test_folder_batches_scaled_grayscale(tmp_path):
    folder = write_image_folder(tmp_path / "photos", count=6)
    args = cli.build_parser().parse_args(
        ["train", "--images", str(folder), "--image-size", "16"]
    )
    args.color_mode = "grayscale"
    dataset, batch_size = cli._training_data(args, 4, 0, 1)
    batches = [np.asarray(batch) for batch in dataset]
    assert batch_size is None
    assert [batch.shape for batch in batches] == [
        (4, 16, 16, 1),
        (2, 16, 16, 1),
    ]
    pixels = np.concatenate(batches)
    assert pixels.min() >= -1.0
    assert pixels.max() <= 1.0
    assert pixels.max() - pixels.min() > 1.0


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["train", "--epochs", "x"], "argument --epochs: invalid int value"),
        (["train", "--color-mode", "cmyk"], "argument --color-mode"),
        (["sample"], "the following arguments are required: path"),
        (["train", "--unknown"], "unrecognized arguments: --unknown"),
        (["sample", "x", "--seed", "-1"], "invalid seed -1: expected an"),
        (["train", "--seed", str(2**32)], "invalid seed 4294967296"),
    ],
)
def test_bad_option_exits_2(arguments, message, capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(arguments)
    assert exit_info.value.code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("keras-dcgan")
    assert message in lines[0]


def test_bad_option_as_command_exits_2():
    result = run_cli("train", "--epochs", "x")
    assert_one_line_error(result, 2, "keras-dcgan train: error: argument")


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (
            ["sample", "missing-folder"],
            "error: Model not found: 'missing-folder'",
        ),
        (
            ["evaluate", "missing.keras"],
            "error: Model not found: 'missing.keras'",
        ),
        (
            ["train", "--data", "missing.npz"],
            "error: --data 'missing.npz' is not a file",
        ),
        (
            ["train", "--images", "missing"],
            "error: --images 'missing' is not a folder",
        ),
        (["train", "--image-size", "30"], "error: MNIST images are 28x28"),
    ],
)
def test_missing_file_exits_1(tmp_path, monkeypatch, arguments, message):
    # `sys.exit(message)` prints the message and exits with status 1.
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as exit_info:
        cli.main(arguments)
    assert isinstance(exit_info.value.code, str)
    assert exit_info.value.code.startswith(message)
    assert "\n" not in exit_info.value.code
    # Nothing is written: no output folder, no downloaded data.
    assert os.listdir(tmp_path) == []


def test_missing_file_as_command_exits_1(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "keras_dcgan.cli", "sample", "missing-folder"],
        capture_output=True,
        text=True,
        timeout=900,
        cwd=tmp_path,
    )
    assert_one_line_error(result, 1, "error: Model not found: 'missing-folder'")
    assert os.listdir(tmp_path) == []


def test_file_that_is_not_an_image(tmp_path, monkeypatch):
    folder = write_image_folder(tmp_path / "photos", count=8)
    (folder / "dogs" / "broken.png").write_text("not an image")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as exit_info:
        # In this process, so the test session's malloc settings stay.
        cli.main(
            [
                *("train", "--images", str(folder), "--image-size", "8"),
                *("--batch-size", "16", "--epochs", "1", "--verbose", "0"),
                "--return-freed-memory",
            ]
        )
    assert exit_info.value.code == (
        f"error: failed to read the images of {folder}: Unknown image file "
        "format. One of JPEG, JPEG XL, PNG, GIF, BMP, WebP required. Remove "
        "or convert the files that are not images in one of these formats."
    )
    assert not os.path.exists(
        tmp_path / "runs" / "mnist" / "training_checkpoints" / "ckpt-0001.keras"
    )


def test_unbuildable_image_size_rejected(tmp_path, monkeypatch):
    folder = write_image_folder(tmp_path / "photos", count=2)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["train", "--images", str(folder), "--image-size", "30"])
    message = exit_info.value.code
    assert message.startswith("error: --image-size 30: Invalid `image_shape`")
    assert "for example 8, 12, 16, 28, 32, 48, 64, 128" in message
    assert os.listdir(tmp_path) == ["photos"]


def test_option_help_states_default():
    parser = cli.build_parser()
    (commands,) = [
        action
        for action in parser._actions
        if isinstance(action, argparse._SubParsersAction)
    ]
    checked = 0
    for name, subparser in commands.choices.items():
        for action in subparser._actions:
            if not action.option_strings or action.dest == "help":
                continue
            assert action.help, f"{name} {action.option_strings[0]}"
            assert "default" in action.help, (
                f"{name} {action.option_strings[0]}"
            )
            checked += 1
    assert checked == 25


def test_training_plot_panel_per_measure(tmp_path):
    epoch_logs = [
        (1, {"d_loss": 1.3, "g_loss": 0.7, "frechet_distance": float("nan")}),
        (2, {"d_loss": 1.1, "g_loss": 0.9, "frechet_distance": 120.0}),
        (3, {"d_loss": 1.0, "g_loss": 1.0, "frechet_distance": 80.0}),
    ]
    path = tmp_path / "plot.png"
    plotting.save_training_plot(epoch_logs, path)
    # 2.5 inches at 100 dots per inch for each of the two panels.
    assert iio.imread(path).shape[:2] == (500, 600)

    plotting.write_epoch_logs(epoch_logs, tmp_path / "log.csv")
    read = plotting.read_epoch_logs(tmp_path / "log.csv")
    assert [epoch for epoch, _ in read] == [1, 2, 3]
    assert read[1][1] == {
        "d_loss": 1.1,
        "g_loss": 0.9,
        "frechet_distance": 120.0,
    }
    assert np.isnan(read[0][1]["frechet_distance"])
