"""Seed 002 (Le et al.): the XXZ spin-chain battery, exact and mean field.

Analytic checks (Eq. 11, 12, 13-15, 18, 24), the methods against each other,
gradients against finite differences, and the CLI.
"""

import json
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.integrate import solve_ivp
from scipy.optimize import brentq

import qbjax as qb
from qbjax.analysis import max_power_grad, replace_params
from qbjax.cli import main
from qbjax.metrics import max_energy
from qbjax.models.spin_chain import SpinChainBattery, single_spin_work, weak_coupling_work


def test_single_spin_eq11():
    m = SpinChainBattery(1, b=1.3, g=0.0, field=4.0)
    ts = qb.time_grid(m)
    tr = qb.charge(m, ts)
    np.testing.assert_allclose(tr.energy, single_spin_work(1.3, 4.0, ts), atol=1e-12)
    # P^(1) ~ 1.4 omega B at T ~ 1.2/omega (Sec. III): exactly max 2 sin^2(x)/x at tan x = 2x
    x = brentq(lambda x: math.tan(x) - 2 * x, 1.0, 1.5)
    mp = qb.max_power(tr)
    assert abs(mp.time * 4.0 - x) < 1e-9 and abs(mp.power / (4.0 * 1.3) - 2 * math.sin(x) ** 2 / x) < 1e-10


@pytest.mark.parametrize("couplings", ["nn", "power"])
def test_isotropic_chain_charges_independently(couplings):
    """alpha = 1, uniform field: V commutes with H_g (Eq. 12), W = N W^(1) for any g; mean field is exact."""
    m = SpinChainBattery(5, b=1.0, g=2.0, field=3.0, alpha=1.0, couplings=couplings)
    ts = qb.time_grid(m)
    quantum = qb.charge(m, ts)
    np.testing.assert_allclose(quantum.energy, 5 * single_spin_work(1.0, 3.0, ts), atol=1e-11)
    classical = qb.charge(m, ts, classical=True)
    # The saves between Dopri8's steps come from its dense-output interpolant, which is ~1e-8 here
    # (the steps themselves are ~1e-12 accurate): the bound is the interpolant's, stated.
    np.testing.assert_allclose(classical.energy, quantum.energy, rtol=0, atol=3e-8)


def test_weak_coupling_eq18_is_first_order():
    """Eq. 18 misses terms of order G^2: halving g quarters the error."""
    errs = []
    for g in (0.02, 0.01):
        m = SpinChainBattery(5, b=1.0, g=g, field=10.0, alpha=0.0, couplings="power")
        ts = jnp.linspace(0.0, 0.3, 61)
        tr = qb.charge(m, ts)
        errs.append(float(jnp.max(jnp.abs(tr.energy - weak_coupling_work(5, 1.0, 10.0, 0.0, m.total_coupling(), ts)))))
    assert errs[0] < 1e-2 and 3.0 < errs[0] / errs[1] < 5.0, errs


def test_methods_agree_and_classical_runs():
    m = SpinChainBattery(5, b=1.0, g=0.7, field=4.0, alpha=0.3, couplings="power", power=1.5)
    ts = qb.time_grid(m)
    a = qb.charge(m, ts, method="spectral")
    b = qb.charge(m, ts, method="chebyshev")
    c = qb.charge(m, ts, method="ode")
    np.testing.assert_allclose(b.energy, a.energy, atol=1e-10)  # Chebyshev: exact to rounding
    np.testing.assert_allclose(b.d_energy, a.d_energy, atol=1e-9)
    np.testing.assert_allclose(b.d2_energy, a.d2_energy, atol=1e-8)
    np.testing.assert_allclose(b.variance, a.variance, atol=1e-10)
    np.testing.assert_allclose(c.energy, a.energy, atol=1e-6)  # adaptive steps: tolerance-limited
    np.testing.assert_allclose(c.variance, a.variance, atol=1e-6)


def _two_spin_slow(omega, g, b, t):
    return 2 * omega**2 / g + 4 * b * np.sin(omega**2 * t / g) ** 2


