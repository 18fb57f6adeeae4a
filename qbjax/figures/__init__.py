"""Reproduced paper figures: one module per paper; each writes PNG + JSON data."""

from .seed000 import fig2 as _fig2
from .seed000 import fig3 as _fig3
from .seed000 import oscillator as _oscillator
from .seed001 import FIGURES as _SEED001
from .seed002 import FIGURES as _SEED002
from .seed003 import FIGURES as _SEED003
from .seed004 import FIGURES as _SEED004

FIGURES = {"oscillator": _oscillator, "fig2": _fig2, "fig3": _fig3, **_SEED001, **_SEED002, **_SEED003, **_SEED004}
