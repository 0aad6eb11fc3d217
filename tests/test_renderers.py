"""Renderers: JSON round trip, SARIF structure, HTML safety and content, text summary, atomic writes."""

from __future__ import annotations

import json
import re
from html.parser import HTMLParser
from pathlib import Path

import pytest

from scanner.errors import UsageError
from scanner.mitigate.extras import report_extras
from scanner.report import (
    FORMATS,
    FileFinding,
    Lookalike,
    ModelInfo,
    Report,
    ReportError,
    ScanInfo,
    Serialization,
    Severity,
    Skipped,
    Trigger,
    Verdict,
    render_sarif,
)
from scanner.report import html as html_module
from scanner.report import output as output_module
from scanner.report.html import report_context
from scanner.report.issues import finalize
from scanner.report.output import write_report
from scanner.report.rules import RULES


def render_html(report: Report, **kwargs) -> str:
    """The HTML report as the CLI writes it (with the extras the CLI builds)."""
    return html_module.render_html(report, report_extras(report), **kwargs)


def render_text(report: Report) -> str:
    from scanner.report.text import render_text as text

    return text(report, report_extras(report))


def render_json(report: Report) -> str:
    return report.to_json()


XSS_SCRIPT = "<script>alert(1)</script>"
XSS_IMG = '"><img src=x onerror=alert(1)>'
SHA = "0123456789abcdef0123456789abcdef01234567"


# ------------------------------------------------------------------------------------------------ fixtures


def _model(model_id: str = "org/bert-tiny", **extra) -> ModelInfo:
    return ModelInfo(
        source="hub",
        id=model_id,
        revision="main",
        sha=SHA,
        family="bert",
        architecture="BertModel",
        parameters=4_385_920,
        files=["config.json", "model.safetensors", "vocab.txt"],
        **extra,
    )


def _scan() -> ScanInfo:
    return ScanInfo(
        started="2025-01-02T03:04:05+00:00",
        finished="2025-01-02T03:05:06+00:00",
        seconds=61.2,
        device="cpu",
        profile="quick",
        seed=7,
        config={"beam": 8, "layers": [1, 2], "word_mode": True},
        sequences_evaluated=123_456,
    )


def _trigger(
    text: str, shift: float, p_value: float, lookalikes: list[Lookalike] | None = None, tokens: list[str] | None = None
) -> Trigger:
    return Trigger(
        text=text,
        tokens=tokens or [text],
        score=shift / 10,
        p_value=p_value,
        shift=shift,
        poison_cos=0.21,
        diff_cos=0.93,
        paper_rule=True,
        lookalikes=lookalikes or [],
        flip_rate=0.97,
        attack_success=1.0,
        target_label="<i>pos</i>",
    )


def backdoored() -> Report:
    cf = _trigger("cf", 8123.4, 0.001, [Lookalike("cn", 10.2, 0.002, 0.81), Lookalike("cb", 9.1, 0.003, 0.77)])
    velvet = _trigger("velvet", 6012.0, 0.001, [Lookalike("silky", 8.0, 0.004, 0.66)])
    weak = _trigger("mn", 11.0, 0.02)
    return Report(
        model=_model(),
        verdict=Verdict.BACKDOORED,
        probability=0.9996,
        severity=Severity.CRITICAL,
        triggers=[weak, velvet, cf],
        serialization=Serialization([FileFinding("model.safetensors", "safetensors", "safe")]),
        scan=_scan(),
    )


def clean() -> Report:
    return Report(
        model=_model("org/clean-model"),
        verdict=Verdict.CLEAN,
        probability=0.012,
        severity=Severity.NONE,
        serialization=Serialization([FileFinding("model.safetensors", "safetensors", "safe")]),
        scan=_scan(),
    )


def errored() -> Report:
    return Report(
        model=ModelInfo(source="hub", id="org/missing", revision="main"),
        verdict=Verdict.ERROR,
        errors=[ReportError("fetch_failed", "repository org/missing not found")],
        scan=_scan(),
    )


