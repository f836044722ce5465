"""Entry point for ``python -m wildspace``."""

from wildspace.cli import exit_now, main

exit_now(main())
