"""`python -m services`: all four services in one process, for a laptop."""

import eventlet

eventlet.monkey_patch()

import sys  # noqa: E402

from services import service_classes, topology  # noqa: E402
from shared.runner import run  # noqa: E402

sys.exit(run(service_classes(), topology()))
