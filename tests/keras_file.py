"""Save a trained DCGAN to `.keras`, or load one, and generate images.

Usage:
    KERAS_BACKEND=... python tests/keras_file.py save FOLDER
    KERAS_BACKEND=... python tests/keras_file.py load FOLDER SOURCE_BACKEND

`save` trains a tiny model for two steps, writes FOLDER/BACKEND.keras and
the images it generates from a fixed seed to FOLDER/BACKEND.npz. Where the
backend supports it, the model runs two steps per execution, a setting
that PyTorch cannot load as it is. `load` reads the file that
SOURCE_BACKEND saved, writes the images this backend generates from it,
then trains it for two more steps, and writes both results to
FOLDER/SOURCE_BACKEND-on-BACKEND.npz.
`test_backends.py` compares them.
"""

import os
import sys

import keras
import numpy as np

from keras_dcgan import DCGAN, build_discriminator, build_generator

SEED = 7


def generated_images(model):
    # Both the noise (NumPy, from SEED) and the networks' inference mode
    # are backend-independent, so only the arithmetic differs.
    return model.generate(6, seed=SEED)


def save(folder):
    keras.utils.set_random_seed(0)
    model = DCGAN(
        build_generator(6, (8, 8, 1), base_filters=4),
        build_discriminator((8, 8, 1), base_filters=4),
        seed=0,
    )
    several_steps = keras.backend.backend() != "torch"
    model.compile(
        d_optimizer=keras.optimizers.Adam(1e-3),
        g_optimizer=keras.optimizers.Adam(1e-3),
        steps_per_execution=2 if several_steps else 1,
    )
    model.fit(training_images(), batch_size=8, verbose=0)
    backend = keras.backend.backend()
    model.save(os.path.join(folder, f"{backend}.keras"))
    np.savez(
        os.path.join(folder, f"{backend}.npz"),
        images=generated_images(model),
        iterations=int(model.g_optimizer.iterations),
    )


def training_images():
    images = np.random.default_rng(1).uniform(-1, 1, (16, 8, 8, 1))
    return images.astype("float32")


def load(folder, source_backend):
    model = keras.saving.load_model(
        os.path.join(folder, f"{source_backend}.keras")
    )
    backend = keras.backend.backend()
    images = generated_images(model)
    iterations = int(model.g_optimizer.iterations)
    history = model.fit(training_images(), batch_size=8, verbose=0)
    np.savez(
        os.path.join(folder, f"{source_backend}-on-{backend}.npz"),
        images=images,
        iterations=iterations,
        iterations_after_fit=int(model.g_optimizer.iterations),
        d_loss=history.history["d_loss"][0],
    )


if __name__ == "__main__":
    if sys.argv[1] == "save":
        save(sys.argv[2])
    else:
        load(sys.argv[2], sys.argv[3])
