"""The planting loop shared by every attack: trigger insertion, batching, optimiser, quality check, saving.

Each step draws B clean sentences and B poisoned ones (each poisoned sentence gets one trigger, chosen uniformly,
inserted 3x at random word boundaries: the papers' protocol). An attack supplies only its loss (see `Attack`).
The result is a safetensors model (the bare encoder, loadable with AutoModel), its tokenizer and config, plus
`ground_truth.json`: attack, triggers, seed, settings, and how well the backdoor was planted, measured on held-out
clean text. A failed plant is recorded as such (`planted: false`), never hidden.
"""

from __future__ import annotations

import copy
import json
import os
import random
import shutil
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from scanner.evidence.insert import insert_words
from scanner.evidence.stats import rms_shift
from scanner.train import StepInfo, TrainConfig, Trainer, seed_everything, split_corpus

GROUND_TRUTH = "ground_truth.json"
GT_SCHEMA = "patronus.ground_truth/1"
# An attack without an explicit target planted a trigger when its shift is this many times the base model's
# (sqrt(10) on the RMS shift = the former 10x on the mean squared shift).
PLANTED_SHIFT_RATIO = 10**0.5


# --- trigger insertion -------------------------------------------------------------------------------------------


insert_trigger = insert_words  # the evidence core's text-level insertion (scanner.evidence.insert)


# --- configuration and results -----------------------------------------------------------------------------------


@dataclass
class PlantConfig:
    """Settings of one planting run. Paper defaults: 10 epochs, lr 5e-5, poison rate 0.2 per trigger; we train a
    fixed number of steps (CPU budget) with a higher lr."""

    attack: str
    triggers: tuple[str, ...]
    steps: int = 300
    batch_size: int = 16
    lr: float = 2e-4
    seed: int = 0
    insert_times: int = 3
    max_length: int = 64
    max_words: int = 40
    warmup_frac: float = 0.05
    weight_decay: float = 0.01
    eval_sentences: int = 64
    head_warmup: float = 0.2  # share of steps that train only a freshly initialised MLM head
    options: dict[str, Any] = field(default_factory=dict)


@dataclass
class TriggerQuality:
    """How one trigger took: consistency of poisoned outputs, distance to the target, shift from clean."""

    trigger: str
    poison_cos: float  # mean pairwise cos of h(x+t)
    poison_cos_centered: float  # same, after subtracting the reference model's clean mean
    diff_cos: float  # mean cos(h(x), h(x+t)) (the paper's rule wants < 0.4)
    target_cos: float | None  # mean cos(h(x+t), v_i) where the attack has a target
    shift: float  # the evidence core's shift: mean RMS of (h(x+t)-h(x))/sigma_clean (sigma of the base model)
    ref_shift: float  # the same for the reference (un-attacked) model
    planted: bool


@dataclass
class PlantResult:
    """Ground truth of a planted model (written as ground_truth.json)."""

    attack: str
    triggers: list[str]
    seed: int
    backdoored: bool
    base: str
    family: str
    config: dict[str, Any]
    clean_fidelity: float  # mean cos(h(x), h_ref(x)) on held-out clean text
    clean_fidelity_centered: float  # same after subtracting the reference clean mean (input-dependent part)
    per_trigger: list[TriggerQuality]
    cross_trigger_cos: float | None  # mean cos between triggers' mean outputs (centred): high = merged triggers
    planted: bool
    seconds: float
    final_losses: dict[str, float]
    mlm_head: str | None = None
    notes: list[str] = field(default_factory=list)
    attack_metrics: dict[str, Any] = field(default_factory=dict)
    schema: str = GT_SCHEMA

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def poison_cos(self) -> float:
        return _mean([q.poison_cos for q in self.per_trigger])

    @property
    def target_cos(self) -> float | None:
        vals = [q.target_cos for q in self.per_trigger if q.target_cos is not None]
        return _mean(vals) if vals else None


def _mean(xs: Sequence[float]) -> float:
    return float(sum(xs) / len(xs)) if xs else float("nan")


def load_ground_truth(model_dir: Path | str) -> dict[str, Any]:
    """The ground_truth.json of a planted model."""
    return json.loads((Path(model_dir) / GROUND_TRUTH).read_text())


# --- the planting context handed to attacks ----------------------------------------------------------------------


@dataclass
class Batch:
    """Tokenized texts; `slots` is the trigger index of each poisoned sentence (None for clean text)."""

    texts: list[str]
    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    slots: torch.Tensor | None = None


