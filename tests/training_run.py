"""Training runs in a separate process, for crash and resume tests.

Usage: KERAS_BACKEND=... python tests/training_run.py MODE FOLDER

Modes:
    straight: 4 epochs, then write the weights to FOLDER/weights.npz.
    first_half: 2 epochs with a checkpoint after epoch 2.
    second_half: restore that checkpoint, train to epoch 4, write weights.
    crash: train with keras.callbacks.BackupAndRestore, fail in epoch 3.
    resume: the same training in a new process, writing to FOLDER/resume.json
        the first epoch it runs and both optimizers' iterations then.
    slow_save: save checkpoint 1, then hang inside the save of checkpoint 2
        after writing its temporary file and FOLDER/saving.
"""

import json
import os
import sys

import keras
import numpy as np

if keras.backend.backend() == "tensorflow":
    import tensorflow as tf

    tf.config.experimental.enable_op_determinism()

from keras_dcgan import (  # noqa: E402
    DCGAN,
    GANCheckpoint,
    build_discriminator,
    build_generator,
    restore_checkpoint,
)
from keras_dcgan.checkpoints import save_checkpoint  # noqa: E402

IMAGES = (
    np.random.default_rng(0).uniform(-1, 1, (24, 8, 8, 1)).astype("float32")
)
STEPS_PER_EPOCH = 3


def make_model():
    keras.utils.set_random_seed(0)
    model = DCGAN(
        build_generator(6, (8, 8, 1), base_filters=4),
        build_discriminator((8, 8, 1), base_filters=4),
        seed=0,
    )
    model.compile(
        d_optimizer=keras.optimizers.Adam(1e-3),
        g_optimizer=keras.optimizers.Adam(1e-3),
    )
    return model


def fit(model, **kwargs):
    # Data order is fixed: the shuffling state is not part of a checkpoint.
    return model.fit(IMAGES, batch_size=8, shuffle=False, verbose=0, **kwargs)


def save_weights(model, folder):
    variables = model.variables + model.optimizer.variables
    weights = [keras.ops.convert_to_numpy(v) for v in variables]
    np.savez(os.path.join(folder, "weights.npz"), *weights)


class CrashInEpoch(keras.callbacks.Callback):
    def __init__(self, epoch):
        super().__init__()
        self.epoch = epoch

    def on_epoch_begin(self, epoch, logs=None):
        if epoch == self.epoch:
            raise RuntimeError(f"simulated crash in epoch {epoch + 1}")


class RecordStart(keras.callbacks.Callback):
    def __init__(self, path):
        super().__init__()
        self.path = path
        self.recorded = False

    def on_epoch_begin(self, epoch, logs=None):
        if self.recorded:
            return
        self.recorded = True
        model = self.model
        record = {
            "first_epoch": epoch,
            "d_iterations": int(model.d_optimizer.iterations),
            "g_iterations": int(model.g_optimizer.iterations),
        }
        with open(self.path, "w") as file:
            json.dump(record, file)


def main(mode, folder):
    model = make_model()
    checkpoints = os.path.join(folder, "checkpoints")
    backup = os.path.join(folder, "backup")
    if mode == "straight":
        fit(model, epochs=4)
        save_weights(model, folder)
    elif mode == "first_half":
        fit(
            model,
            epochs=2,
            callbacks=[GANCheckpoint(checkpoints, every_n_epochs=2)],
        )
    elif mode == "second_half":
        epoch = restore_checkpoint(model, checkpoints)
        fit(model, initial_epoch=epoch, epochs=4)
        save_weights(model, folder)
    elif mode in ("crash", "resume"):
        callbacks = [keras.callbacks.BackupAndRestore(backup)]
        if mode == "crash":
            callbacks.append(CrashInEpoch(2))
        else:
            callbacks.append(RecordStart(os.path.join(folder, "resume.json")))
        fit(model, epochs=4, callbacks=callbacks)
        save_weights(model, folder)
    elif mode == "slow_save":
        save_checkpoint(model, checkpoints, epoch=1)
        original_save = type(model).save

        def save_then_hang(self, path, *args, **kwargs):
            original_save(self, path, *args, **kwargs)
            open(os.path.join(folder, "saving"), "w").close()
            import time

            time.sleep(600)

        type(model).save = save_then_hang
        save_checkpoint(model, checkpoints, epoch=2)
    else:
        sys.exit(f"error: unknown mode {mode!r}")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
