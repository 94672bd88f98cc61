"""Replica-aware pieces for data-parallel training with `tf.distribute`.

On JAX, `keras.distribution.DataParallel` compiles one program over the
global batch, so random numbers, batch statistics and loss means already
cover every device and nothing here changes the result. On TensorFlow,
`tf.distribute.MirroredStrategy` runs the step once per replica on that
replica's share of the batch, and three things then differ from a single
device:

- Keras's random ops draw from a seed state that is mirrored, so every
  replica draws the same numbers: the same noise vectors and the same
  dropout masks on each share of the batch. `replica_rows` draws the
  numbers of the global batch on every replica and keeps the replica's
  own rows, which are the rows a single device would give those images.
- `keras.layers.BatchNormalization` normalizes by each replica's own
  batch statistics unless `synchronized=True`.
- `keras.losses.Loss` divides a mean by the number of replicas, so that
  the gradients that the optimizers add up over replicas are those of the
  global mean. `logged_loss` gives the value that the loss trackers, which
  average over replicas, must receive to report the global loss.

A step that runs outside `tf.distribute`, or with one replica, takes the
same path as before and draws the same numbers.
"""

import warnings

import keras


def replica_position():
    """Return `(replica_id, num_replicas)` of the running replica.

    `replica_id` is a scalar tensor under `tf.distribute` with more than
    one replica and `0` otherwise; `num_replicas` is a Python integer.
    Outside a TensorFlow replica context, and on other backends, this is
    `(0, 1)`.

    Example:

    >>> replica_position()
    (0, 1)
    """
    if keras.backend.backend() != "tensorflow":
        return 0, 1
    import tensorflow as tf

    context = tf.distribute.get_replica_context()
    if context is None or context.num_replicas_in_sync == 1:
        return 0, 1
    return context.replica_id_in_sync_group, context.num_replicas_in_sync


def replica_rows(draw, rows):
    """Return this replica's `rows` rows of `draw(rows * num_replicas)`.

    `draw(n)` must return a tensor with `n` rows drawn from a seed state
    that every replica shares. With one replica this is `draw(rows)`.
    """
    replica_id, num_replicas = replica_position()
    if num_replicas == 1:
        return draw(rows)
    values = draw(rows * num_replicas)
    return values[replica_id * rows : (replica_id + 1) * rows]


def num_replicas():
    """Return the number of replicas of the running replica context."""
    return replica_position()[1]


def check_replica_loss(loss_fn):
    """Raise if `loss_fn` cannot give global-mean gradients on replicas.

    Keras's `Loss` objects scale themselves for `tf.distribute`. A plain
    function gives each replica the gradient of its own mean, so the
    optimizers, which add the replicas' gradients, would get a multiple of
    the global-mean gradient.
    """
    if num_replicas() > 1 and not isinstance(loss_fn, keras.losses.Loss):
        raise ValueError(
            "Invalid `loss_fn` for training on "
            f"{num_replicas()} replicas: expected a `keras.losses.Loss` "
            "instance, which Keras scales for tf.distribute. Received: "
            f"loss_fn={loss_fn!r}. Wrap the function with "
            "`keras.losses.LossFunctionWrapper(fn)` or pass a Keras loss "
            "such as `keras.losses.BinaryCrossentropy(from_logits=True)`."
        )


def per_replica_logs(logs):
    """Return a TensorFlow step's logs in a shape Keras can reduce.

    Under `tf.distribute.MultiWorkerMirroredStrategy`, Keras 3.15 reduces
    the step's logs with `strategy.reduce("MEAN", value, axis=0)`, which
    fails on scalars with "Invalid reduction dimension 0 for input with 0
    dimensions". So there each log becomes a vector of one element. The
    loss trackers already aggregate over replicas, so the reduction leaves
    the values unchanged, and the epoch logs that `History` records come
    from the trackers as scalars.
    """
    import tensorflow as tf

    strategy = tf.distribute.get_strategy()
    if not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        return logs
    return {name: tf.reshape(value, (1,)) for name, value in logs.items()}


def logged_loss(value):
    """Return the value a loss tracker gets for a loss from one replica.

    The trackers average their inputs over replicas. Keras divides a mean
    loss by the number of replicas, and a summed loss is one replica's
    part of the global sum. In both cases the replica's value times the
    number of replicas averages to the global loss.
    """
    count = num_replicas()
    return value if count == 1 else value * count


