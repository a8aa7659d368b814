"""A small command-line client for operators and for trying the platform out.

    python -m services.client token --kind center --center 511123101 --sub 值班员-张
    python -m services.client submit examples/report.json
    python -m services.client incident INCIDENT_ID
    python -m services.client orders INCIDENT_ID
    python -m services.client accept|arrive ORDER_ID
    python -m services.client complete ORDER_ID RESULT
    python -m services.client dead-letters list | show ID | replay ID | replay --all | discard ID

It speaks the same RPC API as any external platform (`AMQP_URI`), with the
caller's token from `--token` or `LINKAGE_TOKEN`. On a laptop without one it
mints a short-lived administrator's token from the development secret that
`make run` keeps under var/ (and says so).
"""

from __future__ import annotations

import warnings

# nameko 2.14 needs eventlet; its deprecation notice is not the operator's business
warnings.filterwarnings("ignore", message=r"\s*Eventlet is deprecated")

import eventlet  # noqa: E402

eventlet.monkey_patch()

import argparse  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

from nameko.exceptions import RemoteError  # noqa: E402
from nameko.standalone.rpc import ClusterRpcProxy  # noqa: E402

from shared.auth import KINDS, MissingSecret, auth_secret, bearer, mint  # noqa: E402
from shared.config import VAR_DIR, amqp_ssl, amqp_uri  # noqa: E402
from shared.deadletters import DeadLetters  # noqa: E402


def _print(value) -> None:
    print(json.dumps(value, ensure_ascii=False, indent=2))


def _secret() -> str:
    env = dict(os.environ)
    if not env.get("LINKAGE_AUTH_SECRET") and not env.get("LINKAGE_AUTH_SECRET_FILE"):
        env["LINKAGE_AUTH_SECRET_FILE"] = str(VAR_DIR / "auth-secret")
    return auth_secret(env)


def _token(args) -> str:
    token = args.token or os.environ.get("LINKAGE_TOKEN")
    if token:
        return token
    print("client: no LINKAGE_TOKEN; using a development admin token", file=sys.stderr)
    return mint(_secret(), "local-operator", "admin", ttl_s=600)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m services.client")
    parser.add_argument("--token", help="the caller's token (default: $LINKAGE_TOKEN)")
    sub = parser.add_subparsers(dest="command", required=True)
    token = sub.add_parser("token", help="mint a token with the deployment's secret")
    token.add_argument("--kind", choices=KINDS, required=True)
    token.add_argument("--sub", help="who: recorded as the actor (default: the kind)")
    token.add_argument("--name")
    token.add_argument("--center")
    token.add_argument("--department")
    token.add_argument("--source-system", action="append", dest="source_systems")
    token.add_argument("--ttl", type=int, default=8 * 3600, help="seconds (default 8 h)")
    submit = sub.add_parser("submit", help="submit a report (JSON file) and show its orders")
    submit.add_argument("file", type=Path)
    submit.add_argument("--wait", type=float, default=10, help="seconds to wait for orders")
    for name in ("incident", "orders"):
        sub.add_parser(name).add_argument("incident_id")
    for name in ("accept", "arrive"):
        sub.add_parser(name).add_argument("order_id")
    complete = sub.add_parser("complete")
    complete.add_argument("order_id")
    complete.add_argument("result")
    letters = sub.add_parser("dead-letters", help="inspect, replay or discard dead letters")
    letters.add_argument("action", choices=("list", "show", "replay", "discard"))
    letters.add_argument("id", nargs="?")
    letters.add_argument("--all", action="store_true", help="replay every dead letter")
    return parser


def _mint(args) -> int:
    try:
        secret = _secret()
    except MissingSecret as exc:
        print(f"client: {exc}", file=sys.stderr)
        return 2
    claims = {
        "name": args.name,
        "center": args.center,
        "department": args.department,
        "source_systems": args.source_systems,
    }
    print(mint(secret, args.sub or args.kind, args.kind, ttl_s=args.ttl, **claims))
    return 0


def _progress(done: int, total: int) -> None:
    width = 30
    filled = width * done // max(total, 1)
    print(f"\r[{'#' * filled}{'.' * (width - filled)}] {done}/{total}", end="", file=sys.stderr)
    if done == total:
        print(file=sys.stderr)


def _dead_letters(args) -> int:
    tool = DeadLetters(amqp_uri())
    if args.action == "list":
        _print([letter.summary() for letter in tool.list()])
        return 0
    if args.action == "replay" and args.all:
        print(f"replayed {tool.replay(progress=_progress)}", file=sys.stderr)
        return 0
    if not args.id:
        print(f"client: dead-letters {args.action} needs an ID", file=sys.stderr)
        return 2
    if args.action == "show":
        letter = tool.show(args.id)
        if letter is not None:
            _print({**letter.summary(), "headers": letter.headers, "payload": letter.payload()})
    elif args.action == "replay":
        letter = args.id if tool.replay(args.id) else None
    else:
        letter = args.id if tool.discard(args.id) else None
    if letter is None:
        print(f"client: no dead letter {args.id}", file=sys.stderr)
        return 1
    return 0


def _submit(rpc, args) -> int:
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


def _call(rpc, args) -> int:
    if args.command == "submit":
        return _submit(rpc, args)
    if args.command == "incident":
        _print(rpc.intake.get_incident(args.incident_id))
    elif args.command == "orders":
        _print(rpc.dispatch.list_orders(incident_id=args.incident_id))
    elif args.command in ("accept", "arrive"):
        _print(getattr(rpc.dispatch, args.command)(args.order_id))
    elif args.command == "complete":
        _print(rpc.dispatch.complete(args.order_id, args.result))
    return 0


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "token":
        return _mint(args)
    if args.command == "dead-letters":
        return _dead_letters(args)
    try:
        context = bearer(_token(args))
    except MissingSecret as exc:
        print(f"client: {exc}; pass --token or set LINKAGE_TOKEN", file=sys.stderr)
        return 2
    with ClusterRpcProxy(
        {"AMQP_URI": amqp_uri(), "AMQP_SSL": amqp_ssl()}, timeout=30, context_data=context
    ) as rpc:
        try:
            return _call(rpc, args)
        except RemoteError as error:
            print(f"{error.exc_type}: {error.value}", file=sys.stderr)
            return 2


if __name__ == "__main__":
    sys.exit(main())
