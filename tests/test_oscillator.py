"""Oscillator battery (seed 000, Sec. IV): Eq. 10 quantum and classical, Gamma = sqrt(N)."""

import jax.numpy as jnp
import numpy as np
import pytest

import qbjax as qb
from qbjax.analysis import advantage

G, W = 0.2, 1.0


def exact(n, ts):
    return n * W * np.sin(G * np.sqrt(n) * np.asarray(ts)) ** 2


@pytest.mark.parametrize("n", [1, 5, 16])
@pytest.mark.parametrize("kw", [dict(), dict(classical=True), dict(method="ode"), dict(method="dense-ode")],
                         ids=["spectral", "classical", "ode", "dense-ode"])
def test_eq10(n, kw):
    m = qb.OscillatorBattery(n, G, W)
    tr = qb.charge(m, **kw)
    # relative 1e-8 of the stored energy scale N w0
    np.testing.assert_allclose(tr.energy, exact(n, tr.ts), rtol=0, atol=1e-8 * n * W)


def test_max_power_closed_form():
    # Pbar = N sqrt(N) g w0 Y, Y = max sin^2(x)/x at x* = 1.16556118520721...
    x = 1.1655611852072113
    y = np.sin(x) ** 2 / x
    for n in (1, 9):
        mp = qb.max_power(qb.charge(qb.OscillatorBattery(n, G, W)))
        np.testing.assert_allclose(mp.power, n * np.sqrt(n) * G * W * y, rtol=1e-12)
        np.testing.assert_allclose(mp.time, x / (G * np.sqrt(n)), rtol=1e-7)
        assert bool(mp.certified)


def test_gamma_sqrt_n():
    adv = advantage(qb.OscillatorBattery(16, G, W))
    np.testing.assert_allclose(adv["quantum"]["gamma"], 4.0, rtol=1e-9)
    np.testing.assert_allclose(adv["classical"]["gamma"], 4.0, rtol=1e-7)


def test_bright_mode_reduction_against_explicit_oscillators():
    """The model's bright-mode spec against N explicit oscillators written by hand (generic spec path)."""
    n = 3
    space = (("a", qb.Boson(n + 1)),) + tuple((f"b{i}", qb.Boson(n + 1)) for i in range(n))
    coupling = []
    for i in range(n):
        coupling += [qb.term(G, "a.a", f"b{i}.adag"), qb.term(G, "a.adag", f"b{i}.a")]
    spec = qb.Spec(
        space=space,
        charger=(qb.term(W, "a.n"),),
        battery=tuple(qb.term(W, f"b{i}.n") for i in range(n)),
        coupling=tuple(coupling),
        battery_dofs=tuple(f"b{i}" for i in range(n)),
        initial=(("a", n),),
        classical_initial={"a": jnp.array([np.sqrt(n), np.sqrt(n)]), **{f"b{i}": jnp.zeros(2) for i in range(n)}},
        conserved=qb.Charge((1,) * (n + 1)),
    )
    ts = jnp.linspace(0, 3.0, 61)
    e_explicit = qb.charge(spec, ts).energy
    e_bright = qb.charge(qb.OscillatorBattery(n, G, W), ts).energy
    np.testing.assert_allclose(e_explicit, e_bright, atol=1e-11)
    np.testing.assert_allclose(qb.charge(spec, ts, classical=True).energy, exact(n, ts), atol=1e-8)
