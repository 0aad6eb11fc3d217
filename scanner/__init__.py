"""Patronus Scanner: supply-chain security for pre-trained language models."""

__version__ = "0.1.0"
# Bumped whenever a verdict can change for the same model and config; the service re-scans older results.
# 2: collapse evidence beside the shift (scanner/verdict.py), Bonferroni over both tests.
# 3: each representation the encoder lists is scanned (Bonferroni over them); in fine-tuned classifiers, findings
#    that override confident inputs no better than the model's own strongest task words are set aside (issue 11).
# 4: each unit scored once a restart on fixed sentences; a multi-representation model searched once, jointly.
# 5: symbol tokens (≈ ⊗ € →) searched beside the rare words; Bonferroni over both (the null stays words).
ENGINE_VERSION = "5"
