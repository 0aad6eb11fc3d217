"""Patronus Scanner: supply-chain security for pre-trained language models."""

__version__ = "0.1.0"
# Bumped whenever a verdict can change for the same model and config; the service re-scans older results.
# 2: collapse evidence beside the shift (scanner/verdict.py), Bonferroni over both tests.
ENGINE_VERSION = "2"
