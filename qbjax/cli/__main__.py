"""``python -m qbjax.cli``."""

from . import main

raise SystemExit(main())
