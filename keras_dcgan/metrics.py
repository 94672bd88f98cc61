"""Offline measures of generated MNIST digits.

All three use the small classifier shipped in `keras_dcgan.classifier`, in
the roles that an ImageNet Inception network has in the Fréchet Inception
Distance (Heusel et al. 2017) and the Inception score (Salimans et al.
2016):

- `frechet_distance`: the Fréchet distance between Gaussians fitted to the
  classifier's 128 penultimate features of two image sets. Lower is
  closer; 0 for identical sets.
- `mnist_score`: `exp(E_x[KL(p(y|x) || p(y))])` over the classifier's class
  probabilities, between 1 (every image the same class, or every image
  ambiguous) and 10 (confident and evenly spread over the ten digits).
- `class_coverage`: how many digits appear, and how far their histogram is
  from uniform, which shows mode collapse.

Images are float arrays of shape `(N, 28, 28, 1)` in [-1, 1]. They are fed
to the classifier in batches, so any `N` fits in memory.
"""

import collections

import keras
import numpy as np

from keras_dcgan.classifier import load_mnist_classifier

NUM_CLASSES = 10

ClassCoverage = collections.namedtuple(
    "ClassCoverage", ["classes_covered", "kl_divergence", "histogram"]
)
ClassCoverage.__doc__ = """Digits found among generated images.

Attributes:
    classes_covered: Number of the ten digits predicted for at least one
        image.
    kl_divergence: KL divergence, in nats, of the predicted class
        histogram from the uniform distribution: 0 when all digits are
        equally frequent, log(10) = 2.303 when only one digit appears.
    histogram: Count of images predicted as each digit, shape `(10,)`.
"""


def classifier_outputs(images, batch_size=500):
    """Return `(features, probabilities)` of the classifier for `images`.

    Returns:
        float64 NumPy arrays of shapes `(N, 128)` and `(N, 10)`.
    """
    images = _check_images(images, "images")
    model = load_mnist_classifier()
    features, probabilities = [], []
    for start in range(0, len(images), batch_size):
        batch = images[start : start + batch_size]
        batch_features, batch_probabilities = model(batch, training=False)
        features.append(keras.ops.convert_to_numpy(batch_features))
        probabilities.append(keras.ops.convert_to_numpy(batch_probabilities))
    return (
        np.concatenate(features).astype("float64"),
        np.concatenate(probabilities).astype("float64"),
    )


def frechet_distance(real_images, generated_images, batch_size=500):
    """Compute the Fréchet distance between two sets of MNIST images.

    Args:
        real_images: Reference images, `(N, 28, 28, 1)` in [-1, 1].
        generated_images: Images to measure, `(M, 28, 28, 1)` in [-1, 1].
        batch_size: Images per classifier call. Defaults to `500`.

    Returns:
        The distance as a float, at least 0.
    """
    real_features, _ = classifier_outputs(real_images, batch_size)
    generated_features, _ = classifier_outputs(generated_images, batch_size)
    return frechet_distance_from_features(real_features, generated_features)


def frechet_distance_from_features(features_a, features_b):
    """Compute the Fréchet distance between Gaussians fitted to features.

    Each input is an array of shape `(num_samples, num_features)` with at
    least two samples.
    """
    statistics = []
    for name, features in (
        ("features_a", features_a),
        ("features_b", features_b),
    ):
        features = np.asarray(features, dtype="float64")
        if features.ndim != 2 or len(features) < 2:
            raise ValueError(
                f"Invalid `{name}`: expected shape (num_samples, "
                "num_features) with at least 2 samples. Received shape "
                f"{features.shape}."
            )
        statistics.append(
            (features.mean(axis=0), np.cov(features, rowvar=False))
        )
    (mean_a, covariance_a), (mean_b, covariance_b) = statistics
    return frechet_distance_from_statistics(
        mean_a, covariance_a, mean_b, covariance_b
    )


