"""The period's notice (通报) as a document a county office would circulate.

`render_notice(data, format)` turns plain figures into HTML or PDF
(CONTRACT.md section 9): a title such as 犍为县社会应急联动工作通报（2026年11月）,
a headline paragraph and figures, the ranking of the center's departments and
of the centers below it, charts of satisfaction and timeliness day by day, the
worst overdue cases, and a footer. It reads no database: the service gathers
`data` and this module only lays it out.

`data` (a mapping; times are ISO 8601 strings with an offset, or aware
datetimes; rates are fractions in [0, 1] or None):

    center, center_name           "511123", "犍为县"
    center_level                  optional: "town" | "county" | "city" (names the
                                  second ranking: 乡镇（街道） below a county)
    since, until, as_of           the window [since, until) and when it was computed
    headline                      {orders, completed, satisfaction_rate,
                                   accepted_on_time_rate, arrived_on_time_rate,
                                   returns, urges, overdue, reports_due, reports_late}
    departments                   rows as `scores` returns them (department, name,
                                  orders, accepted_on_time_rate, arrived_on_time_rate,
                                  completed, returns, satisfaction_rate, score, rank)
    centers                       rows as `ranking.rank_centers` returns them
    daily                         [{date, satisfaction_rate, accepted_on_time_rate,
                                    arrived_on_time_rate}] one per day of the window
    worst_overdue                 [{order_id, incident_id, department_name, category
                                    (a name or a code), dispatched_at, overdue_minutes}];
                                  the MAX_WORST_CASES most overdue are shown
    weights                       optional: the score weights, quoted in the footer

Every value is escaped (Jinja2 autoescape); charts are drawn with matplotlib
(Agg, SVG with the glyphs as paths, so the PDF needs no font for them) and
embedded as data URIs; the PDF is WeasyPrint's, in Noto CJK (Debian's
fonts-noto-cjk, installed by scripts/prepare-services and the Dockerfile).
A month of figures renders in about a second or two, most of it WeasyPrint
laying out and subsetting the CJK font.
"""

from __future__ import annotations

import base64
import glob
import io
import math
import re
from collections.abc import Mapping, Sequence
from datetime import date, datetime, timedelta
from functools import cache
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, Undefined, select_autoescape

from shared.errors import ValidationError

FORMATS = {"html": "text/html; charset=utf-8", "pdf": "application/pdf"}
MAX_WORST_CASES = 10
# Simplified Chinese first; DejaVu (matplotlib's own) for Latin if no CJK font.
CJK_SANS = ("Noto Sans CJK SC", "Noto Sans CJK JP", "DejaVu Sans")
# Where Debian's fonts-noto-cjk puts them: added to matplotlib by file when its
# font cache predates the package (the cache is not rebuilt by itself).
DEBIAN_CJK_FILES = "/usr/share/fonts/opentype/noto/NotoSansCJK-*.ttc"
TEMPLATES = Path(__file__).parent / "templates"
HEADLINE_KEYS = (
    "orders",
    "completed",
    "satisfaction_rate",
    "accepted_on_time_rate",
    "arrived_on_time_rate",
    "returns",
    "urges",
    "overdue",
    "reports_due",
    "reports_late",
)
LOWER_LEVEL = {"city": "区县", "county": "乡镇（街道）", "town": "村（社区）"}

_SAFE_CODE = re.compile(r"[^0-9A-Za-z_.-]")


def render_notice(data: Mapping[str, Any], format: str) -> tuple[str, str, bytes]:
    """(filename, content_type, content) of the notice in `format` (html | pdf)."""
    if format not in FORMATS:
        raise ValidationError({"format": [f"must be one of {', '.join(FORMATS)}"]})
    since, until = _instant(data["since"]), _instant(data["until"])
    filename = notice_filename(str(data["center"]), since, until, format)
    html = render_html(data)
    if format == "html":
        return filename, FORMATS["html"], html.encode("utf-8")
    return filename, FORMATS["pdf"], html_to_pdf(html)


