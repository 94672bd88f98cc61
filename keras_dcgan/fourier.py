"""Stride-1 convolutions of small images through the discrete Fourier transform.

The first transposed convolution of the MNIST generator maps 7x7x256 to
7x7x128 with a 5x5 kernel. Computed directly it takes 25 multiplies per
output and channel pair, 1225 for the 49 outputs. The discrete Fourier
transform of size 9x9 is large enough that the circular convolution
does not wrap. Through it the layer takes one complex product per
frequency, and a real input has 9x5 distinct frequencies: 45 complex
products, 180 real ones, for all 49 outputs. The transforms are matrix
products with constant matrices; counted in, the layer needs about a
fifth of the direct convolution's multiplies. The transforms stay cheap
next to the channel products while the images are small and the
channels many. `keras_dcgan.layers` uses this where `is_faster` expects
it to be faster; `docs/benchmarks.md` has the measured times.

The result equals the direct convolution in exact arithmetic. In float32
it rounds differently: the transforms multiply by sines and cosines and
add up the whole grid, so the error follows the size of all the inputs
rather than of each output. For inputs and weights of order 1, as
between the layers of a DCGAN, outputs and gradients agree with Keras's
layers within 1e-5 of the largest value (`tests/test_layers.py`).

NOTE: inputs with a large common offset that cancels in the outputs
lose more precision, for example a channel and its negation under equal
and opposite weights. At an offset of 1000 the error is about 1e-4 of
the output, about five times Keras's own rounding there.
"""

import dataclasses

import numpy as np
from keras import ops


@dataclasses.dataclass(frozen=True)
class FourierPlan:
    """Constant matrices of a convolution computed through the DFT.

    Attributes:
        size: Side of the square input and output grids.
        taps: Side of the square kernel.
        frequencies: Number of distinct frequencies, `Q`.
        forward: `(2Q, size * size)`; the real then imaginary parts of the
            transform of a flattened grid.
        kernel: `(4Q, taps * taps)`. For a flattened kernel with spectrum
            `G` it gives the blocks `[[re G, im G], [-im G, re G]]` of a
            real matrix, ordered (row block, column block, frequency).
            That matrix multiplies (real, imaginary) parts as complex
            numbers do.
        inverse: `(size * size, 2Q)`; from the real and imaginary parts of
            the products back to the grid.
    """

    size: int
    taps: int
    frequencies: int
    forward: np.ndarray
    kernel: np.ndarray
    inverse: np.ndarray


def plan(size, offsets):
    """Return the `FourierPlan` of a convolution on a `size` x `size` grid.

    The convolution computes, on each axis,
    `outputs[o] = sum_j inputs[o - offsets[j]] * kernel[j]` for
    `o` in `0..size-1`, with inputs outside the grid read as zeros. Both
    axes use the same `offsets`.

    Example:

    >>> plan(7, [2, 1, 0, -1, -2]).frequencies
    45
    """
    offsets = np.asarray(offsets)
    # A circular convolution of this length does not wrap any input onto
    # an output of the grid.
    length = size + max(int(offsets.max()), int(-offsets.min()), 0)
    half = length // 2 + 1
    rows = np.arange(length)[:, None]
    columns = np.arange(half)[None, :]

    def phases(positions):
        # (len(positions), len(positions), Q) angles of the DFT terms.
        angle = (
            rows[None, None] * positions[:, None, None, None]
            + columns[None, None] * positions[None, :, None, None]
        )
        return (2 * np.pi / length) * angle.reshape(
            len(positions), len(positions), length * half
        )

    def real_and_imaginary(angles):
        flat = angles.reshape(-1, angles.shape[-1]).T
        return np.concatenate([np.cos(flat), -np.sin(flat)])

    grid = phases(np.arange(size))
    real, imaginary = np.split(real_and_imaginary(phases(offsets)), 2)
    blocks = np.concatenate([real, imaginary, -imaginary, real])
    # A real grid's transform is conjugate-symmetric, so only the columns
    # 0..length // 2 are kept. The inverse counts the others by doubling
    # every column that has a distinct mirror.
    counts = np.full(half, 2.0)
    counts[0] = 1.0
    if length % 2 == 0:
        counts[-1] = 1.0
    counts = np.broadcast_to(counts, (length, half)).reshape(-1)
    counts = counts / (length * length)
    flat = grid.reshape(-1, grid.shape[-1])
    inverse = np.concatenate(
        [np.cos(flat) * counts, -np.sin(flat) * counts], axis=1
    )
    return FourierPlan(
        size=size,
        taps=len(offsets),
        frequencies=length * half,
        forward=real_and_imaginary(grid).astype("float32"),
        kernel=blocks.astype("float32"),
        inverse=inverse.astype("float32"),
    )


