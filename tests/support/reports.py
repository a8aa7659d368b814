"""Valid reports to start from; tests change what they are about."""

from __future__ import annotations

import uuid

DONGSHAN = "511123101"


def report(**changes) -> dict:
    base = {
        "source_system": "12345-hotline",
        "external_id": uuid.uuid4().hex,
        "channel": "12345",
        "category": "water.burst_main",
        "request_type": "help",
        "title": "主街自来水管破裂",
        "description": "路面积水，影响通行",
        "location": {"town": DONGSHAN, "address": "东山镇主街 12 号", "lat": 29.2, "lon": 103.9},
        "reported_at": "2026-11-27T09:15:00+08:00",
        "reporter": {"name": "王小明", "phone": "13800001234"},
    }
    base.update(changes)
    return base
