"""Training from a `torch.utils.data.DataLoader`, on every backend."""

import warnings

import keras
import numpy as np
import pytest
from conftest import (
    IMAGE_SHAPE,
    assert_same_training,
    make_images,
    make_model,
    to_numpy,
    train_on_array,
)

torch = pytest.importorskip("torch", reason="PyTorch is not installed")


def loader_of(images, batch_size=8, **kwargs):
    labels = torch.arange(len(images))
    dataset = torch.utils.data.TensorDataset(torch.as_tensor(images), labels)
    return torch.utils.data.DataLoader(dataset, batch_size=batch_size, **kwargs)


def test_loader_lists_match_array():
    images = make_images(20)
    loader = loader_of(images)
    first = next(iter(loader))
    assert isinstance(first, list) and len(first) == 2

    from_loader = make_model(seed=3)
    history = from_loader.fit(loader, epochs=2, verbose=0)

    # 20 images in batches of 8, 8 and 4, for two epochs.
    assert int(from_loader.d_optimizer.iterations) == 6
    assert int(from_loader.g_optimizer.iterations) == 6
    assert_same_training(from_loader, history, *train_on_array(images, 3))


def test_shuffled_loader_trains():
    model = make_model()
    before = to_numpy(model.generator.weights)
    history = model.fit(loader_of(make_images(24), shuffle=True), verbose=0)
    assert int(model.d_optimizer.iterations) == 3
    assert np.all(np.isfinite(history.history["d_loss"]))
    after = to_numpy(model.generator.weights)
    assert max(np.abs(a - b).max() for a, b in zip(after, before)) > 1e-4


def test_channels_first_loader_rejected():
    channels_first = np.transpose(make_images(16), (0, 3, 1, 2))
    model = make_model()
    with pytest.raises(ValueError) as caught:
        model.fit(loader_of(channels_first), verbose=0)
    message = str(caught.value)
    height, width, channels = IMAGE_SHAPE
    assert f"has shape (8, {channels}, {height}, {width})" in message
    assert "channels-first" in message
    assert "permute(0, 2, 3, 1)" in message
    assert int(model.d_optimizer.iterations) == 0


def test_unscaled_loader_rejected():
    # Only the second image is out of range: the check reads a whole batch.
    pixels = make_images(16)
    pixels[1] = (pixels[1] + 1.0) * 127.5
    model = make_model()
    with pytest.raises(ValueError, match=r"\(x - 127.5\) / 127.5"):
        model.fit(loader_of(pixels), verbose=0)
    assert int(model.d_optimizer.iterations) == 0


def test_loader_fit_warns_nothing_about_shuffle():
    model = make_model()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model.fit(loader_of(make_images(16)), verbose=0)
    messages = [str(warning.message) for warning in caught]
    assert not [m for m in messages if "shuffle" in m], messages
    assert int(model.d_optimizer.iterations) == 2


def test_empty_loader_rejected():
    empty = np.zeros((0, *IMAGE_SHAPE), "float32")
    with pytest.raises(ValueError, match="DataLoader passed as `x`"):
        make_model().fit(loader_of(empty), verbose=0)


def test_tensor_loader_matches_array():
    images = make_images(16)

    class Stream(torch.utils.data.IterableDataset):
        def __iter__(self):
            return iter(torch.as_tensor(images))

    # Batches of a lone image tensor, of unknown number: Keras 3.15 splits
    # such a batch into rows on TensorFlow and JAX unless fit() wraps it.
    loader = torch.utils.data.DataLoader(Stream(), batch_size=8)
    collate_fn = loader.collate_fn
    batch_ends = []
    counter = keras.callbacks.LambdaCallback(
        on_train_batch_end=lambda batch, logs: batch_ends.append(batch)
    )
    from_loader = make_model(seed=4)
    history = from_loader.fit(loader, epochs=2, verbose=0, callbacks=[counter])

    assert batch_ends == [0, 1, 0, 1]
    assert int(from_loader.g_optimizer.iterations) == 4
    assert_same_training(from_loader, history, *train_on_array(images, 4))
    assert loader.collate_fn is collate_fn
    assert torch.is_tensor(next(iter(loader)))
