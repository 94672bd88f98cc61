"""Layers that compute what Keras's layers compute, faster or on replicas.

`Conv2DTranspose` computes a transposed convolution as a sub-pixel
convolution, which runs through the discrete Fourier transform
(`keras_dcgan.fourier`) where that is faster, or as matrix products
where the channels are few. `Conv2D` computes a strided convolution
through the DFT of the input's phases where that is faster, and as Keras
does everywhere else. `BatchNormalization` and `Dropout` give the
same results on several `tf.distribute` replicas as on one device (see
`keras_dcgan.distribution`). Each keeps the Keras class name and weights,
so weight files and checkpoints load into models built with either.

XLA's CPU backend computes the weight gradient of a strided
`Conv2DTranspose` slowly. For the 7x7x128 to 14x14x64 layer of the MNIST
generator at batch 256 it took about 3.1 s against 0.16 s on TensorFlow,
measured on a 2-core x86_64 CPU with jax 0.10.2. A stride-`s` transposed
convolution equals one stride-1 convolution with `s * s` times the output
channels followed by a depth-to-space rearrangement (Shi et al. 2016,
"Real-Time Single Image and Video Super-Resolution Using an Efficient
Sub-Pixel Convolutional Neural Network"), and XLA computes that quickly.
"""

import keras
import numpy as np
from keras import ops

from keras_dcgan import fourier
from keras_dcgan.distribution import num_replicas, replica_rows


def _selection(indices, size):
    """Return `select[a, j, m]`, 1 where phase `a` reads kernel row `m` at
    tap `j`, else 0.

    `indices` is `(stride, taps)` of kernel rows, where `size` marks a tap
    outside the kernel.
    """
    stride, taps = indices.shape
    select = np.zeros((stride, taps, size + 1), dtype="float32")
    for phase in range(stride):
        for tap in range(taps):
            select[phase, tap, indices[phase, tap]] = 1.0
    return select[:, :, :size]


def _phase_kernels(kernel, indices):
    """Gather the phase kernels of a strided convolution.

    `kernel` is `(k, k, a, b)` and `indices` is `(stride, taps)` of indices
    into its first two axes, where `k` points at a zero row. Returns
    `(stride, taps, stride, taps, a, b)`: the kernel of each pair of row
    and column phases.
    """
    stride, taps = indices.shape
    size, _, first, second = kernel.shape
    kernel = ops.pad(kernel, [[0, 1], [0, 1], [0, 0], [0, 0]])
    rows = ops.take(kernel, indices.reshape(-1), axis=0)
    rows = ops.reshape(rows, (stride, taps, size + 1, first, second))
    phases = ops.take(rows, indices.reshape(-1), axis=2)
    return ops.reshape(phases, (stride, taps, stride, taps, first, second))


def _phase_spectra(kernel, transform, stride):
    """Return the spectra of the phase kernels of `kernel`.

    `transform`, `(3Q * stride**2, k * k)`, is the product of a
    `FourierPlan`'s kernel transform with the gather of the phase
    kernels. One matrix product with it takes `kernel`, `(k, k, a, b)`,
    to `(3Q, stride, stride, a, b)`: the kernel factor of each of the
    three products of each frequency (see `fourier.FourierPlan`), for
    each pair of row and column phases.
    """
    size, _, first, second = kernel.shape
    spectra = ops.matmul(
        ops.convert_to_tensor(transform, dtype=kernel.dtype),
        ops.reshape(kernel, (size * size, first * second)),
    )
    return ops.reshape(spectra, (-1, stride, stride, first, second))


def _spectra_transform(fourier_plan, indices, size):
    """Return the `transform` of `_phase_spectra` for a kernel of `size`.

    The gather of the phase kernels is folded into the constant, so the
    spectra come from one matrix product of the kernel, and its gradient
    from one more, with no gather or scatter.
    """
    taps = indices.shape[1]
    select = _selection(indices, size)
    transform = fourier_plan.kernel.reshape(-1, taps, taps)
    combined = np.einsum("rjk,ajm,bkn->rabmn", transform, select, select)
    return combined.reshape(-1, size * size).astype("float32")


