"""Image grids and animations of generated images, drawn headless."""

import math
import os

import imageio.v3 as iio
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure


def to_uint8(images):
    """Map images in [-1, 1] to uint8 pixels with x * 127.5 + 127.5."""
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
    temporary_path = _temporary_path(path)
    try:
        figure.savefig(temporary_path, format="png", dpi=100)
        os.replace(temporary_path, path)
    finally:
        if os.path.exists(temporary_path):
            os.remove(temporary_path)


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


def _temporary_path(path):
    directory, name = os.path.split(os.fspath(path))
    return os.path.join(directory, f".{name}.tmp-{os.getpid()}")
