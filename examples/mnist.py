"""Train the reference DCGAN on MNIST.

This reproduces the TensorFlow DCGAN tutorial with `DCGAN.fit`: pixels
scaled to [-1, 1], batches of 256, Adam(1e-4) for each network, a 4x4 grid
of images after every epoch, a checkpoint every 15 epochs and an animated
GIF at the end. Choose the backend with the environment variable:

    KERAS_BACKEND=jax python examples/mnist.py --data ../shared/data/mnist.npz
    KERAS_BACKEND=tensorflow python examples/mnist.py --data ...

A run whose output folder already contains checkpoints resumes from the
newest one. Ctrl-C saves a checkpoint before exiting, so the next run
resumes from it.
"""

import argparse
import os
import signal
import sys
import time

import keras

import keras_dcgan
from keras_dcgan.checkpoints import checkpoint_path, save_checkpoint


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description="Train the reference DCGAN on MNIST with DCGAN.fit()."
    )
    parser.add_argument(
        "--epochs",
        type=int,
        default=100,
        help="total number of epochs to train (default: 100)",
    )
    parser.add_argument(
        "--batch-size",
        type=int,
        default=256,
        help="images per training step (default: 256)",
    )
    parser.add_argument(
        "--data",
        default=None,
        help="path of a local mnist.npz; without it keras.datasets "
        "downloads MNIST",
    )
    parser.add_argument(
        "--output",
        default="runs/mnist",
        help="folder for the image grids, the GIF and the checkpoints "
        "(default: runs/mnist)",
    )
    parser.add_argument(
        "--steps-per-epoch",
        type=int,
        default=None,
        help="training steps per epoch, for a short run (default: one pass "
        "over the data, 235 steps at batch 256)",
    )
    parser.add_argument(
        "--checkpoint-every",
        type=int,
        default=15,
        help="epochs between checkpoints (default: 15)",
    )
    parser.add_argument(
        "--seed",
        type=int,
        default=0,
        help="seed of the weights, the training noise and the grid noise "
        "(default: 0)",
    )
    parser.add_argument(
        "--precision",
        choices=("float32", "mixed_bfloat16", "mixed_float16"),
        default="float32",
        help="Keras precision policy; mixed_float16 adds loss scaling "
        "(default: float32)",
    )
    parser.add_argument(
        "--overwrite",
        action="store_true",
        help="allow replacing image grids and checkpoints of another run in "
        "the output folder",
    )
    parser.add_argument(
        "--verbose",
        type=int,
        choices=(0, 1, 2),
        default=1,
        help="Keras progress output: 0 silent, 1 progress bar, 2 one line "
        "per epoch (default: 1)",
    )
    return parser.parse_args(argv)


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


def save_on_interrupt(model, checkpoint_dir, completed_epochs):
    """Save a checkpoint after Ctrl-C so that the next run resumes.

    The weights include the steps of the interrupted epoch, and the next
    run starts that epoch again. An existing checkpoint of the same epoch
    is kept as it is.
    """
    if os.path.exists(checkpoint_path(checkpoint_dir, completed_epochs)):
        print(f"\nInterrupted. Resume from {checkpoint_dir}: run it again.")
        return
    path = save_checkpoint(model, checkpoint_dir, completed_epochs)
    print(f"\nInterrupted. Saved {path}; run the same command to resume.")


def main(argv=None):
    args = parse_args(argv)
    for name in ("epochs", "batch_size", "checkpoint_every"):
        if getattr(args, name) < 1:
            sys.exit(f"error: --{name.replace('_', '-')} must be at least 1")
    if args.steps_per_epoch is not None and args.steps_per_epoch < 1:
        sys.exit("error: --steps-per-epoch must be at least 1")

    image_dir = os.path.join(args.output, "images")
    checkpoint_dir = os.path.join(args.output, "training_checkpoints")
    has_checkpoint = keras_dcgan.latest_checkpoint(checkpoint_dir) is not None
    has_images = os.path.isdir(image_dir) and any(
        name.endswith(".png") for name in os.listdir(image_dir)
    )
    if has_images and not has_checkpoint and not args.overwrite:
        sys.exit(
            f"error: {image_dir} already holds image grids of another run "
            "and there is no checkpoint to resume from. Pass a new --output "
            "folder, or --overwrite to replace them."
        )

    keras.utils.set_random_seed(args.seed)
    keras.mixed_precision.set_global_policy(args.precision)
    images = keras_dcgan.load_mnist(args.data)

    model = keras_dcgan.DCGAN(
        keras_dcgan.build_generator(),
        keras_dcgan.build_discriminator(),
        seed=args.seed,
    )
    model.compile(
        d_optimizer=keras.optimizers.Adam(1e-4),
        g_optimizer=keras.optimizers.Adam(1e-4),
    )
    initial_epoch = 0
    if has_checkpoint:
        initial_epoch = keras_dcgan.restore_checkpoint(model, checkpoint_dir)
        print(f"Resuming from the checkpoint after epoch {initial_epoch}.")
    if initial_epoch >= args.epochs:
        print(f"Already trained for {initial_epoch} epochs; nothing to do.")
        return

    progress = EpochCounter(initial_epoch)
    # A resumed run may replace its own grids and checkpoints after the
    # epoch it resumes from: they exist only when the newest checkpoint was
    # unreadable.
    may_replace = args.overwrite or has_checkpoint
    start = time.perf_counter()
    try:
        with CtrlCBetweenSteps() as ctrl_c:
            model.fit(
                images,
                batch_size=args.batch_size,
                epochs=args.epochs,
                initial_epoch=initial_epoch,
                steps_per_epoch=args.steps_per_epoch,
                verbose=args.verbose,
                callbacks=[
                    ctrl_c,
                    progress,
                    keras_dcgan.GANMonitor(
                        output_dir=image_dir,
                        seed=args.seed,
                        overwrite=may_replace,
                    ),
                    keras_dcgan.GANCheckpoint(
                        directory=checkpoint_dir,
                        every_n_epochs=args.checkpoint_every,
                        overwrite=may_replace,
                    ),
                ],
            )
    except KeyboardInterrupt:
        save_on_interrupt(model, checkpoint_dir, progress.completed_epochs)
        sys.exit(130)
    except (FileExistsError, OSError, ValueError) as error:
        sys.exit(f"error: {error}")
    elapsed = time.perf_counter() - start
    epochs_run = args.epochs - initial_epoch
    print(
        f"Trained {epochs_run} epoch(s) on {keras.backend.backend()} in "
        f"{elapsed:.1f} s ({elapsed / epochs_run:.1f} s per epoch). "
        f"Grids and GIF: {image_dir}"
    )


if __name__ == "__main__":
    main()
