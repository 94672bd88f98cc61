"""Training throughput of DCGAN.fit against the hand-written TensorFlow loop.

    python benchmarks/throughput.py --data path/to/mnist.npz

runs, each in its own process: the reference loop of `reference_loop.py`
on TensorFlow, `DCGAN.fit` on TensorFlow, JAX and PyTorch, and, for the
overhead of `fit`, the DCGAN step (compiled on TensorFlow and JAX, eager on
PyTorch) called in a bare Python loop on each backend. All use the
reference architecture, batch 256 and MNIST training images (random
images in [-1, 1] without `--data`). The result table, with a description
of the machine, replaces the throughput section of `docs/benchmarks.md`.

Time per step is the median over measured epochs of epoch time divided by
steps per epoch, after one warm-up epoch that includes compilation. Peak
memory is the process's maximum resident set size. The growth is the
change of resident memory from the end of the first measured epoch to the
end of the last. Page faults per step are the process's minor page faults
over the measured epochs, divided by their steps.

Every run first calls `keras_dcgan.retain_freed_memory()`, as
`keras-dcgan train` does, so that freed memory is reused instead of
mapped afresh every step. `--malloc default` leaves the C library's
settings as they are and writes its own table.
"""

import argparse
import contextlib
import json
import os
import platform
import re
import resource
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
DOC_PATH = os.path.join(HERE, "..", "docs", "benchmarks.md")
RUNS = [
    ("reference loop", "tensorflow", "reference"),
    ("DCGAN.fit", "tensorflow", "fit"),
    ("DCGAN.fit", "jax", "fit"),
    ("DCGAN.fit", "torch", "fit"),
    ("bare compiled step", "tensorflow", "bare"),
    ("bare compiled step", "jax", "bare"),
    ("bare eager step", "torch", "bare"),
]


