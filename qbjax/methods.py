"""Methods are values: one small class per propagator, with its own knobs.

``qb.charge(model, method=qb.methods.Chebyshev())`` and
``qb.charge(model, method="chebyshev")`` are the same call: every string
alias is an entry of :data:`ALIASES`, the one name-to-method table that the
command line's ``--method`` choices and the error messages are generated
from.  :class:`Auto` holds the choice logic (:func:`resolve_method`).

======================  ==================  =======================================================
class                   alias               what runs
======================  ==================  =======================================================
:class:`Auto`           ``"auto"``          the choice below
:class:`Spectral`       ``"spectral"``      dense ``eigh`` of the (symmetry-reduced) ``H``: every time exact
:class:`Chebyshev`      ``"chebyshev"``     matrix-free Chebyshev expansion, uniform grids, concrete parameters
:class:`Krylov`         ``"krylov"``        matrix-free Lanczos steps with a residual bound (falls back to Chebyshev)
:class:`ODE`            ``"ode"``           adaptive Runge-Kutta on a matrix-free ``H`` (switches, traced parameters)
``ODE(dense=True)``     ``"dense-ode"``     the same on the dense ``H``
:class:`Lindblad`       ``"lindblad"``      dense density matrix (open systems)
:class:`Rates`          ``"rates"``         rate equation on populations (open systems that stay diagonal)
:class:`Hamilton`       ``"classical"``     Hamilton flow of the classical analog (``classical=True``)
:class:`Collisions`     ``"collisions"``    the collision map of a collisional battery (its native method)
:class:`CollectiveExact` ``"exact"``        the reservoir battery's exact permutation-symmetric master equation
:class:`MeanField`      ``"meanfield"``     the reservoir battery's cumulant equations (any size)
======================  ==================  =======================================================

The adaptive methods (``ODE``, ``Lindblad``, ``Rates``, ``Hamilton``) carry
``options`` (:class:`~qbjax.dynamics.ODEOptions`); ``None`` takes ``charge``'s
``options=`` or the defaults.
"""

from __future__ import annotations

from typing import ClassVar

import equinox as eqx

from . import representation as rep
from .dynamics.options import ODEOptions
from .model import Spec

__all__ = ["Method", "Auto", "Spectral", "Chebyshev", "Krylov", "ODE", "Lindblad", "Rates", "Hamilton", "Collisions", "CollectiveExact", "MeanField", "ALIASES", "NATIVE", "register_native",
           "as_method", "resolve_method", "SPECTRAL_MAX_DIM", "CLOSED_NAMES", "OPEN_NAMES"]

#: Largest dense block diagonalised by :class:`Auto`.
SPECTRAL_MAX_DIM = 3000


class Method(eqx.Module):
    """A propagator choice and its settings (an equinox Module: hashable, static)."""

    #: the ``Trajectory.method`` and alias this method runs as
    name: ClassVar[str] = ""

    @property
    def key(self) -> str:
        """The name of what runs (``"dense-ode"`` for ``ODE(dense=True)``)."""
        return self.name

    def adaptive_options(self) -> ODEOptions | None:
        return getattr(self, "options", None)


class Auto(Method):
    """Let ``charge`` choose (:func:`resolve_method`)."""

    name: ClassVar[str] = "auto"


class Spectral(Method):
    """Dense diagonalisation of the time-independent ``H`` on its symmetry-reduced block."""

    name: ClassVar[str] = "spectral"


class Chebyshev(Method):
    """Matrix-free Chebyshev expansion with dense output (uniform grids from 0, concrete parameters).

    Falls back to ``ODE`` with a warning when the parameters are traced or
    the grid is not uniform.
    """

    name: ClassVar[str] = "chebyshev"


class Krylov(Method):
    """Matrix-free Lanczos propagation with a residual bound per step; falls back to Chebyshev."""

    name: ClassVar[str] = "krylov"


class ODE(Method):
    """Adaptive Runge-Kutta on ``H`` (matrix free, or dense with ``dense=True``)."""

    name: ClassVar[str] = "ode"
    dense: bool = eqx.field(static=True, default=False)
    options: ODEOptions | None = None

    @property
    def key(self) -> str:
        return "dense-ode" if self.dense else "ode"


class Lindblad(Method):
    """The Lindblad master equation on the dense density matrix."""

    name: ClassVar[str] = "lindblad"
    options: ODEOptions | None = None


class Rates(Method):
    """The rate equation on the populations (open systems whose state stays diagonal)."""

    name: ClassVar[str] = "rates"
    options: ODEOptions | None = None


class Hamilton(Method):
    """The Hamilton flow of the classical analog (what ``classical=True`` runs)."""

    name: ClassVar[str] = "classical"
    options: ODEOptions | None = None


class Collisions(Method):
    """The collision map of a collisional battery (seed 003): one point per collision.

    ``mode``: ``"auto"`` (populations for incoherent units, else the density
    matrix), ``"populations"`` or ``"density"``; ``checkpoint``: chunk length
    of the nested, checkpointed scan (``"auto"``: ``sqrt(K)`` for long
    density runs; ``None``: a flat scan).
    """

    name: ClassVar[str] = "collisions"
    mode: str = eqx.field(static=True, default="auto")
    checkpoint: int | str | None = eqx.field(static=True, default="auto")


class CollectiveExact(Method):
    """The exact permutation-symmetric master equation of collective spins (the reservoir battery)."""

    name: ClassVar[str] = "exact"
    options: ODEOptions | None = None


class MeanField(Method):
    """The second-order cumulant (mean-field) equations of collective spins, any ensemble size.

    ``closure``: ``"full"`` or ``"factorized"`` (:mod:`qbjax.dynamics.cumulants`).
    """

    name: ClassVar[str] = "meanfield"
    closure: str = eqx.field(static=True, default="full")
    options: ODEOptions | None = None


