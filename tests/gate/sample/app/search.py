"""Sentence embeddings (positional id) and a per-language model the gate cannot resolve statically."""

from sentence_transformers import SentenceTransformer
from transformers import AutoModel

embedder = SentenceTransformer("acme/sentence")


def load(lang: str):
    return AutoModel.from_pretrained(f"acme/encoder-{lang}")
