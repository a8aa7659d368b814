"""`python -m bench`: run every stage, print the table, write the results file."""

import logging
import warnings

# nameko 2.14 needs eventlet; its deprecation notice says nothing about a run.
warnings.filterwarnings("ignore", message=r"\s*Eventlet is deprecated")
# amqp warns about confirms that arrive while a client channel closes: harmless.
logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
logging.getLogger("amqp").setLevel(logging.ERROR)

import eventlet  # noqa: E402

# Before anything imports socket or threading: the client, the observer and the
# pollers are green threads sharing one OS thread, like the services they drive.
eventlet.monkey_patch()

# psycopg2 waits through eventlet too, or a query would stall the observer's clock.
from psycogreen.eventlet import patch_psycopg  # noqa: E402

patch_psycopg()

import os  # noqa: E402
import secrets  # noqa: E402
import sys  # noqa: E402

from bench.run import main  # noqa: E402

# the services check every call's token: the run signs its own
os.environ.setdefault("LINKAGE_AUTH_SECRET", secrets.token_urlsafe(48))

sys.exit(main())
