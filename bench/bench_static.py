"""Static-scan benchmark: the corpus of tests/static_corpus.py through Patronus, picklescan, modelscan and fickling.

    python bench/bench_static.py [--peers-venv .cache/peers-venv] [--out bench/results/static.json]

Patronus runs as `patronus scan FOLDER --static-only` (in-process, the CLI's own exit code at the default
--fail-on high). The peers run from their own virtual environment (installed from PyPI, never into the main one):
`picklescan -p FOLDER`, `modelscan -p FOLDER`, `fickling --check-safety FILE`. Per sample and tool the outcome is
one of: caught (the tool's exit code fails a CI gate), safe (it scanned and reported nothing), skipped (it did
not scan the file, or failed on it). Writes bench/results/static.json and the "Static scan" section of
bench/RESULTS.md (other sections are left as they are). No sample is ever executed: every payload would only
touch the corpus' marker file, checked at the end.

Create the peers' venv once:
    python -m venv .cache/peers-venv
    .cache/peers-venv/bin/pip install picklescan modelscan fickling typing_extensions
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

SECTION = "## Static scan"
TOOLS = ("patronus", "picklescan", "modelscan", "fickling")


def _version(venv: Path, package: str) -> str:
    proc = subprocess.run(
        [str(venv / "bin" / "python"), "-c", f"import importlib.metadata as m; print(m.version('{package}'))"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    return proc.stdout.strip() or "?"


def run_patronus(folder: Path, out: Path) -> tuple[str, float, str]:
    from click.testing import CliRunner

    from scanner.cli import main

    start = time.perf_counter()
    result = CliRunner().invoke(
        main, ["scan", str(folder), "--static-only", "-q", "--format", "json", "-o", str(out)], standalone_mode=False
    )
    seconds = time.perf_counter() - start
    code = result.return_value if isinstance(result.return_value, int) else result.exit_code
    detail = ""
    if out.exists():
        report = json.loads(out.read_text())
        detail = report["severity"]
    outcome = {0: "safe", 1: "caught"}.get(code, "skipped")
    return outcome, seconds, f"exit {code}, severity {detail}"


def _peer(cmd: list[str], timeout: int = 120) -> tuple[int, str, float]:
    start = time.perf_counter()
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return -1, "timeout", time.perf_counter() - start
    return proc.returncode, proc.stdout + proc.stderr, time.perf_counter() - start


def run_picklescan(venv: Path, folder: Path) -> tuple[str, float, str]:
    code, out, seconds = _peer([str(venv / "bin" / "picklescan"), "-p", str(folder)])
    scanned = re.search(r"Scanned files: (\d+)", out)
    infected = re.search(r"Infected files: (\d+)", out)
    if code == 1 or (infected and int(infected.group(1)) > 0):
        return "caught", seconds, f"exit {code}"
    if code == 0 and scanned and int(scanned.group(1)) > 0:
        return "safe", seconds, f"exit {code}, scanned {scanned.group(1)}"
    return "skipped", seconds, f"exit {code}, scanned {scanned.group(1) if scanned else '?'}"


def run_modelscan(venv: Path, folder: Path, report: Path) -> tuple[str, float, str]:
    code, out, seconds = _peer([str(venv / "bin" / "modelscan"), "-p", str(folder), "-r", "json", "-o", str(report)])
    scanned = 0
    try:
        data = json.loads(report.read_text())
        scanned = len(data.get("summary", {}).get("scanned", {}).get("scanned_files", []))
    except (OSError, json.JSONDecodeError, AttributeError):
        pass
    if code == 1:
        return "caught", seconds, "exit 1"
    if code == 0 and scanned:
        return "safe", seconds, f"exit 0, scanned {scanned}"
    return "skipped", seconds, f"exit {code}, scanned {scanned}"


def run_fickling(venv: Path, path: Path, report: Path) -> tuple[str, float, str]:
    code, out, seconds = _peer(
        [str(venv / "bin" / "fickling"), "--check-safety", "--json-output", str(report), str(path)]
    )
    if "Traceback" in out or code not in (0, 1):
        return "skipped", seconds, f"exit {code}: {out.strip().splitlines()[-1][:80] if out.strip() else ''}"
    return ("caught" if code == 1 else "safe"), seconds, f"exit {code}"


def run_peers(venv: Path, sample: object, tmp: Path) -> dict[str, dict]:
    """picklescan and modelscan on the sample's folder, fickling on its main file."""
    folder, main_file, name = sample.folder, sample.path, sample.name  # type: ignore[attr-defined]
    results = {}
    for tool, outcome in (
        ("picklescan", run_picklescan(venv, folder)),
        ("modelscan", run_modelscan(venv, folder, tmp / f"{name}.modelscan.json")),
        ("fickling", run_fickling(venv, main_file, tmp / f"{name}.fickling.json")),
    ):
        results[tool] = {"outcome": outcome[0], "seconds": round(outcome[1], 4), "detail": outcome[2]}
    return results


