"""Stride-1 convolutions of small images through the discrete Fourier transform.

The first transposed convolution of the MNIST generator maps 7x7x256 to
7x7x128 with a 5x5 kernel. Computed directly it takes 25 multiplies per
output and channel pair, 1225 for the 49 outputs. The discrete Fourier
transform of size 9x9 is large enough that the circular convolution
does not wrap. Through it the layer takes one complex product per
frequency, and a real input has 9x5 distinct frequencies: 45 complex
products for all 49 outputs, each computed from three real ones (see
`FourierPlan`). The transforms are matrix products with constant
matrices; counted in, the layer needs about a sixth of the direct
convolution's multiplies. The transforms stay cheap
next to the channel products while the images are small and the
channels many. `keras_dcgan.layers` uses this where `is_faster` expects
it to be faster; `docs/benchmarks.md` has the measured times.

The result equals the direct convolution in exact arithmetic. In float32
it rounds differently: the transforms multiply by sines and cosines and
add up the whole grid, so the error follows the size of all the inputs
rather than of each output. For inputs and weights of order 1, as
between the layers of a DCGAN, outputs and gradients agree with Keras's
layers within 1e-5 of the largest value (`tests/test_layers.py`).
Three real products per complex one round a little more than four:
over 20 random 7x7 layers with a 5x5 kernel, the median error was about
1.5 times that of the four-product form, and below Keras's own.

NOTE: inputs with a large common offset that cancels in the outputs
lose more precision, for example a channel and its negation under equal
and opposite weights. At an offset of 1000 the error is 1e-4 to 4e-4 of
the output over 20 random layers, 6 to 15 times Keras's own rounding
there.
"""

import dataclasses

import keras
import numpy as np
from keras import ops


@dataclasses.dataclass(frozen=True)
class FourierPlan:
    """Constant matrices of a convolution computed through the DFT.

    A complex product `X * G` takes four real ones. The plan computes it
    from three, `(re X + im X) re G`, `re X (im G - re G)` and
    `im X (re G + im G)`: the real part of `X * G` is the first minus the
    third, the imaginary part the first plus the second. Each matrix
    below has one block per product, in that order, so the transforms
    lead straight from the grid to those three products and back.

    Attributes:
        size: Side of the square input and output grids.
        taps: Side of the square kernel.
        frequencies: Number of distinct frequencies, `Q`.
        forward: `(3Q, size * size)`; from a flattened grid to the image
            factor of each product: `re X + im X`, `re X`, `im X`.
        kernel: `(3Q, taps * taps)`; from a flattened kernel to the
            kernel factor of each product: `re G`, `im G - re G`,
            `re G + im G`.
        inverse: `(size * size, 3Q)`; from the three products of each
            frequency back to the grid.
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
        # (len(positions) ** 2, Q) angles of the DFT terms.
        angle = (
            rows[None, None] * positions[:, None, None, None]
            + columns[None, None] * positions[None, :, None, None]
        )
        angle = (2 * np.pi / length) * angle
        return angle.reshape(len(positions) ** 2, length * half)

    def real_and_imaginary(positions):
        angles = phases(positions).T
        return np.cos(angles), -np.sin(angles)

    real, imaginary = real_and_imaginary(np.arange(size))
    grid_real, grid_imaginary = real.T, imaginary.T
    forward = np.concatenate([real + imaginary, real, imaginary])
    real, imaginary = real_and_imaginary(offsets)
    kernel = np.concatenate([real, imaginary - real, real + imaginary])
    # A real grid's transform is conjugate-symmetric, so only the columns
    # 0..length // 2 are kept. The inverse counts the others by doubling
    # every column that has a distinct mirror.
    counts = np.full(half, 2.0)
    counts[0] = 1.0
    if length % 2 == 0:
        counts[-1] = 1.0
    counts = np.broadcast_to(counts, (length, half)).reshape(-1)
    counts = counts / (length * length)
    real = grid_real * counts
    imaginary = grid_imaginary * counts
    inverse = np.concatenate([real + imaginary, imaginary, -real], axis=1)
    return FourierPlan(
        size=size,
        taps=len(offsets),
        frequencies=length * half,
        forward=forward.astype("float32"),
        kernel=kernel.astype("float32"),
        inverse=inverse.astype("float32"),
    )


def is_faster(fourier_plan, in_channels, out_channels, backend):
    """Return whether the DFT is expected to beat the direct convolution.

    Counts multiplies per image: the direct convolution's
    `size**2 * taps**2 * in_channels * out_channels` against the DFT's
    channel products and transforms. The DFT's layout changes cost time
    on top of its multiplies, and how fast
    the direct convolution is depends on the backend's kernels.
    TensorFlow's oneDNN convolutions run at about the speed of its matrix
    products, so there the DFT must need at most a quarter of the
    multiplies. The CPU convolutions of JAX and PyTorch are slower, so
    there half is enough. Measured with `benchmarks/conv_floor.py
    --fourier` at batch 256 on a 2-core x86_64 CPU (`docs/benchmarks.md`),
    the MNIST generator's stride-1 layer, which needs a sixth of the
    multiplies through the DFT, runs faster that way on every backend.
    Its stride-2 layer and the discriminator's need less than half.
    Both run faster that way on JAX and PyTorch, and slower on
    TensorFlow.

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
    products = 3 * frequencies * in_channels * out_channels
    transforms = 3 * frequencies * size**2 * (in_channels + out_channels)
    factor = 4 if backend == "tensorflow" else 2
    return factor * (products + transforms) <= direct


