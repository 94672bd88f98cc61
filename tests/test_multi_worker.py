"""Data-parallel training over two processes of this machine.

`multi_worker.py` runs as two processes that form a cluster on 127.0.0.1,
the way several hosts would (`keras.distribution.initialize` on JAX,
`TF_CONFIG` and `MultiWorkerMirroredStrategy` on TensorFlow), and once as
a single process. Each process has one CPU device.
"""

import os
import socket
import subprocess
import sys

import numpy as np
import pytest
from conftest import requires_data_parallel

pytestmark = requires_data_parallel

SCRIPT = os.path.join(os.path.dirname(__file__), "multi_worker.py")
LOSS_RTOL = 1e-5
WEIGHT_ATOL = 1e-5


def free_ports(count):
    sockets = [socket.socket() for _ in range(count)]
    for sock in sockets:
        sock.bind(("127.0.0.1", 0))
    ports = [sock.getsockname()[1] for sock in sockets]
    for sock in sockets:
        sock.close()
    return ",".join(str(port) for port in ports)


def start(process_id, ports, output_path):
    return subprocess.Popen(
        [sys.executable, SCRIPT, str(process_id), ports, str(output_path)],
        cwd=os.path.dirname(SCRIPT),
        env=dict(os.environ),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def finish(process):
    try:
        _, stderr = process.communicate(timeout=600)
    except subprocess.TimeoutExpired:
        process.kill()
        _, stderr = process.communicate()
    assert process.returncode == 0, stderr[-3000:]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    folder = tmp_path_factory.mktemp("multi_worker")
    ports = free_ports(2)
    workers = [start(i, ports, folder / f"worker_{i}.npz") for i in range(2)]
    for worker in workers:
        finish(worker)
    finish(start(0, free_ports(1), folder / "single.npz"))
    results = {}
    for name in ("worker_0", "worker_1", "single"):
        with np.load(folder / f"{name}.npz") as saved:
            results[name] = dict(saved)
    return results


def test_two_processes_train_as_one_cluster(runs):
    assert int(runs["worker_0"]["devices"]) == 2
    assert int(runs["worker_1"]["devices"]) == 2
    assert int(runs["single"]["devices"]) == 1
    # Only the first process writes images and checkpoints.
    assert bool(runs["worker_0"]["chief"]) is True
    assert bool(runs["worker_1"]["chief"]) is False


def test_two_processes_same_weights(runs):
    count = int(runs["worker_0"]["weight_count"])
    assert count > 0
    for index in range(count):
        np.testing.assert_array_equal(
            runs["worker_1"][f"weight_{index}"],
            runs["worker_0"][f"weight_{index}"],
        )


def test_two_processes_match_one_process(runs):
    for name in ("d_loss", "g_loss"):
        np.testing.assert_allclose(
            runs["worker_0"][name], runs["single"][name], rtol=LOSS_RTOL
        )
    for index in range(int(runs["single"]["weight_count"])):
        np.testing.assert_allclose(
            runs["worker_0"][f"weight_{index}"],
            runs["single"][f"weight_{index}"],
            atol=WEIGHT_ATOL,
        )