def data_parallel_scope(multi_worker=False, cpu_devices=None):
    """Set up data-parallel training; return the scope to build the model in.

    Build and compile the model inside the returned context manager, then
    call `fit` as usual:

        with data_parallel_scope():
            model = DCGAN(build_generator(), build_discriminator())
            model.compile(d_optimizer=..., g_optimizer=...)
        model.fit(images, batch_size=256)

    `batch_size` is the global batch, split evenly over the devices.

    On JAX this sets `keras.distribution.DataParallel` over every device as
    the global distribution, after `keras.distribution.initialize()` when
    `multi_worker` is true; the returned context does nothing. With
    several JAX processes, each one passes `fit` its own share of the data
    and a batch size of the global batch divided by the number of
    processes. On
    TensorFlow it returns the scope of `tf.distribute.MirroredStrategy`
    over the local GPUs (or the CPU when there is none), or of
    `tf.distribute.MultiWorkerMirroredStrategy` when `multi_worker` is
    true, which reads the cluster from `TF_CONFIG`.

    Args:
        multi_worker: Train on several hosts. Each host runs the same
            program; see docs/multi-device.md for the environment each
            backend reads.
        cpu_devices: Split the CPU into this many virtual devices, to try
            data parallelism on a machine without accelerators. Must be
            called before the backend has started (before any tensor is
            created). Defaults to `None`, the real devices.

    Returns:
        A context manager.

    Raises:
        ValueError: if `cpu_devices` is not a positive integer.
        RuntimeError: if `cpu_devices` is given after the backend started.
    """
    import contextlib

    if cpu_devices is not None and (
        isinstance(cpu_devices, bool)
        or not isinstance(cpu_devices, int)
        or cpu_devices < 1
    ):
        raise ValueError(
            "Invalid `cpu_devices`: expected a positive integer or None. "
            f"Received: cpu_devices={cpu_devices!r}."
        )
    if keras.backend.backend() == "jax":
        import jax

        if cpu_devices is not None:
            try:
                jax.config.update("jax_num_cpu_devices", cpu_devices)
            except RuntimeError as error:
                raise RuntimeError(
                    f"Cannot split the CPU into {cpu_devices} devices: JAX "
                    "has already started. Call data_parallel_scope() before "
                    "creating any model or tensor."
                ) from error
            jax.config.update("jax_platforms", "cpu")
        if multi_worker:
            keras.distribution.initialize()
        devices = keras.distribution.list_devices()
        # With several processes each one passes its own share of the data
        # and of every global batch, so Keras must not shard it again.
        keras.distribution.set_distribution(
            keras.distribution.DataParallel(
                devices=devices, auto_shard_dataset=not multi_worker
            )
        )
        return contextlib.nullcontext()
    if keras.backend.backend() != "tensorflow":
        raise ValueError(
            "data_parallel_scope() supports the TensorFlow and JAX backends: "
            "Keras 3.15 has no data-parallel fit() on PyTorch (its "
            "keras.distribution API runs on JAX only). Train on one device, "
            "or set KERAS_BACKEND to 'jax' or 'tensorflow' for several. "
            f"Received: KERAS_BACKEND={keras.backend.backend()!r}."
        )
    import tensorflow as tf

    names = None
    if cpu_devices is not None:
        (cpu,) = tf.config.list_physical_devices("CPU")
        try:
            tf.config.set_logical_device_configuration(
                cpu, [tf.config.LogicalDeviceConfiguration()] * cpu_devices
            )
        except RuntimeError as error:
            raise RuntimeError(
                f"Cannot split the CPU into {cpu_devices} devices: "
                "TensorFlow has already started. Call data_parallel_scope() "
                "before creating any model or tensor."
            ) from error
        names = [f"/cpu:{index}" for index in range(cpu_devices)]
    if multi_worker:
        strategy = tf.distribute.MultiWorkerMirroredStrategy()
    else:
        strategy = tf.distribute.MirroredStrategy(names)
    return strategy.scope()