def is_faster(fourier_plan, in_channels, out_channels, backend):
    """Return whether the DFT is expected to beat the direct convolution.

    Counts multiplies per image: the direct convolution's
    `size**2 * taps**2 * in_channels * out_channels` against the DFT's
    channel products and transforms. The DFT's transforms and layout
    changes cost about as much time again as its products, and how fast
    the direct convolution is depends on the backend's kernels.
    TensorFlow's oneDNN convolutions run at about the speed of its matrix
    products, so there the DFT must need at most a quarter of the
    multiplies. The CPU convolutions of JAX and PyTorch are slower, so
    there half is enough. Measured with `benchmarks/conv_floor.py
    --fourier` at batch 256 on a 2-core x86_64 CPU (`docs/benchmarks.md`),
    the MNIST generator's stride-1 layer, which needs a fifth of the
    multiplies through the DFT, runs faster that way on every backend.
    Its stride-2 layer and the discriminator's need half. The first runs
    faster that way on JAX and PyTorch, and the second about as fast.
    Both run slower that way on TensorFlow.

    NOTE: these factors come from CPU measurements only. With cuDNN on a
    GPU the direct convolutions may win where they lose here; no GPU run
    has been made.

    Args:
        fourier_plan: A `FourierPlan` from `plan`.
        in_channels: Channels of the convolution's input.
        out_channels: Channels of its output.
        backend: The Keras backend's name.
    """
    size, taps = fourier_plan.size, fourier_plan.taps
    frequencies = fourier_plan.frequencies
    direct = size**2 * taps**2 * in_channels * out_channels
    products = 4 * frequencies * in_channels * out_channels
    transforms = 2 * frequencies * size**2 * (in_channels + out_channels)
    factor = 4 if backend == "tensorflow" else 2
    return factor * (products + transforms) <= direct


def kernel_spectra(kernel, fourier_plan):
    """Return the spectra of `kernel` as `convolve` takes them.

    Args:
        kernel: `(taps, taps, in_channels, out_channels)`, with the taps
            in the order of the plan's `offsets`.
        fourier_plan: A `FourierPlan` from `plan`.

    Returns:
        `(Q, 2 * in_channels, 2 * out_channels)`: for each frequency, the
        real matrix that multiplies the (real, imaginary) parts of an
        image's spectrum as the complex spectrum of `kernel` does.
    """
    taps, frequencies = fourier_plan.taps, fourier_plan.frequencies
    in_channels, out_channels = kernel.shape[2], kernel.shape[3]
    spectra = ops.matmul(
        ops.convert_to_tensor(fourier_plan.kernel, dtype=kernel.dtype),
        ops.reshape(kernel, (taps * taps, in_channels * out_channels)),
    )
    # One product and one transpose: slicing the spectrum into its real
    # and imaginary parts cost TensorFlow's kernel gradient more than the
    # product itself.
    spectra = ops.reshape(
        spectra, (2, 2, frequencies, in_channels, out_channels)
    )
    spectra = ops.transpose(spectra, (2, 0, 3, 1, 4))
    return ops.reshape(
        spectra, (frequencies, 2 * in_channels, 2 * out_channels)
    )


def convolve(inputs, spectra, fourier_plan):
    """Convolve `inputs` with the kernel whose spectra are `spectra`.

    Args:
        inputs: `(batch, size, size, in_channels)`.
        spectra: `(Q, 2 * in_channels, 2 * out_channels)`, from
            `kernel_spectra` or built the same way.
        fourier_plan: A `FourierPlan` from `plan`.

    Returns:
        `(batch, size, size, out_channels)`, in the dtype of `inputs`.
    """
    size = fourier_plan.size
    frequencies = fourier_plan.frequencies
    in_channels = spectra.shape[1] // 2
    out_channels = spectra.shape[2] // 2
    dtype = inputs.dtype

    def constant(matrix):
        return ops.convert_to_tensor(matrix, dtype=dtype)

    # Spectra of the images, as (frequency, batch, real and imaginary
    # parts of each channel).
    images = ops.matmul(
        constant(fourier_plan.forward),
        ops.reshape(inputs, (-1, size * size, in_channels)),
    )
    images = ops.reshape(images, (-1, 2, frequencies, in_channels))
    images = ops.transpose(images, (2, 0, 1, 3))
    images = ops.reshape(images, (frequencies, -1, 2 * in_channels))

    products = ops.matmul(images, spectra)
    products = ops.reshape(products, (frequencies, -1, 2, out_channels))
    products = ops.transpose(products, (1, 2, 0, 3))
    products = ops.reshape(products, (-1, 2 * frequencies, out_channels))
    outputs = ops.matmul(constant(fourier_plan.inverse), products)
    return ops.reshape(outputs, (-1, size, size, out_channels))
