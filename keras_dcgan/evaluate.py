"""Measure a saved DCGAN on MNIST from the command line.

    python -m keras_dcgan.evaluate runs/mnist/training_checkpoints \
        --data path/to/mnist.npz --num-samples 10000

PATH is a `.keras` file or a folder of checkpoints, whose newest is used.
The generated images are compared with the MNIST test split, and the
Fréchet distance, MNIST score and class coverage are printed as JSON.
"""

import argparse
import json
import sys


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        prog="python -m keras_dcgan.evaluate",
        description="Measure a saved DCGAN on MNIST with the offline "
        "classifier: Fréchet distance, MNIST score and class coverage.",
    )
    parser.add_argument(
        "path", help="a .keras file, or a folder of ckpt-NNNN.keras files"
    )
    parser.add_argument(
        "--data",
        default=None,
        help="path of a local mnist.npz; without it keras.datasets "
        "downloads MNIST",
    )
    parser.add_argument(
        "--num-samples",
        type=int,
        default=10000,
        help="generated images to measure (default: 10000)",
    )
    parser.add_argument(
        "--seed",
        type=int,
        default=0,
        help="seed of the generator's noise (default: 0)",
    )
    return parser.parse_args(argv)


def evaluate(path, data=None, num_samples=10000, seed=0):
    """Return the measures of the model saved at `path` as a dict."""
    from keras_dcgan import checkpoints, metrics
    from keras_dcgan.data import load_mnist

    model, model_path = checkpoints.load_saved_model(path)
    generated = model.generate(num_samples, seed=seed)
    real_images = load_mnist(data, split="test")
    real_features, _ = metrics.classifier_outputs(real_images)
    features, probabilities = metrics.classifier_outputs(generated)
    coverage = metrics.coverage_from_probabilities(probabilities)
    return {
        "model": model_path,
        "num_samples": num_samples,
        "real_images": "MNIST test split",
        "frechet_distance": metrics.frechet_distance_from_features(
            real_features, features
        ),
        "mnist_score": metrics.score_from_probabilities(probabilities),
        "classes_covered": coverage.classes_covered,
        "class_kl_divergence": coverage.kl_divergence,
        "class_histogram": coverage.histogram.tolist(),
    }


def main(argv=None):
    args = parse_args(argv)
    if args.num_samples < 2:
        sys.exit("error: --num-samples must be at least 2")
    try:
        results = evaluate(args.path, args.data, args.num_samples, args.seed)
    except (FileNotFoundError, ValueError) as error:
        sys.exit(f"error: {error}")
    json.dump(results, sys.stdout, indent=2)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
