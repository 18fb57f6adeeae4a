"""Spin battery (seed 000, Sec. V, Fig. 2)."""

import numpy as np
import pytest
import qutip

import qbjax as qb
from qbjax.analysis import model_max_power


def test_gamma_classical_is_n_for_any_tilt():
    for tilt in (1e-3, 1e-2, 0.2):
        p1 = model_max_power(qb.SpinBattery(1, 0.3, 1.0, tilt=tilt), classical=True).power
        for n in (2, 7):
            pn = model_max_power(qb.SpinBattery(n, 0.3, 1.0, tilt=tilt), classical=True).power
            np.testing.assert_allclose(pn / (n * p1), n, rtol=1e-7)


def test_tilt_changes_power_but_not_gamma():
    a = model_max_power(qb.SpinBattery(3, 0.3, 1.0, tilt=1e-3), classical=True).power
    b = model_max_power(qb.SpinBattery(3, 0.3, 1.0, tilt=1e-1), classical=True).power
    assert b > 1.5 * a  # escaping the pole is faster from a larger tilt


def test_untilted_classical_spins_do_not_move():
    tr = qb.charge(qb.SpinBattery(4, 0.3, 1.0, tilt=0.0), classical=True)
    np.testing.assert_allclose(tr.energy, 0.0, atol=1e-14)


def test_classical_energy_conservation():
    m = qb.SpinBattery(5, 0.3, 1.0, tilt=0.3)
    spec = m.spec()
    from qbjax import representation as rep
    from qbjax.dynamics import hamilton_flow

    h = rep.classical_hamiltonian(spec.space, spec.charger + spec.battery + spec.coupling)
    x0 = rep.classical_state(spec)
    xs = hamilton_flow(h, rep.classical_kinds(spec.space), x0, qb.time_grid(m))
    energies = np.array([h(x) for x in xs])
    np.testing.assert_allclose(energies, energies[0], rtol=1e-9)
    lengths = np.linalg.norm(np.asarray(xs).reshape(len(xs), 2, 3), axis=-1)
    np.testing.assert_allclose(lengths, 2.5, rtol=1e-9)


@pytest.mark.parametrize("n", [1, 3, 6])
def test_against_qutip(n):
    g, w = 0.3, 1.0
    m = qb.SpinBattery(n, g, w)
    tr = qb.charge(m)
    j = n / 2
    I = qutip.qeye(n + 1)
    jx, jy, jz = qutip.jmat(j, "x"), qutip.jmat(j, "y"), qutip.jmat(j, "z")
    H = (w * (qutip.tensor(jz, I) + qutip.tensor(I, jz) + n)
         + 4 * g * (qutip.tensor(jx, jx) + qutip.tensor(jy, jy)))
    HB = w * (qutip.tensor(I, jz) + n / 2)
    psi0 = qutip.tensor(qutip.basis(n + 1, 0), qutip.basis(n + 1, n))  # qutip: index 0 is m = +j
    res = qutip.sesolve(H, psi0, np.asarray(tr.ts), e_ops=[HB], options={"atol": 1e-12, "rtol": 1e-12})
    np.testing.assert_allclose(tr.energy, res.expect[0], atol=1e-8 * n)


def test_quantum_gamma_grows_linearly():
    g = {}
    for n in (16, 64):
        p1 = model_max_power(qb.SpinBattery(1, 0.2, 1.0)).power
        g[n] = float(model_max_power(qb.SpinBattery(n, 0.2, 1.0)).power / (n * p1))
    # Fig. 2(a): Gamma_qu ~ c N with c of order 0.25-0.35 at these sizes
    assert 0.25 < g[64] / 64 < 0.35
    assert g[64] / g[16] > 3.0
