"""QuTiP out: a trajectory as a ``qutip.Result``-like object (QuTiP in is :func:`qbjax.observe.qobj_data`)."""

from __future__ import annotations

import dataclasses

import numpy as np

__all__ = ["QutipResult", "to_qutip"]


@dataclasses.dataclass
class QutipResult:
    """The attributes of a ``qutip.solver.Result`` that analysis code reads.

    ``times``; ``expect``: one array per observable asked of ``charge``, in
    that order; ``e_data``: the same keyed by name, plus ``"energy"`` (the
    battery's ``E_B``); ``states``: ``Qobj`` kets or density matrices (empty
    unless ``save_states=True``); ``final_state``; ``solver``.
    """

    times: np.ndarray
    expect: list
    e_data: dict
    states: list
    final_state: object
    solver: str
    stats: dict = dataclasses.field(default_factory=dict)


def _qobj(x, dims):
    import qutip

    x = np.asarray(x)
    if x.ndim == 1:
        return qutip.Qobj(x[:, None], dims=[list(dims), [1] * len(dims)])
    return qutip.Qobj(x, dims=[list(dims), list(dims)])


def to_qutip(traj) -> QutipResult:
    """See :meth:`qbjax.Trajectory.to_qutip`."""
    try:
        import qutip  # noqa: F401
    except ImportError as e:  # pragma: no cover - qutip is a test dependency
        raise ImportError("Trajectory.to_qutip needs QuTiP (pip install qutip)") from e
    if np.ndim(traj.ts) != 1:
        raise ValueError("to_qutip takes one trajectory, not a batch (index it first)")
    if not traj.dims and (traj.states is not None or traj.final_state is not None):
        raise ValueError("this trajectory does not record its space's dims")
    names = list(traj.expect)
    e_data = {n: np.asarray(traj.expect[n]) for n in names}
    e_data["energy"] = np.asarray(traj.energy)
    states = [] if traj.states is None else [_qobj(s, traj.dims) for s in np.asarray(traj.states)]
    final = None if traj.final_state is None else _qobj(traj.final_state, traj.dims)
    return QutipResult(np.asarray(traj.ts), [e_data[n] for n in names], e_data, states, final,
                       f"qbjax ({traj.method})", {"method": traj.method, "status": int(np.max(np.asarray(traj.status)))})
