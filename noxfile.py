"""Development sessions: `nox -s lint tests backends docs` is what CI runs.

Arguments after `--` go to pytest, for example `nox -s tests -- -k fit`.
"""

import glob
import os

import nox

nox.options.default_venv_backend = "uv|virtualenv"
nox.options.sessions = ["lint", "tests", "backends", "docs"]

BACKENDS = ["tensorflow", "jax", "torch"]
# Every backend is installed in every test session: the JAX and PyTorch
# sessions also feed tf.data pipelines, every session trains from torch
# DataLoaders, and the cross-backend tests run all three.
INSTALL = ".[tensorflow,jax,torch,test]"

# PyTorch's CPU build. The machines this project is developed and tested
# on keep its wheel in a local folder that pip searches (PIP_FIND_LINKS).
# uv, which nox uses, reads no pip configuration and would install the
# package index's CUDA build of several GB, so the local wheel is
# installed by path when it is there.
TORCH_VERSION = "2.13.0"
LOCAL_WHEELS = os.environ.get("PIP_FIND_LINKS", "/opt/wheels").split()


def install_backends(session):
    """Install the package with every backend and the test tools."""
    cpu_wheels = [
        path
        for folder in LOCAL_WHEELS
        for path in glob.glob(
            os.path.join(folder, f"torch-{TORCH_VERSION}+cpu-*.whl")
        )
    ]
    session.install(cpu_wheels[0] if cpu_wheels else f"torch=={TORCH_VERSION}")
    session.install(INSTALL)


@nox.session
def lint(session):
    """Check style, formatting and common mistakes with ruff."""
    session.install("ruff>=0.6")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")


@nox.session
@nox.parametrize("backend", BACKENDS)
def tests(session, backend):
    """Run the default test suite, then the docstring examples, on one
    Keras backend."""
    install_backends(session)
    environment = {"KERAS_BACKEND": backend}
    session.run(
        "pytest",
        "-m",
        "not slow and not cross_backend",
        *session.posargs,
        env=environment,
    )
    # A separate run, since --doctest-modules would also import the
    # helper scripts in tests/, which run when imported.
    session.run("pytest", "--doctest-modules", "keras_dcgan", env=environment)


@nox.session
def backends(session):
    """Run the tests that compare the backends once: each runs all three
    backends in subprocesses, whatever KERAS_BACKEND is."""
    install_backends(session)
    session.run("pytest", "-m", "cross_backend", *session.posargs)


@nox.session
@nox.parametrize("backend", BACKENDS)
def slow(session, backend):
    """Run the slow tests, such as training on the full MNIST set."""
    install_backends(session)
    session.run(
        "pytest",
        "-m",
        "slow",
        *session.posargs,
        env={"KERAS_BACKEND": backend},
    )


@nox.session
def docs(session):
    """Build the documentation site in strict mode: a broken link, a
    missing page or an unresolved API reference fails the build."""
    session.install(".[docs]")
    session.run("mkdocs", "build", "--strict", "--site-dir", "site")