#: The one name-to-method table: string aliases of ``charge(method=...)``, the CLI's ``--method`` choices.
ALIASES: dict[str, Method] = {
    "auto": Auto(),
    "spectral": Spectral(),
    "chebyshev": Chebyshev(),
    "krylov": Krylov(),
    "ode": ODE(),
    "dense-ode": ODE(dense=True),
    "lindblad": Lindblad(),
    "rates": Rates(),
    "classical": Hamilton(),
    "collisions": Collisions(),
    "exact": CollectiveExact(),
    "meanfield": MeanField(),
}
#: Aliases for closed and for dissipative specs (``"classical"`` is ``classical=True``).
CLOSED_NAMES = ("auto", "spectral", "chebyshev", "krylov", "ode", "dense-ode")
OPEN_NAMES = ("auto", "rates", "lindblad")
#: Families with their own solvers (``AbstractBattery.native_method``): name -> (aliases, runner), where
#: ``runner(model, ts, method, options) -> Trajectory``.  Each family registers itself when its module is
#: imported (:func:`register_native`), so ``charge`` imports no family module.
NATIVE: dict = {}


def register_native(name: str, aliases: tuple[str, ...], runner) -> None:
    """Declare a family's own solvers: ``charge`` hands its models to ``runner`` with a method of ``aliases``."""
    NATIVE[name] = (tuple(aliases), runner)


def as_method(method: str | Method) -> Method:
    """The :class:`Method` for a string alias or a method value (raises naming the allowed aliases)."""
    if isinstance(method, Method):
        return method
    if isinstance(method, str) and method in ALIASES:
        return ALIASES[method]
    raise ValueError(f"method must be one of {', '.join(repr(k) for k in ALIASES)} or a qbjax.methods value, "
                     f"got {method!r}")


#: Largest Hilbert-space dimension ``d`` the Lindblad method takes: its state is a dense ``d x d`` matrix,
#: every right-hand side a handful of dense ``d x d`` products, and its steady state a sparse LU with ``d^2``
#: unknowns (at ``d = 1024``: 16 MiB per state, ~2e9 flops per product, 10^6 unknowns).
LINDBLAD_MAX_DIM = 1024


def _check_lindblad_size(spec: Spec) -> str:
    """``"lindblad"``, after refusing (before any work) a dimension above :data:`LINDBLAD_MAX_DIM`."""
    dim = rep.basis(spec).dim
    if dim > LINDBLAD_MAX_DIM:
        raise MemoryError(
            f"method 'lindblad' evolves the dense {dim} x {dim} density matrix ({16 * dim * dim / 2**20:.0f} MiB "
            f"per state, ~{8 * dim**3:.1e} flops per product; its steady state a sparse LU with {dim * dim:.2e} "
            f"unknowns): the largest dimension is {LINDBLAD_MAX_DIM}.  Use a smaller model, or method 'rates' "
            "when the state stays diagonal")
    return "lindblad"


def resolve_method(spec: Spec, method: str | Method, classical: bool, switch) -> str:
    """The key of the method that runs (``"spectral"``, ``"ode"``, ...): :class:`Auto`'s choice, or ``method`` checked.

    Closed specs: ``Spectral`` when the symmetry-reduced block fits
    (:data:`SPECTRAL_MAX_DIM`, and the dense build in memory), else
    ``Chebyshev``; ``ODE`` with a switch.  Dissipative specs: ``Rates`` when
    the state provably stays diagonal, else ``Lindblad``.
    """
    chosen = as_method(method)
    method = chosen.key
    if classical or isinstance(chosen, Hamilton):
        if spec.dissipators:
            raise ValueError("classical dynamics of a dissipative spec is not defined")
        if spec.time_dependent:
            raise ValueError("classical dynamics takes a switch= but not modulated terms (not implemented)")
        return "classical"
    if spec.dissipators:
        from .representation.rates import not_diagonal_reason

        if method not in OPEN_NAMES:
            raise ValueError(f"a dissipative spec takes method {', '.join(map(repr, OPEN_NAMES))}, got {method!r}")
        if method == "rates" and spec.time_dependent:
            raise ValueError("method='rates' needs time-independent rates; a modulated spec takes 'lindblad'")
        if method == "lindblad" or switch is not None or spec.time_dependent:
            return _check_lindblad_size(spec)
        reason = not_diagonal_reason(spec)
        if reason is None:
            return "rates"
        if method == "rates":
            raise ValueError(f"method='rates' needs a state that stays diagonal: {reason}")
        return _check_lindblad_size(spec)
    if spec.initial_populations:
        raise ValueError("a mixed initial state (initial_populations) needs dissipators (an open-system propagator)")
    timed = switch is not None or spec.time_dependent
    if method == "auto":
        if timed:
            return "ode"
        dim = rep.basis(spec).dim
        terms = len(spec.charger + spec.battery + spec.coupling)
        # the dense build holds one matrix per term: too many terms -> matrix free
        fits = 16 * dim * dim * terms <= rep.DENSE_MEMORY_LIMIT
        return "spectral" if dim <= SPECTRAL_MAX_DIM and fits else "chebyshev"
    if method not in CLOSED_NAMES:
        raise ValueError(f"a closed spec takes method {', '.join(map(repr, CLOSED_NAMES))}, got {method!r}")
    if method in ("chebyshev", "krylov", "spectral") and timed:
        raise ValueError(f"method={method!r} needs a time-independent H; use 'ode' (or 'dense-ode') with a switch "
                         "or modulated terms")
    return method
