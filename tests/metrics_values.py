"""Compute the MNIST measures on fixed inputs; save them to a file.

Usage: KERAS_BACKEND=... python tests/metrics_values.py OUTPUT.npz

`test_metrics.py` runs this once per backend and compares the files.
"""

import sys

import numpy as np

from keras_dcgan import metrics


def main(output_path):
    rng = np.random.default_rng(0)
    real = np.tanh(rng.standard_normal((300, 28, 28, 1)) * 2).astype("float32")
    generated = rng.uniform(-1, 1, (200, 28, 28, 1)).astype("float32")
    features, probabilities = metrics.classifier_outputs(generated)
    coverage = metrics.class_coverage(generated)
    np.savez(
        output_path,
        features=features,
        probabilities=probabilities,
        frechet_distance=metrics.frechet_distance(real, generated),
        mnist_score=metrics.mnist_score(generated),
        classes_covered=coverage.classes_covered,
        kl_divergence=coverage.kl_divergence,
        histogram=coverage.histogram,
    )


if __name__ == "__main__":
    main(sys.argv[1])
