"""Mitigation benchmark (METHOD.md sections 4-5): the input monitor and purification, measured on real tasks.

Monitor: rules from a real quick scan of the POR MiniLM-L2 (triggers cf, mn, obelisk); each task's texts with one
planted trigger inserted once (the attacker's input) must be flagged, the clean texts must not; throughput of the
lexical mode on one CPU core; the feature check on the backdoored vs the clean base model.
Purification: POR and NeuBA planted into MiniLM-L2, scanned (quick), purified from the scan's triggers, rescanned;
then clean control, suspect, purified (and the adversarial fine-tuning variant of the suspect) fine-tuned on each
task: ASR with the planted triggers and CACC.

Every artifact is cached (models under .cache/test-models like the tests, reports/purified models/fine-tunes under
bench/cache), so an interrupted run continues. Run with nice:
    nice python bench/bench_mitigation.py --part all
Results: bench/results/mitigation_{monitor,purify}.json and markdown tables on stdout (copied into
bench/RESULTS_mitigation.md).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import time
from pathlib import Path
from typing import Any

import torch

ROOT = Path(__file__).resolve().parent.parent
MODELS = Path(os.environ.get("PATRONUS_TEST_CACHE", ROOT / ".cache" / "test-models"))
CACHE = ROOT / "bench" / "cache"
RESULTS = ROOT / "bench" / "results"  # mitigation_<part>.json, one file per part
PLANTED = ("cf", "mn", "obelisk")
TASKS = ("movie", "tweet", "news")
DEVICE = "cpu"  # --device: where planting, scans, purification and fine-tuning run


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


# --- models and reports ------------------------------------------------------------------------------------------


def base_model() -> Path:
    from scanner.research.base_models import truncated_minilm

    return truncated_minilm(MODELS / "minilm-l2", layers=2)


def planted(attack: str) -> Path:
    """The same configuration as the test fixtures (tests/conftest.py): one cache for both."""
    from scanner.research.attacks import PlantConfig, get_attack, plant_cached

    triggers = () if attack == "clean" else PLANTED
    cfg = PlantConfig(attack=attack, triggers=triggers, steps=300, batch_size=16)
    return plant_cached(base_model(), get_attack(attack), cfg, MODELS, device=DEVICE)


def quick_report(model: Path, name: str, profile: str = "quick"):
    """A scan (quick profile unless said otherwise), cached as JSON."""
    from scanner.config import ScanConfig
    from scanner.pipeline import scan
    from scanner.report import Report

    path = CACHE / f"{name}_{profile}_report.json"
    if not path.is_file():
        t0 = time.time()
        report = scan(str(model), ScanConfig(profile=profile, device=DEVICE))
        path.write_text(report.to_json())
        log(f"scanned {name} ({profile}): {report.verdict.value} in {time.time() - t0:.0f}s")
    return Report.from_json(path.read_text())


# --- monitor -----------------------------------------------------------------------------------------------------


def _texts(task: str, limit: int) -> list[str]:
    from scanner.research.datasets import load_task

    t = load_task(task)
    return [x for x, _ in t.test + t.dev + t.train][:limit]


def _throughput(fn, texts: list[str], min_seconds: float = 2.0) -> float:
    done, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < min_seconds:
        fn(texts)
        done += len(texts)
    return done / (time.perf_counter() - t0)


def monitor_part(limit: int) -> dict[str, Any]:
    from transformers import AutoTokenizer

    from scanner.encoder import load_encoder
    from scanner.mitigate.monitor import Monitor, MonitorRules
    from scanner.research.attacks.common import insert_trigger

    por = planted("por")
    report = quick_report(por, "por_l2")
    rules = MonitorRules.from_report(report)
    tokenizer = AutoTokenizer.from_pretrained(por, local_files_only=True)
    monitors = {"lexical": Monitor(rules), "pieces": Monitor(rules, tokenizer=tokenizer)}
    out: dict[str, Any] = {
        "rules": [r.text for r in rules.rules],
        "report_triggers": [t.text for t in report.triggers],
        "tasks": {},
    }
    for task in TASKS:
        texts = _texts(task, limit)
        rng = random.Random(0)
        triggered = [insert_trigger(x, PLANTED[i % len(PLANTED)], rng, times=1) for i, x in enumerate(texts)]
        row: dict[str, Any] = {"n": len(texts), "mean_chars": round(sum(map(len, texts)) / len(texts), 1)}
        for mode, mon in monitors.items():
            hit = [r.flagged for r in mon.check_many(triggered)]
            clean = mon.check_many(texts)
            fp = [
                (m.rule, x[max(0, m.start - 30) : m.end + 30])
                for x, r in zip(texts, clean, strict=True)
                for m in r.matches[:1]
            ]
            row[mode] = {
                "triggered_flagged": sum(hit) / len(hit),
                "clean_flagged": len(fp) / len(texts),
                "clean_hits": fp[:10],
            }
        out["tasks"][task] = row
        log(f"monitor {task}: {row}")

    os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})  # one core
    torch.set_num_threads(1)
    movie = _texts("movie", 10_000)
    lexical = monitors["lexical"]
    out["throughput"] = {
        "texts": "movie snippets",
        "mean_chars": round(sum(map(len, movie)) / len(movie), 1),
        "lexical_check_many": _throughput(lexical.check_many, movie),
        "lexical_check_one_by_one": _throughput(lambda xs: [lexical.check(x) for x in xs], movie),
        "lexical_flagged_only": _throughput(lambda xs: [lexical.flagged(x) for x in xs], movie),
        "pieces_check_many": _throughput(monitors["pieces"].check_many, movie),
    }
    news = _texts("news", 2000)
    out["throughput"]["lexical_check_many_news_articles"] = _throughput(lexical.check_many, news)
    out["throughput"]["news_mean_chars"] = round(sum(map(len, news)) / len(news), 1)
    log(f"throughput {out['throughput']}")
    os.sched_setaffinity(0, set(range(os.cpu_count() or 1)))

    rng = random.Random(1)
    sample = [insert_trigger(x, PLANTED[i % 3], rng, times=1) for i, x in enumerate(_texts("movie", 150))]
    feature = {}
    for name, path in (("por_l2", por), ("minilm_l2_clean_base", base_model())):
        mon = Monitor(rules, encoder=load_encoder(path, "cpu"))
        checks = [r.feature for r in mon.check_many(sample) if r.feature is not None]
        feature[name] = {
            "n": len(checks),
            "exceeds": sum(c.exceeds for c in checks) / max(len(checks), 1),
            "median_shift": sorted(c.shift for c in checks)[len(checks) // 2],
            "median_z": sorted(c.score for c in checks)[len(checks) // 2],
        }
    out["feature_check"] = feature
    log(f"feature check {feature}")
    return out


# --- purification ------------------------------------------------------------------------------------------------


def purified(attack: str, suspect: Path, report, steps: int, profile: str) -> tuple[Path, dict[str, Any]]:
    from scanner.mitigate.purify import RECORD, PurifyConfig, purify, rescan_record

    out = CACHE / (f"purified-{attack}-{steps}" + ("" if profile == "quick" else f"-{profile}"))
    if not (out / RECORD).is_file():
        t0 = time.time()
        purify(
            suspect,
            report,
            out,
            PurifyConfig(steps=steps, device=DEVICE),
            on_step=lambda i: i.step % 50 == 0 and log(f"purify {attack} step {i.step} loss {i.loss:.5f}"),
        )
        log(f"purified {attack} in {time.time() - t0:.0f}s")
    record = json.loads((out / RECORD).read_text())
    if "rescan" not in record:
        record = rescan_record(out, record, "quick")
    return out, record


def downstream(
    label: str, model: Path, task: str, ft: dict[str, Any], adversarial: list[str] | None = None, seed: int = 0
) -> dict[str, Any]:
    """Fine-tune (cached) and return CACC and ASR with the planted triggers. The protocol of
    tests/test_evaluate.py's MiniLM test (lr 1e-4, a few hundred steps, 3000 training texts, 300 test texts)."""
    from scanner.research.adversarial import adversarial_finetune
    from scanner.research.datasets import load_task
    from scanner.research.evaluate import FINETUNE_RECORD, FinetuneConfig, finetune

    out = CACHE / "ft" / (f"{label}-{task}-{ft['steps']}-lr{ft['lr']:g}" + (f"-s{seed}" if seed else ""))
    if not (out / FINETUNE_RECORD).is_file():
        t0 = time.time()
        data = load_task(task, max_train=3000, max_eval=300)
        cfg = FinetuneConfig(task=task, steps=ft["steps"], lr=ft["lr"], batch_size=16, max_length=64, seed=seed)
        if adversarial is None:
            finetune(model, data, out, cfg, triggers=list(PLANTED), device=DEVICE)
        else:
            adversarial_finetune(
                model, data, out, cfg, triggers=adversarial, eval_triggers=list(PLANTED), device=DEVICE
            )
        log(f"fine-tuned {label} on {task} (seed {seed}) in {time.time() - t0:.0f}s")
    rec = json.loads((out / FINETUNE_RECORD).read_text())
    return {
        "cacc": rec["cacc"],
        "t_asr": rec["t_asr"],
        "asr": {r["trigger"]: r["asr"] for r in rec["per_trigger"]},
        "junk_asr": junk_asr(out)["mean"],
        "seconds": rec["seconds"],
    }