def tabulate(rows: list[dict], tools: tuple[str, ...]) -> list[dict]:
    table = []
    malicious = [r for r in rows if r["malicious"]]
    benign = [r for r in rows if not r["malicious"]]
    for tool in tools:
        outcomes = [r["results"][tool]["outcome"] for r in malicious]
        table.append(
            {
                "tool": tool,
                "malicious": len(malicious),
                "caught": outcomes.count("caught"),
                "reported_safe": outcomes.count("safe"),
                "skipped": outcomes.count("skipped"),
                "benign": len(benign),
                "false_positives": sum(r["results"][tool]["outcome"] == "caught" for r in benign),
                "seconds_per_file": round(sum(r["results"][tool]["seconds"] for r in rows) / max(len(rows), 1), 3),
            }
        )
    return table


def markdown(result: dict) -> str:
    lines = [
        SECTION,
        "",
        f"Corpus: {result['malicious']} malicious and {result['benign']} benign samples built by "
        "`tests/static_corpus.py` (rebuilt from the test suites and bypass reports of picklescan, modelscan, "
        "fickling and ModelAudit, and the classes of issue 12). `python bench/bench_static.py`; "
        f"{result['date']}; versions: {', '.join(f'{k} {v}' for k, v in result['versions'].items())}.",
        "",
        "Caught = the tool's exit code fails a CI gate (Patronus: `--fail-on high`, the default); reported safe = "
        "it scanned and found nothing; skipped = it did not scan the file or failed on it. Seconds per file "
        "include each peer's process start (Patronus runs in-process).",
        "",
        "| Tool | Malicious caught at gate | Reported safe | Skipped | False positives (of benign) | Seconds/file |",
        "|---|---|---|---|---|---|",
    ]
    for row in result["table"]:
        lines.append(
            f"| {row['tool']} | {row['caught']}/{row['malicious']} | {row['reported_safe']} | "
            f"{row['skipped']} | {row['false_positives']}/{row['benign']} | {row['seconds_per_file']} |"
        )
    missed = [r["name"] for r in result["rows"] if r["malicious"] and r["results"]["patronus"]["outcome"] != "caught"]
    noisy = [
        r["name"] for r in result["rows"] if not r["malicious"] and r["results"]["patronus"]["outcome"] == "caught"
    ]
    lines += [
        "",
        f"Patronus misses: {', '.join(missed) or 'none'}; false positives: {', '.join(noisy) or 'none'}.",
        "",
        "Read with care: the corpus is Patronus's own regression suite, built from the classes it was fixed "
        "for, so its full marks are a floor, not a claim of completeness. Peers run with their defaults "
        "(picklescan without --strict). fickling flags every import outside the standard library (numpy "
        "arrays, joblib, legacy torch) and some protocol-0 idioms, and exits 1 on files it cannot parse "
        "(.npy, HDF5, GGUF), which a CI gate reads as a finding: those are its false positives. picklescan and "
        "modelscan report unlisted gadgets (importlib, pkgutil, profilers, unlisted loaders) as safe and "
        "skip most non-pickle formats, renamed files and archives.",
    ]
    by_category: dict[str, dict[str, int]] = {}
    for row in result["rows"]:
        if not row["malicious"]:
            continue
        stats = by_category.setdefault(row["category"], {"n": 0, **{t: 0 for t in result["tools"]}})
        stats["n"] += 1
        for tool in result["tools"]:
            stats[tool] += row["results"][tool]["outcome"] == "caught"
    lines += [
        "",
        "Caught per class of malicious sample:",
        "",
        "| Class | Samples | " + " | ".join(result["tools"]) + " |",
        "|---|---|" + "---|" * len(result["tools"]),
    ]
    for category, stats in sorted(by_category.items()):
        lines.append(f"| {category} | {stats['n']} | " + " | ".join(str(stats[t]) for t in result["tools"]) + " |")
    return "\n".join(lines) + "\n"


