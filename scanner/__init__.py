"""Patronus Scanner: supply-chain security for pre-trained language models."""

__version__ = "0.1.0"
ENGINE_VERSION = "1"
