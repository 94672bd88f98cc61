"""Development sessions: `nox -s lint tests docs` is what CI runs.

Arguments after `--` go to pytest, for example `nox -s tests -- -k fit`.
"""

import nox

nox.options.default_venv_backend = "uv|virtualenv"
nox.options.sessions = ["lint", "tests", "docs"]

BACKENDS = ["tensorflow", "jax"]
# Both backends are installed in every test session: the JAX session also
# feeds tf.data pipelines, and the cross-backend test runs both.
INSTALL = ".[tensorflow,jax,test]"


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
    session.install(INSTALL)
    environment = {"KERAS_BACKEND": backend}
    session.run("pytest", "-m", "not slow", *session.posargs, env=environment)
    # A separate run, since --doctest-modules would also import the
    # helper scripts in tests/, which run when imported.
    session.run("pytest", "--doctest-modules", "keras_dcgan", env=environment)


@nox.session
@nox.parametrize("backend", BACKENDS)
def slow(session, backend):
    """Run the slow tests, such as training on the full MNIST set."""
    session.install(INSTALL)
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