def test_strong_coupling_two_spins_eq13_15():
    """N = 2, alpha = 0, g >> omega (Fig. 3): fast oscillations 4 w^2/g sin^2(g t) (Eq. 13) at short times,
    slow ones 2 w^2/g + 4 B sin^2(w^2 t / g) (Eq. 14) from H_eff (Eq. 15) at long times."""
    omega, g, B = 3.0, 20.0, 1.0
    m = SpinChainBattery(2, b=B, g=g, field=omega, alpha=0.0)
    ts = jnp.linspace(0.0, 0.1, 401)  # t << g / w^2 = 2.2: two fast periods
    tr = qb.charge(m, ts)
    fast = 4 * omega**2 / g * np.sin(g * np.asarray(ts)) ** 2
    # corrections: B/g (the S0 level's field energy) and (w/g)^2
    assert float(jnp.max(jnp.abs(tr.energy - fast))) < 0.15 * 4 * omega**2 / g
    # long times: average over the fast period pi/g around each point
    t_long = jnp.linspace(0.0, 2 * math.pi * g / omega**2, 8001)
    tr = qb.charge(m, t_long, method="spectral")
    w = np.asarray(tr.energy)
    window = int(round(math.pi / g / float(t_long[1])))
    avg = np.convolve(w, np.ones(window) / window, mode="valid")
    t_avg = np.asarray(t_long)[window // 2: window // 2 + avg.size]
    slow = _two_spin_slow(omega, g, B, t_avg)
    assert np.max(np.abs(avg - slow)) < 0.15 * 4 * B  # O(w/g) corrections to H_eff


def test_three_spin_effective_hamiltonian():
    """N = 3, all pairs coupled by g: H_eff = 3 w^3 / (8 g^2) (|up^3><down^3| + h.c.) (Sec. III B).

    The slow oscillation reaches |up up up> at t* = (pi/2) 8 g^2 / (3 w^3): W ~ 6 B there."""
    omega, g, B = 3.0, 30.0, 1.0
    m = SpinChainBattery(3, b=B, g=g, field=omega, alpha=0.0, couplings="power", power=0.0)
    t_star = 0.5 * math.pi * 8 * g**2 / (3 * omega**3)
    ts = jnp.linspace(0.0, 2 * t_star, 4001)
    tr = qb.charge(m, ts, method="spectral")
    k = int(np.argmax(np.asarray(tr.energy)))
    assert abs(float(ts[k]) / t_star - 1) < 0.05
    # 6B from the slow transfer, plus fast oscillations of order w^2/g on top
    assert abs(float(tr.energy[k]) - 6 * B) < 4 * omega**2 / g


def test_infinite_range_mean_field_is_eq24():
    """The mean-field chain with p = 0 is one classical spin obeying Eq. 24 (s = <sigma>, |s| = 1)."""
    n, g, omega, alpha, B = 6, 0.5, 2.0, 0.2, 1.0
    m = SpinChainBattery(n, b=B, g=g, field=omega, alpha=alpha, couplings="power", power=0.0)
    ts = jnp.linspace(0.0, 2.0, 81)
    tr = qb.charge(m, ts, classical=True)

    # Eq. 24 with commuting s_k, and the mean-field interaction among N - 1 partners: gN -> g(N-1)
    # (Eq. 22 drops the self-interaction constant, which shifts the effective coupling by one site)
    def rhs(t, s):
        sx, sy, sz = s
        k = g * (n - 1) * (1 - alpha)
        return [2 * k * sy * sz, -2 * omega * sz - 2 * k * sx * sz, 2 * omega * sy]

    sol = solve_ivp(rhs, (0, 2.0), [0.0, 0.0, -1.0], t_eval=np.asarray(ts), rtol=1e-12, atol=1e-12)
    sx, sy, sz = sol.y
    G = g * n * (n - 1) / 2
    H0 = B * n * sz - G * (sz**2 + alpha * (sx**2 + sy**2))
    W = H0 - (-B * n - G)
    np.testing.assert_allclose(tr.energy, W, atol=1e-8)


def test_quantum_approaches_mean_field_infinite_range():
    """p = 0: the quantum chain tends to the classical spin as N grows (Sec. IV), per spin at short times."""
    diffs = []
    for n in (2, 3, 4):
        m = SpinChainBattery(n, b=1.0, g=0.5 / n, field=2.0, alpha=0.0, couplings="power", power=0.0)
        ts = jnp.linspace(0.0, 1.0, 41)
        q = qb.charge(m, ts)
        c = qb.charge(m, ts, classical=True)
        diffs.append(float(jnp.max(jnp.abs(q.energy - c.energy))) / n)
    assert diffs[2] < diffs[1] < diffs[0], diffs


def test_gradients_against_finite_differences():
    m = SpinChainBattery(4, b=1.0, g=1.0, field=4.0, alpha=0.3, couplings="power")
    power, grads = max_power_grad(m, ["alpha", "g", "power"])
    h = 1e-6
    for name in ("alpha", "g", "power"):
        v = float(getattr(m, name))
        up = qb.max_power(qb.charge(replace_params(m, **{name: v + h}))).power
        dn = qb.max_power(qb.charge(replace_params(m, **{name: v - h}))).power
        assert abs(grads[name] - (up - dn) / (2 * h)) < 1e-5 * abs(power), name


def test_gradient_wrt_coupling_matrix():
    n = 4
    rng = np.random.default_rng(0)
    J = rng.uniform(0.2, 1.0, (n, n))
    J = (J + J.T) / 2
    m = SpinChainBattery(n, g=1.0, alpha=0.2, couplings="matrix", matrix=J)
    ts = qb.time_grid(m)

    def pbar(mat):
        return qb.max_power(qb.charge(replace_params(m, matrix=mat), ts), warn=False).power

    grad = jax.grad(pbar)(jnp.asarray(J))
    d = np.zeros((n, n))
    d[0, 2] = d[2, 0] = 1.0
    h = 1e-6
    fd = (pbar(J + h * d) - pbar(J - h * d)) / (2 * h)
    assert abs(float(jnp.sum(grad * d)) - float(fd)) < 1e-6 * abs(float(fd)) + 1e-8


def test_max_work_is_refined():
    m = SpinChainBattery(1, b=1.0, g=0.0, field=4.0)
    tr = qb.charge(m, jnp.linspace(0.0, 1.0, 65))
    mw = max_energy(tr)
    assert abs(mw.energy - 2.0) < 1e-10 and abs(mw.time - math.pi / 8) < 1e-6


def test_bad_parameters():
    from qbjax.models import ParameterError

    with pytest.raises(ParameterError, match="alpha"):
        SpinChainBattery(3, alpha=1.5)
    with pytest.raises(ParameterError, match="n must be <= 26"):
        SpinChainBattery(40)
    with pytest.raises(ParameterError, match="matrix"):
        SpinChainBattery(3, couplings="matrix")


def test_cli_spin_chain(capsys):
    code = main(["charge", "spin-chain", "--n", "3", "--alpha", "0.5", "--couplings", "power", "--grad", "alpha",
                 "--json"])
    out, _ = capsys.readouterr()
    assert code == 0
    data = json.loads(out)
    for key in ("max_power", "optimal_time", "energy_at_max_power", "grad", "max_work", "time_of_max_work", "params"):
        assert key in data
    assert data["params"]["couplings"] == "power" and data["params"]["alpha"] == 0.5


@pytest.mark.parametrize("args, needle", [
    (["--n", "0"], "--n"), (["--n", "40"], "GiB"), (["--alpha", "2"], "--alpha"), (["--g", "-1"], "--g"),
    (["--couplings", "star"], "--couplings"), (["--grad", "n"], "--grad"),
])
def test_cli_bad_input(capsys, args, needle):
    code = main(["charge", "spin-chain", *args, "--json"])
    out, err = capsys.readouterr()
    assert code == 2 and out == "" and needle in err and len(err.strip().splitlines()) == 1
