"""Collisional charging of ladder batteries by streams of qubits (seed 003, Salvia et al.)."""

from ._model import CollisionalModel as CollisionalModel
from ._model import LadderBattery as LadderBattery
from ._model import QubitUnits as QubitUnits
from ._model import collisional_model as collisional_model
from ._model import spin_battery as spin_battery
from ._propagate import CollisionTrajectory as CollisionTrajectory
from ._propagate import collide as collide
from ._propagate import stored_energy as stored_energy
