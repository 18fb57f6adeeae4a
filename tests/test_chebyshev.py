"""Chebyshev moment propagation: exactness, real arithmetic, the Lanczos enclosure and its fallback."""

import numpy as np
import pytest

import qbjax as qb
import qbjax.expansions as ex
from qbjax import representation as rep
from qbjax.model import Spec, term
from qbjax.models.spin_chain import SpinChainBattery
from qbjax.operators import Qubit
from qbjax.representation import closed

FIELDS = ("energy", "d_energy", "d2_energy", "variance")


@pytest.fixture(scope="module")
def chain():
    m = SpinChainBattery(8, alpha=0.5, couplings="power")
    ts = np.linspace(0.0, 1.2, 97)
    return m, ts, qb.charge(m, ts, method="spectral")


@pytest.fixture(scope="module")
def small_chain():
    m = SpinChainBattery(5, alpha=0.5, couplings="power")
    ts = np.linspace(0.0, 1.2, 49)
    return m, ts, qb.charge(m, ts, method="spectral")


def _close(a, b, rel=1e-10):
    for f in FIELDS:
        x, y = np.asarray(getattr(a, f)), np.asarray(getattr(b, f))
        assert np.max(np.abs(x - y)) <= rel * max(1.0, np.max(np.abs(y))), f


def test_chebyshev_matches_spectral(chain):
    m, ts, ref = chain
    _close(qb.charge(m, ts, method="chebyshev"), ref)


def test_several_chunks_match(chain, monkeypatch):
    """Chunks after the first restart from a complex state (the first is real)."""
    m, ts, ref = chain
    monkeypatch.setattr(ex, "CHEB_MAX_ARGUMENT", 6.0)
    plan = ex.chebyshev_plan(m.spec(), ts)
    assert plan[3] > 1
    traj, growth = ex.chebyshev_run(m.spec(), ts, plan)
    assert growth <= 1 + 1e-12
    _close(traj, ref)


@pytest.mark.parametrize("mode", ["moments", "states", "states_matvec"])
def test_evaluation_modes_match(small_chain, monkeypatch, mode):
    """Each evaluation mode (Gram matrices; save-time states by combinations or products), real and complex chunks."""
    m, ts, ref = small_chain
    monkeypatch.setattr(ex, "CHEB_MAX_ARGUMENT", 6.0)
    coeffs, c, r, n_chunks, diagonals, _, cost = ex.chebyshev_plan(m.spec(), ts)
    assert n_chunks > 1
    traj, growth = ex.chebyshev_run(m.spec(), ts, (coeffs, c, r, n_chunks, diagonals, mode, cost))
    assert growth <= 1 + 1e-12
    _close(traj, ref)


def test_lanczos_enclosure_is_tighter_and_checked(chain, monkeypatch):
    m, ts, ref = chain
    spec = m.spec()
    tight = ex.chebyshev_plan(spec, ts)
    loose = ex.chebyshev_plan(spec, ts, tight=False)
    terms = spec.charger + spec.battery + spec.coupling
    H = np.asarray(rep.dense(spec.space, terms, rep.basis(spec, use_symmetry=False)))
    ev = np.linalg.eigvalsh(H)
    for _, c, r, *_ in (tight, loose):
        assert c - r <= ev[0] and ev[-1] <= c + r  # both enclose the spectrum
    assert tight[2] < 0.8 * loose[2]
    # a deliberately too narrow estimate: the vectors grow, charge() redoes it rigorously
    monkeypatch.setattr(ex, "LANCZOS_MARGIN", -0.2)
    bad, growth = ex.chebyshev_run(spec, ts, ex.chebyshev_plan(spec, ts))
    assert growth > 1e3
    _close(qb.charge(m, ts, method="chebyshev"), ref)


def test_is_real():
    space = (("a", Qubit()), ("b", Qubit()))
    assert rep.is_real(space, (term(1.0, "a.sy", "b.sy"), term(2.0, "a.sx")))
    assert not rep.is_real(space, (term(1.0, "a.sy", "b.sx"),))
    assert not rep.is_real(space, (term(1.0 + 0j, "a.sx"),))


def test_complex_hamiltonian_uses_complex_vectors():
    """sigma_y on one qubit: H is complex, the Chebyshev path must stay complex and exact."""
    space = (("a", Qubit()), ("b", Qubit()))
    spec = Spec(space=space, charger=(term(0.3, "a.sz"),), battery=(term(0.5, "b.sz"),),
                coupling=(term(0.7, "a.sy", "b.sx"), term(0.2, "b.sy")), battery_dofs=("b",),
                initial=(("a", 1),), classical_initial={})
    ts = np.linspace(0.0, 3.0, 31)
    _close(qb.charge(spec, ts, method="chebyshev"), qb.charge(spec, ts, method="spectral"), rel=1e-11)


def test_krylov_matches_spectral(chain):
    """The Krylov propagator (explicit method): several steps, exact to its plan's bound."""
    m, ts, ref = chain
    plan = ex.krylov_plan(m.spec(), ts)
    assert plan is not None and plan[2] > 1  # more than one step
    traj = qb.charge(m, ts, method="krylov")
    assert traj.method == "krylov"
    _close(traj, ref)


