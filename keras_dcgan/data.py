"""Loading MNIST as DCGAN training images, and preparing other inputs."""

import copy
import os
import sys

import keras
import numpy as np

_SPLITS = ("train", "test", "all")
_MNIST_KEYS = ("x_train", "x_test")


def scale_images(images):
    """Scale uint8 pixels in 0..255 to float32 in [-1, 1].

    The scaling is `(x - 127.5) / 127.5`, as in the TensorFlow DCGAN tutorial.

    Example:

    >>> scale_images([0, 127.5, 255]).tolist()
    [-1.0, 0.0, 1.0]
    """
    return (np.asarray(images, dtype="float32") - 127.5) / 127.5


def load_mnist(path=None, split="train", return_labels=False):
    """Load MNIST digits as float32 images in [-1, 1].

    Args:
        path: A local `mnist.npz` in the layout of
            `keras.datasets.mnist`, with uint8 arrays `x_train` and
            `x_test`. Defaults to `None`, which uses
            `keras.datasets.mnist.load_data()` and so downloads the file
            on first use.
        split: `"train"` (60,000 images), `"test"` (10,000) or `"all"`.
            Defaults to `"train"`.
        return_labels: Whether to return the digit labels too. Defaults to
            `False`.

    Returns:
        A float32 array of shape `(N, 28, 28, 1)` scaled with
        `(x - 127.5) / 127.5`, or `(images, labels)` with uint8 labels of
        shape `(N,)` when `return_labels` is true.

    Raises:
        FileNotFoundError: if `path` does not exist.
        ValueError: if the file is not in the MNIST layout, or `split` is
            invalid.
        RuntimeError: if the download fails.
    """
    if split not in _SPLITS:
        raise ValueError(
            f"Invalid `split`: expected one of {_SPLITS}. "
            f"Received: split={split!r}."
        )
    if path is None:
        (x_train, y_train), (x_test, y_test) = _download_mnist()
    else:
        (x_train, y_train), (x_test, y_test) = _read_mnist_file(path)

    if split == "train":
        pixels, labels = x_train, y_train
    elif split == "test":
        pixels, labels = x_test, y_test
    else:
        pixels = np.concatenate([x_train, x_test])
        labels = None
        if y_train is not None and y_test is not None:
            labels = np.concatenate([y_train, y_test])
    images = scale_images(pixels)[..., np.newaxis]
    if return_labels:
        if labels is None:
            raise ValueError(
                "The MNIST file has no labels: expected arrays `y_train` "
                "and `y_test`. Pass a complete mnist.npz, or "
                "return_labels=False."
            )
        return images, labels
    return images


def _download_mnist():
    try:
        return keras.datasets.mnist.load_data()
    except Exception as error:
        # Keras raises several types here (URLError, an Exception naming
        # the URL, OSError), so they are all turned into one message.
        raise RuntimeError(
            f"Failed to download MNIST with keras.datasets.mnist ({error}). "
            "Without internet access, pass a local copy instead: "
            "load_mnist(path='path/to/mnist.npz')."
        ) from error


def _read_mnist_file(path):
    if not os.path.isfile(path):
        raise FileNotFoundError(
            f"MNIST file not found: {path!r}. Pass the path of an existing "
            "mnist.npz, or path=None to download it with keras.datasets."
        )
    with np.load(path) as arrays:
        missing = [key for key in _MNIST_KEYS if key not in arrays.files]
        if missing:
            raise ValueError(
                f"Invalid MNIST file {path!r}: missing arrays {missing}. "
                f"Expected the keras.datasets.mnist layout with {_MNIST_KEYS}. "
                f"Found: {sorted(arrays.files)}."
            )
        x_train = arrays["x_train"]
        x_test = arrays["x_test"]
        # Labels are optional because DCGAN training does not use them.
        y_train = arrays["y_train"] if "y_train" in arrays.files else None
        y_test = arrays["y_test"] if "y_test" in arrays.files else None
    for name, pixels in (("x_train", x_train), ("x_test", x_test)):
        if pixels.ndim != 3 or pixels.shape[1:] != (28, 28):
            raise ValueError(
                f"Invalid MNIST file {path!r}: expected `{name}` of shape "
                f"(N, 28, 28). Found shape {pixels.shape}."
            )
    return (x_train, y_train), (x_test, y_test)


def is_torch_data_loader(x):
    """Return whether `x` is a `torch.utils.data.DataLoader`.

    Looks torch up among the loaded modules, so it never imports it.
    """
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(x, torch.utils.data.DataLoader)


def is_dataset(x):
    """Return whether `x` is a `tf.data.Dataset` or a torch `DataLoader`.

    Keras reads batches from these as they come and ignores `shuffle`.
    """
    if is_torch_data_loader(x):
        return True
    return hasattr(x, "element_spec") and hasattr(x, "cardinality")


def loader_for_keras(x):
    """Return `x`, or a copy of a DataLoader whose batches Keras can split.

    On TensorFlow and JAX, Keras 3.15 reads each batch of a
    `torch.utils.data.DataLoader` as a tuple, so a batch that is a single
    image tensor (a dataset of images without labels) would become a
    tuple of its rows. This returns a shallow copy of such a loader whose
    batches are `(images,)`. Lists and tuples pass unchanged, and the
    user's loader is not modified. On PyTorch Keras keeps batches as
    they are, so `x` is returned.
    """
    if keras.backend.backend() == "torch" or not is_torch_data_loader(x):
        return x
    loader = copy.copy(x)
    loader.collate_fn = _TupleBatches(x.collate_fn)
    return loader


class _TupleBatches:
    """A collate function that wraps a lone tensor batch in a tuple.

    A class rather than a closure, so that it pickles for worker
    processes started with "spawn".
    """

    def __init__(self, collate_fn):
        self.collate_fn = collate_fn

    def __call__(self, samples):
        batch = self.collate_fn(samples)
        if isinstance(batch, (list, tuple, dict)):
            return batch
        return (batch,)
