"""Charts from report rows: file types, gaps, grouping, errors."""

import pytest

from synthweb.chart import MAX_SERIES, ChartError, chart_format, series, write_chart


def rows(domain: str, months: list[str], share: float) -> list[dict]:
    return [
        {
            "domain": domain,
            "month": m,
            "documents": 10,
            "share": share,
            "ci_low": share / 2,
            "ci_high": min(1, share * 2),
        }
        for m in months
    ]


def test_series_groups_sorts_and_drops_undated():
    data = rows("a.org", ["2024-03", "2024-01"], 0.2) + rows("b.org", ["2024-02"], 0.6)
    data.append({"domain": "a.org", "month": None, "share": 0.9, "documents": 99})
    lines = series(data, ["domain"])
    assert list(lines) == ["a.org", "b.org"]  # ranked by documents
    assert [p["x"].month for p in lines["a.org"]] == [1, 3]
    many = [r for i in range(MAX_SERIES + 3) for r in rows(f"d{i}.org", ["2024-01"], 0.1)]
    assert len(series(many, ["domain"])) == MAX_SERIES


def test_write_png_svg_html(tmp_path):
    data = rows("a.org", ["2023-01", "2023-02", "2023-06"], 0.3) + rows("b.org", ["2023-02"], 0.7)
    png = write_chart(tmp_path / "c.png", data, ["domain"], "share")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    svg = write_chart(tmp_path / "c.svg", data, [], "share")
    assert "<svg" in svg.read_text()[:2000]
    page = write_chart(tmp_path / "c.html", data, ["domain"], "share <by domain>")
    text = page.read_text()
    assert text.startswith("<!doctype html>") and "<svg" in text and "<?xml" not in text
    assert "<script" not in text and "src=" not in text and 'href="http' not in text  # loads nothing from elsewhere
    assert "share &lt;by domain&gt;" in text and "2023-06" in text and "70.0%" in text


def test_chart_errors(tmp_path):
    with pytest.raises(ChartError, match="png"):
        chart_format(tmp_path / "c.jpg")
    with pytest.raises(ChartError, match="nothing to draw"):
        write_chart(tmp_path / "c.png", [{"month": None, "share": 0.5}], [], "t")


def test_a_month_of_too_few_documents_is_off_the_line_but_in_the_table(tmp_path):
    from synthweb.chart import _with_gaps

    data = rows("a.org", ["2023-01", "2023-02", "2023-03"], 0.3)
    data[1].update(documents=1, share=1.0, ci_low=0.05, ci_high=1.0, too_few=True)
    xs, mid, low, high = _with_gaps(series(data, [])["all"])
    assert len(xs) == 3 and mid[0] == 30 and mid[2] == 30
    assert mid[1] != mid[1] and low[1] != low[1]  # NaN: no line through it, no full-height band
    text = write_chart(tmp_path / "c.html", data, [], "share").read_text()
    assert "<td>2023-02</td><td>1</td><td>too few</td><td>—</td><td>—</td>" in text
    assert "<td>2023-01</td><td>10</td><td>30.0%</td>" in text


def test_tables_show_too_few_instead_of_a_share():
    from synthweb.report import _cell

    row = {"documents": 3, "share": 1.0, "ci_low": 0.3, "ci_high": 1.0, "too_few": True}
    assert _cell("share", 1.0, row) == "too few (n=3)" and _cell("ci_low", 0.3, row) == "—"
    assert _cell("documents", 3, row) == "3"
    assert _cell("share", 1.0, {**row, "too_few": False}) == "100.0%"
