"""Chat templates (tokenizer_config.json, chat_template.jinja/.json, GGUF metadata): parsed in a Jinja2 sandbox,
never rendered. Template-injection constructs (dunder traversal to Python internals, the objects SSTI payloads
reach for, `attr`/`format` tricks that spell a dunder) and oversized templates are findings."""

from __future__ import annotations

import json
import re
from typing import Any

from jinja2 import nodes
from jinja2.exceptions import TemplateError
from jinja2.sandbox import ImmutableSandboxedEnvironment

from scanner.report import FileStatus, Severity
from scanner.static.common import LIMITS, FileScan, some

__all__ = ["check_template", "scan_template_file", "templates_in_tokenizer_config"]

S, D = FileStatus.SUSPICIOUS, FileStatus.DANGEROUS
# Attributes an SSTI payload walks to reach Python: an unsandboxed renderer (llama-cpp-python before 0.2.72,
# CVE-2024-34359; any plain jinja2.Environment) gives them to the template.
_GADGET_ATTRS = frozenset(
    {
        "__class__",
        "__mro__",
        "__base__",
        "__bases__",
        "__subclasses__",
        "__globals__",
        "__builtins__",
        "__init__",
        "__import__",
        "__getattribute__",
        "__dict__",
        "__code__",
        "__func__",
        "__self__",
        "__module__",
        "__reduce__",
        "__reduce_ex__",
        "__getitem__",
        "mro",
        "func_globals",
        "f_globals",
        "gi_frame",
        "f_back",
        "tb_frame",
        "co_code",
        "_module",
        "__loader__",
        "__spec__",
    }
)
_GADGET_NAMES = frozenset(
    {
        "cycler",
        "joiner",
        "lipsum",
        "self",
        "config",
        "request",
        "url_for",
        "get_flashed_messages",
        "os",
        "subprocess",
        "sys",
        "builtins",
        "importlib",
        "__builtins__",
        "eval",
        "exec",
        "open",
        "getattr",
    }
)
_GADGET_CALLS = frozenset(
    {
        "popen",
        "system",
        "spawn",
        "exec",
        "eval",
        "import_module",
        "__import__",
        "check_output",
        "run",
        "load_module",
        "read",
        "write",
        "remove",
        "unlink",
        "rmtree",
    }
)
_DUNDER_TEXT = re.compile(r"__[A-Za-z]+__")
_ENV = ImmutableSandboxedEnvironment()


def check_template(template: str, where: str) -> list[tuple[str, FileStatus, Severity, str]]:
    """(rule, status, severity, message) for each problem of one chat template."""
    found: list[tuple[str, FileStatus, Severity, str]] = []
    if len(template.encode("utf-8", "replace")) > LIMITS.max_template_bytes:
        found.append(
            (
                "template-size",
                S,
                Severity.MEDIUM,
                f"{where}: chat template of {len(template):,} characters exceeds "
                f"{LIMITS.max_template_bytes:,} bytes; not analysed further",
            )
        )
        return found
    try:
        tree = _ENV.parse(template)
    except TemplateError as exc:
        found.append(("template-malformed", S, Severity.MEDIUM, f"{where}: chat template does not parse: {exc}"))
        return found
    except RecursionError:
        found.append(("template-malformed", S, Severity.MEDIUM, f"{where}: chat template nests too deeply"))
        return found
    attrs = sorted(
        {n.attr for n in tree.find_all(nodes.Getattr) if n.attr in _GADGET_ATTRS}
        | {
            str(n.arg.value)
            for n in tree.find_all(nodes.Getitem)
            if isinstance(n.arg, nodes.Const) and str(n.arg.value) in _GADGET_ATTRS
        }
    )
    strings = [str(n.value) for n in tree.find_all(nodes.Const) if isinstance(n.value, str)]
    spelled = sorted({m for s in strings for m in _DUNDER_TEXT.findall(s) if m in _GADGET_ATTRS})
    names = sorted({n.name for n in tree.find_all(nodes.Name) if n.name in _GADGET_NAMES and n.ctx == "load"})
    calls = sorted(
        {
            n.node.attr
            for n in tree.find_all(nodes.Call)
            if isinstance(n.node, nodes.Getattr) and n.node.attr in _GADGET_CALLS
        }
    )
    filters = sorted(
        {
            n.name
            for n in tree.find_all(nodes.Filter)
            if n.name in ("attr", "format", "map")
            and any(isinstance(a, nodes.Const) and "_" in str(a.value) for a in n.args)
        }
    )
    concat_dunder = any("_" in s and len(s) <= 3 for s in strings) and bool(filters or attrs)
    if attrs or spelled:
        found.append(
            (
                "template-injection",
                D,
                Severity.CRITICAL,
                f"{where}: chat template reaches Python internals ({some(attrs + spelled)}): a template "
                "injection that runs code in any renderer without a sandbox",
            )
        )
    if calls:
        found.append(("template-injection", D, Severity.CRITICAL, f"{where}: chat template calls {some(calls)}"))
    if names or filters or concat_dunder:
        found.append(
            (
                "template-suspicious",
                S,
                Severity.HIGH,
                f"{where}: chat template uses constructs SSTI payloads use "
                f"({some(names + [f'|{f}' for f in filters])})",
            )
        )
    return found


def _apply(scan: FileScan, checks: list[tuple[str, FileStatus, Severity, str]]) -> None:
    for rule, status, severity, message in checks:
        scan.add(rule, status, severity, message)


def templates_in_tokenizer_config(data: Any) -> list[tuple[str, str]]:
    """(name, template) pairs from a tokenizer_config.json / chat_template.json object."""
    value = data.get("chat_template") if isinstance(data, dict) else None
    if isinstance(value, str):
        return [("chat_template", value)]
    if isinstance(value, list):
        return [
            (str(item.get("name", index)), item["template"])
            for index, item in enumerate(value)
            if isinstance(item, dict) and isinstance(item.get("template"), str)
        ]
    return []


def scan_template_file(text: str, rel: str, scan: FileScan) -> None:
    """A tokenizer_config.json, chat_template.json or chat_template.jinja file."""
    scan.format = "chat-template"
    scan.kind = "template"
    if rel.endswith(".json"):
        try:
            data = json.loads(text)
        except (json.JSONDecodeError, RecursionError):
            scan.add("template-malformed", S, Severity.LOW, f"{rel}: not valid JSON; chat template not checked")
            return
        templates = templates_in_tokenizer_config(data)
    else:
        templates = [("chat_template", text)]
    for name, template in templates:
        _apply(scan, check_template(template, f"{rel} {name}"))
    scan.notes.append(f"{len(templates)} chat template(s) checked in a Jinja2 sandbox (parsed, not rendered)")
