"""Entry point for ``python -m evseg``."""

import sys

from evseg.cli import main

sys.exit(main())
