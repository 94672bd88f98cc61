"""Pieces of the training step that do not depend on the backend."""

import keras


def real_images_from_batch(data):
    """Return the images of a batch given as `x`, `(x, y)` or `[x, y]`.

    Labels and sample weights are ignored because a DCGAN is unconditional.
    """
    images, _, _ = keras.utils.unpack_x_y_sample_weight(data)
    return images
