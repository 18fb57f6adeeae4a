"""Second-order cumulant (mean-field) equations for ensembles of identical spins.

The model: ``K`` ensembles of two-level systems (``N_e`` spins in ensemble
``e``), each spin identical within its ensemble, under Lindblad channels
(qbjax's convention ``D[L] rho = L rho L^+ - {L^+ L, rho}/2``) of two kinds

* collective: ``L = sum_e alpha_e J_e^s`` with ``s = -`` (all lowering) or
  ``s = +`` (all raising), ``J_e^s = sum_{i in e} sigma_i^s``, real
  ``alpha_e`` (a shared reservoir, a pump, a thermal absorption channel);
* individual: ``D[sigma_i^s]`` on every spin ``i`` of one ensemble.

There is no Hamiltonian: in the frame rotating at the common splitting
``omega0`` the term ``omega0 sum_e J_e^z`` commutes with every jump
operator's generator on the states reached from a Dicke product state (see
below), so it drops out exactly.

**Symmetries used.**  (i) Permutations of the spins inside an ensemble: a
moment ``<sigma_i^a sigma_j^b ...>`` on distinct sites depends only on the
multiset ``{(e_i, a), (e_j, b), ...}``.  (ii) The weak U(1) symmetry
``sigma^pm -> e^{pm i phi} sigma^pm``: every jump changes the total excitation
by exactly one, so from a state diagonal in the excitation numbers (Dicke
product states: fully excited, empty, ``|N_e, n_e>``) every moment with
unequal numbers of ``sigma^+`` and ``sigma^-`` vanishes at all times; in
particular ``<sigma^pm> = 0``.  (iii) Real coefficients and a real initial
state keep the density matrix real in the Dicke basis, so
``<sigma_i^+ sigma_j^-> = <sigma_i^- sigma_j^+>`` is real.

**Equations, derived, not typed.**  :func:`derive` applies the adjoint
generator ``O -> L^+ O L - {L^+ L, O}/2`` to every moment symbolically with
the single-site Pauli algebra (``sigma^+ sigma^- = (1 + sigma^z)/2``,
``sigma^z sigma^+ = sigma^+ = -sigma^+ sigma^z``, ...).  For a monomial ``O``
on the site set ``S`` and ``L = sum_k a_k sigma_k^s``, the pairs ``(k, l)``
of the double sum ``sum_kl a_k a_l (sigma_k^{s+} O sigma_l^s - ...)`` split
into both sites in ``S`` (computed on ``S``), exactly one outside (one new
site of ensemble ``f``, counted ``N_f - |S cap f|`` times by symmetry:
``a_k sigma_k^{s+} [O, A]/2 + [A^+, O] a_l sigma_l^s/2`` with ``A = sum_{l in
S} a_l sigma_l^s``) and both outside (zero: they commute with ``O``).  The
result is a linear combination of moments with at most one more site.

The variables are the U(1)-neutral moments up to second order:

* ``z_e = <sigma_i^z>`` (energy density ``E_e / (N_e omega0) = (1 + z_e)/2``, seed 004 Eq. 3);
* ``p_ef = <sigma_i^+ sigma_j^->`` for ``i in e, j in f``, ``i != j``
  (within ``e`` when ``e = f``, between ensembles otherwise);
* ``w_ef = <sigma_i^z sigma_j^z>`` (``closure="full"`` only).

**Closure.**  Third-order moments are closed by dropping the third-order
cumulant, ``<ABC> = <AB><C> + <AC><B> + <BC><A> - 2<A><B><C>``, which with
``<sigma^pm> = 0`` gives ``<sigma^z_i sigma^+_j sigma^-_k> = z_i p_jk`` and
``<sigma^z sigma^z sigma^z> = sum w z - 2 z z z``.

* ``closure="full"`` keeps every second-order cumulant, ``w_ef`` included
  (the standard second-order cumulant expansion);
* ``closure="factorized"`` also drops the ``z-z`` cumulant, ``w_ef = z_e z_f``:
  only the flip-flop correlations ``p_ef`` are kept.

Where it matters: collective channels conserve each ensemble's total spin
``J_e^2``; in the symmetric sector this is the exact identity ``w_ee = 1 - 4
p_ee`` (``<sigma_i . sigma_j> = 1`` for symmetric pairs).  The full closure
carries ``w_ee`` separately and keeps the identity to the order of the
dropped cumulants; the factorised closure replaces it by ``z_e^2``, which
is wrong by ``4 (p_ee - (1 - z_e^2)/4)``, i.e. by exactly the flip-flop
correlation that drives superradiance.  ``reservoirs`` notebook: the two
agree at the fully excited start and separate during the burst.

**First order has no collective dynamics.**  Closing at first order
(``<sigma_i^+ sigma_j^-> = <sigma^+><sigma^->``) leaves ``p = 0`` forever
from a Dicke product state (``<sigma^pm> = 0``), so only the single-spin term
``-Gamma a_e^2 (1 + z_e)`` survives: the fully excited charger decays at the
single-spin rate, ``N`` times slower than superradiance, and no energy
reaches a battery.  The usual fix there is a seeded coherence; at second
order the source of ``p_ee``, ``Gamma a^2 (z_e + w_ee)/2 = Gamma a^2`` at full
inversion, is exact and the burst starts by itself (no seed).

The error of the closure is ``O(1/N)`` relative (the dropped third-order
cumulants are ``O(1/N)`` smaller than the kept products for ensembles of
``N`` nearly independent spins); tests compare with the exact
permutation-symmetric master equation (:mod:`qbjax.dynamics.collective`).
"""

