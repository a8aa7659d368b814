"""`python -m services.assessment`: the assessment service in the foreground;
`python -m services.assessment migrate`: its database upgraded to the code's schema."""

import eventlet

eventlet.monkey_patch()

import sys  # noqa: E402

from services import service_classes, topology  # noqa: E402
from shared.migrations import subcommand  # noqa: E402
from shared.runner import run  # noqa: E402

if sys.argv[1:]:
    sys.exit(subcommand(["assessment"], sys.argv[1:]))
sys.exit(run(service_classes(["assessment"]), topology()))
