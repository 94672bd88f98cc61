"""Layers that compute what Keras's layers compute, faster or on replicas.

`Conv2DTranspose` computes a transposed convolution as a sub-pixel
convolution on JAX and PyTorch. `BatchNormalization` and `Dropout` give
the same results on several `tf.distribute` replicas as on one device (see
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

from keras_dcgan.distribution import num_replicas, replica_rows


@keras.saving.register_keras_serializable(package="keras_dcgan")
class Conv2DTranspose(keras.layers.Conv2DTranspose):
    """`keras.layers.Conv2DTranspose` computed as a sub-pixel convolution.

    The layer keeps the kernel variable of `keras.layers.Conv2DTranspose`,
    with the same shape `(kernel_h, kernel_w, filters, in_channels)`,
    name and meaning, and takes the same arguments. It also keeps the
    class name, because Keras's weight files key the layers of a model by
    their snake-cased class name, so weights and checkpoints load into a
    model built with either class. The rearranged computation runs on the
    JAX and PyTorch backends for `padding="same"`,
    `data_format="channels_last"`, no dilation and
    `kernel_size >= strides >= 2`. Every other case, and TensorFlow, runs
    the parent's transposed convolution. On PyTorch the gain is small:
    the MNIST step took about 0.87 s against 0.91 s with the parent's
    computation, on the same CPU.

    For output row `o = s * m + a` (stride `s`, phase `a` in `0..s-1`), the
    transposed convolution sums `x[m + t] * kernel[a + pad - s * t]` over
    the taps `t` whose kernel index lies in `0..k-1`, with
    `pad = (k - s) // 2` as in TensorFlow's "same" padding. Each phase is a
    stride-1 correlation with a small kernel gathered from the original
    one. The `s * s` phases are computed as the output channels of a single
    convolution and then interleaved by depth-to-space.
    """

    def build(self, input_shape):
        super().build(input_shape)
        self._phase_plan = self._plan_phases()

    def call(self, inputs):
        if self._phase_plan is None or keras.backend.backend() not in (
            "jax",
            "torch",
        ):
            return super().call(inputs)
        return self._sub_pixel_call(inputs)

    def _plan_phases(self):
        """Return the gather indices of the phase kernels, or `None`.

        Stride 1 keeps the parent's computation: measured on the same CPU,
        XLA ran the 7x7x256 to 7x7x128 layer of the MNIST generator about
        2x faster as a transposed convolution than as this rearrangement,
        and PyTorch ran both in the same time.
        """
        strides = tuple(self.strides)
        kernel_size = tuple(self.kernel_size)
        supported = (
            self.padding == "same"
            and self.data_format == "channels_last"
            and tuple(self.dilation_rate) == (1, 1)
            and self.output_padding is None
            and strides[0] == strides[1]
            and kernel_size[0] == kernel_size[1]
            and kernel_size[0] >= strides[0] >= 2
        )
        if not supported:
            return None
        stride, size = strides[0], kernel_size[0]
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

    def _sub_pixel_call(self, inputs):
        plan = self._phase_plan
        stride = plan["stride"]
        indices = plan["indices"]
        num_taps = indices.shape[1]
        kernel = ops.cast(self.kernel, self.compute_dtype)
        height_in = kernel.shape[0]
        filters, in_channels = kernel.shape[2], kernel.shape[3]

        # Append a zero row and column so that missing taps read zeros.
        kernel = ops.pad(kernel, [[0, 1], [0, 1], [0, 0], [0, 0]])
        # Gather to (phase_h, tap_h, phase_w, tap_w, filters, in_channels).
        rows = ops.take(kernel, indices.reshape(-1), axis=0)
        rows = ops.reshape(
            rows, (stride, num_taps, height_in + 1, filters, in_channels)
        )
        phases = ops.take(rows, indices.reshape(-1), axis=2)
        phases = ops.reshape(
            phases, (stride, num_taps, stride, num_taps, filters, in_channels)
        )
        # To a convolution kernel (tap_h, tap_w, in_channels, channels) with
        # channels ordered (phase_h, phase_w, filters) for depth-to-space.
        phases = ops.transpose(phases, (1, 3, 5, 0, 2, 4))
        phases = ops.reshape(
            phases, (num_taps, num_taps, in_channels, stride * stride * filters)
        )

        padding = [plan["pad_before"], plan["pad_after"]]
        padded = ops.pad(inputs, [[0, 0], padding, padding, [0, 0]])
        outputs = ops.conv(padded, phases, strides=1, padding="valid")

        batch = ops.shape(outputs)[0]
        height, width = outputs.shape[1], outputs.shape[2]
        outputs = ops.reshape(
            outputs, (batch, height, width, stride, stride, filters)
        )
        outputs = ops.transpose(outputs, (0, 1, 3, 2, 4, 5))
        outputs = ops.reshape(
            outputs, (batch, height * stride, width * stride, filters)
        )
        if self.use_bias:
            outputs = outputs + ops.cast(self.bias, self.compute_dtype)
        if self.activation is not None:
            outputs = self.activation(outputs)
        return outputs


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
