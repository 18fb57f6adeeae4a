"""One process of the two-process sweep test (tests/test_multihost.py): jax.distributed on CPU, loopback."""

import json
import sys

import jax

jax.config.update("jax_cpu_collectives_implementation", "gloo")
pid, count, address = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
jax.distributed.initialize(address, num_processes=count, process_id=pid)

import numpy as np  # noqa: E402

import qbjax as qb  # noqa: E402

res = qb.sweep("oscillator", {"g": np.linspace(0.1, 1.0, 37)}, ["max_power", "optimal_time"], progress=False)
if pid == 0:
    print(json.dumps({"devices": res.info["devices"], "processes": res.info["processes"],
                      "max_power": res.values("max_power").tolist(),
                      "optimal_time": res.values("optimal_time").tolist()}))
jax.distributed.shutdown()
