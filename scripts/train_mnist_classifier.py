"""Train the MNIST classifier that `keras_dcgan.metrics` uses.

    KERAS_BACKEND=tensorflow python scripts/train_mnist_classifier.py \
        --data path/to/mnist.npz

It trains on the 60,000 training images, reports the accuracy on the
10,000 test images, and writes the weights into the package. The measured
accuracy is recorded in docs/metrics.md.
"""

import argparse

import keras

from keras_dcgan.classifier import WEIGHTS_PATH, build_mnist_classifier
from keras_dcgan.data import load_mnist


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help="path of mnist.npz")
    parser.add_argument(
        "--epochs", type=int, default=6, help="training epochs (default: 6)"
    )
    parser.add_argument(
        "--output",
        default=WEIGHTS_PATH,
        help="weights file to write (default: the one inside the package)",
    )
    parser.add_argument("--seed", type=int, default=0, help="default: 0")
    args = parser.parse_args()

    keras.utils.set_random_seed(args.seed)
    train_images, train_labels = load_mnist(args.data, return_labels=True)
    test_images, test_labels = load_mnist(
        args.data, split="test", return_labels=True
    )
    classifier = build_mnist_classifier()
    classifier.compile(
        optimizer=keras.optimizers.Adam(1e-3),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    classifier.fit(
        train_images,
        train_labels,
        batch_size=128,
        epochs=args.epochs,
        verbose=2,
    )
    _, accuracy = classifier.evaluate(test_images, test_labels, verbose=0)
    classifier.save_weights(args.output)
    print(f"Test accuracy: {accuracy:.4f}. Weights written to {args.output}")


if __name__ == "__main__":
    main()
