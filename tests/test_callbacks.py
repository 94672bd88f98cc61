import csv
import importlib.util
import os

import imageio.v3 as iio
import keras
import numpy as np
import pytest
from conftest import LATENT_DIM, make_images, make_model, to_numpy

from keras_dcgan import GANCheckpoint, GANMonitor, restore_checkpoint
from keras_dcgan.checkpoints import list_checkpoints, save_checkpoint


def test_monitor_saves_grid_per_epoch_and_gif(tmp_path):
    model = make_model()
    monitor = GANMonitor(output_dir=tmp_path / "images", num_images=4)
    model.fit(
        make_images(16), batch_size=8, epochs=3, verbose=0, callbacks=[monitor]
    )

    names = sorted(os.listdir(tmp_path / "images"))
    assert names == [
        "dcgan.gif",
        "image_at_epoch_0001.png",
        "image_at_epoch_0002.png",
        "image_at_epoch_0003.png",
        "training_log.csv",
        "training_plot.png",
    ]
    grid = iio.imread(tmp_path / "images" / "image_at_epoch_0001.png")
    # A 2x2 grid at 1 inch and 100 dots per inch per image.
    assert grid.shape[:2] == (200, 200)
    gif = iio.imread(tmp_path / "images" / "dcgan.gif", index=None)
    assert gif.shape[0] == 3


class AddMeasure(keras.callbacks.Callback):
    """Add a made-up measure to the epoch logs, as MNISTQuality does."""

    def on_epoch_end(self, epoch, logs=None):
        logs["made_up_measure"] = 10.0 * (epoch + 1)


def read_log(path):
    with open(path) as file:
        return list(csv.DictReader(file))


def test_monitor_log_has_later_callbacks_values(tmp_path):
    model = make_model()
    monitor = GANMonitor(output_dir=tmp_path, num_images=4, gif_name=None)
    model.fit(
        make_images(16),
        batch_size=8,
        epochs=2,
        verbose=0,
        callbacks=[monitor, AddMeasure()],
    )
    rows = read_log(tmp_path / "training_log.csv")
    history = model.history.history
    assert [row["epoch"] for row in rows] == ["1", "2"]
    assert [float(row["made_up_measure"]) for row in rows] == [10.0, 20.0]
    np.testing.assert_allclose(
        [float(row["d_loss"]) for row in rows], history["d_loss"], rtol=1e-6
    )
    np.testing.assert_allclose(
        [float(row["g_loss"]) for row in rows], history["g_loss"], rtol=1e-6
    )
    # One panel for both losses and one for the measure, 250 pixels each.
    plot = iio.imread(tmp_path / "training_plot.png")
    assert plot.shape[:2] == (500, 600)


def test_monitor_log_continues_after_resume(tmp_path):
    model = make_model()
    images = make_images(16)
    model.fit(
        images,
        batch_size=8,
        epochs=2,
        verbose=0,
        callbacks=[GANMonitor(tmp_path, num_images=4, gif_name=None)],
    )
    first_rows = read_log(tmp_path / "training_log.csv")
    model.fit(
        images,
        batch_size=8,
        epochs=3,
        initial_epoch=2,
        verbose=0,
        callbacks=[GANMonitor(tmp_path, num_images=4, gif_name=None)],
    )
    rows = read_log(tmp_path / "training_log.csv")
    assert [row["epoch"] for row in rows] == ["1", "2", "3"]
    assert rows[:2] == first_rows


@pytest.mark.skipif(
    importlib.util.find_spec("tensorboard") is None,
    reason="TensorBoard is not installed (pip install tensorboard)",
)
def test_tensorboard_and_csv_logger_record_losses(tmp_path):
    import tensorflow as tf

    model = make_model()
    model.fit(
        make_images(16),
        batch_size=8,
        epochs=2,
        verbose=0,
        callbacks=[
            keras.callbacks.TensorBoard(tmp_path / "logs"),
            keras.callbacks.CSVLogger(tmp_path / "log.csv"),
        ],
    )
    tags = {}
    for path in (tmp_path / "logs" / "train").glob("events*"):
        for event in tf.compat.v1.train.summary_iterator(str(path)):
            for value in event.summary.value:
                tags[value.tag] = tags.get(value.tag, 0) + 1
    # One learning rate per optimizer, named after it ("adam", "adam_1"
    # in a fresh process).
    rates = {tag: n for tag, n in tags.items() if "learning_rate" in tag}
    losses = {tag: n for tag, n in tags.items() if tag not in rates}
    assert losses == {"epoch_d_loss": 2, "epoch_g_loss": 2}
    assert sorted(rates.values()) == [2, 2]
    assert all(tag.startswith("epoch_learning_rate_adam") for tag in rates)
    rows = read_log(tmp_path / "log.csv")
    assert [row["epoch"] for row in rows] == ["0", "1"]
    np.testing.assert_allclose(
        [float(row["d_loss"]) for row in rows],
        model.history.history["d_loss"],
        rtol=1e-6,
    )


def test_monitor_grids_show_fixed_noise(tmp_path):
    model = make_model()
    monitor = GANMonitor(
        output_dir=tmp_path, num_images=4, seed=5, gif_name=None
    )
    model.fit(
        make_images(8), batch_size=8, epochs=1, verbose=0, callbacks=[monitor]
    )
    expected = np.random.default_rng(5).standard_normal((4, LATENT_DIM))
    np.testing.assert_array_equal(monitor.noise, expected.astype("float32"))
    assert not os.path.exists(tmp_path / "dcgan.gif")


def test_monitor_rejects_non_square_count():
    with pytest.raises(ValueError, match="num_images=10"):
        GANMonitor(num_images=10)


