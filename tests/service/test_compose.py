"""docker-compose.yml: the services, health checks, start order, GPU reservation and required secrets.

`docker compose config` validates the file when the compose plugin is installed; the structure is checked always.
"""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest
import yaml

from tests.service.conftest import REPO

pytestmark = pytest.mark.service

COMPOSE = REPO / "docker-compose.yml"
SECRETS = ("POSTGRES_PASSWORD", "REDIS_PASSWORD", "PATRONUS_API_TOKENS")


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text())


def test_services_health_and_start_order(compose):
    services = compose["services"]
    assert {"postgres", "redis", "migrate", "web", "worker", "beat"} <= set(services)
    for name in ("postgres", "redis", "web", "worker"):
        assert services[name]["healthcheck"]["test"], name
    for name in ("web", "worker", "beat"):
        needs = services[name]["depends_on"]
        assert needs["migrate"]["condition"] == "service_completed_successfully", name
    assert services["migrate"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert services["web"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert services["worker"]["depends_on"]["redis"]["condition"] == "service_healthy"
    assert services["migrate"]["command"] == ["patronus", "db", "upgrade"]
    assert services["migrate"]["restart"] == "no"


def test_worker_reserves_a_gpu_and_runs_the_gpu_queue_solo(compose):
    worker = compose["services"]["worker"]
    device = worker["deploy"]["resources"]["reservations"]["devices"][0]
    assert device["driver"] == "nvidia" and "gpu" in device["capabilities"]
    assert worker["command"][:2] == ["patronus", "worker"] and "solo" in worker["command"]
    assert worker["environment"]["PATRONUS_SCAN_DEVICE"] == "cuda"


def test_secrets_are_required_not_defaulted():
    text = COMPOSE.read_text()
    for secret in SECRETS:
        assert f"${{{secret}:?" in text, secret
        assert f"${{{secret}:-" not in text and f"${{{secret}-" not in text, secret


def compose_cli() -> list[str] | None:
    """`docker compose` (v2 plugin), else `docker-compose` (v1, Debian's package), else None."""
    docker = shutil.which("docker")
    if docker and subprocess.run([docker, "compose", "version"], capture_output=True).returncode == 0:
        return [docker, "compose"]
    legacy = shutil.which("docker-compose")
    return [legacy] if legacy else None


def test_docker_compose_config_validates():
    cli = compose_cli()
    if cli is None:
        pytest.skip(
            "neither the docker compose plugin nor docker-compose is installed (apt-get install -y "
            "docker-compose): structure checked by the tests above only"
        )
    env = {**os.environ, "POSTGRES_PASSWORD": "x", "REDIS_PASSWORD": "y", "PATRONUS_API_TOKENS": "t"}
    run = [*cli, "-f", str(COMPOSE), "--project-directory", str(REPO), "config", "-q"]
    ok = subprocess.run(run, capture_output=True, text=True, env=env)
    assert ok.returncode == 0, ok.stderr
    env.pop("POSTGRES_PASSWORD")
    missing = subprocess.run(run, capture_output=True, text=True, env=env)
    assert missing.returncode != 0 and "POSTGRES_PASSWORD" in missing.stderr
