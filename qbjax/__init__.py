"""qbjax: differentiable, GPU-ready simulation of quantum batteries.

The public API is re-exported here; nothing is defined in this file.
"""

import jax as _jax

_jax.config.update("jax_enable_x64", True)

from ._cache import enable_compilation_cache as _enable_compilation_cache

_enable_compilation_cache()

from .charging import PiecewiseConstant as PiecewiseConstant
from .charging import Trajectory as Trajectory
from .charging import TruncationWarning as TruncationWarning
from .charging import battery_ergotropy as battery_ergotropy
from .charging import battery_state as battery_state
from .charging import charge as charge
from .charging import time_grid as time_grid
from . import methods as methods
from .dynamics import ODEOptions as ODEOptions
from .metrics import MaxPower as MaxPower
from .metrics import collective_advantage as collective_advantage
from .metrics import ergotropy as ergotropy
from .metrics import max_power as max_power
from .metrics import passive_energy as passive_energy
from .model import AbstractBattery as AbstractBattery
from .model import Charge as Charge
from .model import Dissipator as Dissipator
from .model import Spec as Spec
from .model import Term as Term
from .model import term as term
from .models import MODELS as MODELS
from .models import DickeBattery as DickeBattery
from .models import OscillatorBattery as OscillatorBattery
from .models import SpinBattery as SpinBattery
from .operators import Boson as Boson
from .operators import Levels as Levels
from .operators import Qubit as Qubit
from .operators import Spin as Spin
from .optimize import optimize as optimize
from .optimize import optimize_model as optimize_model
from .protocols import PiecewiseProtocol as PiecewiseProtocol
from .quantum import basis as basis
from .quantum import classical_coherent as classical_coherent
from .quantum import coherent as coherent
from .quantum import entropy as entropy
from .quantum import ket2dm as ket2dm
from .quantum import log_negativity as log_negativity
from .quantum import tensor as tensor
from .quantum import ptrace as ptrace
from .quantum import purity as purity
from .quantum import reduced_state as reduced_state
from .quantum import spin_coherent as spin_coherent
from .quantum import superposition as superposition
from .quantum import thermal as thermal
from .sweep import SweepResult as SweepResult
from .sweep import product as product
from .sweep import sweep as sweep
from .sweep import zipped as zipped

__version__ = "0.1.0"
