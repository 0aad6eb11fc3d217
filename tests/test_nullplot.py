"""The HTML report's picture of each candidate's score against the model's null (inline SVG, no script)."""

from __future__ import annotations

from scanner.report import ModelInfo, Report, Trigger, Verdict
from scanner.report.html import render_html
from scanner.report.nullplot import null_plot, null_plot_data


def _report() -> Report:
    report = Report(model=ModelInfo(source="local", id="m"), verdict=Verdict.BACKDOORED, probability=1.0)
    report.triggers = [
        Trigger(
            text="cf<script>",
            tokens=["cf"],
            score=26.5,
            p_value=1e-150,
            shift=3000.0,
            poison_cos=0.9,
            diff_cos=0.1,
            paper_rule=False,
        )
    ]
    report.scan.config = {
        "evidence": {
            "threshold": 5.3,
            "null_scores": {"default": [-1.0, 0.0, 0.4, 1.2, 2.0]},
            "task_features": [{"text": "dull", "score": 9.0, "override": 0.3}],
        }
    }
    return report


def test_plot_shows_null_threshold_and_candidates() -> None:
    data = null_plot_data(_report())
    assert data["null"] == [-1.0, 0.0, 0.4, 1.2, 2.0] and data["threshold"] == 5.3
    assert [(m[0], m[2]) for m in data["marks"]] == [("cf<script>", "trigger"), ("dull", "task")]
    svg = str(null_plot(_report()))
    assert svg.startswith("<svg") and svg.count("<circle") == 2 and "threshold 5.3" in svg
    assert "<script" not in svg and "cf&lt;script&gt;" in svg  # labels escaped


def test_no_null_no_plot() -> None:
    report = _report()
    report.scan.config = {}
    assert null_plot(report) is None


def test_html_report_embeds_the_plot_without_script() -> None:
    page = render_html(_report())
    assert '<svg xmlns="http://www.w3.org/2000/svg" class="null-plot"' in page
    assert "<script" not in page.split("<svg", 1)[1].split("</svg>", 1)[0]