def _overlap_add_kernel(indices, size, filters):
    """Return the constant kernel that adds tap products into phases.

    `(taps, taps, size * size * filters, stride * stride * filters)`: at
    tap `(j, l)`, output phase `(a, b)` takes the products of kernel
    entry `(indices[a, j], indices[b, l])`, filter by filter.
    """
    stride, taps = indices.shape
    select = _selection(indices, size)
    combined = np.einsum("ajm,bln->jlmnab", select, select)
    combined = np.einsum("jlmnab,fg->jlmnfabg", combined, np.eye(filters))
    return combined.reshape(
        taps, taps, size * size * filters, stride * stride * filters
    ).astype("float32")


def _fourier_plan(layer, input_shape, side, offsets, in_channels, filters):
    """Return a `FourierPlan` for `layer` if the DFT pays off, else `None`.

    Only float32 layers use it: in bfloat16 or float16 the transforms
    would round far more than the direct convolution does.
    """
    if layer.compute_dtype != "float32" or input_shape[1] is None:
        return None
    candidate = fourier.plan(side, offsets)
    backend = keras.backend.backend()
    if not fourier.is_faster(candidate, in_channels, filters, backend):
        return None
    return candidate


def _bias_and_activation(layer, outputs):
    """Add the layer's bias and apply its activation, as Keras's layers do."""
    if layer.use_bias:
        outputs = outputs + ops.cast(layer.bias, layer.compute_dtype)
    if layer.activation is not None:
        outputs = layer.activation(outputs)
    return outputs


def _fits_plan(inputs, fourier_plan, stride):
    """Return whether `inputs` have the side that `fourier_plan` is for."""
    if fourier_plan is None:
        return False
    side = fourier_plan.size * stride
    return tuple(inputs.shape[1:3]) == (side, side)


def _same_square(layer):
    strides = tuple(layer.strides)
    kernel_size = tuple(layer.kernel_size)
    return (
        layer.padding == "same"
        and layer.data_format == "channels_last"
        and tuple(layer.dilation_rate) == (1, 1)
        and strides[0] == strides[1]
        and kernel_size[0] == kernel_size[1]
    )


