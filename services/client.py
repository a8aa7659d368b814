"""A small command-line client for operators and for trying the platform out.

    python -m services.client token --kind center --center 511123101 --sub 值班员-张
    python -m services.client submit examples/report.json
    python -m services.client incident INCIDENT_ID
    python -m services.client orders INCIDENT_ID
    python -m services.client accept|arrive ORDER_ID
    python -m services.client complete ORDER_ID RESULT
    python -m services.client add-order INCIDENT_ID DEPARTMENT REASON
    python -m services.client cancel|urge ORDER_ID REASON|NOTE
    python -m services.client reassign ORDER_ID DEPARTMENT REASON
    python -m services.client duty CENTER DATE [--set --leader NAME:PHONE --officer NAME:PHONE ...]
    python -m services.client board CENTER
    python -m services.client update INCIDENT_ID REASON crowd_size=600 grade=II
    python -m services.client close INCIDENT_ID RESULT [--casualties N --losses ... --measures ...]
    python -m services.client add-order|cancel|reassign|urge|duty|board ...
    python -m services.client rank-centers PARENT YYYY-MM
    python -m services.client notice CENTER YYYY-MM [--format html|pdf] [--out FILE]
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
import base64  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
import unicodedata  # noqa: E402
from datetime import datetime  # noqa: E402
from pathlib import Path  # noqa: E402
from zoneinfo import ZoneInfo  # noqa: E402

from nameko.exceptions import RemoteError  # noqa: E402
from nameko.standalone.rpc import ClusterRpcProxy  # noqa: E402

from shared.auth import KINDS, MissingSecret, auth_secret, bearer, mint  # noqa: E402
from shared.config import VAR_DIR, amqp_ssl, amqp_uri  # noqa: E402
from shared.deadletters import DeadLetters  # noqa: E402
from shared.network import load_network  # noqa: E402


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
    _steering_commands(sub)
    _reporting_commands(sub)
    _assessment_commands(sub)
    letters = sub.add_parser("dead-letters", help="inspect, replay or discard dead letters")
    letters.add_argument("action", choices=("list", "show", "replay", "discard"))
    letters.add_argument("id", nargs="?")
    letters.add_argument("--all", action="store_true", help="replay every dead letter")
    return parser


def _reporting_commands(sub) -> None:
    """信息报送 (CONTRACT.md section 8)."""
    report = sub.add_parser("file-report", help="report an incident up (first, progress, final)")
    report.add_argument("incident_id")
    report.add_argument("kind", choices=("first", "progress", "final"))
    report.add_argument("text")
    sub.add_parser("reports", help="the reports filed on an incident").add_argument("incident_id")
    inbox = sub.add_parser("inbox", help="the reports a center received")
    inbox.add_argument("center")
    inbox.add_argument("--unacknowledged", action="store_true", help="only those not signed for")
    sub.add_parser("acknowledge", help="签收: sign for a report").add_argument("report_id")


def _steering_commands(sub) -> None:
    """The duty room's commands (CONTRACT.md section 7)."""
    add = sub.add_parser("add-order", help="the center in command adds a unit (assist)")
    add.add_argument("incident_id")
    add.add_argument("department")
    add.add_argument("reason")
    for name, text in (("cancel", "reason"), ("urge", "note")):
        command = sub.add_parser(name, help=f"{name} an order (催办)" if name == "urge" else None)
        command.add_argument("order_id")
        command.add_argument(text)
    reassign = sub.add_parser("reassign", help="cancel an order and send it to another unit")
    reassign.add_argument("order_id")
    reassign.add_argument("department")
    reassign.add_argument("reason")
    duty = sub.add_parser("duty", help="show (or --set) a center's duty roster (值班)")
    duty.add_argument("center")
    duty.add_argument("date", help="YYYY-MM-DD")
    duty.add_argument("--set", action="store_true", help="set the roster instead of showing it")
    duty.add_argument("--leader", type=_person, help="NAME:PHONE")
    duty.add_argument("--officer", type=_person, action="append", default=[], help="NAME:PHONE")
    sub.add_parser("board", help="what a duty room sees, as a table").add_argument("center")
    close = sub.add_parser("close", help="结案: close an incident with its written result")
    close.add_argument("incident_id")
    close.add_argument("result")
    close.add_argument("--casualties", type=int)
    close.add_argument("--losses")
    close.add_argument("--measures")
    update = sub.add_parser("update", help="change an incident's facts, e.g. crowd_size=600")
    update.add_argument("incident_id")
    update.add_argument("reason")
    update.add_argument("changes", nargs="+", type=_change, help="FIELD=VALUE")


