"""Invariants of random small open systems (issue 18, item 5): 3 structures x 18 seeds = 54 specs.

Each spec is a charger (qubit, 3-level boson or spin 1) coupled to a qubit battery by an exchange term,
with random frequencies, couplings and rates (all channels on, so the stationary state is unique), and a
random pure initial state.  For each one:

* along the Lindblad trajectory the state keeps trace 1 (1e-10), stays Hermitian (1e-12) and positive
  (lowest eigenvalue > -1e-9), and E_B(t) lies in the spectrum of H_B;
* the steady state's energy equals the trajectory's at t = 1000 (slowest rate >= 0.05: relaxed to
  e^{-25}), 1e-8;
* it equals QuTiP's ``steadystate`` on operators built here from QuTiP's own matrices (direct: 1e-8;
  propagator method, converged by QuTiP to 1e-5 in the state: 1e-4), and every figure of merit is finite
  and in range.

One compilation per structure (the coefficients are leaves; the initial state is an argument).
"""

import numpy as np
import pytest
import qutip

import qbjax as qb
from qbjax.model import Dissipator, Spec, Term, term
from qbjax.operators import Boson, Qubit, Spin
from qbjax.steady import steady_figures

SEEDS = range(18)


def _qubit_ops():
    sm = np.array([[0.0, 1.0], [0.0, 0.0]])  # qbjax's order: ground first, sigma^- = |0><1|
    return {"sm": sm, "sp": sm.T, "sz": np.diag([-1.0, 1.0])}


def _charger(kind):
    """``(dof, ops as QuTiP-independent numpy matrices, frequency term, exchange pair, channels)``."""
    if kind == "qubit":
        return (Qubit(), _qubit_ops(), ("sz", 0.5), ("sp", "sm"), ("sm", "sp", "sz"))
    if kind == "boson":
        a = np.diag(np.sqrt([1.0, 2.0]), 1)
        return (Boson(3), {"a": a, "adag": a.T, "n": np.diag([0.0, 1.0, 2.0])}, ("n", 1.0), ("adag", "a"),
                ("a", "adag"))
    jp = np.diag([np.sqrt(2.0), np.sqrt(2.0)], -1)  # levels by excitation m + j: index 0 is m = -1
    return (Spin(1), {"jp": jp, "jm": jp.T, "jz": np.diag([-1.0, 0.0, 1.0])}, ("jz", 1.0), ("jp", "jm"),
            ("jm", "jp"))


def _random_system(kind, seed):
    rng = np.random.default_rng([seed, ["qubit", "boson", "spin"].index(kind)])
    dof, ops, (fop, fscale), (up, down), channels = _charger(kind)
    wc, wb = rng.uniform(0.5, 1.5, 2)
    g = rng.uniform(0.05, 0.5)
    rates_c = rng.uniform(0.05, 0.5, len(channels))
    rates_b = rng.uniform(0.05, 0.5, 2)
    spec = Spec(space=(("c", dof), ("b", Qubit())), charger=(term(wc * fscale, f"c.{fop}"),),
                battery=(term(0.5 * wb, "b.sz"), Term(0.5 * wb)),
                coupling=(term(g, f"c.{up}", "b.sm"), term(g, f"c.{down}", "b.sp")), battery_dofs=("b",),
                initial=(), classical_initial={},
                dissipators=tuple(Dissipator(r, term(1.0, f"c.{op}")) for r, op in zip(rates_c, channels))
                + (Dissipator(rates_b[0], term(1.0, "b.sm")), Dissipator(rates_b[1], term(1.0, "b.sp"))))
    d = ops[fop].shape[0]
    psi = rng.normal(size=2 * d) + 1j * rng.normal(size=2 * d)
    psi /= np.linalg.norm(psi)
    # the same system from QuTiP's matrices (charger first: qbjax's tensor order)
    q = _qubit_ops()
    c = {k: qutip.tensor(qutip.Qobj(v), qutip.qeye(2)) for k, v in ops.items()}
    b = {k: qutip.tensor(qutip.qeye(d), qutip.Qobj(v)) for k, v in q.items()}
    HB = 0.5 * wb * (b["sz"] + 1)
    H = wc * fscale * c[fop] + HB + g * (c[up] * b["sm"] + c[down] * b["sp"])
    c_ops = [np.sqrt(r) * c[op] for r, op in zip(rates_c, channels)]
    c_ops += [np.sqrt(rates_b[0]) * b["sm"], np.sqrt(rates_b[1]) * b["sp"]]
    return spec, psi, H, HB, c_ops, wb


# the 3-level boson is the system itself (QuTiP gets the same truncated matrices): its top-level warning is moot
@pytest.mark.filterwarnings("ignore::qbjax.TruncationWarning")
@pytest.mark.parametrize("kind", ["qubit", "boson", "spin"])
def test_random_open_systems_keep_their_invariants_and_agree_with_qutip(kind):
    ts = np.linspace(0.0, 6.0, 13)
    for seed in SEEDS:
        spec, psi, H, HB, c_ops, wb = _random_system(kind, seed)
        where = f"{kind} seed {seed}"
        traj = qb.charge(spec, ts, method="lindblad", initial_state=psi, save_states=True)
        rho = np.asarray(traj.states)
        assert np.max(np.abs(np.trace(rho, axis1=1, axis2=2) - 1.0)) < 1e-10, where
        assert np.max(np.abs(rho - np.conj(np.swapaxes(rho, 1, 2)))) < 1e-12, where
        assert np.min(np.linalg.eigvalsh(rho)) > -1e-9, where
        energy = np.asarray(traj.energy)
        assert np.all(np.isfinite(energy)) and energy.min() > -1e-10 and energy.max() < wb + 1e-10, where
        # the same dynamics in QuTiP (mesolve from the same state): E_B(t) to 1e-7
        ref = qutip.mesolve(H, qutip.ket2dm(qutip.Qobj(psi, dims=[H.dims[0], [1, 1]])), ts, c_ops, e_ops=[HB],
                            options={"atol": 1e-12, "rtol": 1e-10})
        assert np.max(np.abs(energy - np.real(ref.expect[0]))) < 1e-7, where

        fig = steady_figures(spec)
        e_ss = float(fig.energy)
        late = qb.charge(spec, np.array([0.0, 1000.0]), method="lindblad", initial_state=psi)
        assert abs(float(late.energy[-1]) - e_ss) < 1e-8, where
        direct = qutip.expect(HB, qutip.steadystate(H, c_ops, method="direct"))
        assert abs(e_ss - direct) < 1e-8, where
        for value in (fig.energy, fig.variance, fig.ergotropy, fig.ergotropy_sector):
            assert np.isfinite(float(value)), where
        assert -1e-10 <= float(fig.ergotropy) <= e_ss + 1e-10 and 0 <= float(fig.variance) <= wb**2 / 4 + 1e-10

    # QuTiP's propagator method (repeated exp(L T) until the state changes by < 1e-5): on the last spec
    prop = qutip.expect(HB, qutip.steadystate(H, c_ops, method="propagator"))
    assert abs(e_ss - prop) < 1e-4