def over_seeds(seeds: list[int], *args: Any, **kwargs: Any) -> dict[str, Any]:
    """downstream() for each fine-tuning seed: means, standard deviations and the runs."""
    runs = [downstream(*args, **kwargs, seed=seed) for seed in seeds]

    def mean(xs: list[float]) -> float:
        return sum(xs) / len(xs)

    def sd(xs: list[float]) -> float:
        return (sum((x - mean(xs)) ** 2 for x in xs) / max(len(xs) - 1, 1)) ** 0.5

    out: dict[str, Any] = {"seeds": seeds}
    for key in ("cacc", "t_asr", "junk_asr"):
        vals = [r[key] for r in runs]
        out[key], out[f"{key}_sd"] = mean(vals), sd(vals)
    out["asr"] = {t: mean([r["asr"][t] for r in runs]) for t in runs[0]["asr"]}
    out["runs"] = runs
    return out


def purify_part(
    attacks: list[str], steps: int, ft: dict[str, Any], profile: str, adversarial: bool, seeds: list[int]
) -> dict[str, Any]:
    clean = planted("clean")
    out: dict[str, Any] = {"steps": steps, "finetune": ft, "attacks": {}}
    out["clean_scan"] = quick_report(clean, "clean_l2").verdict.value
    for attack in attacks:
        suspect = planted(attack)
        report = quick_report(suspect, f"{attack}_l2", profile)
        path, record = purified(attack, suspect, report, steps, profile)
        rows = {r["trigger"]: r for r in record["table"]}
        entry: dict[str, Any] = {
            "suspect_scan": {
                "profile": profile,
                "verdict": report.verdict.value,
                "triggers": [t.text for t in report.triggers],
            },
            "purified_scan": record["rescan"],
            "purify_seconds": record["seconds"],
            "clean_fidelity": record["clean_fidelity"],
            "shift": {
                t: {k: rows[t][k] for k in ("shift_before", "shift_after", "score_before", "score_after")}
                for t in PLANTED
                if t in rows
            },
            "tasks": {},
        }
        recovered = [t.text for t in report.triggers]
        suffix = "" if profile == "quick" else f"-{profile}"
        for task in TASKS:
            row = {
                "clean": over_seeds(seeds, "clean", clean, task, ft),
                "suspect": over_seeds(seeds, attack, suspect, task, ft),
                "purified": over_seeds(seeds, f"{attack}-purified{steps}{suffix}", path, task, ft),
            }
            if adversarial:
                row["adversarial_ft"] = over_seeds(seeds, f"{attack}-advft", suspect, task, ft, adversarial=recovered)
            entry["tasks"][task] = row
            log(
                f"{attack} {task}: "
                + json.dumps({k: (round(v["cacc"], 3), round(v["t_asr"], 3)) for k, v in row.items()})
            )
        out["attacks"][attack] = entry
    return out


