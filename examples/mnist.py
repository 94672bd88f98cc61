"""Train the reference DCGAN on MNIST.

This reproduces the TensorFlow DCGAN tutorial with `DCGAN.fit`: pixels
scaled to [-1, 1], batches of 256, Adam(1e-4) for each network, a 4x4 grid
of images after every epoch, a checkpoint every 15 epochs and an animated
GIF and a plot of the losses at the end. Choose the backend with the
environment variable:

    KERAS_BACKEND=jax python examples/mnist.py --data ../shared/data/mnist.npz
    KERAS_BACKEND=tensorflow python examples/mnist.py --data ...

A run whose output folder already contains checkpoints resumes from the
newest one. Ctrl-C saves a checkpoint before exiting, so the next run
resumes from it. `--help` lists every option.

This script is `keras-dcgan train`, the command installed with the
package; its code, in `keras_dcgan/cli.py`, uses only the public API:
`DCGAN`, `build_generator`, `build_discriminator`, `GANMonitor`,
`GANCheckpoint`, `restore_checkpoint` and `data_parallel_scope`.
"""

import sys

from keras_dcgan.cli import main

if __name__ == "__main__":
    sys.exit(main(["train", *sys.argv[1:]]))
