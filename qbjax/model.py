"""The model spec: terms over named degrees of freedom.

A battery is described once, as data (seed 000, Eq. 2)::

    H(t) = H_A + H_B + lambda(t) H_I

with ``H_A`` the charger, ``H_B`` the battery (zero in its ground state) and
``H_I`` the charger-battery coupling, plus optional Lindblad dissipators, an
initial product state and its classical counterpart.  Every operator is a
linear combination of :class:`Term` s, ``coeff * prod(factors)``, whose
coefficients are JAX array leaves (so ``jax.grad`` and ``jax.vmap`` pass
through) and whose factors ``(dof, operator name)`` are static.

From one :class:`Spec` qbjax builds the quantum Hamiltonian (dense or matrix
free, see :mod:`qbjax.representation`), the Lindblad generator, and the
classical Hamiltonian by the canonical correspondence of seed 000, Sec. II.
A model (:class:`AbstractBattery`) is an ``eqx.Module`` whose physical
parameters are leaves and whose ``spec()`` builds the terms from them.
"""

from __future__ import annotations

import abc
import functools
from collections.abc import Callable, Mapping

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike

from .operators import Dof
from .status import is_concrete

__all__ = [
    "Term",
    "Dissipator",
    "Charge",
    "Spec",
    "AbstractBattery",
    "term",
    "scaled",
    "hermiticity_problem",
]

Factors = tuple[tuple[str, str], ...]


class Term(eqx.Module):
    """``coeff * O_1 O_2 ...``; ``factors = (("a", "adag"), ("b", "jz"))``.

    An empty ``factors`` is the identity (a constant energy shift).  Factors
    on the same dof multiply in the order given.  ``modulation``: an optional
    ``f(t)`` multiplying the coefficient (a callable, a
    :class:`~qbjax.charging.PiecewiseConstant`, or any JAX-traceable
    function; its discontinuities, when it has ``times``, go to the
    step-size controller).  Parameters a modulation holds as array leaves of
    an ``eqx.Module`` (as ``PiecewiseConstant`` does) receive gradients; a
    plain Python closure is a constant.
    """

    coeff: Array
    factors: Factors = eqx.field(static=True)
    modulation: Callable | None = None

    def __init__(self, coeff: ArrayLike, factors=(), modulation: Callable | None = None):
        self.coeff = jnp.asarray(coeff)
        self.factors = tuple((str(d), str(o)) for d, o in factors)
        if modulation is not None and not callable(modulation):
            raise ValueError(f"modulation must be a callable f(t), got {type(modulation).__name__}")
        self.modulation = modulation


def term(coeff: ArrayLike, *factors: str, modulation: Callable | None = None) -> Term:
    """Shorthand: ``term(g, "a.adag", "b.a")`` is ``g * adag_a b``; ``modulation=f`` makes it ``f(t) g adag_a b``."""
    return Term(coeff, tuple(tuple(f.split(".", 1)) for f in factors), modulation)


def scaled(terms: tuple[Term, ...], factor) -> tuple[Term, ...]:
    """Multiply every coefficient of an operator by ``factor`` (modulations kept)."""
    return tuple(Term(t.coeff * factor, t.factors, t.modulation) for t in terms)


