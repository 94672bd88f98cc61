"""Run one DCGAN step from fixed weights and noise; save the results.

Usage: KERAS_BACKEND=... python tests/one_step.py OUTPUT.npz

`test_backends.py` runs this once per backend and compares the files.
Dropout is off and the noise is fixed, so nothing random remains.
"""

import sys

import keras
import numpy as np

from keras_dcgan import DCGAN, build_discriminator, build_generator

LATENT_DIM = 6
IMAGE_SHAPE = (8, 8, 1)
NOISE = np.random.default_rng(11).standard_normal((8, LATENT_DIM))
REAL_IMAGES = np.random.default_rng(12).uniform(-1, 1, (8, *IMAGE_SHAPE))


class FixedNoiseDCGAN(DCGAN):
    def sample_noise(self, batch_size):
        return keras.ops.convert_to_tensor(NOISE.astype("float32"))[:batch_size]


def set_fixed_weights(network, seed):
    """Give every trainable weight values from a NumPy generator."""
    rng = np.random.default_rng(seed)
    for variable in network.trainable_weights:
        variable.assign(0.2 * rng.standard_normal(variable.shape))


def main(output_path):
    model = FixedNoiseDCGAN(
        build_generator(LATENT_DIM, IMAGE_SHAPE, base_filters=4),
        build_discriminator(IMAGE_SHAPE, base_filters=4, dropout_rate=0.0),
    )
    set_fixed_weights(model.generator, seed=1)
    set_fixed_weights(model.discriminator, seed=2)
    model.compile(
        d_optimizer=keras.optimizers.Adam(1e-4),
        g_optimizer=keras.optimizers.Adam(1e-4),
    )
    initial_weights = [keras.ops.convert_to_numpy(w) for w in model.weights]
    history = model.fit(
        REAL_IMAGES.astype("float32"), batch_size=8, shuffle=False, verbose=0
    )
    results = {
        "d_loss": history.history["d_loss"][0],
        "g_loss": history.history["g_loss"][0],
    }
    largest_change = 0.0
    for index, weight in enumerate(model.weights):
        results[f"weight_{index}"] = keras.ops.convert_to_numpy(weight)
        change = np.abs(results[f"weight_{index}"] - initial_weights[index])
        largest_change = max(largest_change, float(change.max()))
    results["largest_change"] = largest_change
    np.savez(output_path, **results)


if __name__ == "__main__":
    main(sys.argv[1])