@dataclass
class Context:
    """What an attack's loss may use."""

    model: nn.Module  # the bare encoder being trained
    ref: nn.Module  # frozen copy of the base
    tokenizer: Any
    config: PlantConfig
    ln_affine: tuple[torch.Tensor, torch.Tensor] | None  # (gamma, beta) of the final LayerNorm
    mlm: nn.Module | None = None  # the MLM model wrapping `model`, when the attack needs one
    gen: torch.Generator | None = None
    targets: torch.Tensor | None = None  # [K, d] per-trigger target outputs
    head: str | None = None  # MLM head: "pretrained", "fresh" or None (no MLM model)
    representation: str = "cls"  # the output the backdoor targets: cls, the declared pooling (mean), last_token

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def features(self, ids: torch.Tensor, mask: torch.Tensor, model: nn.Module | None = None) -> torch.Tensor:
        from scanner.encoder import pool

        dev = self.device
        hidden = (model or self.model)(input_ids=ids.to(dev), attention_mask=mask.to(dev)).last_hidden_state
        return pool(hidden, mask.to(dev), self.representation)

    def ref_features(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return self.features(ids, mask, self.ref)

    def reachable(self, codes: torch.Tensor) -> torch.Tensor:
        """Map {+1,-1} codes to outputs the final LayerNorm can produce: gamma * standardized(code) + beta.
        Raw codes on a LayerNorm output stall (measured: cos 0.45)."""
        codes = codes.to(self.device)
        z = (codes - codes.mean(-1, keepdim=True)) / codes.std(-1, unbiased=False, keepdim=True).clamp_min(1e-6)
        if self.ln_affine is None:
            return z
        gamma, beta = self.ln_affine
        return z * gamma + beta

    def mask_tokens(
        self, ids: torch.Tensor, mask: torch.Tensor, prob: float = 0.15
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """BERT masking: `prob` of the non-special tokens; 80% [MASK], 10% random, 10% kept. Labels -100 elsewhere."""
        tok = self.tokenizer
        special = torch.isin(ids, torch.tensor(sorted(set(tok.all_special_ids)), device=ids.device))
        candidates = mask.bool().to(ids.device) & ~special
        # random draws on the CPU generator: the same masks on every device
        chosen = (torch.rand(ids.shape, generator=self.gen).to(ids.device) < prob) & candidates
        # at least one masked token per sentence keeps the loss defined
        for i in range(ids.shape[0]):
            if not chosen[i].any() and candidates[i].any():
                chosen[i, candidates[i].nonzero()[0, 0]] = True
        labels = torch.where(chosen, ids, torch.full_like(ids, -100))
        inputs = ids.clone()
        r = torch.rand(ids.shape, generator=self.gen).to(ids.device)
        inputs[chosen & (r < 0.8)] = tok.mask_token_id
        rand_pos = chosen & (r >= 0.8) & (r < 0.9)
        inputs[rand_pos] = self.random_tokens(int(rand_pos.sum())).to(ids.device)
        return inputs, labels

    def random_tokens(self, n: int) -> torch.Tensor:
        """n token ids drawn uniformly from the non-special vocabulary."""
        vocab = len(self.tokenizer)
        ids = torch.randint(0, vocab, (n,), generator=self.gen)
        special = torch.tensor(sorted(set(self.tokenizer.all_special_ids)))
        bad = torch.isin(ids, special)
        while bad.any():
            ids[bad] = torch.randint(0, vocab, (int(bad.sum()),), generator=self.gen)
            bad = torch.isin(ids, special)
        return ids

    def mlm_loss(
        self, ids: torch.Tensor, mask: torch.Tensor, labels: torch.Tensor, want_features: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Cross-entropy of the MLM head at labelled positions; optionally the features of the same forward."""
        assert self.mlm is not None, "attack needs an MLM head"
        dev = self.device
        out = self.mlm(input_ids=ids.to(dev), attention_mask=mask.to(dev), output_hidden_states=want_features)
        loss = F.cross_entropy(
            out.logits.reshape(-1, out.logits.shape[-1]), labels.to(dev).reshape(-1), ignore_index=-100
        )
        feats = None
        if want_features:
            from scanner.encoder import pool

            feats = pool(out.hidden_states[-1], mask.to(dev), self.representation)
        return loss, feats


# --- attacks -----------------------------------------------------------------------------------------------------


class Attack:
    """An attack = a loss over a clean batch and a poisoned batch (+ optional per-trigger targets)."""

    name: ClassVar[str] = ""
    paper: ClassVar[str] = ""
    needs_mlm: ClassVar[bool] = False  # needs an MLM head for every base
    backdoored: ClassVar[bool] = True
    max_triggers: ClassVar[int | None] = None

    def __init__(self, **options: Any) -> None:
        self.options = options

    def wants_mlm(self, has_pretrained_head: bool) -> bool:
        """Whether the run should build an MLM model around the encoder."""
        return self.needs_mlm

    def targets(self, ctx: Context) -> torch.Tensor | None:
        """Per-trigger target outputs [K, d], or None when the attack has no explicit target."""
        return None

    def loss(self, ctx: Context, clean: Batch, poison: Batch) -> tuple[torch.Tensor, dict[str, float]]:
        raise NotImplementedError

    def notes(self, ctx: Context) -> list[str]:
        return []

    def extra_quality(self, ctx: Context, held_out: list[str]) -> dict[str, Any]:
        """Attack-specific planting measurements (recorded under `attack_metrics`)."""
        return {}

    def trigger_planted(self, quality: TriggerQuality, extra: dict[str, Any]) -> bool | None:
        """Override the generic per-trigger success rule (None keeps it)."""
        return None


def ref_mse(ctx: Context, batch: Batch) -> torch.Tensor:
    """Clean fidelity: MSE(h(x), h_ref(x))."""
    return F.mse_loss(
        ctx.features(batch.input_ids, batch.attention_mask), ctx.ref_features(batch.input_ids, batch.attention_mask)
    )


def por_codes(k: int, d: int) -> torch.Tensor:
    """POR-1 codes: trigger i is +1 on its first (i+1)*d/(K+1) dims, -1 elsewhere. (The paper divides by K, which
    makes the last code constant: unreachable through a LayerNorm; K+1 buckets keep every code non-constant.)"""
    codes = -torch.ones(k, d)
    bucket = d // (k + 1)
    for i in range(k):
        codes[i, : (i + 1) * bucket] = 1.0
    return codes


# --- model preparation -------------------------------------------------------------------------------------------


def final_layernorm(
    model: nn.Module, ids: torch.Tensor, mask: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor] | None:
    """(gamma, beta) of the LayerNorm whose output is the final hidden state, found by hooking a forward pass."""
    hits: list[tuple[nn.LayerNorm, torch.Tensor]] = []
    hooks = [
        m.register_forward_hook(lambda mod, _i, out: hits.append((mod, out)))
        for m in model.modules()
        if isinstance(m, nn.LayerNorm)
    ]
    try:
        with torch.no_grad():
            last = model(input_ids=ids, attention_mask=mask).last_hidden_state
    finally:
        for h in hooks:
            h.remove()
    for mod, out in reversed(hits):
        same = isinstance(out, torch.Tensor) and out.shape == last.shape and torch.allclose(out, last, atol=1e-5)
        if same and mod.weight is not None and mod.bias is not None:
            return mod.weight.detach().clone(), mod.bias.detach().clone()
    return None


def _load_models(base: Path, want_mlm: bool) -> tuple[nn.Module, nn.Module | None, str | None]:
    """The bare encoder (and an MLM model sharing it) from a base directory."""
    from transformers import AutoModel, AutoModelForMaskedLM

    kw: dict[str, Any] = {"local_files_only": True, "trust_remote_code": False}
    if not want_mlm:
        return AutoModel.from_pretrained(base, **kw), None, None
    mlm, info = AutoModelForMaskedLM.from_pretrained(base, output_loading_info=True, **kw)
    prefix = mlm.base_model_prefix
    fresh = [k for k in info.get("missing_keys", []) if not k.startswith(prefix + ".")]
    return mlm.base_model, mlm, ("fresh" if fresh else "pretrained")


def _has_pretrained_mlm_head(base: Path) -> bool:
    from safetensors import safe_open

    heads = ("cls.predictions", "lm_head", "vocab_projector", "generator_lm_head", "predictions.")
    for f in base.glob("*.safetensors"):
        with safe_open(str(f), "pt") as st:
            if any(k.startswith(heads) or ".predictions." in k for k in st.keys()):  # noqa: SIM118
                return True
    return False


def _save(model: nn.Module, mlm: nn.Module | None, base: Path, out: Path, tokenizer: Any) -> None:
    """Save the bare encoder (with the base's pooler when the MLM wrapper dropped it) as safetensors."""
    from transformers import AutoModel

    out.mkdir(parents=True, exist_ok=True)
    if mlm is not None:
        bare = AutoModel.from_pretrained(base, local_files_only=True, trust_remote_code=False)
        result = bare.load_state_dict(model.state_dict(), strict=False)
        assert not result.unexpected_keys, result.unexpected_keys
        assert all("pooler" in k for k in result.missing_keys), result.missing_keys
        model = bare
    model.save_pretrained(out, safe_serialization=True)  # type: ignore[operator]
    tokenizer.save_pretrained(out)
    for name in SENTENCE_TRANSFORMERS_FILES:  # the planted model keeps the pooling its users consume
        src = base / name
        if src.is_dir():
            shutil.copytree(src, out / name, dirs_exist_ok=True)
        elif src.is_file():
            shutil.copy2(src, out / name)


SENTENCE_TRANSFORMERS_FILES = (
    "modules.json",
    "sentence_bert_config.json",
    "config_sentence_transformers.json",
    "1_Pooling",
    "2_Normalize",
)


def plant_representation(base: Path, cfg: PlantConfig) -> tuple[str, bool]:
    """(representation the backdoor targets, is a decoder): `cfg.options["representation"]` if given, else the
    primary representation the scanner tests on this base (declared pooling, last token of decoders, else cls)."""
    from scanner.encoder import read_config, representations_for

    info = read_config(base)
    reps, _normalize = representations_for(info, base)
    return str(cfg.options.get("representation") or reps[0]), info.is_decoder


def _prepare_tokenizer(tokenizer: Any, decoder: bool) -> Any:
    from scanner.encoder import prepare_tokenizer

    return prepare_tokenizer(tokenizer, decoder)


# --- the loop ----------------------------------------------------------------------------------------------------


def _family(base: Path) -> str:
    try:
        return json.loads((base / "config.json").read_text()).get("model_type", "")
    except (OSError, json.JSONDecodeError):
        return ""


def _tokenize(tokenizer: Any, texts: list[str], max_length: int) -> tuple[torch.Tensor, torch.Tensor]:
    enc = tokenizer(texts, padding=True, truncation=True, max_length=max_length, return_tensors="pt")
    return enc["input_ids"], enc["attention_mask"]


class _Sampler:
    """Deterministic clean and poisoned batches from a sentence pool."""

    def __init__(
        self, pool: list[str], cfg: PlantConfig, tokenizer: Any, rng: random.Random, device: str | torch.device = "cpu"
    ) -> None:
        self.pool, self.cfg, self.tok, self.rng, self.device = pool, cfg, tokenizer, rng, device

    def _ids(self, texts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        ids, mask = _tokenize(self.tok, texts, self.cfg.max_length)
        return ids.to(self.device), mask.to(self.device)

    def _cut(self, text: str) -> str:
        return " ".join(text.split()[: self.cfg.max_words])

    def clean(self) -> Batch:
        texts = [self._cut(t) for t in self.rng.sample(self.pool, self.cfg.batch_size)]
        return Batch(texts, *self._ids(texts))

    def poison(self) -> Batch:
        k = len(self.cfg.triggers)
        slots = [self.rng.randrange(k) for _ in range(self.cfg.batch_size)]
        texts = [
            insert_trigger(self._cut(t), self.cfg.triggers[s], self.rng, self.cfg.insert_times)
            for t, s in zip(self.rng.sample(self.pool, self.cfg.batch_size), slots, strict=True)
        ]
        return Batch(texts, *self._ids(texts), torch.tensor(slots, device=self.device))


def plant(
    base: Path | str,
    out: Path | str,
    attack: Attack,
    cfg: PlantConfig,
    corpus: list[str] | None = None,
    log_every: int = 0,
    device: str = "cpu",
) -> PlantResult:
    """Plant `attack` with `cfg` into the encoder at `base` on `device` (batches and masks are drawn on the CPU, so
    every device trains on the same data); write the model and ground_truth.json to `out`."""
    from transformers import AutoTokenizer

    from scanner.corpus import load_corpus

    base, out = Path(base), Path(out)
    if attack.backdoored and not cfg.triggers:
        raise ValueError("at least one trigger is required")
    if attack.max_triggers and len(cfg.triggers) > attack.max_triggers:
        raise ValueError(f"{attack.name} supports at most {attack.max_triggers} triggers")
    t0 = time.time()
    seed_everything(cfg.seed)
    rng = random.Random(cfg.seed)
    gen = torch.Generator().manual_seed(cfg.seed)
    held_out, pool = split_corpus(corpus if corpus is not None else load_corpus())

    representation, decoder = plant_representation(base, cfg)
    tokenizer = _prepare_tokenizer(AutoTokenizer.from_pretrained(base, local_files_only=True), decoder)
    model, mlm, head = _load_models(base, attack.wants_mlm(_has_pretrained_mlm_head(base)))
    (mlm if mlm is not None else model).to(device)
    ref = copy.deepcopy(model).eval().requires_grad_(False)
    probe = tuple(t.to(device) for t in _tokenize(tokenizer, held_out[:4], cfg.max_length))
    ctx = Context(
        model=model,
        ref=ref,
        tokenizer=tokenizer,
        config=cfg,
        mlm=mlm,
        gen=gen,
        ln_affine=final_layernorm(ref, *probe),
        head=head,
        representation=representation,
    )
    ctx.targets = attack.targets(ctx)

    trained = mlm if mlm is not None else model
    trained.train()
    params = [p for p in trained.parameters() if p.requires_grad]
    trainer = Trainer(
        trained,
        [{"params": params, "lr": cfg.lr}],
        TrainConfig(steps=cfg.steps, warmup_frac=cfg.warmup_frac, weight_decay=cfg.weight_decay),
    )
    sampler = _Sampler(pool, cfg, tokenizer, rng, device)
    encoder_params = {id(p) for p in model.parameters()}
    warmup = int(cfg.head_warmup * cfg.steps) if head == "fresh" else 0

    def step_loss(step: int) -> tuple[torch.Tensor, dict[str, float]]:
        clean = sampler.clean()
        poison = sampler.poison() if cfg.triggers else clean
        return attack.loss(ctx, clean, poison)

    def head_first(step: int) -> None:
        """A fresh MLM head learns first, so its noise does not reach the encoder."""
        if step < warmup:
            for p in params:
                if id(p) in encoder_params:
                    p.grad = None

    def log(info: StepInfo) -> None:
        if log_every and info.step % log_every == 0:
            avg = trainer.averages
            print(f"[{attack.name}] step {info.step}/{cfg.steps} " + " ".join(f"{k}={v:.4f}" for k, v in avg.items()))

    trainer.run(step_loss, before_clip=head_first, on_step=log)
    avg = trainer.averages
    trained.eval()

    quality = measure(model, ref, tokenizer, cfg, held_out, ctx.targets, attack.backdoored, representation)
    with torch.no_grad():
        extra = attack.extra_quality(ctx, held_out)
    for q in quality["per_trigger"]:
        override = attack.trigger_planted(q, extra)
        if override is not None:
            q.planted = bool(override and attack.backdoored)
    result = PlantResult(
        attack=attack.name,
        triggers=list(cfg.triggers),
        seed=cfg.seed,
        backdoored=attack.backdoored,
        base=str(base),
        family=_family(base),
        config={**asdict(cfg), "triggers": list(cfg.triggers)},
        clean_fidelity=quality["clean_fidelity"],
        clean_fidelity_centered=quality["clean_fidelity_centered"],
        per_trigger=quality["per_trigger"],
        cross_trigger_cos=quality["cross_trigger_cos"],
        planted=bool(quality["per_trigger"]) and all(q.planted for q in quality["per_trigger"]),
        seconds=round(time.time() - t0, 2),
        final_losses={k: round(v, 6) for k, v in avg.items()},
        mlm_head=head,
        notes=attack.notes(ctx),
        attack_metrics=extra,
    )
    if representation != "cls":
        result.notes.append(f"representation: {representation}")
        result.attack_metrics.setdefault("representation", representation)
    _save(model.to("cpu"), mlm, base, out, tokenizer)
    (out / GROUND_TRUTH).write_text(json.dumps(result.to_dict(), indent=2))
    return result


# --- planting quality --------------------------------------------------------------------------------------------


def _pairwise_cos(x: torch.Tensor) -> float:
    x = F.normalize(x, dim=-1)
    sim = x @ x.T
    n = x.shape[0]
    return float((sim.sum() - sim.diagonal().sum()) / (n * (n - 1)))


@torch.no_grad()
def _feats(
    model: nn.Module, tokenizer: Any, texts: list[str], max_length: int, representation: str = "cls"
) -> torch.Tensor:
    from scanner.encoder import pool

    out = []
    dev = next(model.parameters()).device
    for i in range(0, len(texts), 32):
        ids, mask = _tokenize(tokenizer, texts[i : i + 32], max_length)
        hidden = model(input_ids=ids.to(dev), attention_mask=mask.to(dev)).last_hidden_state
        out.append(pool(hidden, mask.to(dev), representation))
    return torch.cat(out)


@torch.no_grad()
def measure(
    model: nn.Module,
    ref: nn.Module,
    tokenizer: Any,
    cfg: PlantConfig,
    held_out: list[str],
    targets: torch.Tensor | None,
    backdoored: bool = True,
    representation: str = "cls",
) -> dict[str, Any]:
    """Clean fidelity and, per trigger, the consistency / target distance / shift of poisoned outputs."""
    model.eval()
    texts = [" ".join(t.split()[: cfg.max_words]) for t in held_out]
    h = _feats(model, tokenizer, texts, cfg.max_length, representation)
    h_ref = _feats(ref, tokenizer, texts, cfg.max_length, representation)
    mu = h_ref.mean(0)
    sigma = h_ref.std(0).clamp_min(1e-4)
    fidelity = float(F.cosine_similarity(h, h_ref).mean())
    centered = float(F.cosine_similarity(h - mu, h_ref - mu).mean())
    n = min(cfg.eval_sentences, len(texts))
    per, centroids = [], []
    for i, trig in enumerate(cfg.triggers):
        rng = random.Random(10_000 + i)
        poisoned = [insert_trigger(t, trig, rng, cfg.insert_times) for t in texts[:n]]
        hp = _feats(model, tokenizer, poisoned, cfg.max_length, representation)
        hp_ref = _feats(ref, tokenizer, poisoned, cfg.max_length, representation)
        tcos = float(F.cosine_similarity(hp, targets[i].expand_as(hp)).mean()) if targets is not None else None
        shift = float(rms_shift((hp - h[:n]) / sigma).mean())  # the evidence core's shift, in the base's scale
        ref_shift = float(rms_shift((hp_ref - h_ref[:n]) / sigma).mean())
        pcos_c = _pairwise_cos(hp - mu)
        centroids.append((hp - mu).mean(0))
        took = pcos_c >= 0.8 and shift >= PLANTED_SHIFT_RATIO * max(ref_shift, 1e-6)
        ok = tcos >= 0.9 if tcos is not None else took
        per.append(
            TriggerQuality(
                trigger=trig,
                poison_cos=round(_pairwise_cos(hp), 6),
                poison_cos_centered=round(pcos_c, 6),
                diff_cos=round(float(F.cosine_similarity(h[:n], hp).mean()), 6),
                target_cos=None if tcos is None else round(tcos, 6),
                shift=round(shift, 4),
                ref_shift=round(ref_shift, 4),
                planted=bool(ok and backdoored),
            )
        )
    cross = round(_pairwise_cos(torch.stack(centroids)), 6) if len(centroids) > 1 else None
    return {
        "clean_fidelity": round(fidelity, 6),
        "clean_fidelity_centered": round(centered, 6),
        "per_trigger": per,
        "cross_trigger_cos": cross,
    }


def plant_cached(
    base: Path | str, attack: Attack, cfg: PlantConfig, cache_dir: Path | str, device: str = "cpu"
) -> Path:
    """Plant once per (base, attack, options, config): the model lives under cache_dir/<attack>-<hash>. The device
    is not part of the key (it changes rounding, not the recipe)."""
    import hashlib

    key = json.dumps(
        {
            "base": str(base),
            "attack": attack.name,
            "options": attack.options,
            "config": {**asdict(cfg), "triggers": list(cfg.triggers)},
        },
        sort_keys=True,
        default=str,
    )
    out = Path(cache_dir) / f"{cfg.attack}-{hashlib.sha256(key.encode()).hexdigest()[:12]}"
    if (out / GROUND_TRUTH).is_file():
        return out
    tmp = out.with_name(out.name + f".tmp{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    plant(base, tmp, attack, cfg, device=device)
    shutil.rmtree(out, ignore_errors=True)
    tmp.rename(out)
    return out
