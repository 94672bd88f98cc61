"""Callbacks that save image grids and checkpoints during `fit`.

Both read the networks through `self.model` at each call. On JAX, Keras
holds the live variable values outside the model during an epoch and
writes them back before `on_epoch_end`, so a reference kept from an
earlier call would show stale weights.
"""

import glob
import logging
import math
import os
import signal

import keras
import numpy as np

from keras_dcgan import checkpoints, distribution, plotting, validation

logger = logging.getLogger(__name__)


class NonFiniteLossError(FloatingPointError):
    """Raised when `d_loss` or `g_loss` becomes NaN or infinite."""


class StopOnNonFiniteLoss(keras.callbacks.Callback):
    """Stop training with an error when a loss becomes NaN or infinite.

    `DCGAN.fit` adds this callback itself. The error is raised from
    `on_train_batch_end`, before any later `on_epoch_end`, so no checkpoint
    is written from the broken state and earlier ones stay as they were.
    Reading the losses makes each step wait for the previous one to finish
    on JAX, which costs little at the step times of a DCGAN.
    """

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        for name in ("d_loss", "g_loss"):
            if logs and name in logs and not validation.is_finite(logs[name]):
                raise NonFiniteLossError(
                    f"Training stopped: {name} is {float(logs[name])} at epoch "
                    f"{self.epoch + 1}, step {batch + 1}. Checkpoints written "
                    "before this step are unchanged. Lower the learning "
                    "rates, check the data for extreme values, and resume "
                    "from the last checkpoint."
                )


class CtrlCBetweenSteps(keras.callbacks.Callback):
    """Turn Ctrl-C into a KeyboardInterrupt raised between training steps.

    A KeyboardInterrupt that arrives while JAX waits for a step's result was
    lost in testing (jax 0.10.2, numpy 2.4), and training went on. So the
    signal handler only records the request, and this callback raises it
    after the current step. A second Ctrl-C raises at once.
    """

    def __init__(self):
        super().__init__()
        self.requested = False
        self._previous_handler = None

    def __enter__(self):
        self._previous_handler = signal.signal(signal.SIGINT, self._handle)
        return self

    def __exit__(self, *exc_info):
        signal.signal(signal.SIGINT, self._previous_handler)

    def _handle(self, signum, frame):
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True

    def on_train_batch_end(self, batch, logs=None):
        if self.requested:
            raise KeyboardInterrupt


class EpochCounter(keras.callbacks.Callback):
    """Count the epochs completed so far, including earlier runs."""

    def __init__(self, initial_epoch):
        super().__init__()
        self.completed_epochs = initial_epoch

    def on_epoch_end(self, epoch, logs=None):
        self.completed_epochs = epoch + 1