def frechet_distance_from_statistics(
    mean_a, covariance_a, mean_b, covariance_b
):
    """Compute the Fréchet distance between two Gaussians.

    `d^2 = |mean_a - mean_b|^2 + Tr(A + B - 2 (A B)^(1/2))` for covariances
    `A` and `B`. The trace of `(A B)^(1/2)` is computed as the sum of the
    square roots of the eigenvalues of the symmetric matrix
    `A^(1/2) B A^(1/2)`, which has the same eigenvalues as `A B`. Symmetric
    eigendecompositions stay real, and eigenvalues that rounding pushes
    below zero in near-singular covariances are clipped to 0.

    Example: two one-dimensional Gaussians with means 0 and 3 and variances
    1 and 4 are `3**2 + 1 + 4 - 2 * 2 = 10` apart.

    >>> distance = frechet_distance_from_statistics([0], [[1]], [3], [[4]])
    >>> round(distance, 6)
    10.0
    """
    mean_a = np.asarray(mean_a, dtype="float64")
    mean_b = np.asarray(mean_b, dtype="float64")
    covariance_a = np.atleast_2d(np.asarray(covariance_a, dtype="float64"))
    covariance_b = np.atleast_2d(np.asarray(covariance_b, dtype="float64"))
    if not (
        mean_a.shape == mean_b.shape
        and covariance_a.shape == covariance_b.shape == mean_a.shape * 2
    ):
        raise ValueError(
            "Invalid statistics: expected means of shape (d,) and "
            "covariances of shape (d, d) for the same d. Received shapes "
            f"{mean_a.shape}, {covariance_a.shape}, {mean_b.shape}, "
            f"{covariance_b.shape}."
        )
    sqrt_a = _symmetric_sqrt(covariance_a)
    middle = sqrt_a @ covariance_b @ sqrt_a
    eigenvalues = np.linalg.eigvalsh((middle + middle.T) / 2)
    trace_sqrt_product = np.sqrt(np.clip(eigenvalues, 0.0, None)).sum()
    mean_term = float(np.sum((mean_a - mean_b) ** 2))
    trace_term = (
        np.trace(covariance_a) + np.trace(covariance_b) - 2 * trace_sqrt_product
    )
    # Rounding can leave a tiny negative value for identical inputs.
    return max(mean_term + float(trace_term), 0.0)


def mnist_score(generated_images, batch_size=500):
    """Compute `exp(E_x[KL(p(y|x) || p(y))])` for generated digits.

    The MNIST analogue of the Inception score: at most 10, higher when each
    image is confidently one digit and all digits are equally common.
    """
    _, probabilities = classifier_outputs(generated_images, batch_size)
    return score_from_probabilities(probabilities)


def score_from_probabilities(probabilities):
    """Compute the MNIST score from class probabilities of shape `(N, 10)`."""
    probabilities = np.asarray(probabilities, dtype="float64")
    marginal = probabilities.mean(axis=0, keepdims=True)
    # A probability of exactly 0 contributes 0 to the KL divergence.
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(probabilities > 0, probabilities / marginal, 1.0)
    kl_divergences = np.sum(probabilities * np.log(ratio), axis=1)
    return float(np.exp(kl_divergences.mean()))


def class_coverage(generated_images, batch_size=500):
    """Count the digits that the classifier finds among generated images.

    Returns:
        A `ClassCoverage` with `classes_covered`, `kl_divergence` and
        `histogram`.
    """
    _, probabilities = classifier_outputs(generated_images, batch_size)
    return coverage_from_probabilities(probabilities)


def coverage_from_probabilities(probabilities):
    """Compute `ClassCoverage` from class probabilities of shape `(N, 10)`."""
    predictions = np.asarray(probabilities).argmax(axis=1)
    histogram = np.bincount(predictions, minlength=NUM_CLASSES)
    frequencies = histogram / histogram.sum()
    present = frequencies > 0
    kl_divergence = float(
        np.sum(
            frequencies[present] * np.log(frequencies[present] * NUM_CLASSES)
        )
    )
    return ClassCoverage(
        classes_covered=int(present.sum()),
        kl_divergence=kl_divergence,
        histogram=histogram,
    )


def _check_images(images, name):
    images = np.asarray(images, dtype="float32")
    if images.ndim != 4 or images.shape[1:] != (28, 28, 1) or len(images) == 0:
        raise ValueError(
            f"Invalid `{name}`: expected MNIST images of shape (N, 28, 28, 1) "
            f"with N >= 1, in [-1, 1]. Received shape {images.shape}."
        )
    return images


def _symmetric_sqrt(matrix):
    """Return the square root of a symmetric positive semi-definite matrix."""
    eigenvalues, eigenvectors = np.linalg.eigh((matrix + matrix.T) / 2)
    roots = np.sqrt(np.clip(eigenvalues, 0.0, None))
    return (eigenvectors * roots) @ eigenvectors.T