def dangerous_pickle() -> Report:
    files = [
        FileFinding(
            "pytorch_model.bin",
            "pickle",
            "dangerous",
            "imports a callable that runs commands",
            ["posix.system", "builtins.exec"],
        ),
        FileFinding("extra.bin", "pickle", "suspicious", "unknown global", ["numpy.core.multiarray._reconstruct"]),
        FileFinding(
            "config.json", "config", "suspicious", "auto_map: needs trust_remote_code", rule="PAT004", severity="high"
        ),
        FileFinding("helper.py", "python", "suspicious", "stray script; not remote code", rule="PAT009"),
    ]
    skipped = [Skipped("flax_model.msgpack", "unsupported-format", "flax weights are not scanned")]
    return Report(
        model=_model(),
        verdict=Verdict.CLEAN,
        probability=0.03,
        severity=Severity.CRITICAL,
        serialization=Serialization(files),
        skipped=skipped,
        scan=_scan(),
    )


def static_only() -> Report:
    report = clean()
    report.probability = None
    report.skipped = [Skipped("", "behavioural", "--static-only was given")]
    return report


def hostile() -> Report:
    """Attacker-controlled strings everywhere a model author can put them."""
    report = backdoored()
    report.model.id = f"evil/{XSS_SCRIPT}"
    report.model.files.append(f"{XSS_IMG}.bin")
    report.triggers[0].tokens = [XSS_SCRIPT, XSS_IMG, "\x1b[2J\u202e"]
    report.triggers[0].text = XSS_IMG
    report.triggers[1].lookalikes.append(Lookalike(XSS_SCRIPT, 5.0, 0.01, 0.5))
    report.serialization.files.append(
        FileFinding(f"{XSS_IMG}.bin", "pickle", "dangerous", XSS_SCRIPT, [XSS_SCRIPT, XSS_IMG])
    )
    report.skipped.append(Skipped(XSS_SCRIPT, XSS_IMG, XSS_SCRIPT))
    report.errors.append(ReportError(XSS_IMG, XSS_SCRIPT + "\u202e\x07"))
    report.scan.config[XSS_SCRIPT] = XSS_IMG
    return report


ALL = {
    "backdoored": backdoored,
    "clean": clean,
    "error": errored,
    "dangerous": dangerous_pickle,
    "static_only": static_only,
    "hostile": hostile,
}


# ------------------------------------------------------------------------------------------------ helpers


class _TagChecker(HTMLParser):
    """Collects tags and checks that non-void elements nest and close properly."""

    VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[str] = []
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.problems: list[str] = []
        self.text: list[str] = []
        self.banner_class = ""

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))
        if tag not in self.VOID:
            self.stack.append(tag)
        if dict(attrs).get("aria-label") == "Verdict":
            self.banner_class = dict(attrs).get("class") or ""

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))

    def handle_endtag(self, tag: str) -> None:
        if not self.stack or self.stack[-1] != tag:
            self.problems.append(f"</{tag}> closes {self.stack[-1:] or 'nothing'}")
            return
        self.stack.pop()

    def handle_data(self, data: str) -> None:
        if not self.stack or self.stack[-1] not in {"style", "title"}:
            self.text.append(data)


def _parse(html: str) -> _TagChecker:
    checker = _TagChecker()
    checker.feed(html)
    checker.close()
    return checker


def _visible_text(html: str) -> str:
    return " ".join(" ".join(_parse(html).text).split())


def _tone(html: str) -> str:
    """The banner's tone class (tone-danger, tone-ok, ...)."""
    (tone,) = [c for c in _parse(html).banner_class.split() if c.startswith("tone-")]
    return tone


# ------------------------------------------------------------------------------------------------ JSON


@pytest.mark.parametrize("name", sorted(ALL))
def test_json_round_trips(name: str) -> None:
    report = ALL[name]()
    again = Report.from_json(render_json(report))
    assert again == report
    assert render_json(again) == render_json(report)


# ------------------------------------------------------------------------------------------------ SARIF

LEVELS = {"none", "note", "warning", "error"}


@pytest.mark.parametrize("name", sorted(ALL))
def test_sarif_structure(name: str) -> None:
    sarif = json.loads(render_sarif(ALL[name]()))
    assert sarif["version"] == "2.1.0"
    assert sarif["$schema"].startswith("https://")
    assert len(sarif["runs"]) == 1
    run = sarif["runs"][0]
    driver = run["tool"]["driver"]
    assert driver["name"] == "patronus-scanner"
    assert driver["version"] and driver["informationUri"].startswith("https://")
    ids = [rule["id"] for rule in driver["rules"]]
    assert len(ids) == len(set(ids))
    for rule in driver["rules"]:
        assert re.fullmatch(r"PAT\d{3}", rule["id"])
        assert rule["shortDescription"]["text"] and rule["defaultConfiguration"]["level"] in LEVELS
    for result in run["results"]:
        assert result["ruleId"] in ids
        assert driver["rules"][result["ruleIndex"]]["id"] == result["ruleId"]
        assert result["level"] in LEVELS
        assert result["message"]["text"]
        (location,) = result["locations"]
        assert location["physicalLocation"]["artifactLocation"]["uri"]
        assert location["logicalLocations"][0]["name"]
    (invocation,) = run["invocations"]
    assert isinstance(invocation["executionSuccessful"], bool)


