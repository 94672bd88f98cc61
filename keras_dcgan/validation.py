"""Checks of training data, run once before the first training step.

Only the first batch of a dataset is inspected, so the checks cost
nothing per step. NumPy arrays are checked whole.
"""

import math

import keras
import numpy as np

from keras_dcgan import data

_RANGE_SLACK = 1e-3


def check_training_data(x, image_shape, batch_size):
    """Raise `ValueError` if `x` cannot train a DCGAN for `image_shape`.

    Args:
        x: What the user passed to `fit` as `x`: an array, a
            `tf.data.Dataset`, a `keras.utils.PyDataset`, a
            `torch.utils.data.DataLoader` over a map-style dataset, or
            anything else Keras accepts (which is not inspected).
        image_shape: `(height, width, channels)` that the discriminator
            expects.
        batch_size: The `batch_size` passed to `fit`, or `None`.
    """
    if x is None:
        raise ValueError(
            "Missing training data: DCGAN.fit() needs images as `x`, such "
            "as fit(images, batch_size=256)."
        )
    if isinstance(x, (list, tuple)) and len(x) in (1, 2) and _is_array(x[0]):
        # `(images,)` or `(images, labels)` given as `x`.
        x = x[0]
    if _is_array(x):
        images = np.asarray(x)
        _check_batch(images, image_shape, "x")
        if batch_size is not None and len(images) < batch_size:
            raise ValueError(
                f"Too few images: got {len(images)}, fewer than one batch of "
                f"batch_size={batch_size}. Pass more images or a smaller "
                "`batch_size`."
            )
        return
    batch = _first_batch(x)
    if batch is not None:
        images, _, _ = keras.utils.unpack_x_y_sample_weight(batch)
        _check_batch(np.asarray(images), image_shape, "the first batch of x")


def _is_array(value):
    """Return whether `value` is a NumPy, TensorFlow, JAX or torch array."""
    return hasattr(value, "shape") and hasattr(value, "dtype")


def _first_batch(x):
    """Return the first batch of a dataset, or `None` for other inputs."""
    if hasattr(x, "element_spec"):  # tf.data.Dataset
        for batch in x.take(1):
            batch = _to_numpy(batch)
            return batch
        raise ValueError(
            "Empty dataset: the tf.data.Dataset passed as `x` yields no "
            "batches. Check that it holds images and is not filtered empty."
        )
    if isinstance(x, keras.utils.PyDataset):
        num_batches = x.num_batches
        if num_batches == 0:
            raise ValueError(
                "Empty dataset: the PyDataset passed as `x` has 0 batches. "
                "Check its __len__."
            )
        return x[0]
    if data.is_torch_data_loader(x):
        dataset = x.dataset
        if not hasattr(dataset, "__getitem__") or not hasattr(
            dataset, "__len__"
        ):
            return None  # An iterable dataset: reading it would consume it.
        if len(dataset) == 0:
            raise ValueError(
                "Empty dataset: the DataLoader passed as `x` has a dataset "
                "of length 0. Check that it holds images."
            )
        # The first samples through the loader's own collate function give
        # a batch of the same structure without starting workers or
        # drawing a shuffle order from torch's global generator.
        count = min(len(dataset), x.batch_size or 1)
        return _to_numpy(x.collate_fn([dataset[i] for i in range(count)]))
    return None


def _to_numpy(batch):
    def convert(value):
        if hasattr(value, "detach"):  # A torch tensor, maybe on a GPU.
            return value.detach().cpu().numpy()
        return np.asarray(value) if hasattr(value, "shape") else value

    return keras.tree.map_structure(convert, batch)


def _check_batch(images, image_shape, name):
    if images.size == 0 or len(images) == 0:
        raise ValueError(
            f"Empty training data: {name} has shape {images.shape}. Pass at "
            "least one batch of images."
        )
    image_shape = tuple(image_shape)
    if images.ndim != 4 or tuple(images.shape[1:]) != image_shape:
        fix = " Resize the images or build the networks for their shape."
        if images.ndim == 3 and tuple(images.shape[1:]) == image_shape[:2]:
            fix = " Add the channel axis with images[..., None]."
        elif images.ndim == 4 and (
            tuple(images.shape[2:]) == image_shape[:2]
            and images.shape[1] == image_shape[2]
        ):
            fix = (
                " The images are channels-first, as torchvision gives them: "
                "move the channel axis last, for example with "
                "images.permute(0, 2, 3, 1) in the DataLoader's collate_fn."
            )
        elif images.ndim == 4 and tuple(images.shape[1:3]) == image_shape[:2]:
            fix = (
                f" The number of channels differs: {images.shape[-1]} given, "
                f"{image_shape[-1]} expected. Convert the images, or build "
                f"the networks with image_shape={tuple(images.shape[1:])}."
            )
        expected = ", ".join(str(size) for size in image_shape)
        raise ValueError(
            f"Invalid images: {name} has shape {images.shape}, but the "
            f"discriminator expects (batch, {expected}).{fix}"
        )
    if not np.issubdtype(images.dtype, np.number):
        raise ValueError(
            f"Invalid images: {name} has dtype {images.dtype}, expected "
            "floating-point pixels in [-1, 1]."
        )
    values = images.astype("float32", copy=False)
    if not np.all(np.isfinite(values)):
        count = int(np.size(values) - np.count_nonzero(np.isfinite(values)))
        raise ValueError(
            f"Invalid images: {name} contains {count} NaN or infinite "
            "values. Remove or repair those images before training."
        )
    low, high = float(values.min()), float(values.max())
    if low < -1 - _RANGE_SLACK or high > 1 + _RANGE_SLACK:
        scaling = "(x - 127.5) / 127.5" if high > 1.5 else "2 * x - 1"
        raise ValueError(
            f"Invalid images: {name} has values in [{low:g}, {high:g}], but "
            "the generator's tanh output and so the real images must be in "
            f"[-1, 1]. Scale them with {scaling}, for example with "
            "keras_dcgan.data.scale_images for uint8 pixels in 0..255."
        )


def is_finite(value):
    """Return whether a logged scalar is a finite number."""
    try:
        return math.isfinite(float(value))
    except (TypeError, ValueError):
        return True
