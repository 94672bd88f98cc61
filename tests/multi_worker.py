"""One process of a two-process data-parallel run on this machine.

Usage: KERAS_BACKEND=... python tests/multi_worker.py ID PORTS OUTPUT.npz

PORTS is a comma-separated list of two free local ports. The two
processes form a cluster on 127.0.0.1 with `data_parallel_scope(
multi_worker=True)`: through `keras.distribution.initialize` on JAX (the
coordinator listens on the first port) and through `TF_CONFIG` and
`tf.distribute.MultiWorkerMirroredStrategy` on TensorFlow (one worker per
port). Each process has one CPU device, and each trains the tiny DCGAN of
`data_parallel.py` for three steps of a global batch of 16, then saves the
logged losses and its copy of every weight.

On JAX each process feeds its 8 rows of every global batch, and the
global batch is the same 16 images in the same order as in
`data_parallel.py`. On TensorFlow each worker passes all images and the
global batch size, and `tf.distribute` splits the batches.
"""

import json
import os
import sys

PROCESS_ID = int(sys.argv[1])
PORTS = sys.argv[2].split(",")
OUTPUT = sys.argv[3]
NUM_PROCESSES = len(PORTS)
if os.environ.get("KERAS_BACKEND") == "tensorflow":
    os.environ["TF_CONFIG"] = json.dumps(
        {
            "cluster": {"worker": [f"127.0.0.1:{port}" for port in PORTS]},
            "task": {"type": "worker", "index": PROCESS_ID},
        }
    )
else:
    os.environ["KERAS_DISTRIBUTION_JOB_ADDRESSES"] = ",".join(
        f"127.0.0.1:{port}" for port in PORTS
    )
    os.environ["KERAS_DISTRIBUTION_NUM_PROCESSES"] = str(NUM_PROCESSES)
    os.environ["KERAS_DISTRIBUTION_PROCESS_ID"] = str(PROCESS_ID)

import keras  # noqa: E402
import numpy as np  # noqa: E402
from data_parallel import BATCH_SIZE, IMAGES, build_model  # noqa: E402

from keras_dcgan import data_parallel_scope, distribution  # noqa: E402

STEPS = 3


def local_share(images):
    """Return what this process feeds, and the batch size it feeds with."""
    if keras.backend.backend() == "tensorflow":
        return images, BATCH_SIZE
    local = BATCH_SIZE // NUM_PROCESSES
    rows = [
        images[step * BATCH_SIZE + PROCESS_ID * local :][:local]
        for step in range(STEPS)
    ]
    return np.concatenate(rows), local


def main():
    if keras.backend.backend() == "jax":
        import jax

        jax.config.update("jax_platforms", "cpu")
    with data_parallel_scope(multi_worker=True):
        model = build_model()
    images = IMAGES[: STEPS * BATCH_SIZE].astype("float32")
    images, batch_size = local_share(images)
    history = model.fit(images, batch_size=batch_size, shuffle=False, verbose=0)
    results = {
        "d_loss": history.history["d_loss"][0],
        "g_loss": history.history["g_loss"][0],
        "devices": distribution.device_count(model),
        "chief": distribution.is_chief(model),
    }
    for index, weight in enumerate(model.weights):
        value = weight.value
        if keras.backend.backend() == "jax":
            value = value.addressable_shards[0].data
        results[f"weight_{index}"] = keras.ops.convert_to_numpy(value)
    results["weight_count"] = len(model.weights)
    np.savez(OUTPUT, **results)


if __name__ == "__main__":
    main()