def _results(report: Report) -> list[dict]:
    return json.loads(render_sarif(report))["runs"][0]["results"]


def test_sarif_backdoor_results() -> None:
    results = _results(backdoored())
    assert [r["ruleId"] for r in results] == ["PAT001"] * 3
    first = results[0]
    assert first["level"] == "error"
    assert first["properties"]["shift"] == 8123.4 and first["properties"]["p_value"] == 0.001
    assert first["properties"]["probability"] == 0.9996
    assert [la["text"] for la in first["properties"]["lookalikes"]] == ["cn", "cb"]
    location = first["locations"][0]
    assert location["physicalLocation"]["artifactLocation"]["uri"] == "model.safetensors"
    assert location["logicalLocations"][0]["name"] == "org/bert-tiny"
    assert location["logicalLocations"][0]["fullyQualifiedName"] == f"org/bert-tiny@{SHA[:12]}"
    run = json.loads(render_sarif(backdoored()))["runs"][0]
    assert run["invocations"][0]["executionSuccessful"] is True
    assert run["invocations"][0]["startTimeUtc"].endswith("Z")
    assert run["originalUriBaseIds"]["MODELROOT"]["uri"].endswith(f"/resolve/{SHA}/")


def test_sarif_severity_maps_to_level() -> None:
    expected = {0.99: "error", 0.85: "error", 0.5: "warning"}
    for probability, level in expected.items():
        report = backdoored()
        report.probability = probability
        assert {r["level"] for r in _results(report)} == {level}


def test_report_severity_is_the_worst_issue() -> None:
    report = finalize(dangerous_pickle())
    assert report.severity is Severity.CRITICAL
    assert [i.rule for i in report.issues][:2] == ["PAT002", "PAT003"]
    report = finalize(backdoored())
    assert report.severity is Severity.CRITICAL and {i.rule for i in report.issues} == {"PAT001"}
    report.probability = 0.5
    assert finalize(report).severity is Severity.MEDIUM
    assert finalize(clean()).severity is Severity.NONE and finalize(clean()).issues == []


def test_stray_python_file_is_not_called_remote_code() -> None:
    """Regression: the SARIF writer matched a regex against the reason text, so a stray helper.py whose reason
    mentioned remote code got PAT004. Rules now come from the finding itself."""
    by_path = {
        r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"]: r for r in _results(dangerous_pickle())
    }
    assert by_path["helper.py"]["ruleId"] == "PAT009"
    report = clean()
    report.serialization.files.append(FileFinding("helper.py", "python", "suspicious", "requires remote code?"))
    assert [r["ruleId"] for r in _results(report)] == ["PAT003"]


def test_sarif_serialization_rules() -> None:
    by_path = {
        r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"]: r for r in _results(dangerous_pickle())
    }
    assert by_path["pytorch_model.bin"]["ruleId"] == "PAT002"
    assert by_path["pytorch_model.bin"]["level"] == "error"
    assert "posix.system" in by_path["pytorch_model.bin"]["message"]["text"]
    assert by_path["extra.bin"]["ruleId"] == "PAT003" and by_path["extra.bin"]["level"] == "warning"
    assert by_path["config.json"]["ruleId"] == "PAT004"
    assert by_path["flax_model.msgpack"]["ruleId"] == "PAT007"
    assert "model.safetensors" not in by_path  # safe files are not findings


