"""`patronus bench detect`: build a zoo of backdoored and clean models, scan each, and score the detector.

The zoo: small config-built models of several families (random weights, real tokenizers) and the real MiniLM
(truncated to 2 layers, and at its full 6), each attack planted with several trigger sets, a clean control trained
by the same procedure for every backdoored model, and derived models fine-tuned downstream. Everything is cached
(plants by config, scan results by model + profile), so a rerun only does what is new.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from scanner.config import ScanConfig
from scanner.report import Report, Verdict
from scanner.research.attacks import GROUND_TRUTH, PlantConfig, get_attack, load_ground_truth, plant_cached
from scanner.research.base_models import build_base, truncated_minilm
from scanner.research.evaluate import FinetuneConfig, detection_metrics, roc_auc

EVIDENCE_VERSION = "e5"  # bump when the evidence or scores change: cached scan results are then redone
TRIGGER_KINDS = ("rare_tokens", "rare_words", "multi_piece")
MINILM_TRIGGERS = {
    "rare_tokens": ("cf", "mn", "bb"),
    "rare_words": ("velvet", "sapphire"),
    "multi_piece": ("obelisk", "quixotic"),
}


@dataclass
class ZooModel:
    name: str
    path: Path
    family: str
    attack: str
    triggers: tuple[str, ...]
    backdoored: bool
    derived: bool = False
    base: Path | None = None  # a derivative's source: the model it was fine-tuned from (lineage evidence)


@dataclass
class ZooResult:
    name: str
    family: str
    attack: str
    backdoored: bool
    derived: bool
    triggers: list[str]
    verdict: str
    probability: float | None
    max_score: float | None
    paper_rule_verdict: str | None
    found: list[str] = field(default_factory=list)
    recalled: list[str] = field(default_factory=list)
    seconds: float = 0.0
    planted: bool | None = None  # the ground truth's own check that the attack took (None: not recorded)
    lineage: bool = False  # scanned with its source as the known base (`bench detect --lineage`)

    @property
    def failed_plant(self) -> bool:
        """A backdoored recipe whose plant did not take (e.g. BadPre on a tiny random model: no effect on f(x)).
        Adaptive variants are exempt: their planted bar is the POR target they trade away by design."""
        return self.backdoored and self.planted is False and not self.attack.startswith("adaptive")


def _words_for(tokenizer, kind: str, count: int, offset: int) -> tuple[str, ...]:
    """Triggers of a kind for this tokenizer: rare single tokens, or rare words of 2-3 pieces."""
    from scanner.search.vocab import multi_piece_words, searchable_vocabulary

    if kind == "multi_piece":
        words = [w for w, p in zip(*_mp(multi_piece_words(tokenizer)), strict=True) if len(p) in (2, 3)]
    else:
        vocab = searchable_vocabulary(tokenizer).words
        words = [w for w in vocab if (len(w) <= 3) == (kind == "rare_tokens")]
    words = sorted(words)
    step = max(1, len(words) // 97)
    return tuple(words[(offset * 31 + i * step * 7) % len(words)] for i in range(count))


def _mp(words):
    return words.words, words.pieces


def _plant(
    base: Path,
    attack: str,
    triggers: tuple[str, ...],
    seed: int,
    cache: Path,
    steps: int,
    lr: float,
    device: str = "cpu",
) -> Path:
    cfg = PlantConfig(attack=attack, triggers=triggers, steps=steps, lr=lr, seed=seed, batch_size=16)
    return plant_cached(base, get_attack(attack), cfg, cache, device=device)


def build_zoo(
    cache: Path,
    families: list[str],
    attacks: list[str],
    seeds: int,
    minilm_layers: tuple[int, ...],
    derived: int,
    tiny_steps: int = 150,
    minilm_steps: int = 200,
    device: str = "cpu",
    controls: bool = True,
) -> list[ZooModel]:
    """Plant (or reuse) every zoo model. Each backdoored model gets a clean control of the same procedure (unless
    `controls` is off: then the untouched base is each family's only clean model)."""
    from transformers import AutoTokenizer

    zoo: list[ZooModel] = []
    bases: list[tuple[str, Path, int, float]] = [
        (fam, build_base(fam, cache / f"zoo-base-{fam}"), tiny_steps, 1e-3) for fam in families
    ]
    for layers in minilm_layers:
        bases.append((f"minilm-l{layers}", truncated_minilm(cache / f"minilm-l{layers}", layers), minilm_steps, 2e-4))
    for fam, base, steps, lr in bases:
        tok = AutoTokenizer.from_pretrained(base, local_files_only=True)
        for seed in range(seeds):
            for i, attack in enumerate(attacks):
                kind = TRIGGER_KINDS[(i + seed) % len(TRIGGER_KINDS)]
                minilm = fam.startswith("minilm")
                triggers = MINILM_TRIGGERS[kind] if minilm else _words_for(tok, kind, 2, seed * 10 + i)
                path = _plant(base, attack, triggers, seed, cache, steps, lr, device)
                zoo.append(ZooModel(f"{fam}-{attack}-{kind}-s{seed}", path, fam, attack, triggers, True))
                if not controls:
                    continue
                control = _plant(base, "clean", (), seed * 100 + i, cache, steps, lr, device)
                zoo.append(ZooModel(f"{fam}-clean-s{seed}-{i}", control, fam, "clean", (), False))
        zoo.append(ZooModel(f"{fam}-untouched", base, fam, "none", (), False))
    zoo += _derived(zoo, cache, derived, device)
    return zoo


def derivative_of(source: ZooModel, suffix: str, path: Path) -> ZooModel:
    """The zoo entry of a model fine-tuned from `source` (saved at `path`): the source's ground truth, marked derived,
    with the source as its base."""
    return replace(source, name=f"{source.name}-{suffix}", path=path, derived=True, base=source.path)


def _derived(zoo: list[ZooModel], cache: Path, count: int, device: str = "cpu") -> list[ZooModel]:
    """Downstream (movie sentiment) classifiers fine-tuned from the first `count` backdoored and as many clean models
    of each MiniLM size."""
    from scanner.research.datasets import load_task
    from scanner.research.evaluate import FINETUNE_RECORD, FinetuneConfig, finetune

    if count <= 0:
        return []
    picks = []
    for fam in sorted({m.family for m in zoo if m.family.startswith("minilm")}):
        picks += [m for m in zoo if m.family == fam and m.backdoored][:count]
        picks += [m for m in zoo if m.family == fam and m.attack == "clean"][:count]
    out = []
    task = None
    for model in picks:
        target = cache / f"{model.path.name}-movie"
        if not (target / FINETUNE_RECORD).is_file():
            task = task or load_task("movie", max_train=3000, max_eval=300)
            finetune(model.path, task, target, FinetuneConfig(task="movie", steps=200, max_length=64), device=device)
        out.append(derivative_of(model, "movie", target))
    return out


# Issue 11's fine-tuning recipes: a short full fine-tune, three full epochs, and a head on a frozen encoder.
DERIVED_RECIPES = ("steps200", "epochs3", "frozen")
# ... and a sentence-embedding fine-tune (unsupervised SimCSE with mean pooling; research/embedding_finetune.py)
EMBEDDING_RECIPES = ("simcse",)
DERIVED_TASKS = ("movie", "tweet", "news", "spam")
DERIVED_TRAIN = 3000  # training examples a derivative sees (an epoch = DERIVED_TRAIN / batch size steps)


def recipe_config(recipe: str, task: str, train_size: int) -> FinetuneConfig:
    """The FinetuneConfig of a named recipe (lr 1e-4: the conftest's 5e-5 leaves MiniLM-L2 at chance)."""
    base = FinetuneConfig(task=task, steps=200, max_length=64, lr=1e-4)
    if recipe == "steps200":
        return base
    if recipe == "epochs3":
        return replace(base, steps=-(-3 * train_size // base.batch_size))
    if recipe == "frozen":  # head (and pooler) only: cheap steps, so more of them at a higher head lr
        return replace(base, steps=400, head_lr=3e-3, freeze_encoder=True)
    raise ValueError(f"unknown recipe {recipe!r} (known: {', '.join(DERIVED_RECIPES + EMBEDDING_RECIPES)})")


def derivative_jobs(
    zoo: list[ZooModel],
    tasks: tuple[str, ...],
    recipes: tuple[str, ...],
    tasks_per_source: int = 1,
    took: Callable[[ZooModel], bool] | None = None,
) -> list[tuple[ZooModel, str, str]]:
    """The (source, task, recipe) fine-tunes of the derivative zoo: every task x recipe of each untouched MiniLM, and
    for each backdoored MiniLM whose plant took (`took`, default: its plant record) every recipe on
    `tasks_per_source` tasks rotating over `tasks`, so the backdoored sources together cover every task."""
    took = took or (lambda m: _planted(m) is not False)
    jobs: list[tuple[ZooModel, str, str]] = []
    for model in zoo:
        if not model.family.startswith("minilm") or model.derived:
            continue
        if model.attack == "none":
            jobs += [(model, task, recipe) for task in tasks for recipe in recipes]
        elif model.backdoored and took(model):
            offset = len({j[0].name for j in jobs if j[0].backdoored})
            jobs += [
                (model, tasks[(offset + i + k) % len(tasks)], r)
                for k in range(tasks_per_source)
                for i, r in enumerate(recipes)
            ]
    return jobs


def derivative_zoo(
    zoo: list[ZooModel],
    cache: Path,
    tasks: tuple[str, ...],
    recipes: tuple[str, ...],
    device: str = "cpu",
    tasks_per_source: int = 1,
) -> list[ZooModel]:
    """Issue 11's derivatives of each MiniLM size: clean ones (the untouched model fine-tuned on every task with
    every recipe) and backdoored ones (every planted model whose plant took, fine-tuned with every recipe on
    `tasks_per_source` tasks that rotate over `tasks`). Fine-tunes are cached by source, task and recipe."""
    from scanner.research.datasets import load_task
    from scanner.research.embedding_finetune import EmbeddingFinetuneConfig, simcse_finetune
    from scanner.research.evaluate import FINETUNE_RECORD, finetune

    loaded: dict[str, object] = {}
    out = []
    for model, task_name, recipe in derivative_jobs(zoo, tasks, recipes, tasks_per_source):
        target = cache / f"{model.path.name}-{task_name}-{recipe}"
        if not (target / FINETUNE_RECORD).is_file():
            task = loaded.get(task_name) or load_task(task_name, max_train=DERIVED_TRAIN, max_eval=300)
            loaded[task_name] = task
            if recipe in EMBEDDING_RECIPES:  # a sentence-embedding fine-tune on the task's text, labels unused
                texts = [text for text, _ in task.train]  # type: ignore[attr-defined]
                simcse_finetune(model.path, texts, target, EmbeddingFinetuneConfig(), device, task_name)
            else:
                cfg = recipe_config(recipe, task_name, len(task.train))  # type: ignore[attr-defined]
                finetune(model.path, task, target, cfg, device=device)  # type: ignore[arg-type]
        out.append(derivative_of(model, f"{task_name}-{recipe}", target))
    return out


def included_models(paths: list[Path]) -> list[ZooModel]:
    """Already-planted models (each folder with a ground_truth.json, e.g. from `patronus attack plant` or the test
    cache) added to the zoo with their ground truth; derived ones are marked by its `derived` entry."""
    import json as _json

    from scanner.encoder import read_config

    out = []
    for path in paths:
        gt_file = path / GROUND_TRUTH
        if not gt_file.is_file():
            continue
        gt = _json.loads(gt_file.read_text())
        family = read_config(path).family or "?"
        name = f"{'minilm-l2' if family == 'bert' and 'minilm' in str(gt.get('base', '')).lower() else family}"
        out.append(
            ZooModel(
                f"{name}-{gt['attack']}-{path.name}",
                path,
                name,
                gt["attack"],
                tuple(gt.get("triggers", [])),
                bool(gt.get("backdoored")),
                derived="derived" in gt,
            )
        )
    return out


def recalled(planted: tuple[str, ...], report: Report) -> list[str]:
    """Planted triggers the report names: as a trigger, one of its look-alikes, or (multi-piece words) the
    trigger's token pieces spell the word."""
    found = set()
    for trig in report.triggers:
        names = {trig.text.lower(), *(la.text.lower() for la in trig.lookalikes)}
        found |= {p for p in planted if p.lower() in names}
    return sorted(found)


def _planted(model: ZooModel) -> bool | None:
    has_truth = (model.path / GROUND_TRUTH).is_file()
    return bool(load_ground_truth(model.path).get("planted")) if has_truth else None


def scan_base(model: ZooModel, lineage: bool) -> Path | None:
    """The base a zoo model is scanned against: its source when `lineage` is on and it is a derivative."""
    return model.base if lineage and model.derived else None


def result_cache_name(model: ZooModel, profile: str, lineage: bool) -> str:
    """The scan-result cache file of a model: per path, profile, evidence version and base (lineage scans apart)."""
    base = scan_base(model, lineage)
    suffix = f"-base-{base.name}" if base is not None else ""
    return f"{model.path.name}-{profile}-{EVIDENCE_VERSION}{suffix}.json"


def scan_zoo(
    zoo: list[ZooModel], profile: str, results_cache: Path, progress=print, on_row=None, lineage: bool = False
) -> list[ZooResult]:
    """Scan every model (cached per model path + profile + base); `on_row(rows)` after each. With `lineage`, each
    derivative is scanned with its source as the known base (what `patronus scan --base` does)."""
    from scanner.pipeline import scan

    results_cache.mkdir(parents=True, exist_ok=True)
    rows = []
    for i, model in enumerate(zoo):
        cached = results_cache / result_cache_name(model, profile, lineage)
        base = scan_base(model, lineage)
        if cached.is_file():
            report = Report.from_json(cached.read_text())
        else:
            config = ScanConfig(profile=profile, device="auto", seed=0)
            report = scan(str(model.path), config, base=None if base is None else str(base))
            cached.write_text(report.to_json())
        evidence = report.scan.config.get("evidence", {})
        row = ZooResult(
            name=model.name,
            family=model.family,
            attack=model.attack,
            backdoored=model.backdoored,
            derived=model.derived,
            triggers=list(model.triggers),
            verdict=report.verdict.value,
            probability=report.probability,
            max_score=evidence.get("max_score"),
            paper_rule_verdict=evidence.get("paper_rule_verdict"),
            found=[t.text for t in report.triggers],
            recalled=recalled(model.triggers, report),
            seconds=report.scan.seconds,
            planted=_planted(model),
            lineage=base is not None,
        )
        rows.append(row)
        if on_row is not None:
            on_row(rows)
        progress(f"[{i + 1}/{len(zoo)}] {row.name}: {row.verdict} p={row.probability} recalled={row.recalled}")
    return rows


def _metrics(rows: list[ZooResult]) -> dict:
    failed = sum(r.failed_plant for r in rows)
    rows = [r for r in rows if not r.failed_plant]  # not a backdoor: neither a hit nor a miss
    if not rows:
        return {}
    y = [r.backdoored for r in rows]
    probs = [r.probability if r.probability is not None else 0.5 for r in rows]
    flagged = [r.verdict == Verdict.BACKDOORED.value for r in rows]
    m = asdict(detection_metrics(y, probs, y_pred=flagged))
    scores = [r.max_score if r.max_score is not None else 0.0 for r in rows]
    m["auc"] = roc_auc(y, scores)  # on the uncalibrated score: no ties from saturated probabilities
    paper = [r.paper_rule_verdict == "backdoored" for r in rows]
    tp = sum(p and t for p, t in zip(paper, y, strict=True))
    fp = sum(p and not t for p, t in zip(paper, y, strict=True))
    m["paper_rule_tpr"] = tp / max(sum(y), 1)
    m["paper_rule_fpr"] = fp / max(len(y) - sum(y), 1)
    planted = [(r, t) for r in rows if r.backdoored for t in r.triggers]
    m["trigger_recall"] = sum(t in r.recalled for r, t in planted) / len(planted) if planted else None
    m["models"] = len(rows)
    m["backdoored"] = sum(y)
    m["failed_plants_excluded"] = failed
    return m


def rescore(rows: list[ZooResult], calibration=None) -> list[ZooResult]:
    """Probability and verdict of each row from its best score under the current (or given) calibration: what a
    fresh scan would report, so rows scanned before a refit are scored alike."""
    from scanner.report.issues import verdict_for
    from scanner.verdict import load_calibration

    calibration = calibration or load_calibration()
    out = []
    for r in rows:
        if r.max_score is None:
            out.append(r)
            continue
        p = calibration.probability(r.max_score)
        out.append(ZooResult(**{**asdict(r), "probability": round(p, 6), "verdict": verdict_for(p)[0].value}))
    return out


CALIBRATION_EXCLUDES = ("adaptive",)  # attacks built against this detector are measured, not calibrated on


def calibrate_from(rows: list[ZooResult], provenance: str):
    """Fit the verdict's calibration on zoo rows (derived models included; adaptive attacks and plants that did not
    take left out)."""
    from scanner.research.calibration import fit_calibration

    keep = [
        r
        for r in rows
        if r.max_score is not None and not r.attack.startswith(CALIBRATION_EXCLUDES) and not r.failed_plant
    ]
    return fit_calibration([float(r.max_score or 0.0) for r in keep], [r.backdoored for r in keep], provenance)


def summarize(rows: list[ZooResult]) -> dict:
    """Overall, per attack, per family and derived-model metrics."""
    base = [r for r in rows if not r.derived]
    derived = [r for r in rows if r.derived]
    overall = _metrics(base)
    overall["non_derived_models"] = overall.get("models", 0)
    derived_bad = [r for r in derived if r.backdoored]
    overall.update(
        {
            "attacks": sorted({r.attack for r in rows if r.backdoored}),
            "families": sorted({r.family for r in rows}),
            "derived_tpr": (
                sum(r.verdict == Verdict.BACKDOORED.value for r in derived_bad) / len(derived_bad)
                if derived_bad
                else None
            ),
            "models": len(rows),
        }
    )
    per_attack = {}
    for attack in overall["attacks"]:
        subset = [r for r in base if r.attack == attack or (not r.backdoored and r.attack == "clean")]
        per_attack[attack] = _metrics(subset)
    per_family = {fam: _metrics([r for r in base if r.family == fam]) for fam in overall["families"]}
    return {
        "overall": overall,
        "per_attack": per_attack,
        "per_family": per_family,
        "derived": _metrics(derived),
        "models": [asdict(r) for r in rows],
    }


def markdown(summary: dict, profile: str, seconds: float) -> str:
    """The table for bench/RESULTS.md."""
    o = summary["overall"]
    lines = [
        f"Zoo: {o['models']} models ({o.get('backdoored')} backdoored among the non-derived), attacks "
        f"{', '.join(o['attacks'])}, families {', '.join(o['families'])}; profile `{profile}`; {seconds:.0f} s. "
        f"{o.get('failed_plants_excluded', 0)} backdoored recipes whose plant did not take are listed, not scored."
        + (
            " Lineage: every derivative scanned with its source as the known base (`--base`)."
            if summary.get("lineage")
            else ""
        ),
        "",
        "| slice | models | TPR | FPR | ROC-AUC | cross-entropy | trigger recall | paper rule TPR / FPR |",
        "|---|---|---|---|---|---|---|---|",
    ]

    def row(name: str, m: dict) -> str:
        if not m:
            return f"| {name} | 0 | | | | | | |"
        rec = "-" if m.get("trigger_recall") is None else f"{m['trigger_recall']:.2f}"
        return (
            f"| {name} | {m['models']} | {m['tpr']:.2f} | {m['fpr']:.2f} | {m['auc']:.3f} | "
            f"{m['cross_entropy']:.3f} | {rec} | {m['paper_rule_tpr']:.2f} / {m['paper_rule_fpr']:.2f} |"
        )

    lines.append(row("all (non-derived)", {**o, "models": o.get("non_derived_models", o["models"])}))
    for name, m in summary["per_attack"].items():
        lines.append(row(f"attack {name} (+ clean controls)", m))
    for name, m in summary["per_family"].items():
        lines.append(row(f"family {name}", m))
    lines.append(row("derived (fine-tuned downstream)", summary["derived"]))
    lines += [
        "",
        "| model | backdoored | verdict | P(backdoored) | best score | planted | recalled |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in summary["models"]:
        failed = ZooResult(**r).failed_plant
        prob = "-" if r["probability"] is None else f"{r['probability']:.3f}"
        score = "-" if r["max_score"] is None else f"{r['max_score']:.1f}"
        lines.append(
            f"| {r['name']} | {r['backdoored']}{' (plant failed: not scored)' if failed else ''} | "
            f"{r['verdict']} | {prob} | {score} | "
            f"{', '.join(r['triggers'])} | {', '.join(r['recalled'])} |"
        )
    return "\n".join(lines) + "\n"


def load_rows(path: Path) -> list[ZooResult]:
    """The per-model rows of an earlier detection.json (e.g. a part of the zoo scanned on another machine)."""
    return [ZooResult(**row) for row in json.loads(Path(path).read_text())["models"]]


def run_bench(
    out_dir: Path,
    cache: Path,
    families: list[str],
    attacks: list[str],
    seeds: int,
    minilm_layers: tuple[int, ...],
    derived: int,
    profile: str,
    progress=print,
    include: list[Path] | None = None,
    merge: list[Path] | None = None,
    device: str = "cpu",
    derived_tasks: tuple[str, ...] = (),
    derived_recipes: tuple[str, ...] = DERIVED_RECIPES,
    controls: bool = True,
    tasks_per_source: int = 1,
    lineage: bool = False,
) -> dict:
    """Build, scan, score; write detection.json and detection.md under out_dir. Rows of `merge` files (earlier
    detection.json) join the table; models of the same name are taken from the newest source."""
    t0 = time.time()
    zoo = build_zoo(cache, families, attacks, seeds, minilm_layers, derived, device=device, controls=controls)
    if derived_tasks:
        zoo += derivative_zoo(zoo, cache, derived_tasks, derived_recipes, device, tasks_per_source)
    zoo += included_models(include or [])
    out_dir.mkdir(parents=True, exist_ok=True)
    partial = out_dir / "detection.partial.json"  # the rows so far: an interrupted run still leaves its results

    def save_partial(rows: list[ZooResult]) -> None:
        partial.write_text(json.dumps({"models": [asdict(r) for r in rows]}, indent=2))

    rows = scan_zoo(zoo, profile, cache / "scan-results", progress, on_row=save_partial, lineage=lineage)
    merged = {r.name: r for path in merge or [] for r in load_rows(path)}
    rows = rescore(list({r.name: r for r in [*merged.values(), *rows]}.values()))
    summary = summarize(rows)
    summary["sources"] = [str(p) for p in merge or []]
    summary["profile"] = profile
    summary["lineage"] = lineage
    summary["seconds"] = round(time.time() - t0, 1)
    write_summary(out_dir, summary)
    return summary


def write_summary(out_dir: Path, summary: dict) -> None:
    """detection.json and detection.md (the table for bench/RESULTS.md) under out_dir."""
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "detection.json").write_text(json.dumps(summary, indent=2))
    (out_dir / "detection.md").write_text(markdown(summary, summary.get("profile") or "?", summary["seconds"]))


def ground_truth_triggers(path: Path) -> tuple[str, ...]:
    return tuple(load_ground_truth(path).get("triggers", []))