def test_checkpoint_every_15_epochs_of_30(tmp_path):
    model = make_model()
    checkpoint = GANCheckpoint(directory=tmp_path, max_to_keep=None)
    model.fit(
        make_images(8),
        batch_size=8,
        epochs=30,
        verbose=0,
        callbacks=[checkpoint],
    )
    assert checkpoint.saved_epochs == [15, 30]
    assert [epoch for epoch, _ in list_checkpoints(tmp_path)] == [15, 30]


@pytest.mark.parametrize(
    "save_at_end, saved", [(True, [15, 20]), (False, [15])]
)
def test_checkpoint_after_last_epoch(tmp_path, save_at_end, saved):
    model = make_model()
    checkpoint = GANCheckpoint(directory=tmp_path, save_at_end=save_at_end)
    model.fit(
        make_images(8),
        batch_size=8,
        epochs=20,
        verbose=0,
        callbacks=[checkpoint],
    )
    assert checkpoint.saved_epochs == saved
    assert [epoch for epoch, _ in list_checkpoints(tmp_path)] == saved


def test_checkpoint_counts_from_initial_epoch(tmp_path):
    model = make_model()
    checkpoint = GANCheckpoint(directory=tmp_path)
    history = model.fit(
        make_images(8),
        batch_size=8,
        initial_epoch=10,
        epochs=30,
        verbose=0,
        callbacks=[checkpoint],
    )
    assert history.epoch[0] == 10
    assert checkpoint.saved_epochs == [15, 30]
    assert int(model.g_optimizer.iterations) == 20


def test_checkpoint_keeps_newest(tmp_path):
    model = make_model()
    checkpoint = GANCheckpoint(
        directory=tmp_path, every_n_epochs=1, max_to_keep=2
    )
    model.fit(
        make_images(8),
        batch_size=8,
        epochs=4,
        verbose=0,
        callbacks=[checkpoint],
    )
    assert [epoch for epoch, _ in list_checkpoints(tmp_path)] == [3, 4]
    assert sorted(os.listdir(tmp_path)) == [
        "ckpt-0003.keras",
        "ckpt-0004.keras",
    ]


def test_restore_continues_exactly(tmp_path):
    images = make_images(16)
    model = make_model(seed=1)
    model.fit(
        images,
        batch_size=8,
        epochs=2,
        verbose=0,
        callbacks=[GANCheckpoint(directory=tmp_path, every_n_epochs=2)],
    )

    resumed = make_model(seed=9)
    epoch = restore_checkpoint(resumed, tmp_path)
    assert epoch == 2
    for original, restored in (
        (model.d_optimizer, resumed.d_optimizer),
        (model.g_optimizer, resumed.g_optimizer),
    ):
        assert int(restored.iterations) == 4
        for a, b in zip(
            to_numpy(original.variables), to_numpy(restored.variables)
        ):
            np.testing.assert_array_equal(a, b)
    for a, b in zip(to_numpy(model.variables), to_numpy(resumed.variables)):
        np.testing.assert_array_equal(a, b)

    history = resumed.fit(
        images, batch_size=8, initial_epoch=epoch, epochs=3, verbose=0
    )
    assert history.epoch == [2]
    assert int(resumed.d_optimizer.iterations) == 6


def test_restore_needs_compiled_model(tmp_path):
    model = make_model()
    save_checkpoint(model, tmp_path, epoch=1)
    fresh = type(model)(model.generator, model.discriminator)
    with pytest.raises(ValueError, match="not compiled"):
        restore_checkpoint(fresh, tmp_path)


def test_restore_from_empty_folder_fails(tmp_path):
    with pytest.raises(FileNotFoundError, match="No checkpoint found"):
        restore_checkpoint(make_model(), tmp_path)


def test_interrupted_save_keeps_previous(tmp_path, monkeypatch):
    model = make_model()
    first = save_checkpoint(model, tmp_path, epoch=1)
    first_bytes = open(first, "rb").read()

    def failing_save(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(type(model), "save", failing_save)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(model, tmp_path, epoch=2)
    assert os.listdir(tmp_path) == ["ckpt-0001.keras"]
    assert open(first, "rb").read() == first_bytes
    monkeypatch.undo()
    assert restore_checkpoint(make_model(), tmp_path) == 1


def test_checkpoint_rejects_bad_arguments():
    with pytest.raises(ValueError, match="every_n_epochs=0"):
        GANCheckpoint(every_n_epochs=0)
    with pytest.raises(ValueError, match="max_to_keep=0"):
        GANCheckpoint(max_to_keep=0)


def test_unwritable_checkpoint_folder_fails_before_training(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    model = make_model()
    # OSError picks the subclass from the errno: NotADirectoryError here.
    with pytest.raises(NotADirectoryError, match="Cannot write checkpoints"):
        model.fit(
            make_images(8),
            batch_size=8,
            epochs=1,
            verbose=0,
            callbacks=[GANCheckpoint(directory=blocker / "checkpoints")],
        )
    assert int(model.g_optimizer.iterations) == 0


def test_keras_callbacks_see_both_losses_and_optimizers(tmp_path):
    model = make_model()
    csv_path = tmp_path / "log.csv"
    model.fit(
        make_images(8),
        batch_size=8,
        epochs=2,
        verbose=0,
        callbacks=[
            keras.callbacks.CSVLogger(str(csv_path)),
            keras.callbacks.LearningRateScheduler(
                lambda epoch, rate: 0.5**epoch
            ),
        ],
    )
    header, *rows = csv_path.read_text().splitlines()
    assert header.split(",")[:3] == ["epoch", "d_loss", "g_loss"]
    assert len(rows) == 2
    # The scheduler reaches each optimizer through `model.optimizer.optimizers`.
    assert float(model.d_optimizer.learning_rate) == 0.5
    assert float(model.g_optimizer.learning_rate) == 0.5