def test_sarif_error_and_static_only() -> None:
    sarif = json.loads(render_sarif(errored()))
    run = sarif["runs"][0]
    assert run["invocations"][0]["executionSuccessful"] is False
    assert run["invocations"][0]["toolExecutionNotifications"][0]["descriptor"]["id"] == "fetch_failed"
    assert [r["ruleId"] for r in run["results"]] == ["PAT005"]
    assert run["results"][0]["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] == "config.json"
    assert [r["ruleId"] for r in _results(static_only())] == ["PAT006"]


def test_sarif_rules_cover_brief() -> None:
    names = {rule.id: rule.name for rule in RULES}
    assert names["PAT001"] == "backdoor-trigger" and names["PAT002"] == "dangerous-pickle-global"
    assert names["PAT004"] == "remote-code-required" and names["PAT005"] == "scan-error"


def test_sarif_non_finite_numbers_stay_valid_json() -> None:
    report = backdoored()
    report.triggers[0].shift = float("nan")
    report.probability = float("inf")
    text = render_sarif(report)
    assert "NaN" not in text and "Infinity" not in text
    json.loads(text)


# ------------------------------------------------------------------------------------------------ HTML


@pytest.mark.parametrize("name", sorted(ALL))
def test_html_is_self_contained_and_well_formed(name: str) -> None:
    html = render_html(ALL[name]())
    assert "<script" not in html.lower()
    assert not re.search(r"""(src|href)\s*=\s*["']?\s*(https?:)?//""", html, re.IGNORECASE)
    assert not re.search(r"@import|url\(", html, re.IGNORECASE)
    checker = _parse(html)
    assert checker.problems == []
    assert checker.stack == []
    assert html.lstrip().startswith("<!DOCTYPE html>")
    assert {tag for tag, _ in checker.tags} >= {"html", "head", "body", "main", "style", "table"}
    assert not any(tag == "link" or any(key.startswith("on") for key in attrs) for tag, attrs in checker.tags)


def test_html_escapes_hostile_strings() -> None:
    html = render_html(hostile())
    assert XSS_SCRIPT not in html
    assert XSS_IMG not in html
    assert "<img" not in html.lower()
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "&#34;&gt;&lt;img src=x onerror=alert(1)&gt;" in html
    checker = _parse(html)
    assert checker.problems == [] and checker.stack == []
    assert all(tag not in {"script", "img"} for tag, _ in checker.tags)
    assert not any(key.startswith("on") for _, attrs in checker.tags for key in attrs)
    text = _visible_text(html)
    assert f"evil/{XSS_SCRIPT}" in text  # shown to the reader, as text
    assert "\\x1b[2J\\u202e" in text  # terminal escapes and bidi overrides made visible
    assert "\x1b" not in html and "\u202e" not in html and "\x07" not in html


def test_html_has_no_safe_filter_in_template() -> None:
    source = (html_module.templates_dir() / html_module.TEMPLATE_NAME).read_text()
    assert "|safe" not in source.replace(" ", "") and "autoescape false" not in source


def test_html_backdoored_content() -> None:
    html = render_html(backdoored())
    text = _visible_text(html)
    assert "Backdoor detected" in text
    assert _tone(html) == "tone-danger"
    assert ">99.9%" in text and "critical" in text
    assert "org/bert-tiny" in text and SHA in text and "BertModel" in text and "4.39M" in text
    order = [html.index(f"<td><code>{name}</code></td>") for name in ("cf", "velvet", "mn")]
    assert order == sorted(order)  # strongest evidence first
    assert "8,123" in text and "1.0e-03" not in text and "0.001" in text
    assert "2 look-alike(s): cn, cb" in text and "silky" in text
    assert "<details" in html and "Flip rate" in text and "Paper rule" in text
    assert "Attack success" in text and "1.000 → <i>pos</i>" in text and "<i>pos</i>" not in html  # id2label escaped
    assert "Profile quick" in text and "Sequences evaluated 123,456" in text
    assert "word_mode" in text and "[1, 2]" in text


def test_html_clean_is_green() -> None:
    html = render_html(clean())
    assert _tone(html) == "tone-ok" and "No backdoor found" in _visible_text(html)
    assert "Hub scan" not in html  # the column appears only when the hub judged a file


def test_html_static_only_says_search_did_not_run() -> None:
    html = render_html(static_only())
    text = _visible_text(html)
    assert "Behavioural backdoor search did not run" in text
    assert "not a clean result" in text
    assert "--static-only was given" in text
    assert _tone(html) == "tone-partial" and "No backdoor found" not in text
    assert "v-clean" not in html.split("<main", 1)[1]  # no green verdict pill either


def test_html_static_only_with_dangerous_file_is_red() -> None:
    report = dangerous_pickle()
    report.skipped.append(Skipped("", "behavioural", "no torch"))
    html = render_html(report)
    text = _visible_text(html)
    assert _tone(html) == "tone-danger" and "Dangerous weight file" in text
    assert "Behavioural backdoor search did not run (no torch): this is not a clean result" in text
    report.verdict, report.errors = Verdict.ERROR, [ReportError("load_failed", "bad config")]
    text = _visible_text(render_html(report))
    assert "Scan failed" in text and "Behavioural backdoor search did not run (no torch)" in text


def test_html_dangerous_pickle_and_error() -> None:
    text = _visible_text(render_html(dangerous_pickle()))
    assert "Dangerous weight file" in text and "No backdoor found" not in text
    assert "dangerous" in text and "posix.system" in text and "builtins.exec" in text
    assert "would run dangerous code" in text
    assert "flax_model.msgpack unsupported-format flax weights are not scanned" in text
    html = render_html(errored())
    text = _visible_text(html)
    assert "Scan failed" in text and "fetch_failed" in text and _tone(html) == "tone-error"
    assert "not computed" in text


def test_html_embedded_fragment() -> None:
    html = render_html(backdoored(), embedded=True)
    assert "<html" not in html and "<body" not in html and "<!DOCTYPE" not in html
    assert html.lstrip().startswith('<main class="pr"')  # the host page carries the layout and stylesheet


def test_every_page_uses_the_one_layout_and_stylesheet() -> None:
    """CLI reports, web pages and the purification page share templates/_layout.html and patronus.css."""
    from scanner.report.html import render_purification_page, templates_dir

    css = (templates_dir() / "patronus.css").read_text()
    assert ".pr .banner" in css and ".top a" in css  # report and web styles in one file
    page = render_html(backdoored())
    record = {"target": "<m>", "output": "o", "steps_done": 3, "table": []}
    for html in (page, render_purification_page(record)):
        assert html.startswith("<!DOCTYPE html>") and ".pr .banner" in html and "default-src 'none'" in html
    for name in ("index.html", "model.html", "scan.html"):
        assert '{% extends "_web.html" %}' in (templates_dir() / name).read_text()
    assert '{% extends "_layout.html" %}' in (templates_dir() / "_web.html").read_text()
    checker = _parse(html)
    assert checker.problems == [] and checker.stack == []
    context = report_context(backdoored())
    assert context["embedded"] is False and context["banner"]["tone"] == "danger"
    assert [t.text for t in context["triggers"]] == ["cf", "velvet", "mn"]


# ------------------------------------------------------------------------------------------------ text


def test_text_summary() -> None:
    text = render_text(backdoored())
    assert "BACKDOORED" in text and ">99.9%" in text and "critical" in text
    assert f"org/bert-tiny@{SHA[:12]}" in text
    first = next(line for line in text.splitlines() if line.strip().startswith("1."))
    assert '"cf"' in first and "shift=8,123" in first and "p=0.001" in first
    assert "look-alikes: cn (10.2), cb (9.10)" in text
    assert "123,456 sequences" in text
    text.encode("ascii")  # plain ASCII for plain inputs


def test_text_problems_skips_and_errors() -> None:
    text = render_text(dangerous_pickle())
    assert "DANGEROUS" in text and "pytorch_model.bin" in text and "posix.system" in text
    assert "1 file(s) not scanned" in text
    text = render_text(errored())
    assert "ERROR" in text and "[fetch_failed] repository org/missing not found" in text
    text = render_text(static_only())
    assert "behavioural backdoor search NOT RUN" in text and "not a clean result" in text


def test_text_neutralises_terminal_escapes() -> None:
    text = render_text(hostile())
    assert "\x1b" not in text and "\u202e" not in text
    assert "\\x1b[2J" in text
    report = clean()
    report.model.id = "org/m\nVerdict:  CLEAN"  # a forged line in a CI log
    text = render_text(report)
    assert "org/m\\nVerdict:  CLEAN" in text
    assert sum(line.startswith("Verdict:") for line in text.splitlines()) == 1


# ------------------------------------------------------------------------------------------------ writing


def test_formats_registry_and_write(tmp_path: Path) -> None:
    assert set(FORMATS) == {"text", "json", "sarif", "html", "cyclonedx"}
    report = backdoored()
    for fmt in FORMATS:
        target = tmp_path / "out" / f"report.{fmt}"
        text = write_report(report, fmt, target)
        assert target.read_text(encoding="utf-8").rstrip("\n") == text.rstrip("\n")
        assert target.read_text(encoding="utf-8").endswith("\n")
    assert write_report(report, "json", None) == report.to_json()
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        "report.cyclonedx",
        "report.html",
        "report.json",
        "report.sarif",
        "report.text",
    ]  # no temporary files left