from __future__ import annotations

import functools
import itertools
from dataclasses import dataclass

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from ..status import CLOSURE_BROKE, flag, merge, settle
from .options import ODEOptions

__all__ = [
    "Collective",
    "Individual",
    "CumulantEquations",
    "derive",
    "initial_moments",
    "cumulant_rhs",
    "solve_cumulants",
    "CLOSURES",
]

CLOSURES = ("full", "factorized")


@dataclass(frozen=True)
class Collective:
    """Structure of a collective channel ``D[sum_e alpha_e J_e^s]`` (rate given separately).

    ``terms = ((e, alpha_e), ...)``, ``raising``: ``s = +`` (else ``-``).
    """

    terms: tuple[tuple[int, float], ...]
    raising: bool = False


@dataclass(frozen=True)
class Individual:
    """Structure of ``sum_{i in e} D[sigma_i^s]`` on ensemble ``e`` (rate given separately)."""

    ensemble: int
    raising: bool = False


# ---------------------------------------------------------------- the algebra
# A monomial is a tuple of ((ensemble, site), op) sorted by site, op in "+-z"
# (identity sites are left out).  An expression is {monomial: coefficient}.

_MUL = {
    ("+", "+"): (), ("-", "-"): (),
    ("+", "-"): ((0.5, None), (0.5, "z")), ("-", "+"): ((0.5, None), (-0.5, "z")),
    ("z", "z"): ((1.0, None),),
    ("+", "z"): ((-1.0, "+"),), ("z", "+"): ((1.0, "+"),),
    ("-", "z"): ((1.0, "-"),), ("z", "-"): ((-1.0, "-"),),
}


def _mono_mul(a, b):
    """Product of two monomials as an expression."""
    out = {(): 1.0}
    sites = dict(a)
    right = dict(b)
    keys = sorted(set(sites) | set(right))
    for s in keys:
        if s in sites and s in right:
            options = _MUL[(sites[s], right[s])]
        else:
            options = ((1.0, sites.get(s, right.get(s))),)
        new = {}
        for mono, c in out.items():
            for c2, op in options:
                m = mono if op is None else mono + ((s, op),)
                new[m] = new.get(m, 0.0) + c * c2
        out = new
    return {m: c for m, c in out.items() if c != 0.0}


def _mul(x, y):
    out = {}
    for ma, ca in x.items():
        for mb, cb in y.items():
            for m, c in _mono_mul(ma, mb).items():
                out[m] = out.get(m, 0.0) + ca * cb * c
    return out


def _add(*exprs, scale=None):
    out = {}
    for i, e in enumerate(exprs):
        s = 1.0 if scale is None else scale[i]
        for m, c in e.items():
            out[m] = out.get(m, 0.0) + s * c
    return out