def notice_filename(center: str, since: datetime, until: datetime, format: str) -> str:
    """`notice-511123-2026-11.pdf` for a calendar month, otherwise
    `notice-511123-2026-11-03-2026-11-20.pdf` (first and last day)."""
    code = _SAFE_CODE.sub("_", center)
    if is_calendar_month(since, until):
        period = f"{since:%Y-%m}"
    else:
        period = f"{since:%Y-%m-%d}-{last_day(until):%Y-%m-%d}"
    return f"notice-{code}-{period}.{format}"


def is_calendar_month(since: datetime, until: datetime) -> bool:
    """[since, until) is one whole month in the offset `since` is given in."""
    until = until.astimezone(since.tzinfo) if since.tzinfo else until
    start = since.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    next_month = (start + timedelta(days=32)).replace(day=1)
    return since == start and until == next_month


def last_day(until: datetime) -> date:
    """The last day inside [since, until): `until` is excluded."""
    return (until - timedelta(microseconds=1)).date()


def period_title(since: datetime, until: datetime) -> str:
    """ "2026年11月" for a month, else "2026年11月3日至2026年11月20日"."""
    if is_calendar_month(since, until):
        return f"{since.year}年{since.month}月"
    return f"{_cn_date(since.date())}至{_cn_date(last_day(until))}"


def render_html(data: Mapping[str, Any]) -> str:
    """The notice as one self-contained HTML page (charts inline)."""
    since, until = _instant(data["since"]), _instant(data["until"])
    as_of = _instant(data["as_of"])
    center_name = str(data["center_name"])
    daily = list(data.get("daily") or [])
    worst = sorted(
        data.get("worst_overdue") or [],
        key=lambda case: -(case.get("overdue_minutes") or 0),
    )[:MAX_WORST_CASES]
    context = {
        "title": f"{center_name}社会应急联动工作通报（{period_title(since, until)}）",
        "issuer": f"{center_name}社会应急联动指挥中心",
        "center_name": center_name,
        "period": f"{_cn_date(since.date())}至{_cn_date(last_day(until))}",
        "as_of": f"{_cn_date(as_of.date())} {as_of:%H:%M}",
        "headline": {key: (data.get("headline") or {}).get(key) for key in HEADLINE_KEYS},
        "departments": list(data.get("departments") or []),
        "centers": list(data.get("centers") or []),
        "last_department": last_place(data.get("departments") or []),
        "last_center": last_place(data.get("centers") or []),
        "lower_level": LOWER_LEVEL.get(str(data.get("center_level")), "下级中心"),
        "worst": [dict(case, dispatched_at=_when(case.get("dispatched_at"))) for case in worst],
        "weights": data.get("weights"),
        "satisfaction_chart": satisfaction_chart(daily),
        "timeliness_chart": timeliness_chart(daily),
    }
    return _environment().get_template("notice.html").render(**context)


def last_place(rows: Sequence[Mapping[str, Any]]) -> int | None:
    """The rank a notice singles out as last (末位): the worst rank among the
    scored rows, when more than one row is scored; unscored rows are not
    judged."""
    ranks = [row.get("rank") for row in rows if row.get("score") is not None]
    return max(ranks) if len(ranks) > 1 else None


def html_to_pdf(html: str) -> bytes:
    # Imported here: WeasyPrint loads Pango through cffi, which only the PDF needs.
    from weasyprint import HTML

    return HTML(string=html, base_url=str(TEMPLATES)).write_pdf()


# -- charts --------------------------------------------------------------------


def satisfaction_chart(daily: Sequence[Mapping[str, Any]]) -> str:
    """Daily citizen satisfaction rate, as an SVG data URI."""
    return _line_chart(daily, [("satisfaction_rate", "群众满意率", "#c0392b")])


def timeliness_chart(daily: Sequence[Mapping[str, Any]]) -> str:
    """Daily on-time acceptance and arrival rates, as an SVG data URI."""
    return _line_chart(
        daily,
        [
            ("accepted_on_time_rate", "按时签收率", "#1f5fa8"),
            ("arrived_on_time_rate", "按时到场率", "#2e8b57"),
        ],
    )


