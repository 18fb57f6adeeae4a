"""Seed 004: charger + batteries in collective reservoirs, exact and second-order mean field.

Cost: a handful of compilations (tiny exact problems, two mean-field
structures); every tolerance is stated with the reason for its size.
"""

import math
from fractions import Fraction

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import qbjax  # noqa: F401  (float64)
from qbjax.cli import main
from qbjax.dynamics.cumulants import Collective, Individual, derive, initial_moments
from qbjax.models import ParameterError
from qbjax.models.reservoirs import ReservoirBattery, charge_reservoirs, final_battery_energy


def _qutip_reference(model: ReservoirBattery, ts, steady: bool = False):
    """Energy densities from QuTiP mesolve on the same collective spins (test-only reference);
    ``steady``: from QuTiP's ``steadystate`` instead (direct solve; unique with pumping)."""
    qutip = pytest.importorskip("qutip")
    sizes = model.sizes
    dims = [n + 1 for n in sizes]

    def op(k, name):
        ops = [qutip.qeye(d) for d in dims]
        ops[k] = qutip.jmat(Fraction(sizes[k], 2), name) if name != "z" else qutip.jmat(sizes[k] / 2, "z")
        return qutip.tensor(ops)

    jm = [qutip.tensor([qutip.jmat(n / 2, "-") if i == k else qutip.qeye(d) for i, (n, d) in
                        enumerate(zip(sizes, dims))]) for k in range(len(sizes))]
    jz = [qutip.tensor([qutip.jmat(n / 2, "z") if i == k else qutip.qeye(d) for i, (n, d) in
                        enumerate(zip(sizes, dims))]) for k in range(len(sizes))]
    gd, gu, nth = float(model.gamma_down), float(model.gamma_up), float(model.n_thermal)
    c_ops = []
    for k in range(1, len(sizes)):  # the paper's L = 2 D: qutip collapse operators sqrt(2 gamma) L
        L = jm[0] + jm[k]
        c_ops.append(math.sqrt(2 * gd * (1 + nth)) * L)
        if nth > 0:
            c_ops.append(math.sqrt(2 * gd * nth) * L.dag())
    if gu > 0:
        c_ops.append(math.sqrt(2 * gu) * jm[0].dag())
    # qutip's jmat basis runs m = j .. -j: excitation n sits at index N - n
    excited = (model.charger_excited,) + (model.battery_excited,) * (len(sizes) - 1)
    states = [qutip.basis(d, n - e) for d, n, e in zip(dims, sizes, excited)]
    psi0 = qutip.tensor(states)
    H = 0 * jz[0]
    if steady:
        rho = qutip.steadystate(H, c_ops)
        return np.array([qutip.expect(z, rho) / n + 0.5 for z, n in zip(jz, sizes)])
    res = qutip.mesolve(H, psi0 * psi0.dag(), np.asarray(ts), c_ops=c_ops, e_ops=jz,
                        options={"atol": 1e-12, "rtol": 1e-10})
    return np.array([np.asarray(e) / n + 0.5 for e, n in zip(res.expect, sizes)])


# ------------------------------------------------------------ derived mean-field equations


def test_cumulant_equations_match_hand_derivation():
    """Single ensemble under D[J^-]: dz = -G (1 + z) - 2 G (N - 1) p (exact), and the p equation."""
    N = 7
    eqs = derive((N,), (Collective(((0, 1.0),)),), "full")
    rng = np.random.default_rng(0)
    z, p, w = rng.uniform(-0.5, 0.5, 3)
    y = np.zeros(len(eqs.variables))
    y[eqs.z_index(0)], y[eqs.index(((0, "+"), (0, "-")))], y[eqs.index(((0, "z"), (0, "z")))] = z, p, w
    from qbjax.dynamics.cumulants import cumulant_rhs

    G = 0.37
    d = np.asarray(cumulant_rhs(eqs, [G])(jnp.asarray(y)))
    assert d[eqs.z_index(0)] == pytest.approx(-G * (1 + z) - 2 * G * (N - 1) * p, abs=1e-14)
    # d<s+_i s-_j> = G [-p + (z + w)/2 + (N - 2) z p]  (third-order <s+_k sz_i s-_j> -> z p)
    assert d[eqs.index(((0, "+"), (0, "-")))] == pytest.approx(G * (-p + (z + w) / 2 + (N - 2) * z * p), abs=1e-14)
    # the factorised closure has no w variable and uses z^2 in its place
    fac = derive((N,), (Collective(((0, 1.0),)),), "factorized")
    assert len(fac.variables) == 2
    yf = np.array([z, p]) if fac.variables[0] == ((0, "z"),) else np.array([p, z])
    df = np.asarray(cumulant_rhs(fac, [G])(jnp.asarray(yf)))
    assert df[fac.index(((0, "+"), (0, "-")))] == pytest.approx(G * (-p + (z + z * z) / 2 + (N - 2) * z * p),
                                                                abs=1e-14)


