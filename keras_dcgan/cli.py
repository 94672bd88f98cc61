"""The `keras-dcgan` command: train, sample and evaluate a DCGAN.

    keras-dcgan train --data mnist.npz --epochs 50
    keras-dcgan train --images photos/ --image-size 64 --color-mode rgb
    keras-dcgan sample runs/mnist/training_checkpoints --num-images 16
    keras-dcgan evaluate runs/mnist/training_checkpoints --data mnist.npz

`train` writes an image grid after every epoch, a checkpoint every 15
epochs and after the last one, a GIF of the grids and a plot of the losses
into `--output`, and resumes from the newest checkpoint there. Ctrl-C saves
a checkpoint before exiting with status 130. Bad options and missing files
end the command with status 2 or 1 and a one-line message on stderr.
"""

import argparse
import contextlib
import json
import math
import os
import sys
import time

MNIST_SIDE = 28
MAX_SEED = 2**32 - 1


def seed_value(text):
    """Parse a seed: an integer from 0 to 2**32 - 1, as NumPy and Keras take."""
    try:
        seed = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"invalid seed {text!r}: expected an integer"
        ) from None
    if not 0 <= seed <= MAX_SEED:
        raise argparse.ArgumentTypeError(
            f"invalid seed {seed}: expected an integer from 0 to 2**32 - 1"
        )
    return seed


