"""JAX's persistent compilation cache, switched on for qbjax's programs (a fresh process loads, not compiles).

A sweep or an optimisation compiles a few programs of a second or two each;
in a fresh process that is most of the wall time of a small job.  JAX can
keep compiled executables on disk and load them in a later process.  qbjax
turns that on at import unless the user configured it already:

* ``QBJAX_COMPILATION_CACHE=0`` (or ``off``) leaves JAX's setting alone;
* ``QBJAX_COMPILATION_CACHE=/some/dir`` uses that folder;
* otherwise ``$XDG_CACHE_HOME/qbjax/xla`` (``~/.cache/qbjax/xla``).

Every program is stored, however quickly it compiled: a command's start-up
compiled some twenty small programs (the figures of merit, the planning's
pilot runs) of ~30 ms each, half a second per process that loading them
saves (``qbjax charge dicke --n 20``: 3.9 s -> 2.6 s).  A folder that
cannot be created or written is skipped without error.  The cache is keyed by
JAX on the program, the jax/jaxlib versions and the device, so a stale entry
is never used.  Compiled programs containing host callbacks cannot be cached,
one more reason qbjax's own programs have none (:mod:`qbjax.status`).
"""

from __future__ import annotations

import os
import pathlib

import jax


def enable_compilation_cache() -> str | None:
    """Point JAX's persistent cache at qbjax's folder; returns the folder, or ``None`` when left off."""
    setting = os.environ.get("QBJAX_COMPILATION_CACHE", "").strip()
    if setting.lower() in ("0", "off", "false", "no", "none"):
        return None
    if jax.config.jax_compilation_cache_dir:  # the user chose already
        return jax.config.jax_compilation_cache_dir
    if setting:
        folder = pathlib.Path(setting).expanduser()
    else:
        base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
        folder = pathlib.Path(base) / "qbjax" / "xla"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / ".write-test"
        probe.write_text("")
        probe.unlink()
    except OSError:
        return None
    jax.config.update("jax_compilation_cache_dir", str(folder))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    return str(folder)