def test_cumulant_channels_pump_individual_and_two_ensembles():
    """Pumping mirrors decay (z -> -z); individual decay damps z at G(1 + z) and p at G; the cross
    source of a shared reservoir is G (z_e + z_f + 2 w_ef)/4."""
    eqs = derive((5, 3), (Collective(((0, 1.0), (1, 1.0))), Collective(((0, 1.0),), raising=True),
                          Individual(1)), "full")
    from qbjax.dynamics.cumulants import cumulant_rhs

    y = np.zeros(len(eqs.variables))
    z0, z1 = 0.3, -0.6
    y[eqs.z_index(0)], y[eqs.z_index(1)] = z0, z1
    y[eqs.index(((0, "z"), (1, "z")))] = 0.1
    decay, pump, ind = (np.asarray(cumulant_rhs(eqs, r)(jnp.asarray(y))) for r in
                        ([1.0, 0, 0], [0, 1.0, 0], [0, 0, 1.0]))
    assert decay[eqs.z_index(0)] == pytest.approx(-(1 + z0))
    assert pump[eqs.z_index(0)] == pytest.approx(1 - z0)
    assert ind[eqs.z_index(1)] == pytest.approx(-(1 + z1)) and ind[eqs.z_index(0)] == 0
    assert decay[eqs.index(((0, "+"), (1, "-")))] == pytest.approx((z0 + z1 + 2 * 0.1) / 4)
    # initial moments of Dicke states: w_ee = 1 - 4 p_ee, p_ee = n (N - n) / (N (N - 1))
    y0 = initial_moments(eqs, (2, 3))
    p00 = 2 * 3 / (5 * 4)
    assert y0[eqs.index(((0, "+"), (0, "-")))] == pytest.approx(p00)
    assert y0[eqs.index(((0, "z"), (0, "z")))] == pytest.approx(1 - 4 * p00)


# ------------------------------------------------------------ exact solver


def test_exact_matches_qutip_with_pump_and_temperature():
    """Two reservoirs, collective pump and thermal absorption, N_C = 3, N_B = 2: the U(1)-sector solver
    against QuTiP's mesolve on the full (4 * 3 * 3)^2 density matrix; both at rtol 1e-10 -> 1e-7."""
    model = ReservoirBattery(3, 2, 2, gamma_down=1.0, gamma_up=0.7, n_thermal=0.2)
    ts = jnp.linspace(0.0, 2.0, 9)
    tr = charge_reservoirs(model, ts, method="exact")
    ref = _qutip_reference(model, ts)
    got = np.vstack([np.asarray(tr.charger)[None], np.asarray(tr.batteries)])
    assert np.max(np.abs(got - ref)) < 1e-7
    assert tr.batteries[0, -1] > 0.1  # something happened


def test_exact_long_window_stops_at_the_certified_stationary_state():
    """A window 100x the relaxation: the exact solver proves the state stationary and stops (issue 18).

    Every point agrees with integrating the whole window (under jit, where no stop is taken) to 1e-8,
    the later points with QuTiP's steadystate to 1e-8; the stop lies well inside the window."""
    model = ReservoirBattery(3, 2, 2, gamma_down=1.0, gamma_up=0.7, n_thermal=0.2)
    ts = jnp.linspace(0.0, 200.0, 41)
    tr = charge_reservoirs(model, ts, method="exact")
    assert tr.stationary_from is not None and 0 < tr.stationary_from < 50
    full = jax.jit(lambda t: charge_reservoirs(model, t, method="exact"))(ts)
    got = np.vstack([np.asarray(tr.charger)[None], np.asarray(tr.batteries)])
    ref = np.vstack([np.asarray(full.charger)[None], np.asarray(full.batteries)])
    assert np.max(np.abs(got - ref)) < 1e-8
    assert np.max(np.abs(got[:, -1] - _qutip_reference(model, ts, steady=True))) < 1e-8
    # no pump and one shared reservoir: dark states make the stationary state depend on the start;
    # nothing is certified and the whole window is integrated (the dark-state value is tested below)
    dark = charge_reservoirs(ReservoirBattery(3, 2, 1, shared=True), jnp.linspace(0.0, 50.0, 11), method="exact")
    assert dark.stationary_from is None