def hermiticity_problem(space, terms: tuple[Term, ...]) -> str | None:
    """Why the sum of ``terms`` is not Hermitian (``None``: it is, or it cannot be told by name).

    Checked on the terms, never on a matrix: each product is brought to a
    canonical form (factors grouped by dof, in the space's order; the order
    within a dof kept), and the coefficient of every product must be the
    complex conjugate of its adjoint's (``a^+ b`` needs ``b^+ a`` with the
    conjugate coefficient; ``n``, ``x``, ``J_z`` need a real one).  Modulated
    terms and traced coefficients are checked by structure only (the adjoint
    product is present among them, or the coefficient's dtype is real).
    Operators not known by name, and Hermitian products that are Hermitian
    only through an operator identity (``-i sx sy = sz``), are not judged.
    """
    dofs = dict(space)
    total: dict = {}
    adjoints: dict = {}
    traced = False
    for t in terms:
        if any(d not in dofs for d, _ in t.factors):
            return None  # unknown dofs are reported by the caller
        factors, adj = _structure(space, t.factors)
        adjoints[factors] = adj
        # modulated terms pair among modulated terms, checked by structure (a modulation is a function: two
        # equal ones need not be the same object, for example after a pytree round trip)
        total.setdefault((factors, t.modulation is not None), []).append(t)
        traced = traced or not is_concrete(t.coeff)
    # a self-adjoint product with a real coefficient is Hermitian whatever its value: only the others' values
    # are compared, brought to the host in one transfer (one per term costs ~20 us; a 16-spin chain has 137)
    needed = [t for (factors, mod), group in total.items() if not mod and not (
        adjoints[factors] == factors and not any(jnp.iscomplexobj(t.coeff) for t in group)) for t in group]
    values = {} if traced else dict(zip(map(id, needed), jax.device_get([t.coeff for t in needed]), strict=True))
    for (factors, mod), group in total.items():
        adj = adjoints[factors]
        if adj is None:
            continue  # an operator not known by name: nothing to say about this term
        partner = total.get((adj, mod))
        text = " ".join(f"{d}.{o}" for d, ops in factors for o in ops) or "identity"
        if partner is None:
            return f"the term {text!r} has no conjugate term (add its adjoint with the conjugate coefficient)"
        if traced or mod or (adj == factors and not any(jnp.iscomplexobj(t.coeff) for t in group)):
            if adj == factors and any(jnp.iscomplexobj(t.coeff) for t in group):
                return f"the self-adjoint term {text!r} has a complex coefficient"
            continue
        c = sum(np.asarray(values[id(t)], complex) for t in group)
        cbar = np.conj(sum(np.asarray(values[id(t)], complex) for t in partner))
        scale = max(float(np.max(np.abs(c))), float(np.max(np.abs(cbar))), 1e-300)
        if np.max(np.abs(c - cbar)) > 1e-12 * scale:
            return (f"the term {text!r} has coefficient {np.asarray(c).ravel()[0]:.6g} but its adjoint's conjugate "
                    f"is {np.asarray(cbar).ravel()[0]:.6g}")
    return None


@functools.lru_cache(maxsize=4096)
def _structure(space, factors) -> tuple:
    """``(canonical product, canonical adjoint or None)`` of a term's factors (static: cached)."""
    dofs = dict(space)
    canonical = _canonical(factors, {name: i for i, (name, _) in enumerate(space)}, dofs)
    return canonical, _adjoint(canonical, dofs)


def _canonical(factors, order, dofs) -> tuple:
    grouped: dict = {}
    for d, o in factors:
        grouped.setdefault(d, []).append(dofs[d].canonical_name(o))
    return tuple((d, tuple(grouped[d])) for d in sorted(grouped, key=order.__getitem__))


def _adjoint(factors, dofs):
    out = []
    for d, ops in factors:
        names = tuple(dofs[d].adjoint_name(o) for o in reversed(ops))
        if any(n is None for n in names):
            return None
        out.append((d, names))
    return tuple(out)


class Dissipator(eqx.Module):
    """A Lindblad channel ``rate * D[L] rho``, ``D[L] rho = L rho L^+ - {L^+ L, rho}/2``.

    ``L`` is a linear combination of terms (for example ``J_C^- + J_B^-``
    for a shared reservoir).  qbjax uses this convention everywhere; models
    from papers with ``2 L rho L^+ - ...`` convert their rates at the boundary.
    """

    rate: Array
    operator: tuple[Term, ...]
    modulation: Callable | None = None

    def __init__(self, rate: ArrayLike, operator, modulation: Callable | None = None):
        self.rate = jnp.asarray(rate)
        if is_concrete(self.rate) and not bool(jnp.all(jnp.isfinite(self.rate) & (self.rate >= 0))):
            # a negative rate is not a Lindblad channel: E_B fell below the ground state
            raise ValueError(f"Dissipator rate must be finite and >= 0, got {np.asarray(self.rate)!r}")
        self.operator = tuple(operator) if not isinstance(operator, Term) else (operator,)
        if any(t.modulation is not None for t in self.operator):
            raise ValueError("modulate a Dissipator with Dissipator(rate, op, modulation=f), not its operator's terms")
        if modulation is not None and not callable(modulation):
            raise ValueError(f"modulation must be a callable f(t), got {type(modulation).__name__}")
        # rate * f(t) must stay a rate: f(t) >= 0 is checked where the modulation is evaluated (charge)
        self.modulation = modulation


