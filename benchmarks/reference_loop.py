"""The hand-written TensorFlow DCGAN loop that keras_dcgan is compared with.

This follows the TensorFlow DCGAN tutorial on MNIST: two Sequential
networks, a `tf.function` training step with one `tf.GradientTape` per
network, binary cross-entropy on logits and Adam(1e-4) for each network.
It imports nothing from keras_dcgan, so it is an independent reference.
Run it with `KERAS_BACKEND=tensorflow`.
"""

import keras
import tensorflow as tf
from keras import layers

LATENT_DIM = 100


def make_generator():
    return keras.Sequential(
        [
            keras.Input((LATENT_DIM,)),
            layers.Dense(7 * 7 * 256, use_bias=False),
            layers.BatchNormalization(),
            layers.LeakyReLU(),
            layers.Reshape((7, 7, 256)),
            layers.Conv2DTranspose(
                128, 5, strides=1, padding="same", use_bias=False
            ),
            layers.BatchNormalization(),
            layers.LeakyReLU(),
            layers.Conv2DTranspose(
                64, 5, strides=2, padding="same", use_bias=False
            ),
            layers.BatchNormalization(),
            layers.LeakyReLU(),
            layers.Conv2DTranspose(
                1,
                5,
                strides=2,
                padding="same",
                use_bias=False,
                activation="tanh",
            ),
        ]
    )


def make_discriminator():
    return keras.Sequential(
        [
            keras.Input((28, 28, 1)),
            layers.Conv2D(64, 5, strides=2, padding="same"),
            layers.LeakyReLU(),
            layers.Dropout(0.3),
            layers.Conv2D(128, 5, strides=2, padding="same"),
            layers.LeakyReLU(),
            layers.Dropout(0.3),
            layers.Flatten(),
            layers.Dense(1),
        ]
    )


class ReferenceTrainer:
    """The tutorial's networks, optimizers and `train_step`."""

    def __init__(self):
        self.generator = make_generator()
        self.discriminator = make_discriminator()
        self.cross_entropy = keras.losses.BinaryCrossentropy(from_logits=True)
        self.generator_optimizer = keras.optimizers.Adam(1e-4)
        self.discriminator_optimizer = keras.optimizers.Adam(1e-4)

    @tf.function
    def train_step(self, images):
        noise = tf.random.normal([tf.shape(images)[0], LATENT_DIM])
        with tf.GradientTape() as gen_tape, tf.GradientTape() as disc_tape:
            generated_images = self.generator(noise, training=True)
            real_output = self.discriminator(images, training=True)
            fake_output = self.discriminator(generated_images, training=True)
            gen_loss = self.cross_entropy(
                tf.ones_like(fake_output), fake_output
            )
            disc_loss = self.cross_entropy(
                tf.ones_like(real_output), real_output
            ) + self.cross_entropy(tf.zeros_like(fake_output), fake_output)
        gen_gradients = gen_tape.gradient(
            gen_loss, self.generator.trainable_variables
        )
        disc_gradients = disc_tape.gradient(
            disc_loss, self.discriminator.trainable_variables
        )
        self.generator_optimizer.apply_gradients(
            zip(gen_gradients, self.generator.trainable_variables)
        )
        self.discriminator_optimizer.apply_gradients(
            zip(disc_gradients, self.discriminator.trainable_variables)
        )
        return disc_loss, gen_loss

    def dataset(self, images, batch_size=256, seed=0):
        """Shuffle and batch images as the tutorial does, repeated forever."""
        return (
            tf.data.Dataset.from_tensor_slices(images)
            .shuffle(len(images), seed=seed)
            .batch(batch_size)
            .repeat()
        )
