"""The stationary regime, proved: stop integrating once the rest of the window provably changes nothing.

For a time-independent Lindblad generator ``L`` the dynamics contracts the
trace norm.  So if a state ``rho*`` is stationary (``L rho* = s`` with a
tiny residual ``s``) and the current state ``R`` is close to it, every
later state is at least as close:

    || rho(t) - rho* ||_1 <= || R - rho* ||_1 + (t - t_stop) || s ||_1     for all t >= t_stop,

with no assumption on the spectral gap.  :class:`Certifier` finds such a
``rho* = R + delta`` by one sparse solve (``L delta = -L R`` with
``tr delta = 1 - tr R``: the generator with one row replaced by the trace,
nonsingular exactly when the stationary state is unique; one LU per run,
reused), computes the bound and accepts it below a tolerance.  A
degenerate stationary space (a singular bordered matrix) never certifies:
the caller integrates the whole window.

Used by the exact collective solver (:mod:`qbjax.dynamics.collective`) and
by the Lindblad method of :func:`qbjax.charge` (:func:`qbjax.propagators.stationary_lindblad`).
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spla

__all__ = ["Certifier", "liouvillian_matrix", "density_trace_norm", "STATIONARY_TOL", "GROWTH"]

#: The stop's trace-norm tolerance, in units of the ODE's ``rtol`` (at least ``1e-10``).
STATIONARY_TOL = 10.0
#: Each integration piece is this much longer than the previous (the stop overshoots by at most this factor).
GROWTH = 1.25


def liouvillian_matrix(H, jumps):
    """The Lindblad generator on row-major ``vec(rho)`` as a scipy CSR matrix (``vec(A X B) = (A kron B^T) vec(X)``).

    ``H``: ``(d, d)``; ``jumps``: ``[(rate, L)]`` with dense or sparse ``L`` (concrete).
    """
    Hn = sp.csr_matrix(np.asarray(H))
    d = Hn.shape[0]
    eye = sp.identity(d, format="csr")
    out = -1j * (sp.kron(Hn, eye) - sp.kron(eye, Hn.T))
    for rate, L in jumps:
        Ln = sp.csr_matrix(np.asarray(L))
        LdL = (Ln.conj().T @ Ln).tocsr()
        out = out + float(rate) * (sp.kron(Ln, Ln.conj()) - 0.5 * sp.kron(LdL, eye) - 0.5 * sp.kron(eye, LdL.T))
    return out.tocsr()


def density_trace_norm(d: int):
    """``X (flattened d x d) -> (||X||_1, lowest eigenvalue)`` of its Hermitian part."""

    def norm(X):
        X = np.asarray(X).reshape(d, d)
        w = np.linalg.eigvalsh(0.5 * (X + X.conj().T))
        return float(np.abs(w).sum()), float(w.min())

    return norm


class Certifier:
    """Proves a state stationary to within ``tol`` (trace norm) for a time ahead, or says not yet.

    Arguments:
        L: the generator (scipy sparse) on the flattened state.
        trace: the trace as a vector (``tr X = trace @ X``).
        trace_norm: ``X -> (||X||_1, lowest eigenvalue)`` on flattened states.
        dim: the Hilbert-space dimension ``D`` (``||X||_1 <= sqrt(D) ||X||_F`` bounds the residual's norm).
        tol: the accepted bound.
        ordering: SuperLU's column ordering (``"NATURAL"`` suits banded generators).
    """

    def __init__(self, L, trace, trace_norm, dim: int, tol: float, ordering: str = "COLAMD"):
        self.L, self.trace, self.trace_norm, self.dim, self.tol = L, np.asarray(trace), trace_norm, dim, tol
        self.ordering = ordering
        self.lu, self.failed = None, False
        self.row = int(np.flatnonzero(self.trace)[0])
        self.norm = float(abs(L).sum(axis=0).max())  # ||L||_1 of the flattened operator

    def __call__(self, R, ahead: float):
        """``(rho*, bound)`` when ``R`` (flattened) is certified for ``ahead`` more time units, else ``None``."""
        if self.failed:
            return None
        R = np.asarray(R).ravel()
        r = self.L @ R
        # far from stationary, the solve cannot certify (||delta||_1 >= ||delta||_F >~ ||r|| / ||L||)
        if np.linalg.norm(r) > 1e3 * self.tol * self.norm:
            return None
        if self.lu is None:
            M = self.L.tolil()
            M[self.row, :] = self.trace
            try:
                self.lu = spla.splu(M.tocsc(), permc_spec=self.ordering)
            except RuntimeError:  # exactly singular: the stationary state is not unique
                self.failed = True
                return None
        b = -r
        b[self.row] = 1.0 - self.trace @ R
        delta = self.lu.solve(b)
        if not np.all(np.isfinite(delta)):
            self.failed = True
            return None
        star = R + delta
        dist, _ = self.trace_norm(delta)
        _, low = self.trace_norm(star)
        bound = dist + ahead * np.sqrt(self.dim) * float(np.linalg.norm(self.L @ star))
        if bound <= self.tol and abs(self.trace @ star - 1.0) <= self.tol and low >= -self.tol:
            return star, bound
        return None
