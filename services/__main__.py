"""`python -m services`: all four services in one process, for a laptop."""

import eventlet

eventlet.monkey_patch()

import sys  # noqa: E402

from shared.config import SERVICES  # noqa: E402
from shared.runner import run  # noqa: E402

sys.exit(run(list(SERVICES)))