def _comm(x, y):
    return _add(_mul(x, y), _mul(y, x), scale=(1.0, -1.0))


def _site(site, op, coeff=1.0):
    return {((site, op),): coeff}


def _dissipator_adjoint(O, jumps, jumps_dag):
    """``sum_kl L_k^+ O L_l - {L_k^+ L_l, O}/2`` for explicit lists of single-site terms."""
    out = {}
    Ls = _add(*jumps) if jumps else {}
    Lds = _add(*jumps_dag) if jumps_dag else {}
    if not Ls:
        return out
    LdL = _mul(Lds, Ls)
    return _add(_mul(_mul(Lds, O), Ls), _mul(LdL, O), _mul(O, LdL), scale=(1.0, -0.5, -0.5))


def _adjoint_collective(O, sizes, ch: Collective):
    """Heisenberg generator of ``D[sum_e a_e J_e^s]`` on monomial expression ``O`` (one monomial)."""
    (mono,) = O
    S = [s for s, _ in mono]
    s_op, s_dag = ("+", "-") if ch.raising else ("-", "+")
    alpha = dict(ch.terms)
    inner = [(site, alpha[site[0]]) for site in S if site[0] in alpha]
    A = _add(*[_site(site, s_op, a) for site, a in inner]) if inner else {}
    Ad = _add(*[_site(site, s_dag, a) for site, a in inner]) if inner else {}
    out = {}
    if A:
        out = _add(_mul(_mul(Ad, O), A), _mul(_mul(Ad, A), O), _mul(O, _mul(Ad, A)), scale=(1.0, -0.5, -0.5))
    # one site outside S: a new site of ensemble f, counted N_f - |S cap f| times
    for f, a in ch.terms:
        mult = sizes[f] - sum(1 for site in S if site[0] == f)
        if mult <= 0 or not A:
            continue
        new = (f, len(S) + 1000)
        term = _add(_mul(_site(new, s_dag, a), _comm(O, A)), _mul(_comm(Ad, O), _site(new, s_op, a)))
        out = _add(out, term, scale=(1.0, 0.5 * mult))
    return out


def _adjoint_individual(O, ch: Individual):
    (mono,) = O
    s_op, s_dag = ("+", "-") if ch.raising else ("-", "+")
    out = {}
    for site, _ in mono:
        if site[0] != ch.ensemble:
            continue
        out = _add(out, _dissipator_adjoint(O, [_site(site, s_op)], [_site(site, s_dag)]))
    return out


# ---------------------------------------------------------------- moments


def _key(mono):
    """Canonical moment: sorted multiset of (ensemble, op), + and - swapped to the smaller form (real state)."""
    k = tuple(sorted((site[0], op) for site, op in mono))
    swap = tuple(sorted((e, {"+": "-", "-": "+"}.get(op, op)) for e, op in k))
    return min(k, swap)


def _neutral(key):
    return sum(op == "+" for _, op in key) == sum(op == "-" for _, op in key)


@dataclass(frozen=True, eq=False)
class CumulantEquations:
    """The derived equations: ``dy_v/dt = sum_t rate[c_t] coef_t prod y[i_t]`` (static, hashable by identity).

    Attributes:
        variables: the moment keys, in order (tuples of ``(ensemble, op)``).
        sizes: ``N_e`` per ensemble.
        closure: ``"full"`` or ``"factorized"``.
        target, channel, coef, factors: one entry per term (the variable it
            feeds, the channel whose rate multiplies it, the number, and up to
            three variable indices; index ``len(variables)`` stands for 1).
    """

    variables: tuple
    sizes: tuple[int, ...]
    closure: str
    target: tuple[int, ...]
    channel: tuple[int, ...]
    coef: tuple[float, ...]
    factors: tuple[tuple[int, int, int], ...]

    def index(self, key) -> int:
        return self.variables.index(key)

    def z_index(self, e: int) -> int:
        return self.variables.index(((e, "z"),))

    def describe(self) -> str:
        """The equations as text (``Gamma_c`` are the channel rates, ``D[L]`` convention)."""
        names = [_name(k) for k in self.variables] + ["1"]
        lines = []
        for v, key in enumerate(self.variables):
            rows = [r for r, t in enumerate(self.target) if t == v]
            parts = []
            for r in rows:
                f = "*".join(names[i] for i in self.factors[r] if i < len(self.variables)) or "1"
                parts.append(f"{self.coef[r]:+.6g} G{self.channel[r]} {f}")
            lines.append(f"d{_name(key)}/dt = " + " ".join(parts))
        return "\n".join(lines)


