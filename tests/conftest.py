import os
import warnings

import jax

jax.config.update("jax_enable_x64", True)
os.environ.setdefault("MPLBACKEND", "Agg")
warnings.filterwarnings("ignore", message="Complex dtype support in Diffrax")