class GANMonitor(keras.callbacks.Callback):
    """Save a grid of generated images after every epoch, and plots.

    The grid shows the generator's output, in inference mode, for one fixed
    batch of noise vectors drawn with NumPy from `seed`, so grids of
    different epochs and of different backends show the same noise. Files
    are named `image_at_epoch_NNNN.png` with epochs counted from 1.

    The epoch logs (`d_loss`, `g_loss`, and the quality measures of
    `MNISTQuality` or any other numbers that callbacks add) go to
    `training_log.csv`, one row per epoch, and at the end of training to a
    plot, `training_plot.png`. A resumed run reads the rows of the epochs
    before the one it starts from, so the plot covers the whole training.

    Args:
        output_dir: Folder of the grids, created if missing. Defaults to
            `"images"`.
        num_images: Images per grid, a square number. Defaults to `16`, a
            4x4 grid.
        seed: Seed of the fixed noise. Defaults to `0`.
        gif_name: File name, inside `output_dir`, of an animated GIF of all
            grids in the folder, written at the end of training. Defaults
            to `"dcgan.gif"`. `None` writes no GIF.
        frame_duration_ms: Display time of each GIF frame in
            milliseconds. Defaults to `200`.
        overwrite: Whether grids of epochs after `initial_epoch` already in
            `output_dir`, left by another run, may be replaced. Defaults to
            `False`, which raises `FileExistsError` before the first step.
        plot_name: File name, inside `output_dir`, of the plot of the
            epoch logs written at the end of training. Defaults to
            `"training_plot.png"`. `None` writes neither the plot nor the
            CSV file of the logs.
    """

    log_name = "training_log.csv"

    def __init__(
        self,
        output_dir="images",
        num_images=16,
        seed=0,
        gif_name="dcgan.gif",
        frame_duration_ms=200,
        overwrite=False,
        plot_name="training_plot.png",
    ):
        super().__init__()
        if (
            not isinstance(num_images, int)
            or num_images < 1
            or math.isqrt(num_images) ** 2 != num_images
        ):
            raise ValueError(
                "Invalid `num_images`: expected a square number such as 4, "
                f"16 or 64, to fill a square grid. Received: "
                f"num_images={num_images!r}."
            )
        self.output_dir = output_dir
        self.num_images = num_images
        self.seed = seed
        self.gif_name = gif_name
        self.frame_duration_ms = frame_duration_ms
        self.overwrite = overwrite
        self.plot_name = plot_name
        self.noise = None
        self._checked_existing = False
        self._epoch_logs = None

    def on_train_begin(self, logs=None):
        self._checked_existing = False
        self._epoch_logs = None
        os.makedirs(self.output_dir, exist_ok=True)
        self.noise = fixed_noise(
            self.seed, self.num_images, self.model.latent_dim
        )

    def on_epoch_begin(self, epoch, logs=None):
        if self._epoch_logs is None:
            # Epochs of an earlier run up to the one this run starts from.
            self._epoch_logs = [
                (number, row)
                for number, row in plotting.read_epoch_logs(self._log_path())
                if number <= epoch
            ]
        else:
            # The logs of the last epoch are complete only now: callbacks
            # after this one may have added to them in `on_epoch_end`.
            self._write_epoch_logs()
        if self._checked_existing or self.overwrite:
            return
        self._checked_existing = True
        later = [
            path
            for path in glob.glob(
                os.path.join(self.output_dir, "image_at_epoch_*.png")
            )
            if _epoch_in_name(path) > epoch
        ]
        if later:
            raise FileExistsError(
                f"{self.output_dir!r} already contains image grids of epochs "
                f"after {epoch}, the newest {sorted(later)[-1]!r}, from an "
                "earlier run. Use another output_dir, start from a later "
                "initial_epoch, or pass overwrite=True to replace them."
            )

    def on_epoch_end(self, epoch, logs=None):
        if self._epoch_logs is not None and logs is not None:
            # The same dictionary that later callbacks add their values to.
            self._epoch_logs.append((epoch + 1, logs))
        if not distribution.is_chief(self.model):
            return
        images = self.model.generate_from_noise(self.noise)
        plotting.save_image_grid(images, self.image_path(epoch + 1))

    def on_train_end(self, logs=None):
        if not distribution.is_chief(self.model):
            return
        if self.plot_name is not None and self._epoch_logs:
            self._write_epoch_logs()
            plotting.save_training_plot(
                self._epoch_logs,
                os.path.join(self.output_dir, self.plot_name),
            )
        if self.gif_name is None:
            return
        frame_paths = sorted(
            glob.glob(os.path.join(self.output_dir, "image_at_epoch_*.png"))
        )
        if frame_paths:
            plotting.save_gif(
                frame_paths,
                os.path.join(self.output_dir, self.gif_name),
                self.frame_duration_ms,
            )

    def _log_path(self):
        return os.path.join(self.output_dir, self.log_name)

    def _write_epoch_logs(self):
        if self.plot_name is None or not distribution.is_chief(self.model):
            return
        plotting.write_epoch_logs(self._epoch_logs, self._log_path())

    def image_path(self, epoch):
        """Return the path of the grid saved after `epoch` (1-based)."""
        return os.path.join(self.output_dir, f"image_at_epoch_{epoch:04d}.png")


class GANCheckpoint(keras.callbacks.Callback):
    """Save the whole training state every `every_n_epochs` epochs.

    Each checkpoint is a `.keras` file written atomically, see
    `keras_dcgan.checkpoints`, and logged at INFO level on the
    `keras_dcgan.callbacks` logger. Epochs count from 1 and include
    `initial_epoch`, so a run resumed at epoch 15 with the default saves
    after epochs 30, 45 and so on. Resume with `restore_checkpoint`.

    Args:
        directory: Folder of the checkpoints, created if missing. It is
            checked for write access when training begins. Defaults to
            `"training_checkpoints"`.
        every_n_epochs: Epochs between checkpoints. Defaults to `15`.
        max_to_keep: Number of newest checkpoints kept. Defaults to `5`.
            `None` keeps all.
        overwrite: Whether checkpoints of epochs after `initial_epoch`
            already in `directory`, left by an earlier run, may be replaced
            or deleted. Defaults to `False`, which raises `FileExistsError`
            before the first step.
        save_at_end: Whether to also save after the last epoch when
            training ends normally, so that a later run can resume from
            there. Defaults to `True`.
    """

    def __init__(
        self,
        directory="training_checkpoints",
        every_n_epochs=15,
        max_to_keep=5,
        overwrite=False,
        save_at_end=True,
    ):
        super().__init__()
        if not _is_int_at_least(every_n_epochs, 1):
            raise ValueError(
                "Invalid `every_n_epochs`: expected a positive integer. "
                f"Received: every_n_epochs={every_n_epochs!r}."
            )
        if max_to_keep is not None and not _is_int_at_least(max_to_keep, 1):
            raise ValueError(
                "Invalid `max_to_keep`: expected a positive integer or None "
                f"to keep all. Received: max_to_keep={max_to_keep!r}."
            )
        self.directory = directory
        self.every_n_epochs = every_n_epochs
        self.max_to_keep = max_to_keep
        self.overwrite = overwrite
        self.save_at_end = save_at_end
        self.saved_epochs = []
        self._checked_existing = False
        self._completed_epochs = None

    def on_train_begin(self, logs=None):
        checkpoints.check_writable(self.directory)
        self._checked_existing = False
        self._completed_epochs = None

    def on_epoch_begin(self, epoch, logs=None):
        if self._checked_existing or self.overwrite:
            return
        self._checked_existing = True
        later = [
            path
            for saved_epoch, path in checkpoints.list_checkpoints(
                self.directory
            )
            if saved_epoch > epoch
        ]
        if later:
            raise FileExistsError(
                f"{self.directory!r} already contains checkpoints of epochs "
                f"after {epoch}, the newest {later[-1]!r}, from an earlier "
                "run. Resume from the newest with restore_checkpoint(), use "
                "another directory, or pass overwrite=True to replace them."
            )

    def on_epoch_end(self, epoch, logs=None):
        self._completed_epochs = epoch + 1
        if self._completed_epochs % self.every_n_epochs == 0:
            self._save(self._completed_epochs)

    def on_train_end(self, logs=None):
        last_epoch = self._completed_epochs
        if (
            self.save_at_end
            and last_epoch
            and last_epoch not in self.saved_epochs
        ):
            self._save(last_epoch)

    def _save(self, completed_epochs):
        if not distribution.is_chief(self.model):
            return
        path = checkpoints.save_checkpoint(
            self.model, self.directory, completed_epochs, self.max_to_keep
        )
        self.saved_epochs.append(completed_epochs)
        logger.info("Epoch %d: saved checkpoint %s", completed_epochs, path)


