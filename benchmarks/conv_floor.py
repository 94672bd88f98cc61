"""Time the convolutions of one DCGAN step, one by one, on each backend.

    python benchmarks/conv_floor.py

A training step of the reference architecture is dominated by its
convolutions. This script times each convolution that one step runs,
forward and backward, as separate functions (compiled on TensorFlow and
JAX, eager on PyTorch) with the layers that keras_dcgan builds, and
multiplies each time by the number of times the step runs it. The sum is
a floor for the step on that backend: no training loop that computes the
same thing with the same kernels can be faster.
The table replaces the convolution section of `docs/benchmarks.md`.

The layers compute through the discrete Fourier transform where
`keras_dcgan.fourier.is_faster` says so. `--fourier never` and
`--fourier always` time them with that path never or always taken, and
write their tables to sections of their own, so the document shows what
the choice gains or loses for each convolution.

Per step, with batch B: the generator's three transposed convolutions run
forward once and backward once for the input and once for the kernel. Each
discriminator convolution runs forward twice (real and generated images)
and backward for the kernel twice. The second one runs backward for its
input three times (real and generated images for the discriminator's own
first layer, generated images for the generator's gradient), the first one
once (generated images for the generator's gradient).
"""

import argparse
import json
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

DOC_PATH = os.path.join(HERE, "..", "docs", "benchmarks.md")
SECTION = "conv-floor"
# (name, layer kind, input shape without batch, filters, stride,
#  forward count, input-gradient count, kernel-gradient count)
CONVOLUTIONS = [
    ("generator 7x7x256 -> 7x7x128", "transpose", (7, 7, 256), 128, 1, 1, 1, 1),
    ("generator 7x7x128 -> 14x14x64", "transpose", (7, 7, 128), 64, 2, 1, 1, 1),
    ("generator 14x14x64 -> 28x28x1", "transpose", (14, 14, 64), 1, 2, 1, 1, 1),
    ("discriminator 28x28x1 -> 14x14x64", "conv", (28, 28, 1), 64, 2, 2, 1, 2),
    (
        "discriminator 14x14x64 -> 7x7x128",
        "conv",
        (14, 14, 64),
        128,
        2,
        2,
        3,
        2,
    ),
]


def make_layer(kind, filters, stride):
    from keras_dcgan.layers import Conv2D, Conv2DTranspose

    layer_class = Conv2DTranspose if kind == "transpose" else Conv2D
    return layer_class(
        filters, 5, strides=stride, padding="same", use_bias=False
    )


def time_call(function, repeats):
    """Return the fastest of `repeats` timed calls, after one warm-up call.

    The fastest call is the floor the step can reach; slower ones measure
    other work of a shared machine.
    """
    function()
    seconds = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        seconds.append(time.perf_counter() - start)
    return min(seconds)


def jax_functions(layer, inputs, upstream):
    import jax

    def forward(kernel, images):
        return layer.stateless_call([kernel], [], images)[0]

    kernel = layer.kernel.value
    forward_jit = jax.jit(forward)
    input_grad = jax.jit(
        lambda k, x, g: jax.vjp(lambda x: forward(k, x), x)[1](g)[0]
    )
    kernel_grad = jax.jit(
        lambda k, x, g: jax.vjp(lambda k: forward(k, x), k)[1](g)[0]
    )
    return {
        "forward": lambda: forward_jit(kernel, inputs).block_until_ready(),
        "input": lambda: input_grad(
            kernel, inputs, upstream
        ).block_until_ready(),
        "kernel": lambda: kernel_grad(
            kernel, inputs, upstream
        ).block_until_ready(),
    }


def torch_functions(layer, inputs, upstream):
    import torch

    inputs = torch.as_tensor(inputs)
    upstream = torch.as_tensor(upstream)
    kernel = layer.kernel.value

    def forward():
        with torch.no_grad():
            return layer(inputs)

    def input_grad():
        images = inputs.detach().requires_grad_(True)
        return torch.autograd.grad(layer(images), images, upstream)[0]

    def kernel_grad():
        return torch.autograd.grad(layer(inputs), kernel, upstream)[0]

    return {"forward": forward, "input": input_grad, "kernel": kernel_grad}


def tensorflow_functions(layer, inputs, upstream):
    import tensorflow as tf

    inputs = tf.constant(inputs)
    upstream = tf.constant(upstream)

    @tf.function
    def forward(images):
        return layer(images)

    @tf.function
    def input_grad(images, grad):
        with tf.GradientTape() as tape:
            tape.watch(images)
            outputs = layer(images)
        return tape.gradient(outputs, images, output_gradients=grad)

    @tf.function
    def kernel_grad(images, grad):
        with tf.GradientTape() as tape:
            outputs = layer(images)
        return tape.gradient(outputs, layer.kernel, output_gradients=grad)

    return {
        "forward": lambda: forward(inputs).numpy(),
        "input": lambda: input_grad(inputs, upstream).numpy(),
        "kernel": lambda: kernel_grad(inputs, upstream).numpy(),
    }


