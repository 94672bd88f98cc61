"""The same step gives the same numbers on TensorFlow and on JAX."""

import importlib.util
import os
import subprocess
import sys

import numpy as np
import pytest

SCRIPT = os.path.join(os.path.dirname(__file__), "one_step.py")
BACKENDS = ("tensorflow", "jax")

# Tolerances: both backends run float32 convolutions with different
# summation orders, and Adam's first step divides gradients by their own
# magnitude, which amplifies rounding for gradients near zero.
LOSS_RTOL = 1e-5
WEIGHT_ATOL = 2e-6


def run_one_step(backend, output_path):
    environment = dict(os.environ, KERAS_BACKEND=backend)
    completed = subprocess.run(
        [sys.executable, SCRIPT, str(output_path)],
        env=environment,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    with np.load(output_path) as results:
        return dict(results)


@pytest.mark.skipif(
    any(importlib.util.find_spec(name) is None for name in BACKENDS),
    reason="needs both TensorFlow and JAX installed",
)
def test_one_step_same_on_tensorflow_and_jax(tmp_path):
    results = {
        backend: run_one_step(backend, tmp_path / f"{backend}.npz")
        for backend in BACKENDS
    }
    tensorflow, jax = results["tensorflow"], results["jax"]
    assert sorted(tensorflow) == sorted(jax)
    # Adam's first step moves weights by up to its learning rate, 1e-4.
    assert tensorflow["largest_change"] > 50 * WEIGHT_ATOL
    for name in ("d_loss", "g_loss"):
        np.testing.assert_allclose(tensorflow[name], jax[name], rtol=LOSS_RTOL)
    weight_names = [name for name in tensorflow if name.startswith("weight_")]
    assert len(weight_names) > 10
    for name in weight_names:
        np.testing.assert_allclose(
            tensorflow[name], jax[name], rtol=0, atol=WEIGHT_ATOL, err_msg=name
        )
