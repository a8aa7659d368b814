"""Idempotent calls: a mutating RPC repeated with the same `request_id` by the
same caller gets the first answer and has no second effect.

The request is claimed (a row keyed by caller and request id) in the same
transaction as the call's effect: two instances running the same request at
once cannot both commit, since the second's claim conflicts (on PostgreSQL
it waits for the first to commit, then finds the row). The loser rolls back
and answers with the winner's answer, stored right after the winner's
commit. A call that fails stores nothing and may be tried again.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from datetime import UTC, datetime

import eventlet
from sqlalchemy import select, update

from shared.db import Store, UnitOfWork, insert_new
from shared.errors import LinkageError

ANSWER_WAIT_S = 10.0


class Repeated(LinkageError):
    """This request was claimed already: its effect is not made again."""


def once(store: Store, caller: str, request_id: str, method: str, call: Callable[[], object]):
    """`call()` once per (caller, request_id); its answer every time."""
    table = store._provider.metadata.tables["rpc_requests"]
    known = _answer(store, table, caller, request_id)
    if known is not None:
        return known

    def claim(tx: UnitOfWork) -> None:
        row = {
            "caller": caller,
            "request_id": request_id,
            "method": method,
            "answer": "",
            "created_at": datetime.now(UTC),
        }
        if tx.session.execute(insert_new(tx.session, table), row).rowcount != 1:
            raise Repeated(request_id)

    store.claim_in_next_transaction(claim)
    try:
        answer = call()
    except Repeated:
        return _wait_for_answer(store, table, caller, request_id)
    with store.transaction() as tx:
        tx.session.execute(
            update(table)
            .where(table.c.caller == caller, table.c.request_id == request_id)
            .values(answer=json.dumps(answer, ensure_ascii=False))
        )
    return answer


def _answer(store: Store, table, caller: str, request_id: str):
    with store.read() as session:
        stored = session.execute(
            select(table.c.answer).where(table.c.caller == caller, table.c.request_id == request_id)
        ).scalar_one_or_none()
    return json.loads(stored) if stored else None


def _wait_for_answer(store: Store, table, caller: str, request_id: str):
    """The first call committed its effect and is storing its answer."""
    deadline = time.monotonic() + ANSWER_WAIT_S
    while time.monotonic() < deadline:
        answer = _answer(store, table, caller, request_id)
        if answer is not None:
            return answer
        eventlet.sleep(0.05)
    # the first call's process died between its commit and its answer
    return {"request_id": request_id, "status": "applied"}