def _name(key):
    ops = "".join(op for _, op in key)
    ens = ",".join(str(e) for e, _ in key)
    return {"z": "z", "+-": "p", "zz": "w"}.get(ops, ops) + f"[{ens}]"


@functools.lru_cache(maxsize=64)
def derive(sizes: tuple[int, ...], channels: tuple, closure: str = "full") -> CumulantEquations:
    """Derive the second-order cumulant equations for ``channels`` (tuple of
    :class:`Collective` / :class:`Individual`, channel ``c`` has rate ``rate[c]``).

    Arguments:
        sizes: ``N_e`` per ensemble (static; a new size derives anew, in milliseconds).
        channels: the channel structures, in the order of the rates passed to the solver.
        closure: ``"full"`` or ``"factorized"`` (module docstring).

    Raises:
        ValueError: unknown closure, bad ensemble index, a size < 1.
    """
    if closure not in CLOSURES:
        raise ValueError(f"closure must be one of {CLOSURES}, got {closure!r}")
    K = len(sizes)
    if any(int(n) != n or n < 1 for n in sizes):
        raise ValueError(f"ensemble sizes must be integers >= 1, got {sizes}")
    for ch in channels:
        es = [e for e, _ in ch.terms] if isinstance(ch, Collective) else [ch.ensemble]
        if any(not 0 <= e < K for e in es):
            raise ValueError(f"channel {ch} names an ensemble outside 0..{K - 1}")
    variables = [((e, "z"),) for e in range(K)]
    for e, f in itertools.combinations_with_replacement(range(K), 2):
        if e == f and sizes[e] < 2:
            continue
        variables.append(_key((((e, 0), "+"), ((f, 1), "-"))))
    if closure == "full":
        for e, f in itertools.combinations_with_replacement(range(K), 2):
            if e == f and sizes[e] < 2:
                continue
            variables.append(((e, "z"), (f, "z")))
    index = {k: i for i, k in enumerate(variables)}
    one = len(variables)

    def second(key):
        """A second-order (or first) moment as [(coef, (var indices))]."""
        if not _neutral(key):
            return []
        if len(key) == 0:
            return [(1.0, ())]
        if len(key) == 1:
            return [(1.0, (index[key],))]
        if key[0][1] == "z" and key[1][1] == "z" and closure == "factorized":
            return [(1.0, (index[((key[0][0], "z"),)], index[((key[1][0], "z"),)]))]
        return [(1.0, (index[key],))]

    def moment(key):
        """Any moment up to third order as a polynomial in the variables (closure applied)."""
        if len(key) <= 2:
            return second(key)
        if len(key) != 3:
            raise AssertionError(f"moment of order {len(key)} cannot arise at second order: {key}")
        if not _neutral(key):
            return []
        a, b, c = key
        out = []
        for pair, single in (((a, b), c), ((a, c), b), ((b, c), a)):
            for c1, f1 in second(_key(((((pair[0][0], 0)), pair[0][1]), (((pair[1][0], 1)), pair[1][1])))):
                for c2, f2 in second((single,)):
                    out.append((c1 * c2, f1 + f2))
        for c1, f1 in second((a,)):
            for c2, f2 in second((b,)):
                for c3, f3 in second((c,)):
                    out.append((-2.0 * c1 * c2 * c3, f1 + f2 + f3))
        return out

    rows = []
    for v, key in enumerate(variables):
        O = {tuple(((e, i), op) for i, (e, op) in enumerate(key)): 1.0}
        for c, ch in enumerate(channels):
            d = _adjoint_collective(O, sizes, ch) if isinstance(ch, Collective) else _adjoint_individual(O, ch)
            for mono, coef in d.items():
                if abs(coef) < 1e-300:
                    continue
                for c2, fac in moment(_key(mono)):
                    rows.append((v, c, coef * c2, tuple(sorted(fac))))
    # merge identical terms
    merged = {}
    for v, c, coef, fac in rows:
        merged[(v, c, fac)] = merged.get((v, c, fac), 0.0) + coef
    items = [(k, x) for k, x in merged.items() if x != 0.0]
    target = tuple(k[0] for k, _ in items)
    channel = tuple(k[1] for k, _ in items)
    coef = tuple(float(x) for _, x in items)
    factors = tuple(tuple(k[2]) + (one,) * (3 - len(k[2])) for k, _ in items)
    return CumulantEquations(tuple(variables), tuple(int(n) for n in sizes), closure, target, channel, coef, factors)


