"""Image grids, animations and training plots, drawn headless."""

import csv
import math
import numbers
import os

import imageio.v3 as iio
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator


def to_uint8(images):
    """Map images in [-1, 1] to uint8 pixels with x * 127.5 + 127.5.

    Example:

    >>> to_uint8([-1.0, 0.0, 1.0]).tolist()
    [0, 128, 255]
    """
    pixels = np.asarray(images, dtype="float32") * 127.5 + 127.5
    return np.clip(np.rint(pixels), 0, 255).astype("uint8")


def save_image_grid(images, path, inches_per_image=1.0):
    """Save a square grid of images in [-1, 1] as a PNG file.

    The figure is drawn with Matplotlib's Agg canvas, so no display is
    needed, and written to a temporary file that replaces `path` only
    once complete.

    Args:
        images: Array of shape `(n, height, width, channels)` where `n` is
            a square number and `channels` is 1 or 3.
        path: Destination file, ending in `.png`.
        inches_per_image: Size of each grid cell at 100 dots per inch.
            Defaults to `1.0`.
    """
    images = np.asarray(images)
    rows = math.isqrt(len(images))
    is_square = rows * rows == len(images)
    if images.ndim != 4 or not is_square or images.shape[-1] not in (1, 3):
        raise ValueError(
            "Invalid `images`: expected shape (n, height, width, channels) "
            "with n a square number such as 16 and channels 1 or 3. "
            f"Received shape {images.shape}."
        )
    pixels = to_uint8(images)
    figure = Figure(figsize=(rows * inches_per_image, rows * inches_per_image))
    FigureCanvasAgg(figure)
    for index, image in enumerate(pixels):
        axes = figure.add_subplot(rows, rows, index + 1)
        if image.shape[-1] == 1:
            axes.imshow(image[..., 0], cmap="gray", vmin=0, vmax=255)
        else:
            axes.imshow(image)
        axes.axis("off")
    _save_figure(figure, path)


def save_gif(frame_paths, path, frame_duration_ms=200):
    """Assemble PNG frames into an animated GIF that loops forever."""
    if not frame_paths:
        raise ValueError(
            f"Cannot write the GIF {path!r}: no frames were given. Train "
            "for at least one epoch with GANMonitor first."
        )
    # Matplotlib writes RGBA, and GIF frames take RGB.
    frames = [iio.imread(frame_path)[..., :3] for frame_path in frame_paths]
    temporary_path = _temporary_path(path)
    try:
        iio.imwrite(
            temporary_path,
            np.stack(frames),
            extension=".gif",
            duration=frame_duration_ms,
            loop=0,
        )
        os.replace(temporary_path, path)
    finally:
        if os.path.exists(temporary_path):
            os.remove(temporary_path)


LOSS_NAMES = ("d_loss", "g_loss")


def _numeric_items(logs):
    for name, value in logs.items():
        value = np.asarray(value)
        if value.size == 1 and np.issubdtype(value.dtype, np.number):
            yield name, float(value.reshape(()))


def write_epoch_logs(epoch_logs, path):
    """Write `[(epoch, logs), ...]` as CSV: an `epoch` column, then one
    column per number in the logs, empty where an epoch lacks it."""
    rows = [(epoch, dict(_numeric_items(logs))) for epoch, logs in epoch_logs]
    names = []
    for _, values in rows:
        names += [name for name in values if name not in names]
    temporary_path = _temporary_path(path)
    try:
        with open(temporary_path, "w", newline="") as file:
            writer = csv.writer(file)
            writer.writerow(["epoch", *names])
            for epoch, values in rows:
                cells = [repr(values[n]) if n in values else "" for n in names]
                writer.writerow([epoch, *cells])
        os.replace(temporary_path, path)
    finally:
        if os.path.exists(temporary_path):
            os.remove(temporary_path)


def read_epoch_logs(path):
    """Read a file of `write_epoch_logs` back; `[]` if it does not exist."""
    if not os.path.exists(path):
        return []
    epoch_logs = []
    with open(path, newline="") as file:
        for row in csv.DictReader(file):
            epoch = int(row.pop("epoch"))
            logs = {name: float(cell) for name, cell in row.items() if cell}
            epoch_logs.append((epoch, logs))
    return epoch_logs


def save_training_plot(epoch_logs, path):
    """Plot the numbers of `[(epoch, logs), ...]` per epoch as a PNG.

    `d_loss` and `g_loss` share the first panel. Every other number, such
    as a measure of `MNISTQuality`, gets a panel of its own below, which
    leaves out the epochs where it is NaN (not measured).
    """
    rows = [(epoch, dict(_numeric_items(logs))) for epoch, logs in epoch_logs]
    names = []
    for _, values in rows:
        names += [name for name in values if name not in names]
    panels = [[n for n in LOSS_NAMES if n in names]]
    panels += [[n] for n in names if n not in LOSS_NAMES]
    panels = [panel for panel in panels if panel]
    if not panels:
        raise ValueError(
            f"Cannot plot {path!r}: the epoch logs hold no numbers. Train "
            "for at least one epoch first."
        )
    figure = Figure(figsize=(6, 2.5 * len(panels)))
    FigureCanvasAgg(figure)
    for index, panel in enumerate(panels):
        axes = figure.add_subplot(len(panels), 1, index + 1)
        for name in panel:
            points = [
                (epoch, values[name])
                for epoch, values in rows
                if isinstance(values.get(name), numbers.Real)
                and math.isfinite(values[name])
            ]
            if points:
                epochs, series = zip(*points)
                axes.plot(epochs, series, marker=".", label=name)
        axes.set_ylabel("loss" if panel[0] in LOSS_NAMES else panel[0])
        axes.legend(loc="best")
        axes.grid(alpha=0.3)
        if len(rows) <= 12:
            axes.set_xticks([epoch for epoch, _ in rows])
        else:
            axes.xaxis.set_major_locator(MaxNLocator(integer=True))
    axes.set_xlabel("epoch")
    figure.tight_layout()
    _save_figure(figure, path)


def _save_figure(figure, path):
    """Write `figure` as a PNG that replaces `path` only once complete."""
    temporary_path = _temporary_path(path)
    try:
        figure.savefig(temporary_path, format="png", dpi=100)
        os.replace(temporary_path, path)
    finally:
        if os.path.exists(temporary_path):
            os.remove(temporary_path)


def _temporary_path(path):
    directory, name = os.path.split(os.fspath(path))
    return os.path.join(directory, f".{name}.tmp-{os.getpid()}")
