"""A small command-line client for operators and for trying the platform out.

    python -m services.client submit examples/report.json
    python -m services.client incident INCIDENT_ID
    python -m services.client orders INCIDENT_ID
    python -m services.client accept|arrive ORDER_ID OPERATOR
    python -m services.client complete ORDER_ID OPERATOR RESULT

It speaks the same RPC API as any external platform (`AMQP_URI`).
"""

from __future__ import annotations

import eventlet

eventlet.monkey_patch()

import argparse  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

from nameko.exceptions import RemoteError  # noqa: E402
from nameko.standalone.rpc import ClusterRpcProxy  # noqa: E402

from shared.config import amqp_uri  # noqa: E402


def _print(value) -> None:
    print(json.dumps(value, ensure_ascii=False, indent=2))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m services.client")
    sub = parser.add_subparsers(dest="command", required=True)
    submit = sub.add_parser("submit", help="submit a report (JSON file) and show its orders")
    submit.add_argument("file", type=Path)
    submit.add_argument("--wait", type=float, default=10, help="seconds to wait for orders")
    for name in ("incident", "orders"):
        sub.add_parser(name).add_argument("incident_id")
    for name in ("accept", "arrive"):
        action = sub.add_parser(name)
        action.add_argument("order_id")
        action.add_argument("operator")
    complete = sub.add_parser("complete")
    complete.add_argument("order_id")
    complete.add_argument("operator")
    complete.add_argument("result")
    args = parser.parse_args(argv)

    with ClusterRpcProxy({"AMQP_URI": amqp_uri()}, timeout=30) as rpc:
        try:
            if args.command == "submit":
                report = json.loads(args.file.read_text(encoding="utf-8"))
                answer = rpc.intake.submit_report(report)
                _print(answer)
                deadline = time.monotonic() + args.wait
                orders = []
                while time.monotonic() < deadline and not orders:
                    time.sleep(0.3)
                    orders = rpc.dispatch.list_orders(incident_id=answer["incident_id"])
                _print(orders)
                return 0 if orders else 1
            if args.command == "incident":
                _print(rpc.intake.get_incident(args.incident_id))
            elif args.command == "orders":
                _print(rpc.dispatch.list_orders(incident_id=args.incident_id))
            elif args.command in ("accept", "arrive"):
                _print(getattr(rpc.dispatch, args.command)(args.order_id, args.operator))
            elif args.command == "complete":
                _print(rpc.dispatch.complete(args.order_id, args.operator, args.result))
        except RemoteError as error:
            print(f"{error.exc_type}: {error.value}", file=sys.stderr)
            return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