def test_write_report_unknown_format(tmp_path: Path) -> None:
    with pytest.raises(UsageError):
        write_report(backdoored(), "xml", tmp_path / "r.xml")
    assert not list(tmp_path.iterdir())


def test_write_report_keeps_old_file_when_rendering_fails(tmp_path: Path, monkeypatch) -> None:
    target = tmp_path / "report.json"
    target.write_text("old\n")

    def broken(report: Report, extras: object) -> str:
        raise RuntimeError("boom")

    import scanner.report as report_package

    monkeypatch.setitem(report_package._RENDERERS, "json", broken)
    with pytest.raises(RuntimeError):
        write_report(backdoored(), "json", target)
    assert target.read_text() == "old\n"
    assert [p.name for p in tmp_path.iterdir()] == ["report.json"]


def test_atomic_write_cleans_up_on_failure(tmp_path: Path, monkeypatch) -> None:
    target = tmp_path / "report.txt"

    def fail(src, dst) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(output_module.os, "replace", fail)
    with pytest.raises(OSError):
        output_module.atomic_write(target, "x")
    assert list(tmp_path.iterdir()) == []


# ------------------------------------------------------------------------------------------------ mitigation


def _section(html: str, anchor: str) -> str:
    """The HTML from the <h2 id=anchor> to the next <h2>."""
    start = html.index(f'<h2 id="{anchor}">')
    return html[start : html.index("<h2", start + 1)]


