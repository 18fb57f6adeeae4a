"""The smallest program found that deadlocks jaxlib 0.10.x on a 2-core CPU (issue: sweeps and optimisations hang).

jaxlib 0.10's CPU LAPACK kernels split a batched call into chunks on XLA's
intra-op thread pool and block the calling pool thread until the chunks are
done (``ParallelBatchMap`` in ``jaxlib/cpu/lapack_kernels.cc``).  With two
cores the pool has two workers; when both run a batched ``eigh`` at once,
nobody runs the chunks and the program never completes (0% CPU).

    python benchmarks/lapack_deadlock.py          # plain jnp.linalg.eigh: hangs in most runs
    python benchmarks/lapack_deadlock.py --qbjax  # qbjax.linalg.eigh (loops over the batch): completes

Measured on the 2-core CPU (jax/jaxlib 0.10.2): plain 5 hangs in 6 runs;
qbjax.linalg 0 hangs in 6 runs.  The script gives up after 60 s (exit 3).
"""

import faulthandler
import sys

import jax
import jax.numpy as jnp

jax.config.update("jax_enable_x64", True)
faulthandler.dump_traceback_later(60, exit=True)  # a hang prints the stack and exits

if "--qbjax" in sys.argv:
    from qbjax.linalg import eigh
else:
    eigh = jnp.linalg.eigh


def f(a):
    out = 0.0
    for i in range(4):  # four independent branches: the executor runs them on different pool threads
        w, v = eigh(a @ a * (i + 1))  # each a batched eigh of 4 matrices 133 x 133
        out = out + (v @ v).sum() + w.sum()
    return out


a = jax.random.normal(jax.random.PRNGKey(0), (4, 133, 133))
a = a + a.mT
g = jax.jit(f)
for i in range(20):
    g(a + i).block_until_ready()
print("completed")