def test_exact_refuses_too_large_and_individual_decay():
    with pytest.raises(MemoryError, match="GiB"):
        charge_reservoirs(ReservoirBattery(10**7, 100, 3), jnp.linspace(0, 1e-6, 3), method="exact")
    with pytest.raises(ParameterError, match="meanfield"):
        charge_reservoirs(ReservoirBattery(4, 1, 1, gamma_individual=0.1), jnp.linspace(0, 1, 3), method="exact")
    with pytest.raises(ParameterError, match="n_charger"):
        ReservoirBattery(0, 1, 1)
    with pytest.raises(ParameterError, match="gamma_up"):
        ReservoirBattery(4, 1, 1, gamma_up=-1.0)


# ------------------------------------------------------------ exact vs mean field


def _dark_state_battery_density(nc: int, nb: int) -> float:
    """One shared reservoir, no pump: each total-J component of |j_C, j_C> |j_B, -j_B> decays to |J, -J>,
    where the projection theorem gives <J_B^z> = -J (J(J+1) + j_B(j_B+1) - j_C(j_C+1)) / (2J(J+1))."""
    # |<j_C j_C; j_B -j_B | J M>|^2 from J^2 on the M = j_C - j_B block, |m_C, m_B> with m_C + m_B = M
    # (at most 2 j_B + 1 states; numpy, no symbolic algebra)
    jc, jb = Fraction(nc, 2), Fraction(nb, 2)
    M = jc - jb
    mbs = [-jb + k for k in range(nb + 1) if abs(M - (-jb + k)) <= jc]
    pairs = [(M - mb, mb) for mb in mbs]

    def ladder(j, m, s):  # <m + s| J^s |m>
        return float(np.sqrt(float(j * (j + 1) - m * (m + s))))

    J2 = np.zeros((len(pairs), len(pairs)))
    for a, (mc, mb) in enumerate(pairs):
        J2[a, a] = float(jc * (jc + 1) + jb * (jb + 1) + 2 * mc * mb)
        for b, (mc2, mb2) in enumerate(pairs):
            if mc2 == mc + 1 and mb2 == mb - 1:  # J_C^+ J_B^-
                J2[b, a] += ladder(jc, mc, 1) * ladder(jb, mb, -1)
            if mc2 == mc - 1 and mb2 == mb + 1:  # J_C^- J_B^+
                J2[b, a] += ladder(jc, mc, -1) * ladder(jb, mb, 1)
    lam, vecs = np.linalg.eigh(J2)
    start = pairs.index((jc, -jb))
    jz = 0.0
    for value, vec in zip(lam, vecs.T, strict=True):
        J = (np.sqrt(1 + 4 * value) - 1) / 2
        J = round(2 * J) / 2
        weight = vec[start] ** 2
        if J > 0:
            jz += weight * float(-J * (J * (J + 1) + jb * (jb + 1) - jc * (jc + 1)) / (2 * J * (J + 1)))
    return jz / nb + 0.5


def test_exact_steady_state_and_meanfield_at_largest_cheap_size():
    """N_C = 100, N_B = 5, one reservoir, on [0, 30/N_C] plus one late time.

    Exact: at the late time the dark-state value of the projection theorem (1e-6); the total
    excitation never increases without pumping; the battery charges efficiently (N_C >> N_B).

    Mean field (closure "full"): third-order cumulants are dropped, O(1/N) relative, so the plateau
    must agree within 3/N_C = 0.03 (measured 0.009; 0.027, 0.017, 0.005 at N_C = 25, 50, 200: ~1/N_C).  The burst
    is a fluctuation-triggered instability whose spread of delays the mean field does not average
    over: along the trajectory the bound is 0.15 (measured 0.11)."""
    nc, nb = 100, 5
    model = ReservoirBattery(nc, nb, 1)
    ts = jnp.asarray(np.append(np.linspace(0.0, 30.0 / nc, 31), 3.0))
    ex = charge_reservoirs(model, ts, method="exact")
    mf = charge_reservoirs(model, ts, method="meanfield", closure="full")
    assert float(ex.batteries[0, -1]) == pytest.approx(_dark_state_battery_density(nc, nb), abs=1e-6)
    total = nc * np.asarray(ex.charger) + nb * np.asarray(ex.batteries[0])
    assert np.all(np.diff(total) <= 1e-9)
    assert float(ex.batteries[0, -2]) > 0.95
    assert abs(float(mf.batteries[0, -2] - ex.batteries[0, -2])) < 3 / nc
    assert abs(float(mf.charger[-2] - ex.charger[-2])) < 3 / nc
    assert float(jnp.max(jnp.abs(mf.batteries - ex.batteries))) < 0.15


# ------------------------------------------------------------ gradient, CLI