def resident_megabytes():
    with open("/proc/self/statm") as file:
        pages = int(file.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def memory_sample():
    """Return the resident MiB and the minor page faults so far."""
    faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    return resident_megabytes(), faults


def peak_megabytes():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def load_images(data, count):
    import numpy as np

    if data:
        from keras_dcgan import load_mnist

        return load_mnist(data)[:count]
    rng = np.random.default_rng(0)
    return rng.uniform(-1, 1, (count, 28, 28, 1)).astype("float32")


def measure_reference(args, images):
    import tensorflow as tf

    sys.path.insert(0, HERE)
    from reference_loop import ReferenceTrainer

    if args.precision:
        import keras

        keras.mixed_precision.set_global_policy(args.precision)
    trainer = ReferenceTrainer()
    batches = iter(trainer.dataset(images, args.batch_size))
    epoch_seconds, samples = [], []
    for _ in range(args.epochs):
        start = time.perf_counter()
        for _ in range(args.steps_per_epoch):
            losses = trainer.train_step(next(batches))
        tf.nest.map_structure(lambda loss: loss.numpy(), losses)
        epoch_seconds.append(time.perf_counter() - start)
        samples.append(memory_sample())
    return epoch_seconds, samples


def build_model(args):
    import keras

    from keras_dcgan import (
        DCGAN,
        build_discriminator,
        build_generator,
        data_parallel_scope,
        distribution,
    )

    scope = contextlib.nullcontext()
    if getattr(args, "data_parallel", False):
        scope = data_parallel_scope(cpu_devices=args.cpu_devices)
    if args.precision:
        keras.mixed_precision.set_global_policy(args.precision)
    keras.utils.set_random_seed(0)
    with scope:
        model = DCGAN(build_generator(), build_discriminator(), seed=0)
        model.compile(
            d_optimizer=keras.optimizers.Adam(1e-4),
            g_optimizer=keras.optimizers.Adam(1e-4),
        )
    args.devices = distribution.device_count(model)
    return model


def measure_fit(args, images):
    import keras

    model = build_model(args)
    epoch_seconds, samples = [], []

    class EpochTimer(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.start = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            # Keras syncs the JAX state before on_epoch_end, so every step
            # of the epoch has finished here.
            epoch_seconds.append(time.perf_counter() - self.start)
            samples.append(memory_sample())

    model.fit(
        images,
        batch_size=args.batch_size,
        epochs=args.epochs,
        steps_per_epoch=args.steps_per_epoch,
        verbose=0,
        callbacks=[EpochTimer()],
    )
    return epoch_seconds, samples


def measure_bare(args, images):
    """Time the compiled DCGAN step called directly, without `fit`."""
    import keras
    import numpy as np

    model = build_model(args)
    num_batches = len(images) // args.batch_size
    batches = [
        images[i * args.batch_size : (i + 1) * args.batch_size]
        for i in range(num_batches)
    ]
    epoch_seconds, samples = [], []
    if keras.backend.backend() == "jax":
        import jax

        step = jax.jit(model.train_step, donate_argnums=0)
        state = (
            [v.value for v in model.trainable_variables],
            [v.value for v in model.non_trainable_variables],
            [v.value for v in model.optimizer.variables],
            [v.value for v in model.metrics_variables],
        )
        index = 0
        for _ in range(args.epochs):
            start = time.perf_counter()
            for _ in range(args.steps_per_epoch):
                logs, state = step(state, (batches[index % num_batches],))
                index += 1
            jax.block_until_ready(state)
            epoch_seconds.append(time.perf_counter() - start)
            samples.append(memory_sample())
        return epoch_seconds, samples
    if keras.backend.backend() == "torch":
        model.make_train_function()
        tensors = [keras.ops.convert_to_tensor(batch) for batch in batches]
        index = 0
        for _ in range(args.epochs):
            start = time.perf_counter()
            for _ in range(args.steps_per_epoch):
                # Keras's PyTorch loop passes a one-element list of batches.
                logs = model.train_function([(tensors[index % num_batches],)])
                index += 1
            # Reading a value waits for any queued GPU work.
            float(logs["d_loss"])
            epoch_seconds.append(time.perf_counter() - start)
            samples.append(memory_sample())
        return epoch_seconds, samples

    import tensorflow as tf

    model.make_train_function()
    dataset = tf.data.Dataset.from_tensor_slices(np.stack(batches)).repeat()
    iterator = iter(dataset.map(lambda batch: (batch,)))
    for _ in range(args.epochs):
        start = time.perf_counter()
        for _ in range(args.steps_per_epoch):
            logs = model.train_function(iterator)
        tf.nest.map_structure(lambda value: value.numpy(), logs)
        epoch_seconds.append(time.perf_counter() - start)
        samples.append(memory_sample())
    return epoch_seconds, samples


def run_worker(args):
    if args.malloc == "retain":
        # First, before any backend starts its threads.
        from keras_dcgan import retain_freed_memory

        retain_freed_memory()
    images = load_images(args.data, args.steps_per_epoch * args.batch_size * 4)
    measure = {
        "reference": measure_reference,
        "fit": measure_fit,
        "bare": measure_bare,
    }[args.worker]
    epoch_seconds, samples = measure(args, images)
    measured = epoch_seconds[1:]
    step_seconds = statistics.median(measured) / args.steps_per_epoch
    measured_steps = len(measured) * args.steps_per_epoch
    result = {
        "step_seconds": step_seconds,
        "images_per_second": args.batch_size / step_seconds,
        "peak_megabytes": peak_megabytes(),
        "growth_megabytes": samples[-1][0] - samples[1][0],
        "faults_per_step": (samples[-1][1] - samples[0][1]) / measured_steps,
        "measured_epochs": len(measured),
        "devices": getattr(args, "devices", 1),
    }
    print("RESULT " + json.dumps(result))


def machine_description():
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as file:
            match = re.search(r"model name\s*:\s*(.+)", file.read())
        if match:
            cpu = match.group(1).strip()
    except OSError:
        pass
    memory_gib = (
        os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    )
    return f"{cpu}, {os.cpu_count()} cores, {memory_gib:.0f} GiB"


def package_versions():
    code = (
        "import importlib.metadata as m, importlib.util as u;"
        "print(', '.join(f'{p} {m.version(p)}' for p in "
        "('keras', 'tensorflow', 'jax', 'torch') if u.find_spec(p)))"
    )
    completed = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True
    )
    return completed.stdout.strip()


def planned_runs(args):
    """Return (label, backend, worker, policy) for each run, in order.

    The float32 reference loop always runs, since every ratio is taken
    against it. With `--precision` the reference loop also runs under that
    policy, so the table separates the gain of the policy from the gain of
    `DCGAN.fit`.
    """
    runs = []
    for label, backend, worker in RUNS:
        if backend not in args.backends and worker != "reference":
            continue
        if worker == "bare" and args.data_parallel:
            continue
        if worker == "reference":
            runs.append((label, backend, worker, None))
            if args.precision is None:
                continue
        runs.append((label, backend, worker, args.precision))
    return runs


def run_once(args, label, backend, worker, policy):
    command = [sys.executable, os.path.abspath(__file__), "--worker", worker]
    command += ["--steps-per-epoch", str(args.steps_per_epoch)]
    command += ["--epochs", str(args.epochs)]
    command += ["--batch-size", str(args.batch_size)]
    if args.data:
        command += ["--data", args.data]
    if policy:
        command += ["--precision", policy]
    command += ["--malloc", args.malloc]
    if args.data_parallel and worker == "fit":
        command += ["--data-parallel"]
        if args.cpu_devices:
            command += ["--cpu-devices", str(args.cpu_devices)]
    print(f"Running {label} on {backend}...", flush=True)
    result = run_worker_process(command, backend, f"the {label} run")
    print(json.dumps(result), flush=True)
    return result


def run_worker_process(command, backend, description):
    """Run a worker command on `backend`; return its `RESULT` JSON line.

    Exits with the end of the worker's stderr if it fails or prints no
    result.
    """
    completed = subprocess.run(
        command,
        env=dict(os.environ, KERAS_BACKEND=backend),
        capture_output=True,
        text=True,
    )
    lines = [
        line
        for line in completed.stdout.splitlines()
        if line.startswith("RESULT ")
    ]
    if completed.returncode != 0 or not lines:
        sys.exit(
            f"error: {description} on {backend} failed:\n"
            f"{completed.stderr[-3000:]}"
        )
    return json.loads(lines[-1][len("RESULT ") :])


def run_all(args):
    """Run every planned run `--repeats` times, interleaved; keep medians.

    Interleaving spreads slow phases of a shared machine over all runs
    instead of over one of them.
    """
    runs = planned_runs(args)
    measured = {run: [] for run in runs}
    for _ in range(args.repeats):
        for run in runs:
            measured[run].append(run_once(args, *run))
    results = []
    for (label, backend, worker, policy), repeats in measured.items():
        step_seconds = statistics.median(r["step_seconds"] for r in repeats)
        results.append(
            {
                "label": label,
                "backend": backend,
                "worker": worker,
                "policy": policy or "float32",
                "step_seconds": step_seconds,
                "images_per_second": args.batch_size / step_seconds,
                "peak_megabytes": max(r["peak_megabytes"] for r in repeats),
                "growth_megabytes": statistics.median(
                    r["growth_megabytes"] for r in repeats
                ),
                "faults_per_step": statistics.median(
                    r["faults_per_step"] for r in repeats
                ),
                "devices": repeats[0].get("devices", 1),
            }
        )
    return results


def format_table(args, results):
    reference = next(
        (
            r
            for r in results
            if r["worker"] == "reference" and r["policy"] == "float32"
        ),
        None,
    )
    bare = {r["backend"]: r for r in results if r["worker"] == "bare"}
    lines = [
        f"Machine: {machine_description()}. Packages: {package_versions()}.",
        f"Batch {args.batch_size}, {args.steps_per_epoch} steps per epoch, "
        f"{args.epochs - 1} measured epochs after 1 warm-up epoch, "
        f"median of {args.repeats} interleaved repeats, "
        "ratios against the float32 reference loop, data "
        f"{'MNIST' if args.data else 'random images'}. Command: "
        f"`python benchmarks/throughput.py {' '.join(shown_arguments(args))}`.",
        "",
        "| run | backend | policy | devices | s/step | images/s "
        "| vs reference | fit overhead | peak MiB | growth MiB "
        "| page faults/step |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for result in results:
        ratio = "-"
        if reference is not None:
            speedup = (
                result["images_per_second"] / reference["images_per_second"]
            )
            ratio = f"{speedup:.2f}x"
        overhead = "-"
        if result["worker"] == "fit" and result["backend"] in bare:
            bare_step = bare[result["backend"]]["step_seconds"]
            overhead = f"{100 * (result['step_seconds'] / bare_step - 1):+.1f}%"
        cells = [
            result["label"],
            result["backend"],
            result["policy"],
            str(result["devices"]),
            f"{result['step_seconds']:.3f}",
            f"{result['images_per_second']:.1f}",
            ratio,
            overhead,
            f"{result['peak_megabytes']:.0f}",
            f"{result['growth_megabytes']:+.1f}",
            f"{result['faults_per_step']:.0f}",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def shown_arguments(args):
    """Return the command-line arguments, with only the data file's name."""
    arguments = list(args.argv)
    if args.data and args.data in arguments:
        arguments[arguments.index(args.data)] = os.path.basename(args.data)
    return arguments


def section_name(args):
    """Return the marker name of the table for these arguments."""
    name = "throughput"
    if args.precision:
        name += f"-{args.precision}"
    if args.data_parallel:
        name += "-data-parallel"
    if args.malloc == "default":
        name += "-default-malloc"
    return name


def replace_section(path, name, body):
    """Put `body` between the `name` markers of the Markdown file `path`.

    A file without the markers gets them, with `body`, appended under a
    heading named after the section.
    """
    begin, end = f"<!-- {name}:begin -->", f"<!-- {name}:end -->"
    block = f"{begin}\n\n{body}\n\n{end}"
    text = open(path).read() if os.path.exists(path) else "# Benchmarks\n"
    if begin in text and end in text:
        before = text[: text.index(begin)]
        after = text[text.index(end) + len(end) :]
        text = before + block + after
    else:
        text = text.rstrip("\n") + f"\n\n## {name}\n\n" + block + "\n"
    with open(path, "w") as file:
        file.write(text)


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--data",
        default=None,
        help="path of mnist.npz (default: random images in [-1, 1])",
    )
    parser.add_argument(
        "--steps-per-epoch",
        type=int,
        default=10,
        help="training steps timed per epoch (default: 10)",
    )

    parser.add_argument(
        "--epochs",
        type=int,
        default=4,
        help="epochs including the warm-up one; at least 3 (default: 4)",
    )

    parser.add_argument(
        "--batch-size",
        type=int,
        default=256,
        help="images per training step (default: 256)",
    )
    parser.add_argument(
        "--precision",
        default=None,
        choices=("mixed_float16", "mixed_bfloat16"),
        help="Keras precision policy for DCGAN runs (default: float32)",
    )
    parser.add_argument(
        "--data-parallel",
        action="store_true",
        help="train the DCGAN.fit runs data-parallel over every local "
        "device with keras_dcgan.data_parallel_scope(); the bare-step runs "
        "are left out (default: one device)",
    )
    parser.add_argument(
        "--cpu-devices",
        type=int,
        default=None,
        help="with --data-parallel, split the CPU into this many virtual "
        "devices (default: the real devices)",
    )
    parser.add_argument(
        "--malloc",
        choices=("retain", "default"),
        default="retain",
        help="retain: every run, the reference loop's too, first calls "
        "keras_dcgan.retain_freed_memory(), as keras-dcgan train does; "
        "default: the C library's own settings (default: retain)",
    )
    parser.add_argument(
        "--repeats",
        type=int,
        default=1,
        help="times to run the whole set of runs, interleaved; the table "
        "shows medians (default: 1)",
    )
    parser.add_argument(
        "--backends",
        default="tensorflow,jax,torch",
        help="comma-separated backends to run (default: tensorflow,jax,torch)",
    )
    parser.add_argument(
        "--doc",
        default=DOC_PATH,
        help="Markdown file whose throughput section is replaced "
        "(default: docs/benchmarks.md)",
    )
    parser.add_argument(
        "--worker",
        choices=("reference", "fit", "bare"),
        help="internal: run one measurement in this process",
    )
    args = parser.parse_args(argv)

    if args.repeats < 1:
        parser.error("--repeats must be at least 1")
    if args.cpu_devices is not None and not args.data_parallel:
        parser.error("--cpu-devices needs --data-parallel")
    if args.epochs < 3:
        parser.error("--epochs must be at least 3: one warm-up, two measured")
    args.argv = argv
    args.backends = args.backends.split(",")
    return args


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    if args.worker:
        run_worker(args)
        return
    results = run_all(args)
    table = format_table(args, results)
    replace_section(args.doc, section_name(args), table)
    print(table)


if __name__ == "__main__":
    main()
