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
    ]
    grid = iio.imread(tmp_path / "images" / "image_at_epoch_0001.png")
    # A 2x2 grid at 1 inch and 100 dots per inch per image.
    assert grid.shape[:2] == (200, 200)
    gif = iio.imread(tmp_path / "images" / "dcgan.gif", index=None)
    assert gif.shape[0] == 3


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
