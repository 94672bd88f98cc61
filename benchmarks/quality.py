"""Train for a fixed number of steps, then measure the generated digits.

    KERAS_BACKEND=tensorflow python benchmarks/quality.py --trainer reference \
        --data path/to/mnist.npz --steps 235 --output results/reference.json
    KERAS_BACKEND=jax python benchmarks/quality.py --trainer fit ...

`--trainer reference` runs the hand-written loop of `reference_loop.py`
(TensorFlow only); `--trainer fit` runs `DCGAN.fit` on the active backend.
Both train on the MNIST training split from the same seed and batch size,
then generate `--samples` images from NumPy noise and compare them with
the 10,000 test images. The results go to a JSON file.
"""

import argparse
import json
import os
import platform
import sys
import time

import keras
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from keras_dcgan import (  # noqa: E402
    DCGAN,
    build_discriminator,
    build_generator,
    load_mnist,
    metrics,  # noqa: E402
)


def train_reference(images, steps, batch_size, seed):
    from reference_loop import ReferenceTrainer

    trainer = ReferenceTrainer()
    batches = iter(trainer.dataset(images, batch_size, seed))
    for _ in range(steps):
        trainer.train_step(next(batches))
    return trainer.generator


def train_fit(images, steps, batch_size, seed):
    model = DCGAN(build_generator(), build_discriminator(), seed=seed)
    model.compile(
        d_optimizer=keras.optimizers.Adam(1e-4),
        g_optimizer=keras.optimizers.Adam(1e-4),
    )
    steps_per_epoch = min(steps, -(-len(images) // batch_size))
    epochs = -(-steps // steps_per_epoch)
    model.fit(
        images,
        batch_size=batch_size,
        epochs=epochs,
        steps_per_epoch=steps_per_epoch,
        verbose=2,
    )
    return model.generator


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--trainer", choices=("reference", "fit"), required=True
    )
    parser.add_argument("--data", required=True, help="path of mnist.npz")
    parser.add_argument("--steps", type=int, default=235, help="default: 235")
    parser.add_argument(
        "--batch-size", type=int, default=256, help="default: 256"
    )
    parser.add_argument(
        "--samples", type=int, default=5000, help="default: 5000"
    )
    parser.add_argument("--seed", type=int, default=0, help="default: 0")
    parser.add_argument("--output", required=True, help="JSON file to write")
    args = parser.parse_args()

    backend = keras.backend.backend()
    if args.trainer == "reference" and backend != "tensorflow":
        sys.exit("error: --trainer reference needs KERAS_BACKEND=tensorflow")

    keras.utils.set_random_seed(args.seed)
    images = load_mnist(args.data)
    start = time.perf_counter()
    train = train_reference if args.trainer == "reference" else train_fit
    generator = train(images, args.steps, args.batch_size, args.seed)
    training_seconds = time.perf_counter() - start

    noise = np.random.default_rng(args.seed).standard_normal(
        (args.samples, 100)
    )
    generated = np.concatenate(
        [
            keras.ops.convert_to_numpy(
                generator(noise[i : i + 500].astype("float32"))
            )
            for i in range(0, args.samples, 500)
        ]
    )
    real_features, _ = metrics.classifier_outputs(
        load_mnist(args.data, split="test")
    )
    features, probabilities = metrics.classifier_outputs(generated)
    coverage = metrics.coverage_from_probabilities(probabilities)
    results = {
        "trainer": args.trainer,
        "backend": backend,
        "steps": args.steps,
        "batch_size": args.batch_size,
        "seed": args.seed,
        "samples": args.samples,
        "real_images": "MNIST test split (10,000)",
        "training_seconds": round(training_seconds, 1),
        "frechet_distance": metrics.frechet_distance_from_features(
            real_features, features
        ),
        "mnist_score": metrics.score_from_probabilities(probabilities),
        "classes_covered": coverage.classes_covered,
        "class_kl_divergence": coverage.kl_divergence,
        "class_histogram": coverage.histogram.tolist(),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPU cores",
    }
    os.makedirs(os.path.dirname(os.path.abspath(args.output)), exist_ok=True)
    with open(args.output, "w") as file:
        json.dump(results, file, indent=2)
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