@keras.saving.register_keras_serializable(package="keras_dcgan")
class Conv2DTranspose(keras.layers.Conv2DTranspose):
    """`keras.layers.Conv2DTranspose` computed as a sub-pixel convolution.

    The layer keeps the kernel variable of `keras.layers.Conv2DTranspose`,
    with the same shape `(kernel_h, kernel_w, filters, in_channels)`,
    name and meaning, and takes the same arguments. It also keeps the
    class name, because Keras's weight files key the layers of a model by
    their snake-cased class name, so weights and checkpoints load into a
    model built with either class.

    For `padding="same"`, `data_format="channels_last"`, no dilation, no
    `output_padding`, a square kernel, equal strides on both axes and
    `kernel_size >= strides`, the layer computes the `strides * strides`
    output phases (below) as the channels of one stride-1 convolution on
    the input grid and interleaves them by depth-to-space. That
    convolution runs through the discrete Fourier transform
    (`keras_dcgan.fourier`) where `fourier.is_faster` expects it to be
    faster for the input side and channels (in float32 only): for the
    first layer of the MNIST generator on every backend, and for its
    second on JAX and PyTorch. On JAX and PyTorch, some layers have at
    most half as many kernel taps times filters as input channels, such
    as the MNIST generator's last. They multiply inputs of any side by
    every tap in one matrix product and add the products into the phases
    (`_overlap_add_convolution`). Layers that take neither path, and
    inputs of another side than a DFT layer was built for, run as a
    direct convolution on JAX and PyTorch for strides of 2 or more.
    Every other case runs the parent's transposed convolution.
    On PyTorch the direct sub-pixel convolution gains little: the MNIST
    step took about 0.87 s against 0.91 s with the parent's computation,
    on the same CPU.

    For output row `o = s * m + a` (stride `s`, phase `a` in `0..s-1`), the
    transposed convolution sums `x[m + t] * kernel[a + pad - s * t]` over
    the taps `t` whose kernel index lies in `0..k-1`, with
    `pad = (k - s) // 2` as in TensorFlow's "same" padding. Each phase is a
    stride-1 correlation with a small kernel gathered from the original
    one.
    """

    def build(self, input_shape):
        super().build(input_shape)
        self._phase_plan = self._plan_phases()
        self._fourier_plan = None
        plan = self._phase_plan
        if plan is not None and input_shape[1] == input_shape[2]:
            stride = plan["stride"]
            taps = plan["indices"].shape[1]
            offsets = [plan["pad_before"] - j for j in range(taps)]
            self._fourier_plan = _fourier_plan(
                self,
                input_shape,
                input_shape[1],
                offsets,
                input_shape[-1],
                stride * stride * self.filters,
            )
        if self._fourier_plan is not None:
            self._spectra_transform = _spectra_transform(
                self._fourier_plan, plan["indices"], self.kernel_size[0]
            )
        # XLA's CPU kernel gradient of a convolution with few output
        # channels is slow. For the MNIST generator's last layer at batch
        # 256 it took about 100 ms of the 0.72 s JAX step on a 2-core
        # x86_64 CPU. Through the products of every tap, the layer's three
        # passes took 17 ms instead of 113 on JAX, and 16 instead of 22 on
        # PyTorch (benchmarks/conv_floor.py). With at most half as many
        # taps times filters as input channels, the constant convolution
        # needs at most half the multiplies of the direct one.
        # NOTE: measured on that layer only, which has one filter.
        self._overlap_add_constant = None
        self._use_overlap_add = (
            plan is not None
            and keras.backend.backend() in ("jax", "torch")
            and 2 * self.kernel_size[0] ** 2 * self.filters <= input_shape[-1]
        )

    def call(self, inputs):
        if _fits_plan(inputs, self._fourier_plan, 1):
            return self._phase_call(inputs, self._fourier_convolution)
        if self._use_overlap_add and None not in inputs.shape[1:3]:
            return self._overlap_add_call(inputs)
        if (
            self._phase_plan is None
            or self._phase_plan["stride"] < 2
            or keras.backend.backend() not in ("jax", "torch")
        ):
            return super().call(inputs)
        return self._sub_pixel_call(inputs)

    def _plan_phases(self):
        """Return the gather indices of the phase kernels, or `None`.

        Without the DFT, stride 1 keeps the parent's direct computation:
        measured on the same CPU, XLA ran the 7x7x256 to 7x7x128 layer of
        the MNIST generator about 2x faster as a transposed convolution
        than as a direct stride-1 convolution, and PyTorch ran both in the
        same time.
        """
        supported = (
            _same_square(self)
            and self.output_padding is None
            and self.kernel_size[0] >= self.strides[0]
        )
        if not supported:
            return None
        stride, size = self.strides[0], self.kernel_size[0]
        pad = (size - stride) // 2
        first_tap = -((size - 1 - pad) // stride)
        last_tap = (stride - 1 + pad) // stride
        taps = list(range(first_tap, last_tap + 1))
        # indices[a][j] is the kernel index of tap taps[j] in phase a, or
        # `size`, which points at an appended zero row.
        indices = np.full((stride, len(taps)), size, dtype="int32")
        for phase in range(stride):
            for position, tap in enumerate(taps):
                index = phase + pad - stride * tap
                if 0 <= index < size:
                    indices[phase, position] = index
        return {
            "stride": stride,
            "indices": indices,
            "pad_before": -first_tap,
            "pad_after": last_tap,
        }

    def _phase_kernel(self):
        """Return `(taps, taps, in_channels, stride**2 * filters)`.

        The channels are ordered (phase_h, phase_w, filters) for
        depth-to-space.
        """
        indices = self._phase_plan["indices"]
        stride, taps = indices.shape
        kernel = ops.cast(self.kernel, self.compute_dtype)
        filters, in_channels = kernel.shape[2], kernel.shape[3]
        phases = _phase_kernels(kernel, indices)
        phases = ops.transpose(phases, (1, 3, 5, 0, 2, 4))
        return ops.reshape(
            phases, (taps, taps, in_channels, stride * stride * filters)
        )

    def _fourier_convolution(self, inputs):
        stride = self._phase_plan["stride"]
        # (k, k, in_channels, filters), so that the filters stay the
        # innermost axis through the transpose below: PyTorch moved the
        # spectra of the MNIST generator's first layer in 2.0 ms instead
        # of 3.6 ms that way.
        kernel = ops.transpose(
            ops.cast(self.kernel, self.compute_dtype), (0, 1, 3, 2)
        )
        in_channels = kernel.shape[2]
        spectra = _phase_spectra(kernel, self._spectra_transform, stride)
        # To (product and frequency, in_channels, (phase_h, phase_w,
        # filters)), the output channels ordered for depth-to-space.
        spectra = ops.transpose(spectra, (0, 3, 1, 2, 4))
        spectra = ops.reshape(
            spectra, (-1, in_channels, stride * stride * self.filters)
        )
        return fourier.convolve(inputs, spectra, self._fourier_plan)

    def _direct_convolution(self, inputs):
        plan = self._phase_plan
        padding = [plan["pad_before"], plan["pad_after"]]
        padded = ops.pad(inputs, [[0, 0], padding, padding, [0, 0]])
        return ops.conv(
            padded, self._phase_kernel(), strides=1, padding="valid"
        )

    def _overlap_add_convolution(self, inputs):
        """Multiply the inputs by every kernel tap, then add up the phases.

        One matrix product gives, for every input pixel, its products with
        all `k * k` taps of the kernel. Each output phase adds the
        products of its taps, shifted to where they land: a stride-1
        convolution with a constant kernel of zeros and ones. Only the
        matrix product has a weight gradient, and XLA and PyTorch compute
        the passes of the constant convolution quickly.
        """
        plan = self._phase_plan
        size, filters = self.kernel_size[0], self.filters
        if self._overlap_add_constant is None:
            # Built on first use: for many filters it is large, and most
            # layers never take this path.
            self._overlap_add_constant = _overlap_add_kernel(
                plan["indices"], size, filters
            )
        in_channels = inputs.shape[-1]
        # (in_channels, (kernel row, kernel column, filters)).
        kernel = ops.transpose(
            ops.cast(self.kernel, self.compute_dtype), (3, 0, 1, 2)
        )
        kernel = ops.reshape(kernel, (in_channels, size * size * filters))
        products = ops.matmul(inputs, kernel)
        padding = [plan["pad_before"], plan["pad_after"]]
        products = ops.pad(products, [[0, 0], padding, padding, [0, 0]])
        return ops.conv(
            products,
            ops.convert_to_tensor(
                self._overlap_add_constant, dtype=products.dtype
            ),
            strides=1,
            padding="valid",
        )

    def _overlap_add_call(self, inputs):
        return self._phase_call(inputs, self._overlap_add_convolution)

    def _sub_pixel_call(self, inputs):
        return self._phase_call(inputs, self._direct_convolution)

    def _phase_call(self, inputs, convolve):
        stride = self._phase_plan["stride"]
        outputs = convolve(inputs)
        if stride > 1:
            batch = ops.shape(outputs)[0]
            height, width = outputs.shape[1], outputs.shape[2]
            outputs = ops.reshape(
                outputs, (batch, height, width, stride, stride, self.filters)
            )
            outputs = ops.transpose(outputs, (0, 1, 3, 2, 4, 5))
            outputs = ops.reshape(
                outputs,
                (batch, height * stride, width * stride, self.filters),
            )
        return _bias_and_activation(self, outputs)


@keras.saving.register_keras_serializable(package="keras_dcgan")
class Conv2D(keras.layers.Conv2D):
    """`keras.layers.Conv2D`, computed through the DFT where that is faster.

    The layer keeps the weights, arguments and class name of
    `keras.layers.Conv2D`, for the same reason as `Conv2DTranspose`.
    A stride-`s` convolution equals a stride-1 convolution of the `s * s`
    input phases (space-to-depth) with kernels gathered from the original
    one. The layer uses that for `padding="same"`,
    `data_format="channels_last"`, no dilation, one group, a square
    kernel, equal strides on both axes, a square input whose side is a
    multiple of the stride and `kernel_size >= strides`. In float32, that
    convolution runs through the discrete Fourier transform
    (`keras_dcgan.fourier`) where `fourier.is_faster` expects it to be
    faster, as for the second layer of the MNIST discriminator on JAX and
    PyTorch. Every other case, including inputs of another side than the
    layer was built for, runs the parent's convolution.

    Input row `s * o + m - pad` (output row `o`, kernel row `m`, `pad` the
    rows TensorFlow's "same" padding adds before the input) lies in phase
    `a = (m - pad) mod s` at phase row `o + t` with
    `t = (m - pad) // s`.
    """

    def build(self, input_shape):
        super().build(input_shape)
        self._phase_plan = self._plan_phases(input_shape)
        self._fourier_plan = None
        plan = self._phase_plan
        if plan is not None:
            stride = plan["stride"]
            taps = plan["indices"].shape[1]
            offsets = [-(plan["first_tap"] + j) for j in range(taps)]
            self._fourier_plan = _fourier_plan(
                self,
                input_shape,
                input_shape[1] // stride,
                offsets,
                stride * stride * input_shape[-1],
                self.filters,
            )
        if self._fourier_plan is not None:
            self._spectra_transform = _spectra_transform(
                self._fourier_plan, plan["indices"], self.kernel_size[0]
            )

    def call(self, inputs):
        plan = self._phase_plan
        stride = plan["stride"] if plan is not None else 1
        if not _fits_plan(inputs, self._fourier_plan, stride):
            return super().call(inputs)
        side = inputs.shape[1] // stride
        channels = inputs.shape[-1]
        # Space-to-depth, with channels ordered (phase_h, phase_w, channel).
        phases = ops.reshape(inputs, (-1, side, stride, side, stride, channels))
        phases = ops.transpose(phases, (0, 1, 3, 2, 4, 5))
        phases = ops.reshape(
            phases, (-1, side, side, stride * stride * channels)
        )
        spectra = _phase_spectra(
            ops.cast(self.kernel, self.compute_dtype),
            self._spectra_transform,
            stride,
        )
        # (product and frequency, (phase_h, phase_w, channels), filters):
        # the input channels are already ordered as after space-to-depth.
        spectra = ops.reshape(
            spectra, (-1, stride * stride * channels, self.filters)
        )
        outputs = fourier.convolve(phases, spectra, self._fourier_plan)
        return _bias_and_activation(self, outputs)

    def _plan_phases(self, input_shape):
        """Return the gather indices of the phase kernels, or `None`."""
        side = input_shape[1]
        supported = (
            _same_square(self)
            and self.groups == 1
            and side is not None
            and side == input_shape[2]
            and self.kernel_size[0] >= self.strides[0]
            and side % self.strides[0] == 0
        )
        if not supported:
            return None
        stride, size = self.strides[0], self.kernel_size[0]
        outputs = side // stride
        pad = max((outputs - 1) * stride + size - side, 0) // 2
        first_tap = -pad // stride
        last_tap = (size - 1 - pad) // stride
        taps = last_tap - first_tap + 1
        # indices[a][j] is the kernel row read by phase a at tap
        # first_tap + j, or `size`, which points at an appended zero row.
        indices = np.full((stride, taps), size, dtype="int32")
        for phase in range(stride):
            for position in range(taps):
                index = stride * (first_tap + position) + phase + pad
                if 0 <= index < size:
                    indices[phase, position] = index
        return {"stride": stride, "indices": indices, "first_tap": first_tap}


@keras.saving.register_keras_serializable(package="keras_dcgan")
class BatchNormalization(keras.layers.BatchNormalization):
    """`keras.layers.BatchNormalization` with statistics over all replicas.

    Under `tf.distribute` with more than one replica this layer computes
    the batch mean and variance over the global batch, as
    `synchronized=True` does, so that data-parallel training normalizes
    exactly as one device does. Everywhere else it is
    `keras.layers.BatchNormalization`. The `synchronized` argument is kept
    in the config as given, because Keras rejects `synchronized=True` on
    other backends and a saved model must load on every backend. The class
    name is kept for the same reason as in `Conv2DTranspose`.
    """

    def call(self, inputs, training=None, mask=None):
        if not training or self.synchronized or num_replicas() == 1:
            return super().call(inputs, training=training, mask=mask)
        self.synchronized = True
        try:
            return super().call(inputs, training=training, mask=mask)
        finally:
            self.synchronized = False


@keras.saving.register_keras_serializable(package="keras_dcgan")
class Dropout(keras.layers.Dropout):
    """`keras.layers.Dropout` with one mask for the global batch.

    Under `tf.distribute` with more than one replica, Keras's dropout draws
    the same mask on every replica, because the seed state is mirrored.
    This layer draws the mask of the global batch on each replica and keeps
    the replica's rows, the mask that one device would apply to the same
    images.

    On PyTorch, Keras's dropout without a `seed` draws from torch's global
    generator, whose state neither the layer nor a checkpoint holds, and
    which a `DataLoader` also draws from. This layer draws the mask from
    its own seed state there too, so a resumed run repeats the masks of
    an uninterrupted one. Everywhere else it is `keras.layers.Dropout`.
    """

    def call(self, inputs, training=False):
        if training and self.rate > 0 and keras.backend.backend() == "torch":
            return self._torch_dropout(inputs)
        if (
            not training
            or self.rate == 0
            or self.noise_shape is not None
            or num_replicas() == 1
        ):
            return super().call(inputs, training=training)
        sample_shape = ops.shape(inputs)[1:]

        def draw_mask(rows):
            ones = ops.ones((rows, *sample_shape), dtype=inputs.dtype)
            return keras.random.dropout(
                ones, self.rate, seed=self.seed_generator
            )

        return inputs * replica_rows(draw_mask, ops.shape(inputs)[0])

    def _torch_dropout(self, inputs):
        """Drop with a mask drawn from the layer's own seed state.

        Keras's seeded PyTorch dropout draws the mask with
        `torch.bernoulli` from a filled probability tensor. On a 2-core
        x86_64 CPU that cost about 130 ms of the 1.0 s MNIST step. A
        uniform draw compared with the keep probability gives a mask of
        the same distribution in a fraction of that time.
        """
        noise_shape = self.noise_shape or tuple(inputs.shape)
        noise_shape = [
            inputs.shape[axis] if size is None else size
            for axis, size in enumerate(noise_shape)
        ]
        keep_probability = 1.0 - self.rate
        uniform = keras.random.uniform(
            noise_shape, dtype=inputs.dtype, seed=self.seed_generator
        )
        mask = ops.cast(uniform < keep_probability, inputs.dtype)
        return inputs * mask / keep_probability
