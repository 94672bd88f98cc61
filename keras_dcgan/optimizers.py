"""The two optimizers of a GAN exposed as one `model.optimizer`."""


class OptimizerPair:
    """The discriminator's and the generator's optimizers as one object.

    Keras trainers carry `model.optimizer.variables` through the training
    step and write them back after it; on JAX nothing else survives the
    jitted step. `DCGAN.compile` sets `model.optimizer` to this pair so that
    both optimizers' variables travel with the state. The attribute
    `optimizers` is the name that Keras's `LearningRateScheduler`,
    `ReduceLROnPlateau` and `TensorBoard` callbacks look for to handle
    several optimizers.

    Args:
        d_optimizer: Optimizer of the discriminator.
        g_optimizer: Optimizer of the generator.
        discriminator: The discriminator whose trainable variables
            `d_optimizer` updates.
        generator: The generator whose trainable variables `g_optimizer`
            updates.
    """

    def __init__(self, d_optimizer, g_optimizer, discriminator, generator):
        self.d_optimizer = d_optimizer
        self.g_optimizer = g_optimizer
        self._discriminator = discriminator
        self._generator = generator

    @property
    def optimizers(self):
        """Both optimizers, the discriminator's first."""
        return [self.d_optimizer, self.g_optimizer]

    @property
    def variables(self):
        """The discriminator optimizer's variables, then the generator's."""
        return self.d_optimizer.variables + self.g_optimizer.variables

    @property
    def built(self):
        return self.d_optimizer.built and self.g_optimizer.built

    @property
    def iterations(self):
        """Training steps taken, counted by the generator's optimizer."""
        return self.g_optimizer.iterations

    def build(self, variables=None):
        """Build each optimizer on its own network's trainable variables.

        `variables`, the model's whole list that Keras passes, is ignored
        because each optimizer must own only its network's variables.
        """
        del variables
        if not self.d_optimizer.built:
            self.d_optimizer.build(self._discriminator.trainable_variables)
        if not self.g_optimizer.built:
            self.g_optimizer.build(self._generator.trainable_variables)

    def split_variables(self, values):
        """Split values ordered like `variables` into (d values, g values)."""
        split = len(self.d_optimizer.variables)
        return list(values[:split]), list(values[split:])
