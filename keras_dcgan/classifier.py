"""A small MNIST classifier whose features measure generated digits.

`keras_dcgan.metrics` needs a network trained on MNIST, in the role that
an Inception network trained on ImageNet has in FID and the Inception
score. The
weights of this classifier ship inside the package, so the measures work
offline. `scripts/train_mnist_classifier.py` trains them.
"""

import functools
import os

import keras
from keras import layers

WEIGHTS_PATH = os.path.join(
    os.path.dirname(__file__), "weights", "mnist_classifier.weights.h5"
)
FEATURES_LAYER = "features"


def build_mnist_classifier():
    """Build the classifier: 28x28x1 images in [-1, 1] to 10 logits.

    Two 3x3 convolutions with max pooling, then a 128-unit dense layer
    named `"features"`, whose activations are the features that
    `frechet_distance` compares, then dropout and a 10-way dense layer.
    """
    images = keras.Input(shape=(28, 28, 1), name="images")
    x = layers.Conv2D(32, 3, activation="relu", name="conv_0")(images)
    x = layers.MaxPooling2D(name="pool_0")(x)
    x = layers.Conv2D(64, 3, activation="relu", name="conv_1")(x)
    x = layers.MaxPooling2D(name="pool_1")(x)
    x = layers.Flatten(name="flatten")(x)
    x = layers.Dropout(0.25, name="flatten_dropout")(x)
    features = layers.Dense(128, activation="relu", name=FEATURES_LAYER)(x)
    x = layers.Dropout(0.5, name="features_dropout")(features)
    logits = layers.Dense(10, name="logits")(x)
    return keras.Model(images, logits, name="mnist_classifier")


@functools.cache
def load_mnist_classifier(weights_path=WEIGHTS_PATH):
    """Return the trained classifier as a model with two outputs.

    The model maps images to `(features, probabilities)`: the 128
    penultimate activations and the softmax over the ten digits. It is
    built once per process and weights file.

    Raises:
        FileNotFoundError: if the weights file is missing.
    """
    if not os.path.isfile(weights_path):
        raise FileNotFoundError(
            f"MNIST classifier weights not found: {weights_path!r}. "
            "Reinstall keras_dcgan, or train them with "
            "scripts/train_mnist_classifier.py."
        )
    classifier = build_mnist_classifier()
    classifier.load_weights(weights_path)
    features = classifier.get_layer(FEATURES_LAYER).output
    probabilities = layers.Softmax(name="probabilities")(classifier.output)
    return keras.Model(
        classifier.input, [features, probabilities], name="mnist_measures"
    )