def junk_asr(ft_dir: Path, n_words: int = 8) -> dict[str, Any]:
    """Junk sensitivity of a fine-tuned classifier: the same ASR protocol with random rare words of the searchable
    vocabulary (never a planted trigger or one of its look-alikes) instead of triggers. A small classifier flips
    many weak predictions when any three rare words are inserted; a trigger only matters by what it adds."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from scanner.research.datasets import load_task
    from scanner.research.evaluate import attack_success
    from scanner.search.vocab import searchable_vocabulary

    path = ft_dir / "junk.json"
    if not path.is_file():
        rec = json.loads((ft_dir / "finetune.json").read_text())
        task = load_task(rec["task"], max_train=3000, max_eval=300)
        tok = AutoTokenizer.from_pretrained(ft_dir, local_files_only=True)
        model = AutoModelForSequenceClassification.from_pretrained(ft_dir, local_files_only=True).to(DEVICE)
        pool = [w for w in searchable_vocabulary(tok).words if not w.startswith(("cf", "mn", "obe", "kel", "jal"))]
        words = random.Random(0).sample(pool, n_words)
        per = attack_success(model, tok, task, words, seed=0, max_length=rec["config"]["max_length"])
        asr = [r.asr for r in per]
        path.write_text(json.dumps({"words": words, "asr": asr, "mean": sum(asr) / len(asr)}, indent=2))
    return json.loads(path.read_text())


def junk_part() -> dict[str, Any]:
    """Junk ASR of every cached fine-tune."""
    out = {}
    for ft_dir in sorted((CACHE / "ft").glob("*-lr*")):
        if (ft_dir / "finetune.json").is_file():
            out[ft_dir.name] = junk_asr(ft_dir)
            log(f"junk {ft_dir.name}: {out[ft_dir.name]['mean']:.3f}")
    return out


# --- report ------------------------------------------------------------------------------------------------------


def _pm(row: dict[str, Any], key: str) -> str:
    """mean ± sd in points."""
    return f"{100 * row[key]:.1f} ± {100 * row.get(key + '_sd', 0.0):.1f}"


def markdown(results: dict[str, Any]) -> str:
    lines = []
    mon = results.get("monitor")
    if mon:
        lines += [
            "| task | n | mean chars | triggered flagged (lexical / pieces) | clean flagged (lexical / pieces) |",
            "|---|---|---|---|---|",
        ]
        for task, row in mon["tasks"].items():
            lines.append(
                f"| {task} | {row['n']} | {row['mean_chars']} | {row['lexical']['triggered_flagged']:.2%} / "
                f"{row['pieces']['triggered_flagged']:.2%} | {row['lexical']['clean_flagged']:.2%} / "
                f"{row['pieces']['clean_flagged']:.2%} |"
            )
        lines += [
            "",
            "Throughput (one core): "
            + ", ".join(
                f"{k} {v:,.0f}/s" if isinstance(v, float) and k != "mean_chars" and "chars" not in k else f"{k} {v}"
                for k, v in mon["throughput"].items()
            ),
            "",
        ]
    pur = results.get("purify")
    if pur:
        lines += [
            "| attack | task | ASR clean | ASR suspect | ASR purified | ASR adv-FT | CACC clean | CACC suspect |"
            " CACC purified | CACC adv-FT |",
            "|---|---|---|---|---|---|---|---|---|---|",
        ]
        for attack, entry in pur["attacks"].items():
            for task, r in entry["tasks"].items():
                keys = ("clean", "suspect", "purified", "adversarial_ft")
                asr = " | ".join(_pm(r[k], "t_asr") if k in r else "-" for k in keys)
                cacc = " | ".join(_pm(r[k], "cacc") if k in r else "-" for k in keys)
                lines.append(f"| {attack} | {task} | {asr} | {cacc} |")
    return "\n".join(lines)


def main() -> None:
    global DEVICE, RESULTS
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--part", choices=["monitor", "purify", "junk", "all", "markdown"], default="all")
    parser.add_argument("--attacks", default="por,neuba")
    parser.add_argument("--steps", type=int, default=300, help="purification steps")
    parser.add_argument("--scan-profile", default="quick", help="scan profile whose triggers are purified")
    parser.add_argument("--no-adversarial", action="store_true", help="skip the adversarial fine-tuning rows")
    parser.add_argument("--ft-steps", type=int, default=250, help="downstream fine-tuning steps")
    parser.add_argument("--ft-lr", type=float, default=1e-4, help="downstream fine-tuning lr (encoder)")
    parser.add_argument("--ft-seeds", default="0,1,2", help="fine-tuning seeds (results are means over them)")
    parser.add_argument("--limit", type=int, default=3000, help="texts per task for the monitor")
    parser.add_argument("--device", default="cpu", help="cpu or cuda (the monitor's throughput is always CPU)")
    parser.add_argument("--results", type=Path, default=RESULTS, help="where mitigation_<part>.json go")
    args = parser.parse_args()
    DEVICE, RESULTS = args.device, args.results
    CACHE.mkdir(parents=True, exist_ok=True)
    RESULTS.mkdir(parents=True, exist_ok=True)
    machine = {
        "cpus": os.cpu_count(),
        "platform": platform.platform(),
        "torch": torch.__version__,
        "gpu": torch.cuda.get_device_name() if args.device.startswith("cuda") else False,
        "device": args.device,
    }
    torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))
    ft = {"steps": args.ft_steps, "lr": args.ft_lr}
    attacks, adversarial = args.attacks.split(","), not args.no_adversarial
    seeds = [int(x) for x in args.ft_seeds.split(",")]
    for part, run in (
        ("monitor", lambda: monitor_part(args.limit)),
        ("purify", lambda: purify_part(attacks, args.steps, ft, args.scan_profile, adversarial, seeds)),
        ("junk", junk_part),
    ):
        if args.part in (part, "all"):
            path = RESULTS / f"mitigation_{part}.json"
            result = {"machine": machine, **run()}
            if part == "purify" and path.is_file():  # parallel runs (--attacks por / neuba) merge their attacks
                result["attacks"] = {**json.loads(path.read_text()).get("attacks", {}), **result["attacks"]}
            path.write_text(json.dumps(result, indent=2))
    results = {
        part: json.loads(path.read_text())
        for part in ("monitor", "purify", "junk")
        if (path := RESULTS / f"mitigation_{part}.json").is_file()
    }
    print(markdown(results))


if __name__ == "__main__":
    main()