def _assessment_commands(sub) -> None:
    """Centers ranked and the notice (通报), over a calendar month."""
    ranked = sub.add_parser("rank-centers", help="the centers below PARENT ranked, as a table")
    ranked.add_argument("parent")
    ranked.add_argument("month", type=_month, help="YYYY-MM, on the network's calendar")
    notice = sub.add_parser("notice", help="通报: write a center's notice of a month to a file")
    notice.add_argument("center")
    notice.add_argument("month", type=_month, help="YYYY-MM, on the network's calendar")
    notice.add_argument("--format", choices=["pdf", "html"], default="pdf")
    notice.add_argument("--out", type=Path, help="default: the file name the service gives")


def _month(text: str) -> tuple[int, int]:
    try:
        moment = datetime.strptime(text, "%Y-%m")
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a month (YYYY-MM)") from None
    return moment.year, moment.month


def month_window(month: tuple[int, int], zone: ZoneInfo) -> tuple[str, str]:
    """[since, until) of a calendar month at midnight in `zone`, ISO 8601."""
    year, number = month
    since = datetime(year, number, 1, tzinfo=zone)
    until = datetime(year + number // 12, number % 12 + 1, 1, tzinfo=zone)
    return since.isoformat(), until.isoformat()


def _network_zone() -> ZoneInfo:
    """The network's timezone: its months are the ones a notice counts."""
    return load_network(os.environ.get("LINKAGE_NETWORK")).timezone


def _rank_centers(rpc, args) -> int:
    since, until = month_window(args.month, _network_zone())
    rows = rpc.assessment.rank_centers(args.parent, since, until)
    heads = ["rank", "center", "name", "score", "units", "orders", "satisfied", "returns"]
    heads += ["urges", "overdue", "reports late/due"]

    def number(value, pattern: str):
        return None if value is None else pattern.format(value)

    table = [
        [
            r["rank"],
            r["center"],
            r["name"],
            number(r["score"], "{:.2f}"),
            number(r.get("units_score"), "{:.2f}"),
            r["orders"],
            number(r["satisfaction_rate"], "{:.1%}"),
            r["returns"],
            r["urges"],
            r["overdue_orders"],
            f"{r['reports_late']}/{r['reports_due']}",
        ]
        for r in rows
    ]
    print(_table(heads, table))
    return 0


def _notice(rpc, args) -> int:
    since, until = month_window(args.month, _network_zone())
    answer = rpc.assessment.notice(args.center, since, until, args.format)
    path = args.out or Path(answer["filename"])
    path.write_bytes(base64.b64decode(answer["content_base64"]))
    print(path)
    return 0


def _change(text: str) -> tuple[str, object]:
    """`crowd_size=600` → ("crowd_size", 600); numbers as numbers, `null` as None."""
    name, sep, value = text.partition("=")
    if not sep or not name:
        raise argparse.ArgumentTypeError(f"{text!r}: expected FIELD=VALUE")
    if value == "null":
        return name, None
    return name, int(value) if value.isdigit() else value


def _person(text: str) -> dict:
    name, sep, phone = text.rpartition(":")
    if not sep or not name.strip() or not phone.strip():
        raise argparse.ArgumentTypeError(f"{text!r} is not NAME:PHONE")
    return {"name": name.strip(), "phone": phone.strip()}


def _duty(rpc, args) -> int:
    if not args.set:
        _print(rpc.dispatch.duty(args.center, args.date))
        return 0
    if args.leader is None or not args.officer:
        print("client: duty --set needs --leader and at least one --officer", file=sys.stderr)
        return 2
    _print(rpc.dispatch.set_duty(args.center, args.date, args.leader, args.officer))
    return 0


def _width(text: str) -> int:
    """Columns a string takes in a terminal: CJK characters take two."""
    return sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in text)