def test_gradient_wrt_pump_matches_finite_differences():
    """d E_B(t) / d gamma_up through the mean-field ODE (reverse mode) vs central differences
    (h = 1e-4, truncation ~ h^2 E''' ~ 1e-8; ODE tolerance 1e-10): relative 1e-5."""
    from qbjax.dynamics import ODEOptions

    base = ReservoirBattery(10**4, 10, 3, gamma_up=1.2)
    t_max = 8.0 / 10**4
    opts = ODEOptions(rtol=1e-10, atol=1e-12, solver="tsit5")  # cheaper to compile than Dopri8

    @eqx.filter_jit
    def value_and_grad(up):
        return jax.value_and_grad(lambda u: final_battery_energy(eqx.tree_at(lambda m: m.gamma_up, base, u),
                                                                 t_max, options=opts))(up)

    e0, g = value_and_grad(jnp.asarray(1.2))
    h = 1e-4
    fd = (value_and_grad(jnp.asarray(1.2 + h))[0] - value_and_grad(jnp.asarray(1.2 - h))[0]) / (2 * h)
    assert abs(float(g)) > 1e-2
    assert float(g) == pytest.approx(float(fd), rel=1e-5)


def test_cli_keys_and_bad_input(capsys):
    """Keys, params and series; the mean-field run reuses the compilation of the test above.
    (The paper-size claims, N_C = 10^7, are checked in the seed-004 notebook test.)"""
    import json

    rc = main(["charge", "reservoirs", "--n-charger", "1e2", "--n-battery", "5", "--batteries", "1",
               "--method", "meanfield", "--t-max", "0.3", "--num-times", "32", "--series", "--json"])
    out = json.loads(capsys.readouterr().out)
    assert rc == 0 and out["method"] == "meanfield" and out["closure"] == "full"
    assert len(out["battery_energy_density"]) == 1 and out["battery_energy_density"][0] > 0.9
    assert 0 <= out["charger_energy_density"] < 0.1
    for key in ("n_charger", "n_battery", "batteries", "pump", "gamma_down", "temperature", "shared", "t_max",
                "method", "closure", "charger_energy", "battery_energy", "individual_decay"):
        assert key in out["params"]
    assert out["params"]["n_charger"] == 100 and out["params"]["gamma_up"] == 0.0
    assert len(out["series"]["t"]) == 32 and len(out["series"]["batteries"]) == 1
    for argv, name in ((["--n-charger", "0"], "--n-charger"), (["--n-battery", "2.5"], "--n-battery"),
                       (["--pump", "-1"], "--pump"), (["--n-charger", "1e7", "--method", "exact"], "GiB"),
                       (["--bogus", "1"], "--bogus"),
                       # issue 18, item 4: each refused within seconds, before any work
                       (["--n-charger", "1e30"], "--n-charger must be an integer in [1, 2^53"),
                       (["--n-charger", "1e7", "--n-battery", "100", "--batteries", "1000000"],
                        "batteries must be <= 128"),
                       (["--batteries", "200", "--method", "meanfield"], "batteries must be <= 128")):
        rc = main(["charge", "reservoirs", *argv, "--json"])
        err = capsys.readouterr().err
        assert rc == 2 and name in err and len(err.strip().splitlines()) == 1


def test_an_overwhelming_pump_pins_the_charger(capsys):
    """--pump 1e12 (was a divergence traceback): the charger is held inverted (density 1 - O(1/pump)) and
    the battery is Zeno-blocked (O(1/pump)); the stationary stop makes the long window cheap."""
    import json

    rc = main(["charge", "reservoirs", "--n-charger", "4", "--n-battery", "2", "--pump", "1e12", "--json"])
    out = json.loads(capsys.readouterr().out)
    assert rc == 0 and out["method"] == "exact" and out["stationary_from"] is not None
    assert 1 - 1e-9 < out["charger_energy_density"] <= 1 + 1e-12
    assert 0 <= out["battery_energy_density"][0] < 1e-9


def test_minimal_pump_is_the_first_crossing_found_by_newton():
    """The smallest pump reaching the target at t (mean field, N_C = 1e4, N_B = 10, m = 2): the bracketed
    Newton root of qbjax.optimize agrees with scipy's brentq on the same energy function to 1e-7, in a few steps."""
    from scipy.optimize import brentq

    from qbjax.models.reservoirs import minimal_pump

    base = ReservoirBattery(10**4, 10, 2, gamma_up=1.0)
    t_max, target = 60.0 / 10**4, 0.9
    res = minimal_pump(base, target, t_max, grid=9, tol=1e-10)
    lo, hi = res["bracket"]

    def energy(up):
        return float(final_battery_energy(eqx.tree_at(lambda m: m.gamma_up, base, jnp.asarray(up)), t_max))

    assert energy(lo) < target <= energy(hi) and lo <= res["gamma_up"] <= hi
    assert abs(res["energy"] - target) <= 1e-10 and res["steps"] <= 8
    assert res["gamma_up"] == pytest.approx(brentq(lambda u: energy(u) - target, lo, hi, xtol=1e-12), abs=1e-7)
