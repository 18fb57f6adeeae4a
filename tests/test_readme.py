"""Every Python example of the README runs, each on its own, in a fresh process.

Each ``python`` block of README.md is run as written except for the sizes
listed in :data:`CI_SIZES` (same code path: same optimiser, restarts, vmap,
sharding; smaller N, fewer points and steps), under a stated time budget.  A
listed replacement that no longer matches the README fails the test, so the
README cannot drift away from what is tested.

The sweep and optimisation examples also run with XLA's HLO dump on: no
compiled program may contain a host callback (the programs used to deadlock
or stall on them; failures are returned as ``qbjax.status`` flags instead).
"""

from __future__ import annotations

import os
import pathlib
import re
import subprocess
import sys

import pytest

README = pathlib.Path(__file__).resolve().parents[1] / "README.md"

#: (old, new) text replacements per block, CI-sized; every ``old`` must occur in its block.
CI_SIZES: dict[int, list[tuple[str, str]]] = {
    0: [("qb.DickeBattery(n=10, g=0.5, omega0=1.0)", "qb.DickeBattery(n=3, g=0.5, omega0=1.0)")],
    1: [],
    2: [("n=100_000", "n=20_000")],
    3: [("SpinChainBattery(n=12,", "SpinChainBattery(n=6,")],
    4: [('levels=250', 'levels=40'), ('"oscillator", 250,', '"oscillator", 40,'), ("np.full(955,", "np.full(60,"),
        ("greedy_schedule(inc, 30.0)", "greedy_schedule(inc, 3.0)"),
        ("optimize_schedule(inc, 30.0, init=g)", "optimize_schedule(inc, 3.0, init=g, steps=5)")],
    5: [("ReservoirBattery(32, 2, 3,", "ReservoirBattery(6, 2, 2,"),
        ("target=0.9, t_max=60e-7)", "target=0.9, t_max=60e-7, grid=9, steps=20)")],
    6: [("np.linspace(0.05, 0.5, 200)", "np.linspace(0.05, 0.5, 8)"), ("n=6)", "n=3)"),
        ('"n": [10, 100, 1000]', '"n": [10, 100]'),
        ("np.linspace(0.1, 0.4, 16), np.linspace(0.9, 1.1, 16)", "np.linspace(0.1, 0.4, 4), np.linspace(0.9, 1.1, 4)")],
    7: [("restarts=4, steps=50)", "restarts=4, steps=6)"),
        ("restarts=6)", "restarts=6, steps=4)"),
        ("qb.DickeBattery(4, 0.2, cutoff=32)", "qb.DickeBattery(3, 0.2, cutoff=24)")],
}
#: Wall-clock budget of each block on the 2-core CI machine (import and compilation included).
BUDGET_S = {0: 120, 1: 60, 2: 150, 3: 120, 4: 150, 5: 120, 6: 150, 7: 150}
#: Blocks whose compiled programs are searched for host callbacks: all of them (the ODE paths
#: integrate with qbjax's own loop, qbjax.dynamics.integrate, which has no equinox runtime check).
HLO_CHECKED = set(CI_SIZES)
#: Blocks that must show a LAPACK call (the sweep and the optimiser diagonalise): proves the search works.
LAPACK_EXPECTED = {6, 7}
CALLBACK = re.compile(r'custom_call_target="[^"]*callback[^"]*"')
#: A LAPACK call and the shape of its first result: more than two dimensions is a batched call, which
#: jaxlib 0.10 splits over XLA's thread pool and which deadlocks a 2-core machine (qbjax.linalg loops instead).
LAPACK = re.compile(r'= \(?[a-z0-9]+\[([0-9,]*)\][^\n]*custom_call_target="(lapack_[a-z0-9_]+)"')


def batched_lapack_calls(text: str) -> list[str]:
    return [f"{name}[{dims}]" for dims, name in LAPACK.findall(text) if dims.count(",") >= 2]


def readme_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)


def test_block_count_matches():
    """Adding or removing a README example updates this test's size table too."""
    assert len(readme_blocks()) == len(CI_SIZES)


@pytest.mark.parametrize("index", sorted(CI_SIZES))
@pytest.mark.timeout(300)
def test_readme_example_runs(index, tmp_path):
    code = readme_blocks()[index]
    for old, new in CI_SIZES[index]:
        assert old in code, f"README block {index} no longer contains {old!r}: update CI_SIZES"
        code = code.replace(old, new)
    script = tmp_path / f"readme_{index}.py"
    script.write_text(code)
    env = dict(os.environ, JAX_PLATFORMS="cpu", PYTHONWARNINGS="error::qbjax.charging.TruncationWarning")
    dump = tmp_path / "hlo"
    if index in HLO_CHECKED:
        env["XLA_FLAGS"] = (env.get("XLA_FLAGS", "") + f" --xla_dump_to={dump} --xla_dump_hlo_as_text").strip()
        env["QBJAX_COMPILATION_CACHE"] = "0"  # a cache hit compiles (and dumps) nothing
    proc = subprocess.run([sys.executable, str(script)], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=BUDGET_S[index])
    assert proc.returncode == 0, f"README block {index} failed:\n{proc.stderr[-4000:]}"
    if index in HLO_CHECKED:
        modules = list(dump.glob("*after_optimizations.txt"))
        assert modules, "no HLO was dumped"
        texts = {m.name: m.read_text() for m in modules}
        hits = [name for name, text in texts.items() if CALLBACK.search(text)]
        assert not hits, f"host callbacks in compiled programs: {hits}"
        batched = {name: batched_lapack_calls(text) for name, text in texts.items() if batched_lapack_calls(text)}
        assert not batched, f"batched LAPACK calls in compiled programs: {batched}"
        if index in LAPACK_EXPECTED:
            assert any(LAPACK.search(text) for text in texts.values()), "the check saw no LAPACK call at all"


def test_batched_lapack_detector():
    """The detector above recognises jnp.linalg's batched eigh and passes qbjax.linalg's looped one."""
    import jax
    import jax.numpy as jnp

    from qbjax.linalg import eigh

    a = jnp.ones((4, 6, 6))
    plain = jax.jit(jax.vmap(jnp.linalg.eigh)).lower(a).compile().as_text()
    looped = jax.jit(jax.vmap(eigh)).lower(a).compile().as_text()
    assert batched_lapack_calls(plain) and LAPACK.search(looped) and not batched_lapack_calls(looped)