class _OneLineErrorParser(argparse.ArgumentParser):
    """An argument parser whose errors are one line, without the usage."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message}\n")


def build_parser():
    parser = _OneLineErrorParser(
        prog="keras-dcgan",
        description="Train, sample and evaluate deep convolutional GANs "
        "with Keras 3 on TensorFlow, JAX or PyTorch (set KERAS_BACKEND).",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    _add_train_arguments(
        commands.add_parser(
            "train",
            help="train a DCGAN on MNIST or on a folder of images",
            description="Train a DCGAN with DCGAN.fit() on MNIST or on a "
            "folder of images, writing grids, a GIF, a loss plot and "
            "checkpoints into --output and resuming from the newest "
            "checkpoint there.",
        )
    )
    _add_sample_arguments(
        commands.add_parser(
            "sample",
            help="write a grid of generated images to a PNG",
            description="Load a checkpoint folder (its newest checkpoint) "
            "or a .keras file and write a square grid of generated images "
            "to a PNG, 100 pixels per image.",
        )
    )
    _add_evaluate_arguments(
        commands.add_parser(
            "evaluate",
            help="measure a saved MNIST DCGAN: Fréchet distance, MNIST "
            "score and class coverage",
            description="Measure a saved DCGAN that generates 28x28x1 "
            "images against the MNIST test split with the shipped "
            "classifier; prints JSON.",
        )
    )
    return parser


def _add_train_arguments(parser):
    parser.add_argument(
        "--data",
        default=None,
        help="path of a local mnist.npz to train on (default: without "
        "--images, keras.datasets downloads MNIST)",
    )
    parser.add_argument(
        "--images",
        default=None,
        metavar="FOLDER",
        help="train on the images of this folder and its subfolders "
        "instead of MNIST, read with keras.utils."
        "image_dataset_from_directory (which needs TensorFlow installed, "
        "whatever the backend); subfolder labels are ignored (default: "
        "MNIST)",
    )
    parser.add_argument(
        "--image-size",
        type=int,
        default=None,
        help="side in pixels of the square images to train on; --images "
        "are center-cropped to a square and resized to it; one of 8, 12, "
        "16, 28, 32, 48, 64, 128 and other s*2**n with s in 4..7 "
        "(default: 28 for MNIST, 64 for --images)",
    )
    parser.add_argument(
        "--color-mode",
        choices=("grayscale", "rgb"),
        default=None,
        help="channels of --images: grayscale (1) or rgb (3) "
        "(default: rgb for --images; MNIST is grayscale)",
    )
    parser.add_argument(
        "--epochs",
        type=int,
        default=100,
        help="total number of epochs to train, counting those of a run "
        "that is resumed (default: 100)",
    )
    parser.add_argument(
        "--batch-size",
        type=int,
        default=256,
        help="images per training step; with --data-parallel, the global "
        "batch over all devices (default: 256)",
    )
    parser.add_argument(
        "--latent-dim",
        type=int,
        default=100,
        help="length of the generator's noise vectors (default: 100)",
    )
    parser.add_argument(
        "--output",
        default="runs/mnist",
        help="folder for the image grids, GIF, loss plot and checkpoints "
        "(default: runs/mnist)",
    )
    parser.add_argument(
        "--steps-per-epoch",
        type=int,
        default=None,
        help="training steps per epoch, for a short run (default: one pass "
        "over the data, 235 steps for MNIST at batch 256)",
    )
    parser.add_argument(
        "--checkpoint-every",
        type=int,
        default=15,
        help="epochs between checkpoints (default: 15)",
    )
    parser.add_argument(
        "--seed",
        type=seed_value,
        default=0,
        help="seed of the weights, the training noise, the data order and "
        "the grid noise (default: 0)",
    )
    parser.add_argument(
        "--precision",
        choices=("float32", "mixed_bfloat16", "mixed_float16"),
        default="float32",
        help="Keras precision policy; mixed_float16 adds loss scaling "
        "(default: float32)",
    )
    parser.add_argument(
        "--data-parallel",
        action="store_true",
        help="split each batch over every local device: "
        "keras.distribution.DataParallel on JAX, "
        "tf.distribute.MirroredStrategy on TensorFlow (default: one "
        "device)",
    )
    parser.add_argument(
        "--multi-worker",
        action="store_true",
        help="with --data-parallel, train on several hosts: each host runs "
        "this command, and the cluster comes from KERAS_DISTRIBUTION_* "
        "variables on JAX or TF_CONFIG on TensorFlow, see "
        "docs/multi-device.md (default: one host)",
    )
    parser.add_argument(
        "--cpu-devices",
        type=int,
        default=None,
        help="with --data-parallel, split the CPU into this many virtual "
        "devices, to try data parallelism without accelerators "
        "(default: the real devices)",
    )
    parser.add_argument(
        "--return-freed-memory",
        action="store_true",
        help="let the C library give freed memory back to the operating "
        "system, at the cost of mapping it afresh every step (default: on "
        "Linux, keep it for the next steps, which made JAX and PyTorch "
        "steps 20%% and 15%% shorter on a 2-core CPU; see "
        "keras_dcgan.retain_freed_memory)",
    )
    parser.add_argument(
        "--overwrite",
        action="store_true",
        help="allow replacing image grids and checkpoints of another run in "
        "the output folder (default: stop with an error)",
    )
    parser.add_argument(
        "--verbose",
        type=int,
        choices=(0, 1, 2),
        default=1,
        help="Keras progress output: 0 silent, 1 progress bar, 2 one line "
        "per epoch (default: 1)",
    )


def _add_sample_arguments(parser):
    parser.add_argument(
        "path", help="a .keras file, or a folder of ckpt-NNNN.keras files"
    )
    parser.add_argument(
        "--num-images",
        type=int,
        default=16,
        help="images in the grid, a square number such as 16 or 64 "
        "(default: 16)",
    )
    parser.add_argument(
        "--seed",
        type=seed_value,
        default=0,
        help="seed of the noise vectors fed to the generator; the same "
        "seed gives the same images on "
        "every backend (default: 0)",
    )
    parser.add_argument(
        "--output",
        default="samples.png",
        help="PNG file to write (default: samples.png)",
    )
    parser.add_argument(
        "--overwrite",
        action="store_true",
        help="replace --output if it exists (default: stop with an error)",
    )


def _add_evaluate_arguments(parser):
    parser.add_argument(
        "path", help="a .keras file, or a folder of ckpt-NNNN.keras files"
    )
    parser.add_argument(
        "--data",
        default=None,
        help="path of a local mnist.npz (default: keras.datasets "
        "downloads MNIST)",
    )
    parser.add_argument(
        "--num-samples",
        type=int,
        default=10000,
        help="generated images to measure, at least 2 (default: 10000)",
    )
    parser.add_argument(
        "--seed",
        type=seed_value,
        default=0,
        help="seed of the generator's noise (default: 0)",
    )


def main(argv=None):
    """Run the command line `argv` (default: `sys.argv[1:]`)."""
    args = build_parser().parse_args(argv)
    command = {"train": train, "sample": sample, "evaluate": evaluate}
    return command[args.command](args)


# train


def _backend():
    import keras

    return keras.backend.backend()


def _check_train_arguments(args):
    for name in ("epochs", "batch_size", "checkpoint_every", "latent_dim"):
        if getattr(args, name) < 1:
            sys.exit(f"error: --{name.replace('_', '-')} must be at least 1")
    if args.steps_per_epoch is not None and args.steps_per_epoch < 1:
        sys.exit("error: --steps-per-epoch must be at least 1")
    if (args.multi_worker or args.cpu_devices) and not args.data_parallel:
        sys.exit("error: --multi-worker and --cpu-devices need --data-parallel")
    if args.cpu_devices is not None and args.cpu_devices < 1:
        sys.exit("error: --cpu-devices must be at least 1")
    if args.data_parallel and _backend() == "torch":
        sys.exit(
            "error: --data-parallel needs KERAS_BACKEND=jax or tensorflow: "
            "Keras 3.15 has no data-parallel training on PyTorch. Leave out "
            "--data-parallel to train on one device."
        )
    if args.images is None:
        if args.data is not None and not os.path.isfile(args.data):
            sys.exit(f"error: --data {args.data!r} is not a file")
        if args.image_size not in (None, MNIST_SIDE):
            sys.exit(
                f"error: MNIST images are {MNIST_SIDE}x{MNIST_SIDE}; "
                "--image-size applies to --images"
            )
        if args.color_mode == "rgb":
            sys.exit(
                "error: MNIST is grayscale; --color-mode applies to --images"
            )
        args.image_size, args.color_mode = MNIST_SIDE, "grayscale"
    else:
        if args.data is not None:
            sys.exit("error: give --data (MNIST) or --images, not both")
        if not os.path.isdir(args.images):
            sys.exit(f"error: --images {args.images!r} is not a folder")
        args.image_size = args.image_size or 64
        args.color_mode = args.color_mode or "rgb"
    from keras_dcgan.models import upsampling_stages

    channels = 1 if args.color_mode == "grayscale" else 3
    try:
        upsampling_stages((args.image_size, args.image_size, channels))
    except ValueError as error:
        sys.exit(f"error: --image-size {args.image_size}: {error}")
    args.image_shape = (args.image_size, args.image_size, channels)


def _training_data(args, batch_size, process_index, process_count):
    """Return the data to pass to `fit`, and the batch size to pass."""
    import keras

    from keras_dcgan.data import load_mnist

    if args.images is None:
        images = load_mnist(args.data)
        if process_count > 1:
            images = images[process_index::process_count]
        return images, batch_size
    dataset = keras.utils.image_dataset_from_directory(
        args.images,
        labels=None,
        color_mode=args.color_mode,
        image_size=(args.image_size, args.image_size),
        batch_size=None,
        shuffle=True,
        seed=args.seed,
        crop_to_aspect_ratio=True,
        verbose=False,
    )
    if process_count > 1:
        dataset = dataset.shard(process_count, process_index)
    if args.steps_per_epoch is not None:
        # Epochs of a fixed number of steps may need more than one pass.
        dataset = dataset.repeat()
    # Pixels in [0, 255] to [-1, 1], as for MNIST.
    # On several devices every batch must split evenly, so a short last
    # batch is left out there.
    dataset = dataset.batch(batch_size, drop_remainder=args.data_parallel)
    dataset = dataset.map(lambda x: x / 127.5 - 1.0)
    return dataset.prefetch(2), None


def train(args):
    _check_train_arguments(args)
    # Imported after the checks, so that their errors are not preceded by
    # the backends' start-up logs.
    import keras

    import keras_dcgan

    if not args.return_freed_memory:
        # Before anything runs on the backend, as JAX needs.
        keras_dcgan.retain_freed_memory()
    from keras_dcgan.callbacks import CtrlCBetweenSteps, EpochCounter

    image_dir = os.path.join(args.output, "images")
    checkpoint_dir = os.path.join(args.output, "training_checkpoints")
    has_checkpoint = keras_dcgan.latest_checkpoint(checkpoint_dir) is not None
    has_images = os.path.isdir(image_dir) and any(
        name.endswith(".png") for name in os.listdir(image_dir)
    )
    if has_images and not has_checkpoint and not args.overwrite:
        sys.exit(
            f"error: {image_dir} already contains image grids of another run "
            "and there is no checkpoint to resume from. Pass a new --output "
            "folder, or --overwrite to replace them."
        )

    scope = contextlib.nullcontext()
    if args.data_parallel:
        try:
            scope = keras_dcgan.data_parallel_scope(
                multi_worker=args.multi_worker, cpu_devices=args.cpu_devices
            )
        except (RuntimeError, ValueError) as error:
            sys.exit(f"error: {error}")
    keras.utils.set_random_seed(args.seed)
    keras.mixed_precision.set_global_policy(args.precision)

    process_index, process_count = 0, 1
    batch_size = args.batch_size
    if args.multi_worker and keras.backend.backend() == "jax":
        # Each JAX process feeds its own share of every global batch.
        import jax

        process_index, process_count = jax.process_index(), jax.process_count()
        if batch_size % process_count:
            sys.exit(
                f"error: --batch-size {batch_size} must be a multiple of "
                f"the {process_count} processes"
            )
        batch_size //= process_count
    try:
        data, fit_batch_size = _training_data(
            args, batch_size, process_index, process_count
        )
    except (OSError, ValueError) as error:
        sys.exit(f"error: {error}")

    with scope:
        model = keras_dcgan.DCGAN(
            keras_dcgan.build_generator(args.latent_dim, args.image_shape),
            keras_dcgan.build_discriminator(args.image_shape),
            seed=args.seed,
        )
        model.compile(
            d_optimizer=keras.optimizers.Adam(1e-4),
            g_optimizer=keras.optimizers.Adam(1e-4),
        )
    if args.data_parallel:
        devices = keras_dcgan.distribution.device_count(model)
        print(f"Training data-parallel on {devices} device(s).")
        try:
            # A folder's dataset reaches fit() already batched, so the
            # batch size is checked here.
            keras_dcgan.distribution.fit_data_for_devices(
                model, None, batch_size
            )
        except ValueError as error:
            sys.exit(f"error: {error}")
    initial_epoch = 0
    if has_checkpoint:
        _check_checkpoint_matches(args, checkpoint_dir)
        try:
            initial_epoch = keras_dcgan.restore_checkpoint(
                model, checkpoint_dir
            )
        except (OSError, ValueError) as error:
            sys.exit(f"error: cannot resume from {checkpoint_dir}: {error}")
        print(f"Resuming from the checkpoint after epoch {initial_epoch}.")
    if initial_epoch >= args.epochs:
        print(f"Already trained for {initial_epoch} epochs; nothing to do.")
        return 0

    # tf.data reports a file of --images that it cannot decode with a
    # tf.errors.OpError when the batch that contains it is read.
    image_read_errors = ()
    if args.images is not None:
        import tensorflow as tf

        image_read_errors = (tf.errors.OpError,)
    progress = EpochCounter(initial_epoch)
    # A resumed run may replace its own grids and checkpoints after the
    # epoch it resumes from: they exist only when the newest checkpoint was
    # unreadable.
    may_replace = args.overwrite or has_checkpoint
    start = time.perf_counter()
    try:
        with CtrlCBetweenSteps() as ctrl_c:
            model.fit(
                data,
                batch_size=fit_batch_size,
                # A folder's dataset is shuffled when it is read.
                shuffle=fit_batch_size is not None,
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
        _save_on_interrupt(model, checkpoint_dir, progress.completed_epochs)
        sys.exit(130)
    except (FileExistsError, OSError, ValueError) as error:
        sys.exit(f"error: {error}")
    except image_read_errors as error:
        # The message's first line ends with the decoder's own reason, after
        # the names of the tf.data functions that ran it.
        reason = str(error).strip().splitlines()[0].rsplit(": ", 1)[-1]
        sys.exit(
            f"error: failed to read the images of {args.images}: {reason} "
            "Remove or convert the files that are not images in one of "
            "these formats."
        )
    elapsed = time.perf_counter() - start
    epochs_run = args.epochs - initial_epoch
    print(
        f"Trained {epochs_run} epoch(s) on {keras.backend.backend()} in "
        f"{elapsed:.1f} s ({elapsed / epochs_run:.1f} s per epoch). "
        f"Grids, GIF and loss plot: {image_dir}"
    )
    return 0


def _check_checkpoint_matches(args, checkpoint_dir):
    """Exit if the newest checkpoint's networks differ from the options.

    Restoring weights of another image shape or noise length fails deep in
    Keras with a long message, so compare the shapes first. This loads
    the checkpoint once more than `restore_checkpoint` does, which costs
    seconds, and only when a run resumes.
    """
    from keras_dcgan import checkpoints

    try:
        saved, path = checkpoints.load_saved_model(checkpoint_dir)
    except (OSError, ValueError):
        # restore_checkpoint reports unreadable files, with its fallback.
        return
    saved_shape = tuple(saved.generator.output.shape[1:])
    if saved_shape == args.image_shape and saved.latent_dim == args.latent_dim:
        return
    shape = "x".join(str(side) for side in saved_shape)
    requested = "x".join(str(side) for side in args.image_shape)
    sys.exit(
        f"error: cannot resume from {path}: it was trained on {shape} images "
        f"with --latent-dim {saved.latent_dim}, and the options request "
        f"{requested} images with --latent-dim {args.latent_dim}. Use the "
        "same --image-size, --color-mode and --latent-dim, or another "
        "--output."
    )


def _save_on_interrupt(model, checkpoint_dir, completed_epochs):
    """Save a checkpoint after Ctrl-C so that the next run resumes.

    The weights include the steps of the interrupted epoch, and the next
    run starts that epoch again. An existing checkpoint of the same epoch
    is kept as it is.
    """
    from keras_dcgan.checkpoints import checkpoint_path, save_checkpoint

    if os.path.exists(checkpoint_path(checkpoint_dir, completed_epochs)):
        print(f"\nInterrupted. Resume from {checkpoint_dir}: run it again.")
        return
    path = save_checkpoint(model, checkpoint_dir, completed_epochs)
    print(f"\nInterrupted. Saved {path}; run the same command to resume.")


# sample and evaluate


def _check_model_path(path):
    if not os.path.exists(path):
        sys.exit(
            f"error: Model not found: {path!r}. Pass a .keras file or a "
            "folder of checkpoints."
        )


def sample(args):
    _check_model_path(args.path)

    side = math.isqrt(max(args.num_images, 0))
    if args.num_images < 1 or side * side != args.num_images:
        sys.exit(
            "error: --num-images must be a square number such as 16 or 64; "
            f"got {args.num_images}"
        )
    if os.path.exists(args.output) and not args.overwrite:
        sys.exit(
            f"error: {args.output} exists; pass another --output or "
            "--overwrite to replace it"
        )
    from keras_dcgan import checkpoints, plotting

    try:
        model, model_path = checkpoints.load_saved_model(args.path)
    except (OSError, ValueError) as error:
        sys.exit(f"error: {error}")
    images = model.generate(args.num_images, seed=args.seed)
    plotting.save_image_grid(images, args.output)
    print(f"Wrote {args.num_images} images of {model_path} to {args.output}.")
    return 0


def evaluate(args):
    if args.num_samples < 2:
        sys.exit("error: --num-samples must be at least 2")
    _check_model_path(args.path)
    if args.data is not None and not os.path.isfile(args.data):
        sys.exit(f"error: --data {args.data!r} is not a file")
    from keras_dcgan import evaluate as evaluation

    try:
        results = evaluation.evaluate(
            args.path, args.data, args.num_samples, args.seed
        )
    except (OSError, ValueError) as error:
        sys.exit(f"error: {error}")
    json.dump(results, sys.stdout, indent=2)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
