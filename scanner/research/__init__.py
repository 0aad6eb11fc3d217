"""The research toolkit: attacks, the zoo benchmark, downstream evaluation, datasets, calibration fitting and
base-model builders. Never imported by the core scan pipeline (tests/test_layout.py enforces it)."""
