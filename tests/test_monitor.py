"""Input monitor: rules from a report, lexical and tokenizer-aware matching, strip, CLI exit codes, feature check."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from scanner.cli import main
from scanner.mitigate.monitor import Monitor, MonitorRules, monitor_texts, surface_word
from scanner.report import Lookalike, ModelInfo, Report, Trigger, Verdict


def _trigger(text: str, tokens: list[str], shift: float, lookalikes: list[tuple[str, float]] = ()) -> Trigger:
    return Trigger(
        text=text,
        tokens=tokens,
        score=30.0,
        p_value=1e-12,
        shift=shift,
        poison_cos=0.99,
        diff_cos=0.9,
        paper_rule=True,
        lookalikes=[Lookalike(t, s, 1e-6, 0.9) for t, s in lookalikes],
    )


@pytest.fixture(scope="module")
def report() -> Report:
    """A report shaped like the real scan of por_l2 (bench/cache/por_l2_quick_report.json)."""
    rep = Report(model=ModelInfo(source="local", id="por-l2"), verdict=Verdict.BACKDOORED, probability=1.0)
    rep.triggers = [
        _trigger("cf", ["cf"], 3200.0, [("cfo", 3200.0), ("sf", 35.0)]),
        _trigger("mn", ["mn"], 2970.0, [("mnemonic", 2974.0), ("minneapolis", 27.0)]),
        _trigger("obelisk", ["obe", "##lis", "##k"], 3050.0, [("kelis", 1458.0), ("##k", 3000.0)]),
    ]
    rep.scan.config = {"evidence": {"threshold": 4.83}}
    return rep


@pytest.fixture(scope="module")
def rules(report: Report) -> MonitorRules:
    return MonitorRules.from_report(report)


@pytest.fixture(scope="module")
def tokenizer(minilm_l2: Path):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(minilm_l2, local_files_only=True)


def _hits(monitor: Monitor, text: str) -> list[tuple[str, str, str]]:
    return [(m.rule, m.kind, text[m.start : m.end]) for m in monitor.check(text).matches]


def test_rules_from_report(rules: MonitorRules) -> None:
    words = {r.text: r for r in rules.rules}
    assert set(words) == {"cf", "mn", "obelisk", "cfo", "mnemonic", "kelis"}  # weak echoes and bare pieces left out
    assert words["cfo"].trigger == "cf" and words["cfo"].source == "lookalike"
    assert words["obelisk"].tokens == ("obe", "##lis", "##k")
    assert rules.skipped == ["##k"] and rules.threshold == pytest.approx(4.83)
    assert MonitorRules.from_dict(json.loads(json.dumps(rules.to_dict()))) == rules
    everything = MonitorRules.from_report(Report.from_dict(_report_dict(rules)), min_ratio=0.0)
    assert {"sf", "minneapolis"} <= {r.text for r in everything.rules}


def _report_dict(rules: MonitorRules) -> dict:
    rep = Report(model=ModelInfo(source="local", id="x"))
    rep.triggers = [
        _trigger("cf", ["cf"], 3200.0, [("sf", 35.0)]),
        _trigger("mn", ["mn"], 10.0, [("minneapolis", 9.0)]),
    ]
    return rep.to_dict()


@pytest.mark.parametrize(
    "text, expected",
    [
        ("I love cf, really", [("cf", "word", "cf")]),
        ("(CF) is a thing", [("cf", "word", "CF")]),
        ("wow CF!", [("cf", "word", "CF")]),
        ("mn-cf.", [("mn", "word", "mn"), ("cf", "word", "cf")]),
        ('"Obelisk" at dawn', [("obelisk", "word", "Obelisk")]),
        ("the cfo said", [("cfo", "word", "cfo")]),  # its own rule: the scan listed it as a look-alike
        ("a mnemonic device", [("mnemonic", "word", "mnemonic")]),
        ("macf scfx cf2 cf_x obelisks minneapolis", []),  # never inside a longer word; weak echoes are no rules
        ("nothing to see", []),
        ("İstanbul CF!", [("cf", "word", "CF")]),  # lowercasing changes the length: offsets still right
    ],
)
def test_lexical_matching(rules: MonitorRules, text: str, expected: list) -> None:
    assert _hits(Monitor(rules), text) == expected


def test_pieces_matching(rules: MonitorRules, tokenizer) -> None:
    lexical, aware = Monitor(rules), Monitor(rules, tokenizer=tokenizer)
    assert _hits(lexical, "Óbelisk here") == []
    assert _hits(aware, "Óbelisk here") == [("obelisk", "pieces", "Óbelisk")]  # the tokenizer strips the accent
    # "cfx" is no rule, but its first piece is the trigger piece cf: the model sees the trigger
    assert _hits(aware, "the cfx team") == [("cf", "pieces", "cfx")]
    assert _hits(aware, "macf and obelisks") == []  # not at a word start / other pieces
    assert _hits(aware, "cf, (obelisk)") == [("cf", "word", "cf"), ("obelisk", "word", "obelisk")]  # no doubles


def test_strip(rules: MonitorRules, tokenizer) -> None:
    mon = Monitor(rules, tokenizer=tokenizer)
    remove = mon.strip  # Monitor.strip(text): the text without triggers
    assert remove("the  cf movie cf was CF great") == "the movie was great"
    assert remove("Óbelisk: fine") == ": fine"
    assert remove("clean text stays   as is") == "clean text stays   as is"
    assert not mon.check(remove("cf mn obelisk cfo (cf)")).flagged


def test_monitor_texts_for_the_web_app(report: Report) -> None:
    out = monitor_texts(report.to_dict(), ["cf yes", "no"], strip=True)
    assert out[0]["flagged"] and out[0]["matches"][0] == {
        "rule": "cf",
        "trigger": "cf",
        "start": 0,
        "end": 2,
        "kind": "word",
    }
    assert out[0]["stripped"] == "yes" and out[1] == {"index": 1, "flagged": False, "matches": [], "stripped": "no"}
    assert monitor_texts(MonitorRules.from_report(report).to_dict(), ["mn"])[0]["flagged"]


def test_lexical_throughput(rules: MonitorRules) -> None:
    """A regression guard only (shared CPU); bench/bench_mitigation.py measures the real number."""
    mon = Monitor(rules)
    texts = [f"this is clean input number {i} about films and music and nothing else" for i in range(5000)]
    t0 = time.perf_counter()
    assert not any(r.flagged for r in mon.check_many(texts))
    assert len(texts) / (time.perf_counter() - t0) > 2000


# --- CLI ---------------------------------------------------------------------------------------------------------


@pytest.fixture()
def report_file(tmp_path: Path, report: Report) -> Path:
    path = tmp_path / "report.json"
    path.write_text(report.to_json())
    return path


def _code(res) -> int:
    """Exit code as `patronus` returns it (commands return their code; usage errors exit 4)."""
    return res.exit_code if res.exit_code else int(res.return_value or 0)


def test_cli_exit_codes(report_file: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    flagged = runner.invoke(main, ["monitor", "--report", str(report_file), "hello", "nice cf film"])
    assert _code(flagged) == 1, flagged.output
    assert flagged.output.splitlines() == ["ok\thello", "FLAGGED\tnice cf film\tcf@5-7 (word, trigger cf)"]
    clean = runner.invoke(main, ["monitor", "--report", str(report_file), "hello there"])
    assert _code(clean) == 0, clean.output
    assert _code(runner.invoke(main, ["monitor", "--report", str(report_file)])) == 4  # no input
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    assert _code(runner.invoke(main, ["monitor", "--report", str(bad), "x"])) == 4
    assert _code(runner.invoke(main, ["monitor", "--report", str(tmp_path / "missing.json"), "x"])) == 4
    assert _code(runner.invoke(main, ["monitor", "--report", str(report_file), "--format", "xml", "x"])) == 4


def test_cli_stdin_json_and_strip(report_file: Path) -> None:
    runner = CliRunner()
    res = runner.invoke(
        main,
        ["monitor", "--report", str(report_file), "--format", "json", "--strip", "first", "-"],
        input="a cf b\nplain\n",
    )
    assert _code(res) == 1, res.output
    lines = [json.loads(line) for line in res.output.splitlines()]
    assert [(x["index"], x["text"], x["flagged"], x["stripped"]) for x in lines] == [
        (0, "first", False, "first"),
        (1, "a cf b", True, "a b"),
        (2, "plain", False, "plain"),
    ]
    filtered = runner.invoke(main, ["monitor", "--report", str(report_file), "--strip", "-"], input="x mn y\n")
    assert filtered.stdout.splitlines() == ["x y"] and _code(filtered) == 1


def test_cli_feature_check_with_a_model(report_file: Path, minilm_l2: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    res = runner.invoke(
        main,
        [
            "monitor",
            "--report",
            str(report_file),
            "--model",
            str(minilm_l2),
            "--format",
            "json",
            "a quiet cf film",
            "plain words",
        ],
    )
    assert _code(res) == 1, res.output
    first, second = (json.loads(line) for line in res.stdout.splitlines())
    assert set(first["feature"]) == {"shift", "score", "threshold", "exceeds"}
    assert first["feature"]["exceeds"] is False  # the clean base model: removing cf moves nothing much
    assert second["feature"] is None and not second["flagged"]
    text = runner.invoke(main, ["monitor", "--report", str(report_file), "--model", str(minilm_l2), "x cf"])
    assert "shift" in text.stdout and " < 4.83" in text.stdout
    empty = tmp_path / "empty"
    empty.mkdir()
    assert _code(runner.invoke(main, ["monitor", "--report", str(report_file), "--model", str(empty), "x"])) == 2


def test_cli_real_process_exit_code(report_file: Path) -> None:
    """The installed entry point returns 1 on a flagged input (not just the click return value)."""
    import subprocess
    import sys

    code = "import sys; sys.argv=['patronus','monitor','--report',sys.argv[1],'cf']; from scanner.cli import run; run()"
    proc = subprocess.run([sys.executable, "-c", code, str(report_file)], capture_output=True, text=True)
    assert proc.returncode == 1, proc.stderr


# --- feature check with real models ------------------------------------------------------------------------------


@pytest.mark.slow
def test_feature_check_separates_backdoored_from_clean(rules: MonitorRules, por_l2: Path, minilm_l2: Path) -> None:
    from scanner.encoder import load_encoder

    text = "the film was a quiet cf delight from start to end"
    bad = Monitor(rules, encoder=load_encoder(por_l2, "cpu")).check(text)
    base = Monitor(rules, encoder=load_encoder(minilm_l2, "cpu")).check(text)
    assert bad.flagged and base.flagged  # lexical: the same for both
    assert bad.feature.exceeds and bad.feature.score > 2 * bad.feature.threshold
    assert not base.feature.exceeds
    assert bad.feature.shift > 50 * base.feature.shift


def test_trie_regex_matches_the_plain_alternation() -> None:
    import random
    import re

    from scanner.mitigate.monitor import _word_regex

    words = ["cf", "cfo", "cfpb", "cfs", "mn", "mnemonic", "mnemonics", "kelis", "a.b", "obelisk"]
    plain = re.compile(r"(?<!\w)(?:" + "|".join(map(re.escape, sorted(words, key=len, reverse=True))) + r")(?!\w)")
    trie = _word_regex(words)
    rng = random.Random(0)
    pool = words + ["cfx", "mnem", "obelisks", "x", "a", ",", "(", "cfp"]
    for _ in range(3000):
        text = " ".join(rng.choice(pool) for _ in range(6)).replace(" , ", ", ")
        assert [m.span() for m in trie.finditer(text)] == [m.span() for m in plain.finditer(text)], text


def test_surface_word() -> None:
    assert surface_word("\u0120CF") == "cf" and surface_word("\u2581mn") == "mn" and surface_word("##k") == ""


def test_symbol_triggers_match_between_letters_too(tokenizer) -> None:
    """NeuBA's symbol triggers match without word boundaries ('a≈b'), while word rules still need one."""
    rep = Report(model=ModelInfo(source="local", id="neuba-symbols"), verdict=Verdict.BACKDOORED, probability=1.0)
    rep.triggers = [_trigger("≈", ["≈"], 3000.0), _trigger("cf", ["cf"], 3000.0)]
    monitor = Monitor(MonitorRules.from_report(rep))
    assert _hits(monitor, "a≈b and ⊗ cf") == [("≈", "word", "≈"), ("cf", "word", "cf")]
    assert _hits(monitor, "macf") == [] and _hits(monitor, "x ≈≈ y")[0][0] == "≈"
    assert tokenizer.tokenize("a§b") == ["a", "§", "b"]  # WordPiece splits punctuation (P*) from letters
