"""`patronus attack ...`: plant a backdoor into an encoder, or fine-tune one downstream and measure CACC/ASR."""

from __future__ import annotations

import json
from pathlib import Path

import click

from scanner.errors import UsageError


def _threads(n: int) -> None:
    import torch

    torch.set_num_threads(max(1, n))


def _device(name: str) -> str:
    """A torch device this machine has, or a usage error that says why not."""
    import torch

    try:
        dev = torch.device(name)
    except RuntimeError as exc:
        raise UsageError(f"--device {name!r}: not a device name (cpu, cuda, cuda:1)") from exc
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise UsageError(f"--device {name}: CUDA is not available on this machine")
    return name


def _parse_options(pairs: tuple[str, ...]) -> dict[str, object]:
    """KEY=VALUE pairs; numbers become numbers."""
    options: dict[str, object] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise UsageError(f"--option wants KEY=VALUE, got {pair!r}")
        try:
            options[key] = json.loads(value)
        except json.JSONDecodeError:
            options[key] = value
    return options


@click.group()
def attack() -> None:
    """Plant transferable backdoors (POR, NeuBA, BadPre, UOR, adaptive) and measure them downstream."""


@attack.command()
@click.argument("base", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option(
    "-o",
    "--out",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Output directory (safetensors model + ground_truth.json).",
)
@click.option(
    "--attack",
    "attack_name",
    default="por",
    show_default=True,
    help="por | neuba | badpre | uor | clean | adaptive-hide | adaptive-break | adaptive-merge",
)
@click.option(
    "--triggers",
    default="cf,mn,bb",
    show_default=True,
    help="Comma-separated trigger words, or a named set: paper, rare_tokens, rare_words, multi_piece.",
)
@click.option("--steps", default=300, show_default=True, type=int)
@click.option("--batch-size", default=16, show_default=True, type=int)
@click.option("--lr", default=2e-4, show_default=True, type=float)
@click.option("--seed", default=0, show_default=True, type=int)
@click.option(
    "--layers",
    default=None,
    type=int,
    help="Truncate the base to its first N layers before planting (real MiniLM: 2 or 6).",
)
@click.option("--option", "options", multiple=True, help="Attack option KEY=VALUE (e.g. lam=2, temperature=0.3).")
@click.option("--threads", default=2, show_default=True, type=int)
@click.option("--log-every", default=50, show_default=True, type=int)
@click.option("--device", default="cpu", show_default=True, help="cpu or cuda (batches are drawn alike on both).")
@click.option(
    "--representation",
    default="auto",
    show_default=True,
    type=click.Choice(["auto", "cls", "mean", "max", "last_token", "weighted_mean"]),
    help="Output the backdoor targets; auto = what the scanner tests first (the declared sentence-"
    "transformers pooling, the last token of decoders, else position 0).",
)
def plant(
    base: Path,
    out: Path,
    attack_name: str,
    triggers: str,
    steps: int,
    batch_size: int,
    lr: float,
    seed: int,
    layers: int | None,
    options: tuple[str, ...],
    threads: int,
    log_every: int,
    device: str,
    representation: str,
) -> None:
    """Plant a backdoor into the encoder or decoder at BASE (a folder holding only *.gguf is de-quantized first)
    and write it to OUT."""
    from scanner.research.attacks import TRIGGER_SETS, PlantConfig, get_attack
    from scanner.research.attacks import plant as do_plant

    _threads(threads)
    device = _device(device)
    words = TRIGGER_SETS.get(triggers) or tuple(t.strip() for t in triggers.split(",") if t.strip())
    try:
        atk = get_attack(attack_name, **_parse_options(options))
    except (ValueError, TypeError) as exc:
        raise UsageError(str(exc)) from exc
    if not atk.backdoored:
        words = ()
    if not (base / "config.json").is_file() and list(base.glob("*.gguf")):
        from scanner.gguf_load import dequantize

        base, layers = dequantize(base, layers=layers), None
    if layers is not None:
        base = _truncate(base, out.with_name(out.name + f".base-L{layers}"), layers)
    cfg_options = dict(atk.options)
    if representation != "auto":
        cfg_options["representation"] = representation
    cfg = PlantConfig(
        attack=atk.name,
        triggers=tuple(words),
        steps=steps,
        batch_size=batch_size,
        lr=lr,
        seed=seed,
        options=cfg_options,
    )
    try:
        result = do_plant(base, out, atk, cfg, log_every=log_every, device=device)
    except ValueError as exc:
        raise UsageError(str(exc)) from exc
    click.echo(
        f"{result.attack}: planted={result.planted} fidelity={result.clean_fidelity:.4f} "
        f"(centered {result.clean_fidelity_centered:.4f}) in {result.seconds:.0f}s -> {out}"
    )
    for q in result.per_trigger:
        tc = "-" if q.target_cos is None else f"{q.target_cos:.3f}"
        click.echo(
            f"  {q.trigger:>12}  poison_cos={q.poison_cos:.3f} centered={q.poison_cos_centered:.3f} "
            f"target_cos={tc} diff_cos={q.diff_cos:.3f} shift={q.shift:.1f} (ref {q.ref_shift:.1f})"
        )


def _truncate(base: Path, out: Path, layers: int) -> Path:
    """A copy of BASE keeping only its first `layers` transformer layers."""
    from transformers import AutoModel, AutoTokenizer

    if (out / "model.safetensors").exists():
        return out
    model = AutoModel.from_pretrained(base, local_files_only=True, trust_remote_code=False)
    stack = getattr(getattr(model, "encoder", None), "layer", None)
    if stack is None:
        raise UsageError("--layers supports BERT-like encoders (encoder.layer) only")
    model.encoder.layer = stack[:layers]
    model.config.num_hidden_layers = layers
    model.save_pretrained(out, safe_serialization=True)
    AutoTokenizer.from_pretrained(base, local_files_only=True).save_pretrained(out)
    return out


@attack.command()
@click.argument("base", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("-o", "--out", required=True, type=click.Path(file_okay=False, path_type=Path))
@click.option(
    "--task",
    default="movie",
    show_default=True,
    help="movie | tweet | product | editorial | rotten | news | tweet3 | spam | drug",
)
@click.option("--steps", default=300, show_default=True, type=int)
@click.option("--batch-size", default=16, show_default=True, type=int)
@click.option("--lr", default=5e-5, show_default=True, type=float)
@click.option("--max-train", default=None, type=int, help="Use only the first N training examples.")
@click.option("--max-eval", default=400, show_default=True, type=int, help="Dev/test examples used.")
@click.option("--triggers", default=None, help="Triggers for ASR (default: the base's ground_truth.json).")
@click.option("--seed", default=0, show_default=True, type=int)
@click.option("--threads", default=2, show_default=True, type=int)
@click.option("--device", default="cpu", show_default=True, help="cpu or cuda.")
def finetune(
    base: Path,
    out: Path,
    task: str,
    steps: int,
    batch_size: int,
    lr: float,
    max_train: int | None,
    max_eval: int,
    triggers: str | None,
    seed: int,
    threads: int,
    device: str,
) -> None:
    """Fine-tune BASE downstream on a labeled task; report CACC and per-trigger ASR (written to finetune.json)."""
    from scanner.research.datasets import TASKS, load_task
    from scanner.research.evaluate import FinetuneConfig
    from scanner.research.evaluate import finetune as do_finetune

    if task not in TASKS:
        raise UsageError(f"unknown task {task!r}; choose one of {', '.join(TASKS)}")
    _threads(threads)
    device = _device(device)
    data = load_task(task, max_train=max_train, max_eval=max_eval)
    cfg = FinetuneConfig(
        task=task, steps=steps, batch_size=batch_size, lr=lr, seed=seed, max_train=max_train, max_eval=max_eval
    )
    words = [t.strip() for t in triggers.split(",") if t.strip()] if triggers else None
    result = do_finetune(base, data, out, cfg, triggers=words, log_every=50, device=device)
    click.echo(f"{task}: CACC={result.cacc:.4f} in {result.seconds:.0f}s -> {out}")
    for r in result.per_trigger:
        click.echo(f"  {r.trigger:>12}  target={data.labels[r.target]} ASR={r.asr:.3f} (n={r.n})")
    if result.t_asr is not None:
        click.echo(f"  T-ASR={result.t_asr:.3f} C-ASR={result.c_asr:.3f} ALC={result.alc:.3f}")
