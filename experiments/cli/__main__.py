"""``python -m experiments.cli ...`` is ``wlf ...``."""

import sys

from .main import main

sys.exit(main())
