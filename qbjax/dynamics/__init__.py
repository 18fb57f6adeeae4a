"""Propagators. Each takes operators and states, never a model or a paper."""

from .hamilton import hamilton_flow as hamilton_flow
from .hamilton import hamilton_vector_field as hamilton_vector_field
from .lindblad import mesolve as mesolve
from .options import ODEOptions as ODEOptions
from .schrodinger import sesolve as sesolve
from .schrodinger import spectral_moments as spectral_moments