def _table(headers: list[str], rows: list[list]) -> str:
    cells = [[str(c) if c is not None else "-" for c in row] for row in rows]
    widths = [max(_width(t) for t in column) for column in zip(headers, *cells, strict=False)]

    def line(values):
        return "  ".join(v + " " * (w - _width(v)) for v, w in zip(values, widths, strict=False))

    return "\n".join([line(headers), line(["-" * w for w in widths])] + [line(r) for r in cells])


def _local(instant: str | None, zone: ZoneInfo) -> str:
    """`MM-DD HH:MM` on the network's clock."""
    if not instant:
        return "-"
    return datetime.fromisoformat(instant).astimezone(zone).strftime("%m-%d %H:%M")


def _board(rpc, args) -> int:
    board = rpc.dispatch.board(args.center)
    zone = ZoneInfo(board["timezone"])
    duty = board["on_duty"]
    officers = ", ".join(o["name"] for o in duty["officers"]) if duty else "-"
    leader = duty["leader"]["name"] if duty else "-"
    print(f"{args.center}  {_local(board['at'], zone)}  值班领导 {leader}  值班员 {officers}")
    print(f"\nopen orders ({len(board['orders'])})")
    rows = [
        [
            "OVERDUE" if o["overdue"] else "",
            o["order_id"],
            o["department"],
            o["role"],
            o["status"],
            o["recipient"],
            _local(o["accept_by"], zone),
            _local(o["arrive_by"] or o["reply_by"], zone),
            o["urges"],
            (o["title"] or "")[:20],
        ]
        for o in board["orders"]
    ]
    heads = [
        "",
        "order",
        "department",
        "role",
        "status",
        "to",
        "accept by",
        "due",
        "urges",
        "title",
    ]
    print(_table(heads, rows))
    print(f"\nincidents in command ({len(board['incidents'])})")
    rows = [
        [
            i["incident_id"],
            i["category"],
            i["town"],
            i["open_orders"],
            i["overdue_orders"],
            _local(i["received_at"], zone),
            (i["title"] or "")[:20],
        ]
        for i in board["incidents"]
    ]
    heads = ["incident", "category", "town", "open", "overdue", "received", "title"]
    print(_table(heads, rows))
    return 0


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
    elif args.command == "add-order":
        _print(rpc.dispatch.add_order(args.incident_id, args.department, args.reason))
    elif args.command == "cancel":
        _print(rpc.dispatch.cancel_order(args.order_id, args.reason))
    elif args.command == "urge":
        _print(rpc.dispatch.urge(args.order_id, args.note))
    elif args.command == "reassign":
        _print(rpc.dispatch.reassign(args.order_id, args.department, args.reason))
    elif args.command == "file-report":
        _print(rpc.escalation.file_report(args.incident_id, args.kind, args.text))
    elif args.command == "reports":
        _print(rpc.escalation.reports(args.incident_id))
    elif args.command == "inbox":
        _print(rpc.escalation.inbox(args.center, unacknowledged=args.unacknowledged or None))
    elif args.command == "acknowledge":
        _print(rpc.escalation.acknowledge(args.report_id))
    elif args.command == "duty":
        return _duty(rpc, args)
    elif args.command == "board":
        return _board(rpc, args)
    elif args.command == "rank-centers":
        return _rank_centers(rpc, args)
    elif args.command == "notice":
        return _notice(rpc, args)
    elif args.command == "close":
        summary = {"result": args.result}
        for name in ("casualties", "losses", "measures"):
            if getattr(args, name) is not None:
                summary[name] = getattr(args, name)
        _print(rpc.intake.close_incident(args.incident_id, summary))
    elif args.command == "update":
        _print(rpc.intake.update_incident(args.incident_id, dict(args.changes), args.reason))
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
