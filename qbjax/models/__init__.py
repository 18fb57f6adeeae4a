"""The batteries of the seed papers, by CLI name."""

from ._common import ParameterError as ParameterError
from .dicke import DickeBattery as DickeBattery
from .dicke import default_cutoff as default_cutoff
from .heat_engine import HeatEngineBattery as HeatEngineBattery
from .heat_engine import HeatEngineFull as HeatEngineFull
from .oscillators import OscillatorBattery as OscillatorBattery
from .reservoirs import ReservoirBattery as ReservoirBattery
from .spin_chain import SpinChainBattery as SpinChainBattery
from .spins import SpinBattery as SpinBattery

#: Every battery model by its name: the one registry that the command line, ``sweep``, the docs and
#: ``reproduce`` read (``qbjax sweep MODEL``, ``qbjax charge MODEL``).
REGISTRY = {
    "oscillator": OscillatorBattery,
    "spins": SpinBattery,
    "dicke": DickeBattery,
    "heat-engine": HeatEngineBattery,
    "heat-engine-full": HeatEngineFull,
    "spin-chain": SpinChainBattery,
    "reservoirs": ReservoirBattery,
}
#: The closed models ``qbjax charge MODEL`` builds from its generic flags (the others have their own commands).
MODELS = {k: REGISTRY[k] for k in ("oscillator", "spins", "dicke")}