def _line_chart(daily: Sequence[Mapping[str, Any]], series: list[tuple[str, str, str]]) -> str:
    from matplotlib import rc_context
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    _ensure_cjk_font()
    days = [_day(entry.get("date")) for entry in daily]
    # Fixed hash salt and no date: the same figures give the same SVG bytes.
    style = {
        "font.family": "sans-serif",
        "font.sans-serif": list(CJK_SANS),
        "font.size": 8,
        "axes.unicode_minus": False,
        "svg.fonttype": "path",
        "svg.hashsalt": "linkage-notice",
    }
    with rc_context(style):
        figure = Figure(figsize=(6.7, 1.6))
        FigureCanvasAgg(figure)  # headless: no display and no pyplot state
        axes = figure.add_subplot()
        for key, label, colour in series:
            values = [_percent_or_nan(entry.get(key)) for entry in daily]
            axes.plot(
                range(len(days)), values, marker="o", markersize=2.5, linewidth=1.4,
                color=colour, label=label,
            )  # fmt: skip
        axes.set_ylim(0, 105)
        axes.set_yticks([0, 25, 50, 75, 100])
        axes.set_ylabel("%")
        axes.grid(axis="y", color="#dddddd", linewidth=0.6)
        axes.spines[["top", "right"]].set_visible(False)
        if days:
            step = max(1, math.ceil(len(days) / 10))
            ticks = list(range(0, len(days), step))
            axes.set_xticks(ticks, [f"{days[i].month}/{days[i].day}" for i in ticks])
            axes.set_xlim(-0.5, len(days) - 0.5)
        else:
            axes.set_xticks([])
            axes.text(0.5, 0.5, "本期无数据", ha="center", va="center", transform=axes.transAxes)
        # Above the plot, where no day's value can hide under it.
        axes.legend(loc="lower left", bbox_to_anchor=(0, 1), ncols=len(series), frameon=False)
        figure.tight_layout(pad=0.4)
        buffer = io.BytesIO()
        figure.savefig(buffer, format="svg", metadata={"Date": None})
    encoded = base64.b64encode(buffer.getvalue()).decode("ascii")
    return f"data:image/svg+xml;base64,{encoded}"


@cache
def _ensure_cjk_font() -> None:
    from matplotlib import font_manager

    try:
        font_manager.findfont(CJK_SANS[0], fallback_to_default=False)
    except ValueError:
        for path in sorted(glob.glob(DEBIAN_CJK_FILES)):
            font_manager.fontManager.addfont(path)


# -- formatting ------------------------------------------------------------------


@cache
def _environment() -> Environment:
    environment = Environment(
        loader=FileSystemLoader(TEMPLATES),
        autoescape=select_autoescape(["html"], default=True),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    environment.filters.update(pct=_pct, score=_score, count=_count)
    return environment


# A figure left out of `data` shows as a dash (a rate, a score) or 0 (a count),
# never as an error: a notice for a quiet month is still a notice.
def _missing(value: Any) -> bool:
    return value is None or isinstance(value, Undefined)


def _pct(value: Any) -> str:
    return "—" if _missing(value) else f"{100 * float(value):.1f}%"


def _score(value: Any) -> str:
    return "—" if _missing(value) else f"{float(value):.2f}"


def _count(value: Any) -> str:
    return "0" if _missing(value) else f"{int(value):,}"


def _percent_or_nan(value: Any) -> float:
    return math.nan if value is None else 100 * float(value)


def _instant(value: Any) -> datetime:
    return value if isinstance(value, datetime) else datetime.fromisoformat(str(value))


def _day(value: Any) -> date:
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    return date.fromisoformat(str(value)[:10])


def _when(value: Any) -> str:
    if value is None:
        return "—"
    moment = _instant(value)
    return f"{moment.month}月{moment.day}日 {moment:%H:%M}"


def _cn_date(day: date) -> str:
    return f"{day.year}年{day.month}月{day.day}日"
