"""Entry point for ``python -m wildspace``."""

import sys

from wildspace.cli import main

sys.exit(main())
