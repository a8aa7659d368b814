"""`python -m services.dispatch`: the dispatch service in the foreground;
`python -m services.dispatch migrate`: its database upgraded to the code's schema."""

import eventlet

eventlet.monkey_patch()

import sys  # noqa: E402

from services import service_classes, topology  # noqa: E402
from shared.migrations import subcommand  # noqa: E402
from shared.runner import run  # noqa: E402

if sys.argv[1:]:
    sys.exit(subcommand(["dispatch"], sys.argv[1:]))
sys.exit(run(service_classes(["dispatch"]), topology()))
