"""Keep the memory that training frees, for its next steps to reuse.

PyTorch's CPU tensors and XLA's CPU buffers come from the C library's
`malloc`. On Linux, glibc's `malloc` gives large freed blocks back to the
kernel: blocks above its mmap threshold (which grows to at most 32 MiB),
blocks that a thread other than the main one allocates beyond its 64 MiB
heap, and free memory at the top of a heap. Each training step then maps
its large tensors afresh, and the kernel zero-fills every 4 KiB page on
the step's first write to it. We measured the MNIST DCGAN at batch 256
on a 2-core x86_64 virtual machine. A JAX step took about 87 000 of these
page faults, for XLA's temporary buffers of over 300 MiB, which a worker
thread allocates. A PyTorch step took 40 000 to 49 000. In earlier
measurements, between 0.07 and 0.55 s of a step of 0.6 to 1.1 s was
kernel time. TensorFlow's allocator
keeps its memory, and its steps took a few hundred page faults at most.

`retain_freed_memory` makes glibc keep what it frees. In
`benchmarks/throughput.py` (median of 3 runs against 2, same machine)
the JAX step then took 0.47 s instead of 0.58, and the PyTorch step
0.48 s instead of 0.57. Most runs took no page faults, and the NOTE
of `retain_freed_memory` describes the others. The
process keeps the memory of its largest step until it exits, as the
caching allocators of GPU frameworks do, and a fragmented heap keeps
more: JAX's peak resident memory went from 1.8 GiB to between 2.3
and 2.6 GiB.

NOTE: one arena for all threads may slow programs whose threads
allocate often at the same time; only the DCGAN step was measured.
"""

import ctypes
import os
import platform
import sys
import warnings

# Parameters of glibc's mallopt(3), from <malloc.h>.
_M_TRIM_THRESHOLD = -1
_M_MMAP_MAX = -4
_M_ARENA_MAX = -8
# The largest value of mallopt's int argument. glibc gives back the free
# top of the heap only once it exceeds about 2 GiB, and then almost all of it.
_TRIM_THRESHOLD_LIMIT = 2**31 - 1
_TUNABLE = "glibc.malloc.arena_max=1"
# Whether a call set the options before JAX started its threads.
_set_before_jax = False


def retain_freed_memory():
    """Make `malloc` keep freed memory for reuse instead of returning it.

    Sets three options of glibc's `malloc` for the whole process. Threads
    started from now on create no arena of their own. Large blocks come
    from the heap instead of `mmap`. The heap's free top is given back
    only once it exceeds about 2 GiB. Training steps then reuse the
    pages of earlier steps instead of mapping and zero-filling new ones
    (see the module docstring for the measured effect). `keras-dcgan
    train` calls this before it builds the models.

    Call it before the first JAX computation, such as building a model
    on JAX: XLA's worker threads choose their arena on their first
    allocation and keep it. Called later, it warns, and JAX's buffers of
    more than 64 MiB are still mapped afresh every step. On PyTorch,
    whose steps allocate from the main thread, it takes effect whenever
    it is called.

    NOTE: threads that allocated before the call keep their arenas, and
    threads started later share them with the main heap in turn. NumPy's
    OpenBLAS threads, started when NumPy is imported, have one. A JAX
    worker thread that shares it still maps its blocks of more than
    64 MiB afresh. Only
    `GLIBC_TUNABLES=glibc.malloc.arena_max=1:glibc.malloc.mmap_max=0:glibc.malloc.trim_threshold=2147483647`,
    set before Python starts, covers every thread.

    Some runs still take page faults with the call: when the freed
    memory has become too fragmented to hold XLA's temporary buffers,
    the heap grows once by their size. In one JAX run timed step by
    step, one step took 1.9 s and 77 823 page faults, the steps around
    it 0.55 s, and `strace` showed the heap growing and no memory given
    back.

    Returns:
        `True` if the options were set. `False` where the C library is
        not glibc (macOS, Windows, musl), where nothing is changed.

    Example:

    >>> import keras_dcgan
    >>> keras_dcgan.retain_freed_memory()  # doctest: +SKIP
    True
    """
    if not sys.platform.startswith("linux"):
        return False
    if platform.libc_ver()[0] != "glibc":
        return False
    mallopt = ctypes.CDLL(None).mallopt
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    options = (
        ("M_ARENA_MAX", _M_ARENA_MAX, 1),
        ("M_MMAP_MAX", _M_MMAP_MAX, 0),
        ("M_TRIM_THRESHOLD", _M_TRIM_THRESHOLD, _TRIM_THRESHOLD_LIMIT),
    )
    for name, option, value in options:
        if mallopt(option, value) != 1:
            raise RuntimeError(
                f"glibc's mallopt rejected {name}={value}. This glibc "
                f"({platform.libc_ver()[1]}) does not support it. Train "
                "without keras_dcgan.retain_freed_memory()."
            )
    global _set_before_jax
    already_set = _set_before_jax or _TUNABLE in os.environ.get(
        "GLIBC_TUNABLES", ""
    )
    if not _jax_threads_started():
        _set_before_jax = True
    elif not already_set:
        warnings.warn(
            "keras_dcgan.retain_freed_memory() was called after JAX "
            "started its CPU threads, which keep their own malloc arenas: "
            "XLA's buffers of more than 64 MiB are still mapped afresh "
            "every step. Call it before building the models, or start "
            "Python with GLIBC_TUNABLES=glibc.malloc.arena_max=1:"
            "glibc.malloc.mmap_max=0:"
            "glibc.malloc.trim_threshold=2147483647.",
            stacklevel=2,
        )
    return True


def _jax_threads_started():
    """Return whether JAX has created its backends and their threads."""
    if "jax" not in sys.modules:
        return False
    # NOTE: JAX has no public way to ask this without starting the
    # backends; tests/test_memory.py pins this private function.
    from jax._src import xla_bridge

    return xla_bridge.backends_are_initialized()
