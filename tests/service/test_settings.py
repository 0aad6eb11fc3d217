"""Settings from the environment, the Celery configuration derived from them, and the service CLI commands."""

from __future__ import annotations

import pytest
from click.testing import CliRunner
from pydantic import ValidationError

from tasks.app import DISCOVER, REQUEUE_STALE, SCAN, celery_config
from tasks.settings import Settings, get_settings

pytestmark = pytest.mark.service


@pytest.fixture
def clean_env(monkeypatch, tmp_path):
    for key in list(__import__("os").environ):
        if key.startswith(("PATRONUS_", "HF_")):
            monkeypatch.delenv(key)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path))
    get_settings.cache_clear()
    yield tmp_path
    get_settings.cache_clear()


def test_defaults_are_the_embedded_mode(clean_env):
    settings = Settings()
    assert settings.database_url == f"sqlite:///{clean_env / 'patronus' / 'patronus.db'}"
    assert settings.broker_url == f"sqla+sqlite:///{clean_env / 'patronus' / 'broker.db'}"
    assert settings.embedded and settings.result_backend is None and settings.api_tokens == []
    assert not settings.allow_local_targets and settings.scan_profile == "standard"
    assert (settings.gpu_queue, settings.default_queue) == ("gpu", "default")


def test_environment_is_parsed_and_validated(clean_env, monkeypatch):
    monkeypatch.setenv("PATRONUS_API_TOKENS", " a, b ,,c ")
    monkeypatch.setenv("PATRONUS_ALLOW_LOCAL_TARGETS", "1")
    monkeypatch.setenv("PATRONUS_DISCOVERY_FAMILIES", "bert,deberta-v2")
    monkeypatch.setenv("HF_TOKEN", "hf_x")
    monkeypatch.setenv("HF_ENDPOINT", "http://hub.local")
    monkeypatch.setenv("PATRONUS_SCAN_PROFILE", "quick")
    settings = Settings()
    assert settings.api_tokens == ["a", "b", "c"] and settings.allow_local_targets
    assert settings.discovery_families == ["bert", "deberta-v2"]
    assert settings.hf_token == "hf_x" and settings.hf_endpoint == "http://hub.local"
    config = settings.scan_config()
    assert config.profile == "quick" and config.token == "hf_x"
    for key, bad in (
        ("PATRONUS_SCAN_PROFILE", "huge"),
        ("PATRONUS_DISCOVERY_FAMILIES", "gpt2"),
        ("PATRONUS_SCAN_DEVICE", "tpu"),
    ):
        monkeypatch.setenv(key, bad)
        with pytest.raises(ValidationError):
            Settings()
        monkeypatch.delenv(key)


def test_celery_configuration_guarantees_delivery():
    conf = celery_config(
        Settings(
            broker_url="redis://127.0.0.1:6379/3",
            queue_prefix="t-",
            broker_visibility_timeout_s=600,
            database_url="sqlite://",
        )
    )
    assert conf["task_acks_late"] and conf["task_reject_on_worker_lost"] and conf["worker_prefetch_multiplier"] == 1
    assert conf["task_ignore_result"] and conf["result_backend"] is None
    assert conf["broker_transport_options"]["visibility_timeout"] == 600
    assert conf["broker_transport_options"]["global_keyprefix"] == "t-"
    assert {q.name for q in conf["task_queues"]} == {"t-gpu", "t-default"}
    routes = conf["task_routes"]
    assert routes[SCAN]["queue"] == "t-gpu"
    assert routes[DISCOVER]["queue"] == routes[REQUEUE_STALE]["queue"] == "t-default"
    assert {entry["task"] for entry in conf["beat_schedule"].values()} == {DISCOVER, REQUEUE_STALE}
    assert conf["task_time_limit"] > conf["task_soft_time_limit"] > 0
    assert conf["worker_enable_remote_control"]
    embedded = celery_config(Settings(database_url="sqlite://"))
    assert embedded["broker_url"].startswith("sqla+sqlite") and not embedded["worker_enable_remote_control"]


def test_db_upgrade_command_on_the_default_sqlite(clean_env):
    from scanner.cli import main

    result = CliRunner().invoke(main, ["db", "upgrade"], standalone_mode=False)
    assert result.exit_code == 0, result.output
    assert "at revision 0002" in result.output and (clean_env / "patronus" / "patronus.db").is_file()
    current = CliRunner().invoke(main, ["db", "current"], standalone_mode=False)
    assert "current: 0002  head: 0002" in current.output


def test_service_commands_are_registered():
    from scanner.cli import main

    assert {"serve", "worker", "beat", "db"} <= set(main.commands)
    help_text = CliRunner().invoke(main, ["worker", "--help"], standalone_mode=False).output
    assert "--queues" in help_text and "solo" in help_text
