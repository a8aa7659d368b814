"""The notice (通报) as a document: HTML escaped, PDF with Chinese that reads back."""

import copy
import re
import shutil
import subprocess

import pytest
from matplotlib import font_manager
from PIL import Image, ImageStat

from services.assessment import notice
from shared.errors import ValidationError
from shared.network import load_network
from tests.unit.assessment.seeded_month import seeded_month


@pytest.fixture(scope="module")
def month():
    return seeded_month()


@pytest.fixture(scope="module")
def pdf(month, tmp_path_factory):
    filename, content_type, content = notice.render_notice(month, "pdf")
    path = tmp_path_factory.mktemp("notice") / filename
    path.write_bytes(content)
    return filename, content_type, path


def html_of(data) -> str:
    return notice.render_notice(data, "html")[2].decode("utf-8")


def words(text: str) -> str:
    """Text without whitespace: a long name may wrap inside its table cell."""
    return re.sub(r"\s+", "", text)


# -- the document's parts ----------------------------------------------------------


def test_the_title_names_the_center_and_the_month(month):
    html = html_of(month)
    assert "犍为县社会应急联动工作通报（2026年11月）" in html
    assert "统计时段：2026年11月1日至2026年11月30日" in html


def test_a_period_other_than_a_month_is_named_by_its_first_and_last_day(month):
    data = dict(month, since="2026-11-03T00:00:00+08:00", until="2026-11-21T00:00:00+08:00")
    assert "工作通报（2026年11月3日至2026年11月20日）" in html_of(data)


def test_the_filename_names_the_center_and_the_period():
    since, until = (
        notice._instant(t) for t in ("2026-11-01T00:00+08:00", "2026-12-01T00:00+08:00")
    )
    assert notice.notice_filename("511123", since, until, "pdf") == "notice-511123-2026-11.pdf"
    until = notice._instant("2026-11-16T00:00+08:00")
    assert (
        notice.notice_filename("511123", since, until, "html")
        == "notice-511123-2026-11-01-2026-11-15.html"
    )
    assert notice.notice_filename("../x y", since, until, "pdf").startswith("notice-.._x_y-")


def test_html_is_returned_as_utf8_html_with_its_filename(month):
    filename, content_type, content = notice.render_notice(month, "html")
    assert filename == "notice-511123-2026-11.html"
    assert content_type == "text/html; charset=utf-8"
    assert content.decode("utf-8").startswith("<!DOCTYPE html>")


def test_an_unknown_format_is_a_validation_error_naming_the_field(month):
    with pytest.raises(ValidationError) as error:
        notice.render_notice(month, "docx")
    assert error.value.errors == {"format": ["must be one of html, pdf"]}


def test_every_value_is_escaped(month):
    data = copy.deepcopy(month)
    data["center_name"] = "犍为县<b>"
    data["departments"][0]["name"] = '<script>alert("x")</script>'
    data["worst_overdue"][0]["category"] = "<img src=x onerror=alert(1)>"
    html = html_of(data)
    assert "<script>" not in html and "<img src=x" not in html and "犍为县<b>" not in html
    assert "&lt;script&gt;" in html and "犍为县&lt;b&gt;" in html


def test_the_charts_are_inline_svg_and_nothing_is_fetched(month):
    html = html_of(month)
    assert html.count('src="data:image/svg+xml;base64,') == 2
    assert "http://" not in html and "https://" not in html and "file:" not in html


def test_only_the_most_overdue_cases_are_listed(month):
    data = dict(
        month,
        worst_overdue=[
            {"order_id": f"ORD-{m:03d}", "incident_id": "I", "department_name": "水务营业所",
             "category": "自来水管破裂", "dispatched_at": "2026-11-02T09:00:00+08:00",
             "overdue_minutes": m}
            for m in range(1, 30)
        ],
    )  # fmt: skip
    listed = re.findall(r"ORD-(\d{3})", html_of(data))
    assert listed == [f"{m:03d}" for m in range(29, 29 - notice.MAX_WORST_CASES, -1)]


def test_an_empty_period_still_renders_with_its_empty_sections_said(month):
    data = dict(month, departments=[], centers=[], daily=[], worst_overdue=[], headline={})
    html = html_of(data)
    assert "本期无部门工单" in html and "本期无超时工单" in html
    assert "群众满意率—" in html  # a rate without data is a dash, not 0%


def test_the_charts_draw_chinese_with_a_cjk_font():
    notice._ensure_cjk_font()
    found = font_manager.findfont(notice.CJK_SANS[0], fallback_to_default=False)
    assert "CJK" in found


def test_the_same_figures_give_the_same_html(month):
    assert html_of(month) == html_of(copy.deepcopy(month))


# -- the PDF, read back with poppler -------------------------------------------------


def test_the_pdf_is_a_pdf_named_for_the_month(pdf):
    filename, content_type, path = pdf
    assert filename == "notice-511123-2026-11.pdf" and content_type == "application/pdf"
    assert path.read_bytes().startswith(b"%PDF-")


def test_the_pdfs_first_page_is_not_blank(pdf, tmp_path):
    assert shutil.which("pdftoppm"), "poppler-utils: scripts/prepare-services installs it"
    subprocess.run(
        ["pdftoppm", "-r", "40", "-f", "1", "-l", "1", "-png", "-singlefile", pdf[2],
         tmp_path / "page1"],
        check=True,
    )  # fmt: skip
    with Image.open(tmp_path / "page1.png") as page:
        grey = page.convert("L")
        spread = ImageStat.Stat(grey).stddev[0]
        inked = sum(1 for value in grey.getdata() if value < 200) / (grey.width * grey.height)
    assert spread > 20, spread  # a blank page has none
    assert inked > 0.03, inked


def test_the_pdfs_text_holds_the_center_and_every_ranked_department_and_town(pdf, month):
    assert shutil.which("pdftotext"), "poppler-utils: scripts/prepare-services installs it"
    text = subprocess.run(
        ["pdftotext", "-enc", "UTF-8", pdf[2], "-"], check=True, capture_output=True, text=True
    ).stdout
    text = words(text)
    assert "犍为县社会应急联动工作通报（2026年11月）" in text
    assert len(month["departments"]) == len(load_network().departments_of("511123"))
    for row in month["departments"] + month["centers"]:
        assert words(row["name"]) in text, row["name"]


def test_the_same_figures_give_the_same_pdf(month, pdf):
    assert notice.render_notice(month, "pdf")[2] == pdf[2].read_bytes()


def test_the_last_scored_rank_is_singled_out_and_unscored_rows_are_not():
    rows = [
        {"rank": 1, "score": 90.0},
        {"rank": 2, "score": 70.0},
        {"rank": 2, "score": 70.0},
        {"rank": 4, "score": None},
    ]
    assert notice.last_place(rows) == 2
    assert notice.last_place(rows[:1]) is None and notice.last_place([]) is None