class Charge(eqx.Module):
    """A conserved diagonal charge ``sum_i w_i k_i`` (mod ``modulus``).

    ``k_i`` is the level index of dof ``i`` (Fock number, ``m + j``).  When a
    model declares one, dense representations keep only the block that holds
    the initial state: excitation number for the oscillator and spin
    batteries, parity for the Dicke battery.
    """

    weights: tuple[int, ...] = eqx.field(static=True)
    modulus: int | None = eqx.field(static=True, default=None)


class Spec(eqx.Module):
    """Everything a propagator needs, and nothing about how to propagate.

    Arguments:
        space: ``((name, Dof), ...)``, the tensor factors in order.
        charger, battery, coupling: ``H_A``, ``H_B``, ``H_I`` as term tuples.
        battery_dofs: the names of the dofs that make up the battery
            (for its reduced state and ergotropy).
        initial: quantum initial product state, ``{dof: level label}``
            (a Fock number, an ``m``, a level index); dofs not named start at
            index 0.
        classical_initial: ``{dof: coordinates}``, ``(q, p)`` for a boson,
            the vector ``S`` for a spin.
        initial_states: optional ``{dof: state}``, any normalised ket ``(dim,)``
            or density matrix ``(dim, dim)`` of that dof (array leaves:
            gradients reach them), for example ``qb.coherent(cutoff, alpha)``
            for the charger.  The initial state is then the tensor product of
            these and the levels of ``initial`` (or ``initial_populations``)
            for the other dofs; :func:`qbjax.charge` runs it on the full space
            (paths that start from basis states refuse such a spec).
        initial_populations: optional mixed diagonal initial state:
            ``{dof: probabilities}`` (array leaves, one per level) replaces
            the pure level of the dofs it names, so the initial state is
            ``rho_0 = (x)_i diag(p_i)`` (for example heat engines starting in
            their thermal state).  Needs an open-system propagator.
        dissipators: Lindblad channels (open systems only).
        conserved: optional :class:`Charge` for the dense block structure.
        battery_levels, battery_degeneracies: the spectrum of ``H_B`` on the
            *physical* battery (for example ``2^N`` levels for ``N`` qubits
            even when only the symmetric sector is simulated), used for the
            ergotropy with unrestricted unitaries.  ``None``: the spectrum of
            ``H_B`` on the simulated battery dofs.
        energy_bound: an upper bound of ``H_B`` on the reachable states
            (used to certify that ``t_max`` contains the maximum power).
    """

    space: tuple[tuple[str, Dof], ...] = eqx.field(static=True)
    charger: tuple[Term, ...]
    battery: tuple[Term, ...]
    coupling: tuple[Term, ...]
    battery_dofs: tuple[str, ...] = eqx.field(static=True)
    initial: tuple[tuple[str, object], ...] = eqx.field(static=True)
    classical_initial: dict
    dissipators: tuple[Dissipator, ...] = ()
    initial_populations: dict | None = None
    initial_states: dict | None = None
    conserved: Charge | None = None
    battery_levels: Array | None = None
    battery_degeneracies: tuple[float, ...] | None = eqx.field(static=True, default=None)
    energy_bound: Array | None = None

    def __check_init__(self):
        names = [n for n, _ in self.space]
        if len(set(names)) != len(names):
            raise ValueError(f"dof names must be unique, got {names}")
        for op in (self.charger, self.battery, self.coupling):
            for t in op:
                for dof, _ in t.factors:
                    if dof not in names:
                        raise ValueError(f"term acts on unknown dof {dof!r}; space has {names}")
        for label, op in (("H_A (charger)", self.charger), ("H_B (battery)", self.battery),
                          ("H_I (coupling)", self.coupling)):
            problem = hermiticity_problem(self.space, op)
            if problem is not None:
                raise ValueError(f"{label} is not Hermitian: {problem}")
        for d in self.dissipators:
            for t in d.operator:
                for dof, _ in t.factors:
                    if dof not in names:
                        raise ValueError(f"dissipator acts on unknown dof {dof!r}; space has {names}")
        for dof, probs in (self.initial_populations or {}).items():
            if dof not in names:
                raise ValueError(f"initial_populations names unknown dof {dof!r}; space has {names}")
            if jnp.shape(probs) != (self.dof(dof).dim,):
                raise ValueError(f"initial_populations[{dof!r}] must have shape ({self.dof(dof).dim},), "
                                 f"got {jnp.shape(probs)}")
            if is_concrete(probs):
                tol = float(np.sqrt(np.finfo(np.result_type(np.asarray(probs).dtype, np.float32)).eps))
                p = np.asarray(probs, dtype=float)
                if not (np.all(np.isfinite(p)) and np.all(p >= 0) and abs(p.sum() - 1.0) <= tol):
                    raise ValueError(f"initial_populations[{dof!r}] must be probabilities (finite, >= 0, summing "
                                     f"to 1), got {p.tolist()} (sum {p.sum():.6g})")
        if any(t.modulation is not None for t in self.battery):
            raise ValueError("H_B defines the stored energy and must be time independent; put a time-dependent "
                             "drive of the battery in the charger (its terms may act on battery dofs)")
        for dof, state in (self.initial_states or {}).items():
            if dof not in names:
                raise ValueError(f"initial_states names unknown dof {dof!r}; space has {names}")
            d = self.dof(dof).dim
            shape = jnp.shape(state)
            if shape not in ((d,), (d, d)):
                raise ValueError(f"initial_states[{dof!r}] must be a ket ({d},) or a density matrix ({d}, {d}), "
                                 f"got shape {shape}")
            if is_concrete(state):
                a = np.asarray(state)
                tol = 1e-8
                norm = float(np.vdot(a, a).real) if a.ndim == 1 else complex(np.trace(a))
                herm = 0.0 if a.ndim == 1 else float(np.max(np.abs(a - a.conj().T)))
                if not (np.all(np.isfinite(a)) and abs(norm - 1.0) <= tol and herm <= tol):
                    raise ValueError(f"initial_states[{dof!r}] must be a normalised ket or a Hermitian density "
                                     f"matrix of trace 1 (within {tol:g}), got norm/trace {norm:.10g}")
        if self.initial_states and self.initial_populations and set(self.initial_states) & set(
                self.initial_populations):
            raise ValueError("a dof may have initial_states or initial_populations, not both")
        for dof in self.battery_dofs:
            if dof not in names:
                raise ValueError(f"battery dof {dof!r} not in space {names}")
        for t in self.battery:
            if any(d not in self.battery_dofs for d, _ in t.factors):
                raise ValueError("H_B may only act on the battery dofs")

    @property
    def time_dependent(self) -> bool:
        """Whether a term of ``H`` or a dissipator carries a modulation ``f(t)``."""
        return any(t.modulation is not None for t in self.charger + self.coupling) or any(
            d.modulation is not None for d in self.dissipators)

    def require_static(self, what: str) -> None:
        """Raise unless the spec is time independent (``what`` needs a fixed generator)."""
        if self.time_dependent:
            raise ValueError(f"{what} needs a time-independent spec; this one has modulated terms or dissipators "
                             "(charge it with qb.charge, which integrates H(t))")

    @property
    def dims(self) -> tuple[int, ...]:
        return tuple(d.dim for _, d in self.space)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(n for n, _ in self.space)

    def dof(self, name: str) -> Dof:
        return dict(self.space)[name]

    def initial_indices(self) -> tuple[int, ...]:
        if self.initial_states:
            raise ValueError("this path starts from a basis state; a spec with initial_states is charged by "
                             "qb.charge (or pass the state as charge(..., initial_state=...))")
        labels = dict(self.initial)
        return tuple(d.level_index(labels[n]) if n in labels else 0 for n, d in self.space)

    def initial_product(self):
        """The initial state on the full space (flat, tensor order): a ket when every factor is pure, else a
        density matrix; from ``initial_states``, ``initial_populations`` and the levels of ``initial``."""
        labels, mixed, states = dict(self.initial), self.initial_populations or {}, self.initial_states or {}
        factors = []
        for name, dof in self.space:
            if name in states:
                factors.append(jnp.asarray(states[name], jnp.complex128))
            elif name in mixed:
                factors.append(jnp.diag(jnp.asarray(mixed[name], jnp.complex128)))
            else:
                k = dof.level_index(labels[name]) if name in labels else 0
                factors.append(jnp.zeros(dof.dim, jnp.complex128).at[k].set(1.0))
        pure = all(f.ndim == 1 for f in factors)
        out = jnp.ones((1,) if pure else (1, 1), jnp.complex128)
        for f in factors:
            f = f if pure or f.ndim == 2 else jnp.outer(f, jnp.conj(f))
            out = jnp.kron(out, f)
        return out

    def initial_population_tensor(self):
        """The diagonal of the initial density matrix as a tensor of shape ``dims``."""
        mixed = self.initial_populations or {}
        out = jnp.ones(())
        for (name, dof), k in zip(self.space, self.initial_indices()):
            p = jnp.asarray(mixed[name], jnp.float64) if name in mixed else jnp.zeros(dof.dim).at[k].set(1.0)
            out = jnp.multiply.outer(out, p)
        return out

    def with_couplings(self, factor) -> Spec:
        """The spec with ``H_I -> factor * H_I`` (for switching functions)."""
        return eqx.tree_at(lambda s: s.coupling, self, scaled(self.coupling, factor))


