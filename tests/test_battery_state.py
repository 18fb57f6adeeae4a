"""Reduced battery state and its ergotropy."""

import numpy as np
import qutip
from helpers import qutip_dicke

import qbjax as qb


def test_dicke_reduced_state_against_qutip():
    n, g, cutoff, t = 2, 0.5, 30, 0.9
    m = qb.DickeBattery(n, g, 1.0, cutoff=cutoff)
    rho = np.asarray(qb.battery_state(m, t))
    ref = qutip_dicke(n, g, 1.0, cutoff)
    psi = qutip.sesolve(ref.H, ref.psi0, [0, t], options={"atol": 1e-12, "rtol": 1e-12}).states[-1]
    ref = psi.ptrace(1).full()[::-1, ::-1]  # qutip orders m = +j .. -j
    np.testing.assert_allclose(rho, ref, atol=1e-9)


def test_ergotropy_bounds_and_energy():
    m = qb.SpinBattery(4, 0.2, 1.0)
    mp = qb.max_power(qb.charge(m))
    rho = qb.battery_state(m, mp.time)
    np.testing.assert_allclose(np.trace(rho), 1.0, atol=1e-12)
    e = float(np.real(np.trace(np.asarray(qb.charging.battery_hamiltonian(m.spec())) @ np.asarray(rho))))
    np.testing.assert_allclose(e, mp.energy, rtol=1e-7)
    full = float(qb.battery_ergotropy(m, mp.time))
    sector = float(qb.battery_ergotropy(m, mp.time, physical=False))
    assert 0 <= sector <= full <= e + 1e-12
