"""The CI adoption gate: discovery (ast), policy (pydantic), lock file, signatures, and the runner.

`patronus gate` / `patronus lock` (scanner/cli/gate.py) are thin shells around `scanner.gate.runner.run_gate`.
"""
