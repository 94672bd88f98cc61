import keras
import numpy as np
import pytest
from conftest import MNIST_PATH, requires_mnist

from keras_dcgan import load_mnist


def write_small_mnist(path, train=6, test=3):
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, (train + test, 28, 28), dtype="uint8")
    pixels[0, 0, 0] = 0
    pixels[0, 0, 1] = 255
    np.savez(
        path,
        x_train=pixels[:train],
        y_train=np.zeros(train, "uint8"),
        x_test=pixels[train:],
        y_test=np.zeros(test, "uint8"),
    )
    return pixels


def test_local_file_scaled_to_unit_range(tmp_path):
    path = tmp_path / "mnist.npz"
    pixels = write_small_mnist(path)
    images = load_mnist(path)
    assert images.shape == (6, 28, 28, 1)
    assert images.dtype == np.float32
    assert images[0, 0, 0, 0] == -1.0
    assert images[0, 0, 1, 0] == 1.0
    np.testing.assert_allclose(
        images[..., 0], (pixels[:6].astype("float32") - 127.5) / 127.5
    )


def test_splits(tmp_path):
    path = tmp_path / "mnist.npz"
    write_small_mnist(path)
    assert load_mnist(path, split="test").shape == (3, 28, 28, 1)
    assert load_mnist(path, split="all").shape == (9, 28, 28, 1)
    with pytest.raises(ValueError, match="split='validation'"):
        load_mnist(path, split="validation")


def test_missing_file_named_in_error(tmp_path):
    path = tmp_path / "absent.npz"
    with pytest.raises(FileNotFoundError, match="absent.npz"):
        load_mnist(path)


def test_wrong_layout_rejected(tmp_path):
    path = tmp_path / "other.npz"
    np.savez(path, images=np.zeros((2, 28, 28), "uint8"))
    with pytest.raises(ValueError, match="missing arrays") as error:
        load_mnist(path)
    assert "x_train" in str(error.value)


def test_failed_download_suggests_local_path(monkeypatch):
    def offline_load_data(*args, **kwargs):
        raise OSError("network is unreachable")

    monkeypatch.setattr(keras.datasets.mnist, "load_data", offline_load_data)
    with pytest.raises(RuntimeError, match="pass a local copy") as error:
        load_mnist()
    assert "network is unreachable" in str(error.value)
    assert "load_mnist(path=" in str(error.value)


@requires_mnist
def test_real_mnist_file():
    images = load_mnist(MNIST_PATH)
    assert images.shape == (60000, 28, 28, 1)
    assert images.min() == -1.0
    assert images.max() == 1.0
    # The data README gives the mean of x_train as 33.3184 in 0..255.
    assert abs(float(images.mean()) * 127.5 + 127.5 - 33.3184) < 1e-3
    assert load_mnist(MNIST_PATH, split="test").shape == (10000, 28, 28, 1)
