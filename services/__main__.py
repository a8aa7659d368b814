"""`python -m services`: all four services and the HTTP gateway in one process, for a laptop;
`python -m services migrate`: every service's database upgraded to the code's schema;
`python -m services declare-topology`: every exchange and queue of the platform
declared on the broker, as an administrator, before a rollout (a service's own
broker user may declare only its own: shared/messaging.py `declare_topology`)."""

import eventlet

eventlet.monkey_patch()

import sys  # noqa: E402

from services import laptop_classes, topology  # noqa: E402
from shared.config import SERVICES, nameko_config  # noqa: E402
from shared.messaging import declare_topology  # noqa: E402
from shared.migrations import subcommand  # noqa: E402
from shared.runner import run  # noqa: E402

if sys.argv[1:] == ["declare-topology"]:
    refused = declare_topology({**nameko_config(), "LINKAGE_TOPOLOGY": topology()})
    for name in refused:
        print(f"linkage: declare-topology: refused to this broker user: {name}", file=sys.stderr)
    sys.exit(1 if refused else 0)
if sys.argv[1:]:
    sys.exit(subcommand(list(SERVICES), sys.argv[1:]))
sys.exit(run(laptop_classes(), topology()))