def initial_moments(eqs: CumulantEquations, excitations) -> np.ndarray:
    """Moments of the Dicke product state ``(x)_e |N_e, n_e>`` (``n_e`` excited spins in ensemble ``e``).

    ``z = 2n/N - 1``, ``p_ee = n(N - n)/(N(N - 1))``, ``w_ee = 1 - 4 p_ee``
    (exact for symmetric states), and between ensembles ``p_ef = 0``,
    ``w_ef = z_e z_f`` (a product state).
    """
    sizes = eqs.sizes
    z = [2.0 * n / N - 1.0 for n, N in zip(excitations, sizes)]
    y = np.zeros(len(eqs.variables))
    for v, key in enumerate(eqs.variables):
        if len(key) == 1:
            y[v] = z[key[0][0]]
            continue
        (e, a), (f, b) = key
        if a == "z":
            if e == f:
                n, N = excitations[e], sizes[e]
                y[v] = 1.0 - 4.0 * n * (N - n) / (N * (N - 1))
            else:
                y[v] = z[e] * z[f]
        elif e == f:
            n, N = excitations[e], sizes[e]
            y[v] = n * (N - n) / (N * (N - 1))
    return y


def cumulant_rhs(eqs: CumulantEquations, rates):
    """``y -> dy/dt`` for channel rates ``rates`` (array leaves: differentiable)."""
    rates = jnp.asarray(rates, jnp.float64)
    target = jnp.asarray(np.array(eqs.target, np.int32))
    coef = jnp.asarray(np.array(eqs.coef)) * rates[jnp.asarray(np.array(eqs.channel, np.int32))]
    f = jnp.asarray(np.array(eqs.factors, np.int32).reshape(-1, 3))
    n = len(eqs.variables)

    def rhs(y):
        ye = jnp.concatenate([y, jnp.ones(1, y.dtype)])
        contrib = coef * ye[f[:, 0]] * ye[f[:, 1]] * ye[f[:, 2]]
        return jax.ops.segment_sum(contrib, target, num_segments=n)

    return rhs


def solve_cumulants(eqs: CumulantEquations, rates, y0, ts, *, options: ODEOptions = ODEOptions(rtol=1e-10,
                                                                                                    atol=1e-12),
                    status: bool = False):
    """Integrate the cumulant equations on ``ts`` (diffrax, float64); returns ``y(t)`` of shape ``(T, n_vars)``.

    Moments outside their physical range (``|z| > 1``, ``|p| > 1``) or
    non-finite values are a failure (a closure can leave the physical set far
    outside its validity; never silently): raised here, or returned as a
    :mod:`qbjax.status` flag with ``status=True`` (then ``(ys, status)``).
    """
    ys, flags = _solve_jit(eqs, jnp.asarray(rates, jnp.float64), jnp.asarray(y0, jnp.float64),
                           jnp.asarray(ts, jnp.float64), options)
    return (ys, flags) if status else settle(ys, flags, "solve_cumulants")


@eqx.filter_jit
def _solve_jit(eqs: CumulantEquations, rates, y0, ts, options: ODEOptions):
    """One compilation per equation structure, grid length and options; rates, y0, ts are traced."""
    rhs = cumulant_rhs(eqs, rates)
    ys, solved = options.solve(lambda t, y, a: rhs(y), y0, ts)
    bad = ~jnp.all(jnp.isfinite(ys)) | jnp.any(jnp.abs(ys) > 1.0 + 1e-6)
    return ys, merge(solved, flag(bad, CLOSURE_BROKE))