def test_krylov_error_bound_is_an_upper_bound(chain):
    """The pilot's residual bound holds against the exact propagator on the first step."""
    from qbjax.dynamics.krylov import error_bound

    m, ts, _ = chain
    spec = m.spec()
    terms = spec.charger + spec.battery + spec.coupling
    H = np.asarray(rep.dense(spec.space, terms, rep.basis(spec, use_symmetry=False)))
    psi0 = np.asarray(closed.initial_tensor(spec)).reshape(-1).astype(complex)
    V, a, b = (np.asarray(x) for x in ex.krylov_pilot(spec, closed.operator_diagonals(spec)[0],
                                                            closed.initial_tensor(spec), 13))
    lam, U = np.linalg.eigh(H)
    for mm in (6, 12):
        taus = np.linspace(0.0, 0.4, 9)
        bound = error_bound(a, b, mm, taus)
        Tm = np.diag(a[:mm]) + np.diag(b[: mm - 1], 1) + np.diag(b[: mm - 1], -1)
        mu, Q = np.linalg.eigh(Tm)
        for tau, bd in zip(taus, bound, strict=True):
            exact = U @ (np.exp(-1j * lam * tau) * (U.conj().T @ psi0))
            approx = V[:mm].T @ (Q @ (np.exp(-1j * mu * tau) * Q[0]))
            assert np.linalg.norm(exact - approx) <= bd * (1 + 1e-6) + 1e-13


def test_traced_bessel_coefficients_match_scipy():
    import jax
    import jax.numpy as jnp
    import scipy.special as sps

    from qbjax.dynamics.chebyshev import bessel_sequence, chebyshev_coefficients, chebyshev_terms, traced_coefficients

    # from below the series cut-off (1e-12) to the largest chunk argument (250): absolute error of J_k <= 1e-14
    z = np.array([0.0, 1e-13, 1e-6, 0.3, 5.0, 40.0, 249.0])
    K = chebyshev_terms(249.0)
    J = np.asarray(jax.jit(lambda x: bessel_sequence(x, K))(jnp.asarray(z)))
    ref = sps.jv(np.arange(K + 1)[None, :], z[:, None])
    assert np.all(np.isfinite(J)) and np.max(np.abs(J - ref)) < 1e-14
    taus = np.linspace(0.1, 3.0, 7)
    K = chebyshev_terms(40.0 * 3.0)
    traced = jax.jit(lambda r: traced_coefficients(r, jnp.asarray(taus), K))(40.0)
    for a, b in zip(traced, chebyshev_coefficients(0.0, 40.0, taus, K, phase=False), strict=True):
        assert np.max(np.abs(np.asarray(a) - b)) < 1e-13


def test_traced_enclosure_is_rigorous_and_matches_the_concrete_bound():
    import jax

    from qbjax.models import DickeBattery

    for m in (DickeBattery(3, 0.7, cutoff=20), SpinChainBattery(5, alpha=0.5, couplings="power")):
        spec = m.spec()
        w = np.linalg.eigvalsh(np.asarray(rep.dense(spec.space, spec.charger + spec.battery + spec.coupling,
                                                    rep.basis(spec))))
        c, r = (float(x) for x in jax.jit(ex.enclosure)(spec))
        assert c - r <= w.min() + 1e-12 and w.max() - 1e-12 <= c + r
        _, off = rep.split_diagonal(spec.space, spec.charger + spec.battery + spec.coupling)
        np.testing.assert_allclose(np.asarray(rep.row_bound(spec.space, off, traced=True)),
                                   rep.row_bound(spec.space, off), rtol=1e-15)


def test_auto_expands_when_its_cost_model_says_so_and_agrees_with_eigh(monkeypatch):
    """Auto's cost model (issue 16): a 735-state Dicke block is expanded (~10x cheaper than eigh here), a
    55-state one diagonalised; both agree with the dense spectral run, and the battery state at a time
    (the expansion of one state) with scipy's expm_multiply of the dense H."""
    import math

    import scipy.sparse.linalg as spla

    from qbjax.expansions import state_at
    from qbjax.models import DickeBattery

    for n, expected in ((4, "spectral"), (20, "chebyshev")):
        m = DickeBattery(n, 0.5, cutoff=3 * n + 10)
        ts = np.linspace(0.0, 3 / (0.5 * math.sqrt(n)), 201)
        auto, dense = qb.charge(m, ts), qb.charge(m, ts, method="spectral")
        assert auto.method == expected
        _close(auto, dense, rel=1e-11)
    m = DickeBattery(20, 0.5, cutoff=100)  # a 1060-state block: one expansion beats eigh for the state
    spec, t = m.spec(), 0.37
    calls = []
    monkeypatch.setattr(ex, "state_at", lambda *a, **k: calls.append(a) or state_at(*a, **k))
    b = rep.basis(spec)
    H = np.asarray(rep.dense(spec.space, spec.charger + spec.battery + spec.coupling, b))
    psi = spla.expm_multiply(-1j * t * H, np.asarray(rep.initial_vector(spec, b), complex))
    full = np.asarray(b.embed(psi)).reshape(spec.dims)
    rho = np.einsum("ai,aj->ij", full, full.conj())  # trace out the cavity (axis 0)
    np.testing.assert_allclose(np.asarray(qb.battery_state(m, t)), rho, atol=1e-12)
    assert len(calls) == 1