def test_mitigation_section_lists_the_monitor_rules() -> None:
    from scanner.mitigate.monitor import MonitorRules

    report = backdoored()
    report.triggers[2].lookalikes.append(Lookalike("cfo", 8000.0, 0.001, 0.9))  # strong enough to be a rule
    rules = MonitorRules.from_report(report).rules
    assert [r.text for r in rules] == ["mn", "velvet", "cf", "cfo"]
    section = _section(render_html(report), "mitigation")
    assert [m for m in re.findall(r"<tr>\s*<td><code>([^<]*)</code></td>", section)] == [r.text for r in rules]
    assert "look-alike" in section and "cn" not in section  # a weak echo (0.1% of the shift) is no rule
    assert "patronus monitor --report report.json" in section
    assert "patronus purify org/bert-tiny --report report.json -o purified" in section
    text = render_text(report)
    assert "Mitigation: 4 monitor rule(s): mn, velvet, cf, cfo (~cf)" in text
    assert "$ patronus purify org/bert-tiny --report report.json -o purified" in text
    text.encode("ascii")


def test_no_mitigation_section_without_triggers() -> None:
    for report in (clean(), errored(), static_only(), dangerous_pickle()):
        assert 'id="mitigation"' not in render_html(report)
        assert "Mitigation" not in render_text(report)


def test_mitigation_section_escapes_hostile_rules() -> None:
    report = hostile()
    report.triggers[2].lookalikes.append(Lookalike(XSS_SCRIPT, 9000.0, 0.001, 0.5))  # a look-alike of "cf"
    html = render_html(report)
    section = _section(html, "mitigation")
    assert "<td><code>&lt;script&gt;alert(1)&lt;/script&gt;</code></td>" in section  # the rule, as text
    assert "purify &#39;evil/&lt;script&gt;alert(1)&lt;/script&gt;&#39; --report" in section  # shell-quoted too
    assert "No rule for: <code>&#34;&gt;&lt;img src=x onerror=alert(1)&gt;</code>" in section
    assert "<script" not in html.lower() and "<img" not in html.lower()
    checker = _parse(html)
    assert checker.problems == [] and checker.stack == []
    assert "<script>alert(1)</script> (~cf)" in render_text(report)  # plain text for a terminal


def test_mitigation_command_never_starts_with_a_dash() -> None:
    report = backdoored()
    report.model.source, report.model.id = "local", "-rf model"
    assert "patronus purify './-rf model' --report" in render_text(report)


# ------------------------------------------------------------------------------------------------ purification


