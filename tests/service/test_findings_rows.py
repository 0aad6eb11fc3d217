"""The service's findings rows read Report.issues, the one findings list (issue 10 item 1)."""

from __future__ import annotations

from scanner.report import FileFinding, ModelInfo, Report, Serialization, Skipped, Trigger, Verdict
from scanner.report.issues import finalize
from tasks.lifecycle import findings_of


def test_findings_rows_are_the_report_issues() -> None:
    report = Report(
        model=ModelInfo(source="hub", id="org/m", files=["model.safetensors", "extra.bin"]),
        verdict=Verdict.BACKDOORED,
        probability=0.99,
        triggers=[Trigger("cf", ["cf"], 30.0, 1e-9, 3000.0, 0.1, 0.9, True)],
        serialization=Serialization(
            [
                FileFinding("model.safetensors", "safetensors", "safe"),
                FileFinding("extra.bin", "pickle", "dangerous", "os.system"),
            ]
        ),
        skipped=[Skipped("tf_model.h5", "other_framework", "not read")],
    )
    finalize(report)
    rows = findings_of(report)
    by_rule = {row.detail["rule"]: row for row in rows}
    assert set(by_rule) == {"PAT001", "PAT002"}  # the severity-less skip is in issues[] but not a findings row
    assert by_rule["PAT001"].kind == "trigger" and by_rule["PAT001"].text == "cf"  # lineage seeds read these
    assert by_rule["PAT001"].severity == "critical" and by_rule["PAT001"].score == 30.0
    assert by_rule["PAT002"].kind == "serialization" and by_rule["PAT002"].text == "extra.bin"
    assert by_rule["PAT002"].severity == "critical" and "os.system" in by_rule["PAT002"].detail["message"]