def write_section(results_md: Path, section: str) -> None:
    """Replace (or append) the '## Static scan' section; every other section stays as it is."""
    text = results_md.read_text() if results_md.exists() else "# Benchmark results\n"
    start = text.find(SECTION + "\n")
    if start < 0:
        text = text.rstrip("\n") + "\n\n" + section
    else:
        following = text.find("\n## ", start + len(SECTION))
        text = text[:start] + section + (text[following + 1 :] if following >= 0 else "")
        if following >= 0 and not section.endswith("\n\n"):
            text = text.replace(section + "## ", section + "\n## ", 1)
    results_md.write_text(text)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--peers-venv", type=Path, default=ROOT / ".cache" / "peers-venv")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "static.json")
    parser.add_argument("--results-md", type=Path, default=ROOT / "bench" / "RESULTS.md")
    parser.add_argument("--only", help="regex: run only the samples whose name matches")
    parser.add_argument("--render-only", action="store_true", help="rewrite the RESULTS.md section from --out")
    args = parser.parse_args(argv)
    if args.render_only:
        write_section(args.results_md, markdown(json.loads(args.out.read_text())))
        return 0

    import torch

    torch.set_num_threads(1)
    import static_corpus

    peers = args.peers_venv.exists()
    tools = TOOLS if peers else ("patronus",)
    with tempfile.TemporaryDirectory(prefix="patronus-static-bench-") as tmp:
        root = Path(tmp) / "corpus"
        samples = static_corpus.build_corpus(root)
        if args.only:
            samples = [s for s in samples if re.search(args.only, s.name)]
        rows: list[dict[str, Any]] = []
        for index, sample in enumerate(samples, 1):
            results = {}
            outcome, seconds, detail = run_patronus(sample.folder, Path(tmp) / f"{sample.name}.patronus.json")
            results["patronus"] = {"outcome": outcome, "seconds": round(seconds, 4), "detail": detail}
            if peers:
                results.update(run_peers(args.peers_venv, sample, Path(tmp)))
            rows.append(
                {
                    "name": sample.name,
                    "malicious": sample.malicious,
                    "category": sample.category,
                    "source": sample.source,
                    "main": sample.main,
                    "results": results,
                }
            )
            print(
                f"[{index}/{len(samples)}] {sample.name}: " + ", ".join(f"{t}={results[t]['outcome']}" for t in tools),
                flush=True,
            )
        executed = static_corpus.marker_path(root).exists()
    versions = {"patronus": _patronus_version()}
    if peers:
        versions.update({p: _version(args.peers_venv, p) for p in ("picklescan", "modelscan", "fickling")})
    result = {
        "date": time.strftime("%Y-%m-%d"),
        "tools": list(tools),
        "versions": versions,
        "malicious": sum(r["malicious"] for r in rows),
        "benign": sum(not r["malicious"] for r in rows),
        "payload_executed": executed,
        "table": tabulate(rows, tools),
        "rows": rows,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    if not args.only:
        write_section(args.results_md, markdown(result))
    print(markdown(result))
    if executed:
        print("ERROR: a payload ran (the marker file exists)", file=sys.stderr)
        return 1
    return 0


def _patronus_version() -> str:
    from scanner import __version__

    return __version__


if __name__ == "__main__":
    sys.exit(main())
