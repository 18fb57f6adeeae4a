"""Collisional charging of ladder batteries by streams of qubits (seed 003, Salvia et al.).

A battery (oscillator, spin or uniform ladder; :class:`LadderBattery`) is
charged by qubit units in the state of Eq. 1 (:class:`QubitUnits`) through the
exchange interaction of Eq. 2, one collision per swap angle ``theta_k``, with
optional damping between collisions (Eq. 21).  :class:`CollisionalModel` is
a battery model like the others: ``qb.charge(model.with_schedule(thetas))``
returns the common :class:`~qbjax.Trajectory` (one point per collision) through
the collision map of :mod:`qbjax.dynamics.collisions`.  :func:`collide` runs a
schedule in one ``lax.scan`` and returns the richer :class:`CollisionTrajectory`; :mod:`._protocols` builds the schedules
(full-swap, greedy, constant, optimised); :mod:`._bounds` holds the
incoherent bounds and coherent limits; :mod:`._master` is the independent
master-equation path of App. A.
"""

from ._bounds import R0 as R0
from ._bounds import X0 as X0
from ._bounds import bound_rhs as bound_rhs
from ._bounds import coherent_limit as coherent_limit
from ._bounds import damped_oscillator_bound as damped_oscillator_bound
from ._bounds import damped_oscillator_time as damped_oscillator_time
from ._bounds import full_swap_angles as full_swap_angles
from ._bounds import full_swap_time as full_swap_time
from ._bounds import full_swap_time_asymptotic as full_swap_time_asymptotic
from ._bounds import full_swap_time_printed as full_swap_time_printed
from ._bounds import incoherent_bound as incoherent_bound
from ._bounds import ladder_bound as ladder_bound
from ._bounds import oscillator_advantage as oscillator_advantage
from ._bounds import oscillator_bound as oscillator_bound
from ._bounds import oscillator_bound_power as oscillator_bound_power
from ._bounds import spin_advantage as spin_advantage
from ._bounds import spin_bound as spin_bound
from ._bounds import spin_bound_printed as spin_bound_printed
from ._bounds import spin_full_charge_time_bound as spin_full_charge_time_bound
from ._bounds import spin_full_charge_time_bound_printed as spin_full_charge_time_bound_printed
from ._master import driving_limit as driving_limit
from ._master import expansion_generator as expansion_generator
from ._master import generator as generator
from ._master import lindblad_operators as lindblad_operators
from ._master import master_collide as master_collide
from ._model import BATTERIES as BATTERIES
from ._model import CollisionalModel as CollisionalModel
from ._model import LadderBattery as LadderBattery
from ._model import QubitUnits as QubitUnits
from ._model import collisional_model as collisional_model
from ._model import spin_battery as spin_battery
from ._propagate import TRUNCATION_TOL as TRUNCATION_TOL
from ._propagate import CollisionTrajectory as CollisionTrajectory
from ._propagate import collide as collide
from ._propagate import stored_energy as stored_energy
from ._propagate import stored_energy_and_grad as stored_energy_and_grad
from ._protocols import PROTOCOLS as PROTOCOLS
from ._protocols import OptimizedSchedule as OptimizedSchedule
from ._protocols import constant_schedule as constant_schedule
from ._protocols import full_swap_schedule as full_swap_schedule
from ._protocols import greedy_schedule as greedy_schedule
from ._protocols import optimize_schedule as optimize_schedule
from ._protocols import schedule_from_logits as schedule_from_logits
