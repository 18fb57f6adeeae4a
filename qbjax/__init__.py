"""qbjax: differentiable, GPU-ready simulation of quantum batteries.

The public API is re-exported here; nothing is defined in this file.
"""

import jax as _jax

_jax.config.update("jax_enable_x64", True)

from .charging import (  # noqa: E402
    PiecewiseConstant as PiecewiseConstant,
    Trajectory as Trajectory,
    TruncationWarning as TruncationWarning,
    battery_ergotropy as battery_ergotropy,
    battery_state as battery_state,
    charge as charge,
    time_grid as time_grid,
)
from .dynamics import ODEOptions as ODEOptions  # noqa: E402
from .metrics import (  # noqa: E402
    MaxPower as MaxPower,
    collective_advantage as collective_advantage,
    ergotropy as ergotropy,
    max_power as max_power,
    passive_energy as passive_energy,
)
from .model import (  # noqa: E402
    AbstractBattery as AbstractBattery,
    Charge as Charge,
    Dissipator as Dissipator,
    Spec as Spec,
    Term as Term,
    term as term,
)
from .models import MODELS as MODELS, DickeBattery as DickeBattery  # noqa: E402
from .models import OscillatorBattery as OscillatorBattery, SpinBattery as SpinBattery  # noqa: E402
from .operators import Boson as Boson, Levels as Levels, Qubit as Qubit, Spin as Spin  # noqa: E402

__version__ = "0.1.0"