def run_worker(args):
    import keras
    import numpy as np

    if args.fourier != "auto":
        from keras_dcgan import fourier

        always = args.fourier == "always"
        fourier.is_faster = lambda *unused: always
    rng = np.random.default_rng(0)
    rows = []
    for name, kind, shape, filters, stride, *counts in CONVOLUTIONS:
        layer = make_layer(kind, filters, stride)
        inputs = rng.normal(size=(args.batch_size, *shape)).astype("float32")
        outputs_shape = layer.compute_output_shape(inputs.shape)
        layer.build(inputs.shape)
        upstream = rng.normal(size=outputs_shape).astype("float32")
        if keras.backend.backend() == "jax":
            functions = jax_functions(layer, inputs, upstream)
        elif keras.backend.backend() == "torch":
            functions = torch_functions(layer, inputs, upstream)
        else:
            functions = tensorflow_functions(layer, inputs, upstream)
        seconds = {
            part: time_call(function, args.repeats)
            for part, function in functions.items()
        }
        if keras.backend.backend() == "torch":
            # Eager autograd runs the forward pass before each backward
            # pass, where the compiled backends prune it, so it is taken out.
            for part in ("input", "kernel"):
                seconds[part] = max(0.0, seconds[part] - seconds["forward"])
        rows.append(
            {
                "name": name,
                "seconds": seconds,
                "counts": dict(zip(("forward", "input", "kernel"), counts)),
            }
        )
    print("RESULT " + json.dumps(rows))


def run_all(args):
    from throughput import run_worker_process

    results = {}
    for backend in args.backends:
        command = [sys.executable, os.path.abspath(__file__), "--worker"]
        command += ["--batch-size", str(args.batch_size)]
        command += ["--repeats", str(args.repeats)]
        command += ["--fourier", args.fourier]
        print(f"Timing convolutions on {backend}...", flush=True)
        results[backend] = run_worker_process(command, backend, "the run")
    return results


def step_milliseconds(rows):
    return sum(
        1000 * row["seconds"][part] * row["counts"][part]
        for row in rows
        for part in ("forward", "input", "kernel")
    )


def command_line(args):
    command = "python benchmarks/conv_floor.py"
    if args.fourier != "auto":
        command += f" --fourier {args.fourier}"
    return command


def section(args):
    """Return the section of the document that the table replaces."""
    if args.fourier == "auto":
        return SECTION
    return f"{SECTION}-{args.fourier}"


def format_table(args, results):
    from throughput import machine_description, package_versions

    backends = list(results)
    header = "| convolution | pass | runs per step | "
    header += " | ".join(f"{backend} ms" for backend in backends) + " |"
    lines = [
        f"Machine: {machine_description()}. Packages: {package_versions()}.",
        f"Batch {args.batch_size}, float32, fastest of {args.repeats} calls. "
        f"Command: `{command_line(args)}`.",
        "",
        header,
        "|---|---|---|" + "---|" * len(backends),
    ]
    first = results[backends[0]]
    for index, row in enumerate(first):
        for part in ("forward", "input", "kernel"):
            cells = [row["name"], part, str(row["counts"][part])]
            cells += [
                f"{1000 * results[b][index]['seconds'][part]:.1f}"
                for b in backends
            ]
            lines.append("| " + " | ".join(cells) + " |")
    totals = [f"**{step_milliseconds(results[b]):.0f}**" for b in backends]
    lines.append("| **sum per step** | | | " + " | ".join(totals) + " |")
    return "\n".join(lines)


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--batch-size",
        type=int,
        default=256,
        help="images per training step (default: 256)",
    )
    parser.add_argument(
        "--repeats",
        type=int,
        default=10,
        help="timed calls per pass after one warm-up call; the fastest "
        "counts (default: 10)",
    )
    parser.add_argument(
        "--backends",
        default="tensorflow,jax,torch",
        help="comma-separated backends to run (default: tensorflow,jax,torch)",
    )
    parser.add_argument(
        "--fourier",
        choices=("auto", "always", "never"),
        default="auto",
        help="when the layers compute through the discrete Fourier "
        "transform: as keras_dcgan.fourier.is_faster decides, for every "
        "layer it can, or never (default: auto)",
    )
    parser.add_argument(
        "--doc",
        default=DOC_PATH,
        help="Markdown file whose convolution section is replaced "
        "(default: docs/benchmarks.md)",
    )
    parser.add_argument(
        "--worker",
        action="store_true",
        help="internal: time the backend of KERAS_BACKEND in this process",
    )
    args = parser.parse_args(argv)
    args.backends = args.backends.split(",")
    return args


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    if args.worker:
        run_worker(args)
        return
    results = run_all(args)
    table = format_table(args, results)
    from throughput import replace_section

    replace_section(args.doc, section(args), table)
    print(table)


if __name__ == "__main__":
    main()
