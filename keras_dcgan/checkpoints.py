"""Checkpoints of the whole training state as `.keras` files.

A checkpoint is the `.keras` file that `model.save` writes: both networks,
both optimizers' variables, the noise and dropout seed states, and the
compile configuration. The epoch it was saved after is in its file name,
`ckpt-NNNN.keras`. Each file is written under a temporary name in the same
folder and renamed into place only when complete, so an interrupted save
leaves the earlier checkpoints as they were.
"""

import os
import re
import warnings
import zipfile

_CHECKPOINT_PATTERN = re.compile(r"^ckpt-(\d{4,})\.keras$")


class CheckpointError(ValueError):
    """Raised when a checkpoint file is truncated, corrupted or unloadable."""


def checkpoint_path(directory, epoch):
    """Return the path of the checkpoint saved after `epoch` (1-based).

    Example:

    >>> checkpoint_path("training_checkpoints", 15)
    'training_checkpoints/ckpt-0015.keras'
    """
    return os.path.join(directory, f"ckpt-{epoch:04d}.keras")


def list_checkpoints(directory):
    """Return `(epoch, path)` of every checkpoint in `directory`, oldest first.

    Unfinished temporary files are not listed. A missing folder has none.
    """
    if not os.path.isdir(directory):
        return []
    checkpoints = []
    for name in os.listdir(directory):
        match = _CHECKPOINT_PATTERN.match(name)
        if match:
            checkpoints.append(
                (int(match.group(1)), os.path.join(directory, name))
            )
    return sorted(checkpoints)


def latest_checkpoint(directory):
    """Return the path of the newest checkpoint in `directory`, or `None`."""
    checkpoints = list_checkpoints(directory)
    return checkpoints[-1][1] if checkpoints else None


def save_checkpoint(model, directory, epoch, max_to_keep=None):
    """Save the training state of `model` after `epoch` (1-based).

    Args:
        model: A compiled `DCGAN`.
        directory: Folder of the checkpoints, created if missing.
        epoch: Number of epochs trained so far.
        max_to_keep: Number of newest checkpoints to keep, deleting older
            ones after a successful save. Defaults to `None`, keep all.

    Returns:
        The path of the new checkpoint.
    """
    os.makedirs(directory, exist_ok=True)
    path = checkpoint_path(directory, epoch)
    # The temporary name must end in `.keras` for `model.save` and must not
    # match the checkpoint pattern.
    temporary_path = os.path.join(
        directory, f".tmp-{os.getpid()}-ckpt-{epoch:04d}.keras"
    )
    try:
        model.save(temporary_path)
        _fsync_file(temporary_path)
        os.replace(temporary_path, path)
        _fsync_directory(directory)
    finally:
        if os.path.exists(temporary_path):
            os.remove(temporary_path)
    if max_to_keep is not None:
        for _, old_path in list_checkpoints(directory)[:-max_to_keep]:
            os.remove(old_path)
    return path


def restore_checkpoint(model, directory, fallback=True):
    """Restore the newest readable checkpoint in `directory` into `model`.

    Each file's zip checksums are verified before anything is loaded, so a
    truncated or corrupted checkpoint is found without touching the model.

    Args:
        model: A `DCGAN` built with the same networks as the one saved, and
            compiled, so that both optimizers' variables exist.
        directory: Folder of the checkpoints.
        fallback: Whether to skip an unreadable newest checkpoint, with a
            warning, and restore the newest readable one. Defaults to
            `True`. With `False` an unreadable newest checkpoint raises.

    Returns:
        The epoch the restored checkpoint was saved after, to pass to
        `fit(..., initial_epoch=epoch)`.

    Raises:
        FileNotFoundError: if `directory` contains no checkpoint.
        CheckpointError: if no checkpoint, or with `fallback=False` the
            newest one, can be loaded.
        ValueError: if `model` is not compiled.
    """
    if not getattr(model, "compiled", False):
        raise ValueError(
            "Cannot restore a checkpoint into a model that is not compiled: "
            "the optimizers' state has nowhere to go. Call "
            "model.compile(d_optimizer=..., g_optimizer=...) first."
        )
    checkpoints = list_checkpoints(directory)
    if not checkpoints:
        raise FileNotFoundError(
            f"No checkpoint found in {directory!r}: expected files named "
            "ckpt-NNNN.keras written by GANCheckpoint. Check the folder, "
            "or train from the start."
        )
    failures = []
    for epoch, path in reversed(checkpoints):
        try:
            verify_checkpoint(path)
            model.load_weights(path)
        except CheckpointError as error:
            if not fallback:
                raise
            warnings.warn(f"Skipping checkpoint {path}: {error}", stacklevel=2)
            failures.append(path)
            continue
        return epoch
    raise CheckpointError(
        f"No readable checkpoint in {directory!r}: all of {failures} are "
        "truncated or corrupted. Train from the start or restore the folder "
        "from a backup."
    )


def load_saved_model(path):
    """Load a compiled DCGAN from a `.keras` file or a checkpoint folder.

    A folder gives its newest checkpoint.

    Returns:
        `(model, model_path)`: the model and the file it was loaded from.

    Raises:
        FileNotFoundError: if `path` is neither a file nor a folder with a
            checkpoint.
    """
    import keras

    model_path = path
    if os.path.isdir(path):
        model_path = latest_checkpoint(path)
        if model_path is None:
            raise FileNotFoundError(
                f"No checkpoint found in {path!r}: expected files named "
                "ckpt-NNNN.keras. Pass a .keras file or a checkpoint folder."
            )
    elif not os.path.isfile(path):
        raise FileNotFoundError(
            f"Model not found: {path!r}. Pass a .keras file or a folder of "
            "checkpoints."
        )
    return keras.saving.load_model(model_path), model_path


def verify_checkpoint(path):
    """Raise `CheckpointError` if the `.keras` file at `path` is damaged."""
    try:
        with zipfile.ZipFile(path) as archive:
            damaged = archive.testzip()
    except (zipfile.BadZipFile, OSError, EOFError) as error:
        raise CheckpointError(
            f"{path} is not a readable .keras file ({error}); it is "
            "truncated or corrupted."
        ) from error
    if damaged is not None:
        raise CheckpointError(
            f"{path} is corrupted: the checksum of its member {damaged!r} "
            "does not match."
        )


def check_writable(directory):
    """Raise an error now if checkpoints cannot be written to `directory`."""
    try:
        os.makedirs(directory, exist_ok=True)
        probe = os.path.join(directory, f".write-test-{os.getpid()}")
        with open(probe, "wb") as file:
            file.write(b"0")
        os.remove(probe)
    except OSError as error:
        raise OSError(
            error.errno,
            f"Cannot write checkpoints to {directory!r}: {error.strerror}. "
            "Pass a writable folder, not a file, as `directory`.",
        ) from error


def _fsync_file(path):
    with open(path, "rb") as file:
        os.fsync(file.fileno())


def _fsync_directory(directory):
    descriptor = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
