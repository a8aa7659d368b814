"""`python -m services.gateway`: the HTTP gateway in the foreground (no database)."""

import eventlet

eventlet.monkey_patch()

import sys  # noqa: E402

from services import service_classes, topology  # noqa: E402
from shared.runner import run  # noqa: E402

if sys.argv[1:]:
    print("linkage: the gateway has no database and no subcommands", file=sys.stderr)
    sys.exit(2)
sys.exit(run(service_classes(["gateway"]), topology()))
