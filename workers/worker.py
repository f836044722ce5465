"""Thin entry point for a queue worker: ``python workers/worker.py --device cuda:0``.

Same as ``python -m wildspace worker``; start one per GPU, each pinned with ``--device``.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from wildspace.cli import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main(["worker", *sys.argv[1:]]))
