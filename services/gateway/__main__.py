"""`python -m services.gateway`: the HTTP gateway in the foreground. It has no
database: `python -m services.gateway migrate` has nothing to do and says so,
so that a deployment may run `migrate` for every service alike."""

import eventlet

eventlet.monkey_patch()

import sys  # noqa: E402

from services import service_classes, topology  # noqa: E402
from shared.runner import run  # noqa: E402

if sys.argv[1:] == ["migrate"]:
    print("linkage: the gateway has no database: nothing to migrate")
    sys.exit(0)
if sys.argv[1:]:
    print(f"linkage: the gateway takes no subcommand {' '.join(sys.argv[1:])}", file=sys.stderr)
    sys.exit(2)
sys.exit(run(service_classes(["gateway"]), topology()))