def is_chief(model=None):
    """Return whether this process writes files in multi-host training.

    Process 0 on JAX, the chief worker (or worker 0 without a chief) of
    the `tf.distribute.MultiWorkerMirroredStrategy` that `model` trains
    under, and the only process of every single-host run.
    """
    if keras.backend.backend() == "jax":
        import jax

        return jax.process_index() == 0
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        strategy = (
            model.distribute_strategy
            if model is not None
            else tf.distribute.get_strategy()
        )
        resolver = getattr(strategy, "cluster_resolver", None)
        if resolver is None or not resolver.task_type:
            return True
        return resolver.task_type == "chief" or (
            resolver.task_type == "worker" and resolver.task_id == 0
        )
    return True


def warn_replica_layers(model):
    """Warn about Keras layers that differ per replica under tf.distribute.

    `keras.layers.BatchNormalization` without `synchronized=True`
    normalizes each replica by its own statistics, and
    `keras.layers.Dropout` draws the same mask on every replica. The
    networks that `build_generator` and `build_discriminator` return use
    the replica-aware layers of `keras_dcgan.layers` instead.
    """
    if keras.backend.backend() != "tensorflow":
        return
    count = model.distribute_strategy.num_replicas_in_sync
    if count == 1:
        return
    for layer in _all_layers(model):
        kind = type(layer)
        if kind is keras.layers.BatchNormalization and not layer.synchronized:
            warnings.warn(
                f"Layer {layer.name!r} is a keras.layers.BatchNormalization, "
                f"which normalizes each of the {count} replicas by its own "
                "batch statistics, so training differs from one device. "
                "Use keras_dcgan.layers.BatchNormalization, or "
                "synchronized=True, for statistics of the global batch.",
                stacklevel=3,
            )
        elif kind is keras.layers.Dropout and layer.rate > 0:
            warnings.warn(
                f"Layer {layer.name!r} is a keras.layers.Dropout, which "
                f"draws the same mask on each of the {count} replicas. Use "
                "keras_dcgan.layers.Dropout for the masks one device draws.",
                stacklevel=3,
            )


def _all_layers(layer):
    for child in getattr(layer, "layers", []):
        yield child
        yield from _all_layers(child)


def device_count(model):
    """Return the number of devices that a training step of `model` uses.

    The devices of the global `keras.distribution` on JAX, the replicas of
    the `tf.distribute` strategy `model` was built under on TensorFlow,
    and 1 otherwise.
    """
    if keras.backend.backend() == "jax":
        current = keras.distribution.distribution()
        return 1 if current is None else int(current.device_mesh.devices.size)
    if keras.backend.backend() == "tensorflow":
        return model.distribute_strategy.num_replicas_in_sync
    return 1


def fit_data_for_devices(model, x, batch_size):
    """Check that batches of `x` split evenly over the devices of `model`.

    Each device trains on an equal share of every batch, and JAX cannot
    split a batch whose size is not a multiple of the number of devices.
    So `batch_size` must be such a multiple, and an array whose last,
    partial batch does not split evenly loses its last few images (fewer
    than the number of devices), with a warning. Other data is returned
    unchanged. On JAX with several processes, `batch_size` and `x` are
    this process's share, split over its own devices.

    Returns:
        `x`, or its first images when some had to be dropped.

    Raises:
        ValueError: if `batch_size` is not a multiple of the number of
            devices.
    """
    count = device_count(model)
    if keras.backend.backend() == "jax":
        import jax

        count //= jax.process_count()
    if count <= 1:
        return x
    if batch_size is not None and batch_size % count:
        larger = (batch_size // count + 1) * count
        raise ValueError(
            f"Invalid `batch_size` for data-parallel training on {count} "
            f"devices: expected a multiple of {count}, such as {larger}, so "
            "that every device gets an equal share of each batch. Received: "
            f"batch_size={batch_size}."
        )
    if not hasattr(x, "shape") or not hasattr(x, "__getitem__"):
        return x
    last_batch = len(x) % (batch_size or 32)
    dropped = last_batch % count
    if dropped:
        warnings.warn(
            f"Dropped the last {dropped} of {len(x)} images, so that the "
            f"last batch of {last_batch} splits evenly over {count} "
            "devices. Pass a number of images that is a multiple of the "
            "number of devices to keep them all.",
            stacklevel=3,
        )
        x = x[: len(x) - dropped]
    return x
