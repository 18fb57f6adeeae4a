"""The batteries of the seed papers, by CLI name."""

from .dicke import DickeBattery as DickeBattery
from .dicke import default_cutoff as default_cutoff
from .heat_engine import HeatEngineBattery as HeatEngineBattery
from .heat_engine import HeatEngineFull as HeatEngineFull
from .oscillators import OscillatorBattery as OscillatorBattery
from .reservoirs import ReservoirBattery as ReservoirBattery
from .spin_chain import SpinChainBattery as SpinChainBattery
from .spins import SpinBattery as SpinBattery

MODELS = {"oscillator": OscillatorBattery, "spins": SpinBattery, "dicke": DickeBattery}
