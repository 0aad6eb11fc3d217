"""The gate's policy: validation (unknown keys exit 4), the shipped JSON schema, deny/allow, pinning, suppressions."""

from __future__ import annotations

import json
from datetime import date, timedelta
from pathlib import Path

import pytest

from scanner.errors import PolicyError
from scanner.gate.policy import SCHEMA_PATH, Policy, load_policy, schema_text
from tests.gate.gatekit import write_policy


def test_shipped_schema_is_the_policy_models_schema() -> None:
    assert SCHEMA_PATH.read_text() == schema_text(), "run: python -m scanner.gate.policy"
    schema = json.loads(SCHEMA_PATH.read_text())
    assert schema["additionalProperties"] is False and "suppress" in schema["properties"]


def test_policy_from_pyproject_tool_table(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text(
        '[project]\nname = "x"\n\n[tool.patronus]\nfail_on = "medium"\ndeny = ["evil/*"]\n'
        '[[tool.patronus.suppress]]\nrule = "PAT003"\nmodel = "acme/*"\nreason = "reviewed"\nexpires = 2099-01-01\n'
    )
    (tmp_path / "sub").mkdir()
    loaded = load_policy(start=tmp_path / "sub")
    assert loaded.path == (tmp_path / "pyproject.toml").resolve()
    assert loaded.policy.fail_on == "medium" and loaded.policy.denied("evil/model")
    assert loaded.policy.suppress[0].expires == date(2099, 1, 1)


@pytest.mark.parametrize(
    "body",
    [
        'fail_on = "high"\nfial_on = "low"\n',
        "[signatures]\nrequire = true\nkey = 1\n",
        'max_size = "lots"\n',
        '[[suppress]]\nrule = "PAT001"\nreason = "x"\n',
    ],
)
def test_invalid_policy_is_an_error(tmp_path: Path, body: str) -> None:
    (tmp_path / "patronus.toml").write_text(body)
    with pytest.raises(PolicyError):
        load_policy(start=tmp_path)


def test_unknown_key_exits_4(hub, sample: Path, cli) -> None:
    write_policy(sample, 'fail_onn = "low"\n')
    result = cli("gate")
    assert result.code == 4
    assert "fail_onn" in result.stderr and "Extra inputs are not permitted" in result.stderr


def test_deny_listed_org_fails_and_is_not_scanned(hub, sample: Path, cli) -> None:
    write_policy(sample, 'deny = ["acme/classifier"]\n')
    result = cli("gate", "--format", "json")
    assert result.code == 1
    data = json.loads(result.stdout)
    denied = next(m for m in data["models"] if m["model"] == "acme/classifier")
    assert denied["fails"] and denied["findings"][0]["rule"] == "PATG03" and denied["verdict"] is None
    assert data["scans_run"] == 3


def test_allow_list_and_pinning(hub, sample: Path, cli) -> None:
    write_policy(sample, 'allow = ["acme/*"]\nrequire_pinned = true\n')
    data = json.loads(cli("gate", "--format", "json").stdout)
    unpinned = {m["model"] for m in data["models"] if any(f["rule"] == "PATG04" for f in m["findings"])}
    assert unpinned == {"acme/encoder", "acme/sentence", "acme/classifier", "acme/listed"}
    assert Policy(allow=["acme/*"]).denied("other/model")


def _suppression(expires: date) -> str:
    return (
        f'deny = ["acme/classifier"]\n[[suppress]]\nrule = "PATG03"\nmodel = "acme/classifier"\n'
        f'reason = "vendored under review, ticket SEC-12"\nexpires = {expires.isoformat()}\n'
    )


def test_suppression_with_future_expiry_passes(hub, sample: Path, cli) -> None:
    write_policy(sample, _suppression(date.today() + timedelta(days=30)))
    result = cli("gate", "--format", "sarif")
    assert result.code == 0, result.stderr
    results = json.loads(result.stdout)["runs"][0]["results"]
    suppressed = [r for r in results if r["ruleId"] == "PATG03"]
    assert suppressed and suppressed[0]["suppressions"][0]["justification"].startswith("vendored under review")


def test_expired_suppression_fails(hub, sample: Path, cli) -> None:
    write_policy(sample, _suppression(date.today() - timedelta(days=1)))
    result = cli("gate", "--format", "json")
    assert result.code == 1
    data = json.loads(result.stdout)
    assert [f["rule"] for f in data["findings"] if f["fails"]] == ["PATG10"]
    denied = next(m for m in data["models"] if m["model"] == "acme/classifier")
    assert denied["fails"]  # an expired suppression suppresses nothing


def test_not_scanned_and_unresolved_switches(hub, sample: Path, cli) -> None:
    write_policy(sample, "fail_on_unresolved = true\n")
    data = json.loads(cli("gate", "--format", "json").stdout)
    assert data["exit_code"] == 1 and [f["rule"] for f in data["findings"] if f["fails"]] == ["PATG02"]
    (sample / "patronus.toml").write_text('profile = "quick"\nfail_on_not_scanned = true\n')
    hub.add_commit(
        "acme/sentence",
        {
            "config.json": json.dumps({"model_type": "weird", "auto_map": {"AutoModel": "modeling.Weird"}}).encode(),
            "modeling.py": b"print('never run')\n",
        },
    )
    data = json.loads(cli("gate", "app/search.py", "--format", "json").stdout)
    sentence = next(m for m in data["models"] if m["model"] == "acme/sentence")
    assert "PATG06" in {f["rule"] for f in sentence["findings"] if f["fails"]} and data["exit_code"] == 1