class AbstractBattery(eqx.Module):
    """A family of batteries: physical parameters as leaves, ``spec()`` builds terms.

    Concrete models are final classes that define their fields, ``spec``,
    ``with_n`` (the same battery with ``n`` units, for the collective
    advantage), ``time_scale`` (a natural charging time), ``default_t_max``
    (the default window) and ``name`` (the registry and CLI name,
    :data:`qbjax.models.REGISTRY`).  What callers may use beyond those is
    declared here too: ``default_num_times``, ``working_cutoffs``,
    ``independent_units`` and ``params``.
    """

    @abc.abstractmethod
    def spec(self, classical: bool = False) -> Spec:
        """The terms, initial state and battery of this model."""

    @abc.abstractmethod
    def with_n(self, n: int) -> AbstractBattery:
        """The same model with ``n`` battery units."""

    @abc.abstractmethod
    def time_scale(self) -> Array:
        """A natural time scale of charging (sets default ``t_max``)."""

    @abc.abstractmethod
    def default_t_max(self) -> Array:
        """End of the default time grid (a few ``time_scale()``; traced, so it follows the couplings)."""

    def default_num_times(self) -> int:
        """Grid points for the default window (enough to resolve the fastest beat)."""
        return 401

    def native_method(self) -> str | None:
        """The alias of a method only this family runs (``"collisions"``), else ``None`` (``charge`` chooses)."""
        return None

    def own_grid(self) -> bool:
        """Whether the battery's times are its own (a collision schedule's), so that ``charge`` takes no ``ts``."""
        return False

    def independent_units(self) -> tuple[AbstractBattery, int]:
        """``(unit, copies)``: this battery as ``copies`` independent copies of ``unit``.

        ``(self, 1)`` for a collective battery; a protocol that charges its
        batteries separately (the heat engine's ``"individual"``) returns one
        battery and ``N``, so steady states and sweeps solve the unit once.
        """
        return self, 1

    def working_cutoffs(self) -> tuple[tuple[str, int], ...]:
        """``((boson dof, levels),)``: Fock levels the dynamics over the default window needs, when
        the chosen cutoff is larger (a hint; ``()`` by default).

        :func:`qbjax.charging.charge` then runs the exact (Chebyshev)
        propagator in that smaller Fock space first and keeps the result only
        if a leakage bound shows that it agrees with the full cutoff;
        otherwise it runs at the full cutoff.  The cutoff the user chose stays
        the problem that is solved.  A hint, not part of the :class:`Spec`:
        a value-dependent static field would recompile jitted code per
        parameter value.
        """
        return ()

    @property
    @abc.abstractmethod
    def name(self) -> str:
        """The model's CLI name."""

    def params(self) -> Mapping[str, object]:
        """Every parameter, as plain Python numbers (for JSON)."""
        out = {}
        for field in self.__dataclass_fields__:
            value = getattr(self, field)
            if isinstance(value, (int, float, str, bool)) or value is None:
                out[field] = value
            else:
                arr = np.asarray(value)
                out[field] = arr.item() if arr.ndim == 0 else arr.tolist()
        return out
