"""keras_dcgan.retain_freed_memory: freed blocks are reused, not remapped.

The settings change malloc for the whole process, so each check runs in
a fresh Python process.
"""

import ctypes
import json
import os
import platform
import subprocess
import sys
import textwrap

import keras
import pytest

from keras_dcgan import memory

GLIBC = sys.platform.startswith("linux") and platform.libc_ver()[0] == "glibc"
needs_glibc = pytest.mark.skipif(
    not GLIBC, reason="retain_freed_memory sets glibc's malloc only"
)

# A block larger than glibc's largest mmap threshold (32 MiB) and than the
# heap of a thread's arena (64 MiB). Written in full, it takes one page
# fault per 4 KiB page when it is mapped afresh.
FAULTS_OF_REALLOCATION = textwrap.dedent(
    """
    import ctypes, json, resource, sys, threading
    import keras_dcgan

    libc = ctypes.CDLL(None)
    libc.malloc.restype = ctypes.c_void_p
    libc.malloc.argtypes = [ctypes.c_size_t]
    libc.free.argtypes = [ctypes.c_void_p]
    SIZE = 96 << 20
    RUSAGE_THREAD = 1

    def faults_of_second_block(results):
        counts = []
        for _ in range(2):
            before = resource.getrusage(RUSAGE_THREAD).ru_minflt
            block = libc.malloc(SIZE)
            ctypes.memset(block, 1, SIZE)
            libc.free(block)
            counts.append(resource.getrusage(RUSAGE_THREAD).ru_minflt - before)
        results.append(counts[1])

    retained = None
    if sys.argv[1] == "retain":
        retained = keras_dcgan.retain_freed_memory()
    main, thread = [], []
    faults_of_second_block(main)
    worker = threading.Thread(target=faults_of_second_block, args=(thread,))
    worker.start()
    worker.join()
    print(json.dumps({"retained": retained, "main": main[0],
                      "thread": thread[0]}))
    """
)


def run_python(code, *args, environment=None):
    completed = subprocess.run(
        [sys.executable, "-c", code, *args],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, **(environment or {})},
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    return json.loads(completed.stdout.strip().splitlines()[-1])


@needs_glibc
def test_freed_blocks_are_reused_in_every_thread():
    default = run_python(FAULTS_OF_REALLOCATION, "default")
    retained = run_python(FAULTS_OF_REALLOCATION, "retain")
    # By default glibc maps a block this large afresh, in the main thread
    # and in others. With transparent huge pages on every mapping it takes
    # one fault per 2 MiB page, 48, which is still more than 16.
    assert default["main"] > 16
    assert default["thread"] > 16
    assert retained == {"retained": True, "main": 0, "thread": 0}


@needs_glibc
def test_warns_when_jax_threads_started_first():
    if keras.backend.backend() != "jax":
        pytest.skip("only JAX's threads keep arenas chosen before the call")
    code = textwrap.dedent(
        """
        import json, sys, warnings
        import jax.numpy as jnp
        import keras_dcgan

        def messages_of_call():
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                keras_dcgan.retain_freed_memory()
            return [str(warning.message) for warning in caught]

        early = messages_of_call() if sys.argv[1] == "early" else []
        jnp.ones(3).block_until_ready()
        print(json.dumps([early, messages_of_call()]))
        """
    )
    early, late = run_python(code, "late")
    assert early == []
    assert len(late) == 1
    assert "called after JAX started its CPU threads" in late[0]
    assert "GLIBC_TUNABLES=glibc.malloc.arena_max=1" in late[0]

    # A second call after one that came in time does not warn, and
    # neither does a late call where GLIBC_TUNABLES already set the arenas.
    early, late = run_python(code, "early")
    assert early == []
    assert late == []
    tunables = {"GLIBC_TUNABLES": "glibc.malloc.arena_max=1"}
    early, late = run_python(code, "late", environment=tunables)
    assert late == []


def test_other_c_libraries_left_alone(monkeypatch):
    def fail(name):
        raise AssertionError("no C library may be loaded")

    monkeypatch.setattr(ctypes, "CDLL", fail)
    monkeypatch.setattr(platform, "libc_ver", lambda: ("", ""))
    assert memory.retain_freed_memory() is False
    monkeypatch.setattr(sys, "platform", "darwin")
    assert memory.retain_freed_memory() is False


@needs_glibc
def test_rejected_option_names_it(monkeypatch):
    calls = []

    class RejectingLibrary:
        def __init__(self, name):
            self.mallopt = self

        def __call__(self, option, value):
            calls.append((option, value))
            return 0

    monkeypatch.setattr(ctypes, "CDLL", RejectingLibrary)
    with pytest.raises(RuntimeError) as error:
        memory.retain_freed_memory()
    assert calls == [(-8, 1)]
    assert "glibc's mallopt rejected M_ARENA_MAX=1" in str(error.value)
    assert "Train without keras_dcgan.retain_freed_memory()" in str(error.value)