class MNISTQuality(keras.callbacks.Callback):
    """Add image-quality measures to the logs every `every_n_epochs` epochs.

    After those epochs the generator makes `num_samples` images from a
    fixed noise batch, and the logs get `frechet_distance` (against
    `real_images`), `mnist_score` and `classes_covered`, see
    `keras_dcgan.metrics`. Other epochs log NaN for the three, so every
    epoch has the same keys. `History` records them. Keras callbacks that
    read the logs, such as `CSVLogger` and `TensorBoard`, see them when they
    come after this callback in the `callbacks` list.

    Args:
        real_images: Held-out real images, `(N, 28, 28, 1)` in [-1, 1],
            such as `load_mnist(path, split="test")`.
        every_n_epochs: Epochs between measurements. Defaults to `5`.
        num_samples: Generated images per measurement. Defaults to `1000`.
        seed: Seed of the fixed noise. Defaults to `0`.
    """

    KEYS = ("frechet_distance", "mnist_score", "classes_covered")

    def __init__(self, real_images, every_n_epochs=5, num_samples=1000, seed=0):
        super().__init__()
        for name, value, minimum in (
            ("every_n_epochs", every_n_epochs, 1),
            ("num_samples", num_samples, 2),
        ):
            if not _is_int_at_least(value, minimum):
                raise ValueError(
                    f"Invalid `{name}`: expected an integer of at least "
                    f"{minimum}. Received: {name}={value!r}."
                )
        self.real_images = real_images
        self.every_n_epochs = every_n_epochs
        self.num_samples = num_samples
        self.seed = seed
        self._real_features = None
        self.noise = None

    def on_train_begin(self, logs=None):
        from keras_dcgan import metrics

        self._real_features, _ = metrics.classifier_outputs(self.real_images)
        self.noise = fixed_noise(
            self.seed, self.num_samples, self.model.latent_dim
        )

    def on_epoch_end(self, epoch, logs=None):
        if logs is None:
            return
        if (epoch + 1) % self.every_n_epochs != 0:
            logs.update({key: float("nan") for key in self.KEYS})
            return
        logs.update(self.measure())

    def measure(self):
        """Return the three measures for the generator's current weights."""
        from keras_dcgan import metrics

        images = self.model.generate_from_noise(self.noise)
        features, probabilities = metrics.classifier_outputs(images)
        return {
            "frechet_distance": metrics.frechet_distance_from_features(
                self._real_features, features
            ),
            "mnist_score": metrics.score_from_probabilities(probabilities),
            "classes_covered": float(
                metrics.coverage_from_probabilities(
                    probabilities
                ).classes_covered
            ),
        }


def fixed_noise(seed, num_vectors, latent_dim):
    """Return float32 standard-normal noise drawn with NumPy from `seed`.

    NumPy, unlike the backends' generators, gives the same numbers on
    every backend, so grids and measures match across backends.
    """
    rng = np.random.default_rng(seed)
    return rng.standard_normal((num_vectors, latent_dim)).astype("float32")


def _epoch_in_name(path):
    digits = os.path.basename(path)[len("image_at_epoch_") : -len(".png")]
    return int(digits) if digits.isdigit() else 0


def _is_int_at_least(value, minimum):
    return (
        isinstance(value, int)
        and not isinstance(value, bool)
        and value >= minimum
    )
