"""Several hosts, really: two local processes with jax.distributed (loopback coordinator, gloo CPU collectives)
run one sharded sweep, and its table equals the one-process sweep's (issue 16, item 9)."""

import json
import os
import socket
import subprocess
import sys

import numpy as np

import qbjax as qb

WORKER = os.path.join(os.path.dirname(__file__), "multihost_worker.py")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_process_sweep_equals_one_process():
    address = f"127.0.0.1:{_free_port()}"
    env = {**os.environ, "JAX_PLATFORMS": "cpu", "XLA_FLAGS": ""}  # one CPU device per process
    procs = [subprocess.Popen([sys.executable, WORKER, str(i), "2", address], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, env=env) for i in range(2)]
    outs = [p.communicate(timeout=200) for p in procs]
    for p, (_, err) in zip(procs, outs, strict=True):
        assert p.returncode == 0, err[-2000:]
    got = json.loads(outs[0][0].strip().splitlines()[-1])
    assert got["processes"] == 2 and got["devices"] == 2
    one = qb.sweep("oscillator", {"g": np.linspace(0.1, 1.0, 37)}, ["max_power", "optimal_time"], progress=False)
    np.testing.assert_allclose(got["max_power"], one.values("max_power"), rtol=1e-12)
    np.testing.assert_allclose(got["optimal_time"], one.values("optimal_time"), rtol=1e-12)