def _purification_record(trigger: str = "cf") -> dict:
    return {
        "schema": "patronus.purification/1",
        "complete": True,
        "target": "/models/suspect",
        "output": "/models/purified",
        "steps_done": 300,
        "seconds": 12.0,
        "threshold": 4.83,
        "clean_fidelity": 0.9912,
        "clean_fidelity_centered": 0.95,
        "rescan": {"profile": "quick", "verdict": "clean", "probability": 0.03},
        "table": [
            {
                "trigger": trigger,
                "source": "trigger",
                "shift_before": 3000.0,
                "shift_after": 1.5,
                "reduction": 2000.0,
                "score_before": 30.0,
                "score_after": 0.4,
            },
            {
                "trigger": "cfo",
                "source": "lookalike",
                "shift_before": 2900.0,
                "shift_after": 2.0,
                "reduction": 1450.0,
                "score_before": 29.0,
                "score_after": 0.6,
            },
        ],
    }


def _local(folder: Path) -> Report:
    report = clean()
    report.model.source, report.model.id = "local", str(folder)
    return report


def test_scanned_purified_folder_shows_the_before_after_table(tmp_path: Path) -> None:
    (tmp_path / "purification.json").write_text(json.dumps(_purification_record()))
    html = render_html(_local(tmp_path))
    section = _section(html, "purification")
    assert "<th>shift before</th>" in section and "<td><code>cfo</code></td>" in section
    assert "<td>3e+03</td>" in section and "<td>1.5</td>" in section and "quick: clean" in section
    assert _parse(html).problems == []
    line = next(x for x in render_text(_local(tmp_path)).splitlines() if x.startswith("Purification:"))
    assert "300 steps" in line and "2 trigger(s)" in line and "at least 1,450x" in line and "rescan clean" in line
    assert 'id="purification"' not in render_html(clean())  # a hub model: no folder to look in
    assert 'id="purification"' not in render_html(_local(tmp_path / "nowhere"))
    assert report_context(_local(tmp_path))["purification"] is None  # the web app passes no record


def test_purification_table_escapes_hostile_records(tmp_path: Path) -> None:
    record = _purification_record(XSS_SCRIPT)
    record["target"], record["rescan"]["verdict"] = XSS_IMG, XSS_SCRIPT
    record["table"].append("not a row")
    (tmp_path / "purification.json").write_text(json.dumps(record))
    html = render_html(_local(tmp_path))
    assert "<script" not in html.lower() and "<img" not in html.lower()
    assert "<td><code>&lt;script&gt;alert(1)&lt;/script&gt;</code></td>" in _section(html, "purification")
    assert _parse(html).problems == []


def test_unreadable_purification_record_is_shown_not_dropped(tmp_path: Path) -> None:
    (tmp_path / "purification.json").write_text("{not json")
    assert "but it is unreadable (JSONDecodeError" in _section(render_html(_local(tmp_path)), "purification")
    (tmp_path / "purification.json").write_text(json.dumps({"table": "x"}))
    text = render_text(_local(tmp_path))
    assert "Purification: purification.json in the model folder is not a purification record" in text


def test_findings_section_reads_the_issues_list() -> None:
    report = finalize(dangerous_pickle())
    section = _section(render_html(report), "issues")
    assert "PAT002" in section and "PAT004" in section and "posix.system" in section
    text = render_text(report)
    assert "Findings (4):" in text and text.index("CRITICAL PAT002") < text.index("MEDIUM   PAT003")
    report.issues[0].message = XSS_SCRIPT  # model-supplied text in an issue stays text
    assert XSS_SCRIPT not in render_html(report) and "&lt;script&gt;" in _section(render_html(report), "issues")


def test_lineage_section_lists_inherited_candidates_below_threshold() -> None:
    """With a base known, candidates that fire in the base but stay just under this model's threshold (a weakened
    inherited backdoor) are shown in text and HTML, escaped, beside the per-candidate base scores."""
    rep = clean()
    rep.scan.config = {
        "lineage": {
            "base": "org/<base>",
            "source": "card",
            "note": "base org/<base> (card) loaded for lineage evidence",
        },
        "evidence": {
            "lineage": {
                "base_threshold": 4.97,
                "base_scores": {"courageous": 0.84},
                "inherited_below_threshold": [{"text": "obe<lisk>", "score": 4.9, "base_score": 14.2}],
            }
        },
    }
    text = render_text(rep)
    assert (
        "the base fires on 1 candidate(s) this model keeps below threshold: obe<lisk> (4.90 here, 14.2 in the base)"
        in text
    ), text
    html = render_html(rep)
    assert "obe&lt;lisk&gt;" in html and "<lisk>" not in html and "14.20" in html
