"""The same numbers on TensorFlow, JAX and PyTorch.

Each backend runs in its own process, since Keras fixes its backend at
import time.
"""

import importlib.util
import os
import subprocess
import sys

import numpy as np
import pytest

TESTS = os.path.dirname(__file__)
BACKENDS = ("tensorflow", "jax", "torch")
MISSING = [name for name in BACKENDS if importlib.util.find_spec(name) is None]
requires_all_backends = pytest.mark.skipif(
    bool(MISSING), reason=f"needs every backend, missing: {MISSING}"
)
pytestmark = pytest.mark.cross_backend

# Tolerances: the backends run float32 convolutions with different
# summation orders, and Adam's first step divides gradients by their own
# magnitude, which amplifies rounding for gradients near zero.
LOSS_RTOL = 1e-5
WEIGHT_ATOL = 2e-6
IMAGE_ATOL = 1e-5


def run_script(backend, *args):
    completed = subprocess.run(
        [sys.executable, *args],
        env=dict(os.environ, KERAS_BACKEND=backend),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]


def read(path):
    with np.load(path) as results:
        return dict(results)


@pytest.fixture(scope="module")
def one_step_results(tmp_path_factory):
    folder = tmp_path_factory.mktemp("one_step")
    results = {}
    for backend in BACKENDS:
        output = folder / f"{backend}.npz"
        run_script(backend, os.path.join(TESTS, "one_step.py"), str(output))
        results[backend] = read(output)
    return results


@requires_all_backends
@pytest.mark.parametrize("backend", ["jax", "torch"])
def test_one_step_same_as_tensorflow(one_step_results, backend):
    tensorflow, other = (
        one_step_results["tensorflow"],
        one_step_results[backend],
    )
    assert sorted(tensorflow) == sorted(other)
    # Adam's first step moves weights by up to its learning rate, 1e-4.
    assert other["largest_change"] > 50 * WEIGHT_ATOL
    for name in ("d_loss", "g_loss"):
        np.testing.assert_allclose(
            other[name], tensorflow[name], rtol=LOSS_RTOL, err_msg=name
        )
    weight_names = [name for name in tensorflow if name.startswith("weight_")]
    assert len(weight_names) > 10
    for name in weight_names:
        np.testing.assert_allclose(
            other[name],
            tensorflow[name],
            rtol=0,
            atol=WEIGHT_ATOL,
            err_msg=name,
        )


@pytest.fixture(scope="module")
def keras_files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("keras_files")
    script = os.path.join(TESTS, "keras_file.py")
    for backend in BACKENDS:
        run_script(backend, script, "save", str(folder))
    for backend in BACKENDS:
        for source in BACKENDS:
            if source != backend:
                run_script(backend, script, "load", str(folder), source)
    return folder


@requires_all_backends
@pytest.mark.parametrize("source", BACKENDS)
def test_keras_file_same_images(keras_files, source):
    saved = read(keras_files / f"{source}.npz")
    assert saved["images"].shape == (6, 8, 8, 1)
    assert int(saved["iterations"]) == 2
    # The images depend on the trained weights: a blank or constant
    # generator would not tell the backends apart.
    assert saved["images"].std() > 1e-3
    for backend in BACKENDS:
        if backend == source:
            continue
        loaded = read(keras_files / f"{source}-on-{backend}.npz")
        assert int(loaded["iterations"]) == 2, backend
        # The loaded model also trains, with the loading backend's own
        # optimizer class.
        assert int(loaded["iterations_after_fit"]) == 4, backend
        assert np.isfinite(loaded["d_loss"]), backend
        np.testing.assert_allclose(
            loaded["images"],
            saved["images"],
            rtol=0,
            atol=IMAGE_ATOL,
            err_msg=f"{source} file on {backend}",
        )
