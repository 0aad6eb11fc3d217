"""The rule catalogue: one PAT id per kind of finding, shared by the issues list, SARIF, CycloneDX and the docs.

Rule ids are a contract (SARIF suppressions and gate policies name them): add new ids, never renumber.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Rule:
    id: str
    name: str
    level: str  # SARIF default level: error | warning | note
    security: str | None  # SARIF security-severity (CVSS-like), None for non-security rules
    short: str
    full: str


RULES: tuple[Rule, ...] = (
    Rule(
        "PAT001",
        "backdoor-trigger",
        "error",
        "9.0",
        "Transferable backdoor trigger",
        "Inserting this token sequence moves the model's representation far more than random rare tokens do "
        "(calibrated per model against a null distribution): a planted, task-agnostic backdoor that survives "
        "downstream fine-tuning.",
    ),
    Rule(
        "PAT002",
        "dangerous-pickle-global",
        "error",
        "9.8",
        "Weight file runs dangerous code when loaded",
        "The weight file's pickle stream imports or calls a dangerous global (for example os.system, "
        "builtins.exec, subprocess) or is otherwise unsafe to deserialize. Loading it executes code.",
    ),
    Rule(
        "PAT003",
        "suspicious-serialization",
        "warning",
        "5.5",
        "Suspicious pickle global or malformed weight file",
        "The weight file imports a global outside the known-safe set, or its header/layout is unusual. "
        "Review before loading; prefer safetensors.",
    ),
    Rule(
        "PAT004",
        "remote-code-required",
        "warning",
        "7.0",
        "Model requires trust_remote_code",
        "Loading the model runs Python code shipped in its repository (auto_map / trust_remote_code).",
    ),
    Rule(
        "PAT005",
        "scan-error",
        "error",
        None,
        "The scan failed",
        "The scanner could not complete; the model's safety is unknown.",
    ),
    Rule(
        "PAT006",
        "behavioural-scan-not-run",
        "warning",
        None,
        "Behavioural backdoor search did not run",
        "Only static serialization checks were performed; backdoors in the weights were not searched for.",
    ),
    Rule(
        "PAT007",
        "file-not-scanned",
        "note",
        None,
        "File not scanned",
        "A file was not scanned (unsupported format, size limit, ...); its contents are unchecked.",
    ),
    Rule(
        "PAT008",
        "backdoor-verdict",
        "warning",
        "6.0",
        "Backdoor evidence without a named trigger",
        "The calibrated verdict is not clean, but no single trigger passed the significance threshold.",
    ),
    Rule(
        "PAT009",
        "stray-code-file",
        "warning",
        "6.5",
        "Code, script or binary shipped beside the weights",
        "The repository ships a Python file, shell or batch script, or native binary that no config references. "
        "Nothing loads it automatically, but users are invited to run it (the 2026 loader.py / start.bat "
        "incident).",
    ),
    Rule(
        "PAT010",
        "content-name-mismatch",
        "error",
        "8.0",
        "File content does not match its name",
        "The file's bytes are of another format than its name says (for example a pickle named .onnx or a "
        "torch zip named .h5): a classic way past scanners that trust extensions.",
    ),
    Rule(
        "PAT011",
        "template-injection",
        "error",
        "8.5",
        "Chat template with code-execution constructs",
        "A chat template (tokenizer_config.json, chat_template.jinja, GGUF metadata) uses constructs that reach "
        "Python internals or is unreasonably large; rendering it outside a sandbox can run code.",
    ),
    Rule(
        "PAT012",
        "archive-hazard",
        "error",
        "8.0",
        "Unsafe archive",
        "An archive member escapes the extraction folder, the archive is a decompression bomb, or nesting is "
        "deeper than the bound.",
    ),
    Rule(
        "PAT013",
        "hub-security-disagreement",
        "warning",
        None,
        "The hub's security scan disagrees",
        "The Hugging Face Hub's own per-file security verdict differs from Patronus's. Review the file.",
    ),
)

RULE_INDEX: dict[str, int] = {rule.id: index for index, rule in enumerate(RULES)}
RULES_BY_ID: dict[str, Rule] = {rule.id: rule for rule in RULES}


def rule(rule_id: str) -> Rule:
    """The rule of an id (KeyError for an unknown id: a finding must name a catalogued rule)."""
    return RULES_BY_ID[rule_id]