def kernel_spectra(kernel, fourier_plan):
    """Return the spectra of `kernel` as `convolve` takes them.

    Args:
        kernel: `(taps, taps, in_channels, out_channels)`, with the taps
            in the order of the plan's `offsets`.
        fourier_plan: A `FourierPlan` from `plan`.

    Returns:
        `(3Q, in_channels, out_channels)`: the kernel factor of each of
        the three products of each frequency.
    """
    taps = fourier_plan.taps
    in_channels, out_channels = kernel.shape[2], kernel.shape[3]
    spectra = ops.matmul(
        ops.convert_to_tensor(fourier_plan.kernel, dtype=kernel.dtype),
        ops.reshape(kernel, (taps * taps, in_channels * out_channels)),
    )
    return ops.reshape(spectra, (-1, in_channels, out_channels))


def convolve(inputs, spectra, fourier_plan):
    """Convolve `inputs` with the kernel whose spectra are `spectra`.

    Args:
        inputs: `(batch, size, size, in_channels)`.
        spectra: `(3Q, in_channels, out_channels)`, from `kernel_spectra`
            or built the same way.
        fourier_plan: A `FourierPlan` from `plan`.

    Returns:
        `(batch, size, size, out_channels)`, in the dtype of `inputs`.
    """
    if keras.backend.backend() == "jax":
        return _convolve_pixels_first(inputs, spectra, fourier_plan)
    return _convolve_images_first(inputs, spectra, fourier_plan)


def _convolve_pixels_first(inputs, spectra, fourier_plan):
    """Convolve with one transform over the pixels of the whole batch.

    Only whole rows of channels are transposed. Image by image, XLA's CPU
    backend transposed the spectra inside the gradients element by
    element: the forward pass and both gradients of the MNIST generator's
    first layer, batch 256, took 90 ms against 65 ms in this order.
    """
    size = fourier_plan.size
    out_channels = spectra.shape[2]
    images = ops.reshape(inputs, (-1, size * size, spectra.shape[1]))
    images = ops.transpose(images, (1, 0, 2))
    images = ops.reshape(images, (size * size, -1))
    images = ops.matmul(_constant(fourier_plan.forward, inputs), images)
    images = ops.reshape(images, (spectra.shape[0], -1, spectra.shape[1]))
    products = ops.matmul(images, spectra)
    products = ops.reshape(products, (spectra.shape[0], -1))
    outputs = ops.matmul(_constant(fourier_plan.inverse, inputs), products)
    outputs = ops.reshape(outputs, (size * size, -1, out_channels))
    outputs = ops.transpose(outputs, (1, 0, 2))
    return ops.reshape(outputs, (-1, size, size, out_channels))


def _convolve_images_first(inputs, spectra, fourier_plan):
    """Convolve with the transforms image by image.

    PyTorch's matrix products of each image beat one product over the
    whole batch: the forward pass and both gradients of the MNIST
    generator's first layer, batch 256, took 78 ms against 97 ms.
    """
    size = fourier_plan.size
    images = ops.reshape(inputs, (-1, size * size, spectra.shape[1]))
    images = ops.matmul(_constant(fourier_plan.forward, inputs), images)
    products = ops.matmul(ops.transpose(images, (1, 0, 2)), spectra)
    products = ops.transpose(products, (1, 0, 2))
    outputs = ops.matmul(_constant(fourier_plan.inverse, inputs), products)
    return ops.reshape(outputs, (-1, size, size, spectra.shape[2]))


def _constant(matrix, inputs):
    return ops.convert_to_tensor(matrix, dtype=inputs.dtype)
