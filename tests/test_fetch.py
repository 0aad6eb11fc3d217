"""scanner.fetch against a loopback hub stub through the real huggingface_hub client, and local folders."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import numpy as np
import pytest
from huggingface_hub import HfApi
from safetensors.numpy import save

from scanner import fetch as fetch_module
from scanner.errors import FetchError, GatedRepoError, UsageError
from scanner.fetch import ModelRef, Snapshot, fetch, hub_endpoint, select_files

try:
    from tests.hub_stub import DEFAULT_TOKEN, HubStub
except ModuleNotFoundError:  # the repo root is not on sys.path (plain `pytest`, tests/ not a package)
    from hub_stub import DEFAULT_TOKEN, HubStub

CARD = {"license": "apache-2.0", "base_model": "google-bert/bert-base-uncased", "tags": ["demo"]}


def tiny_safetensors(value: float = 0.0) -> bytes:
    return save({"embeddings.weight": np.full((4, 2), value, dtype=np.float32)})


def bert_files(version: int = 1) -> dict[str, bytes]:
    return {
        "config.json": json.dumps({"model_type": "bert", "version": version}).encode(),
        "tokenizer.json": b'{"model": {}}',
        "tokenizer_config.json": b"{}",
        "vocab.txt": b"[PAD]\n[UNK]\nhello\n",
        "model.safetensors": tiny_safetensors(version),
    }


@pytest.fixture
def hub(monkeypatch: pytest.MonkeyPatch):
    """A running stub selected through HF_ENDPOINT (read by fetch at call time), and no ambient token."""
    with HubStub() as stub:
        monkeypatch.setenv("HF_ENDPOINT", stub.url)
        monkeypatch.delenv("HF_TOKEN", raising=False)
        monkeypatch.delenv("HUGGING_FACE_HUB_TOKEN", raising=False)
        yield stub


@pytest.fixture
def cache(tmp_path: Path) -> Path:
    return tmp_path / "cache"


def hub_fetch(target: str, cache: Path, revision: str | None = None, **kwargs) -> Snapshot:
    return fetch(ModelRef.parse(target, revision), cache_dir=cache, **kwargs)


# --------------------------------------------------------------------------------------------------- revisions


def test_endpoint_comes_from_environment_at_call_time(hub: HubStub, cache: Path) -> None:
    hub.add_repo("org/tiny", bert_files())
    assert hub_endpoint() == hub.url
    snap = hub_fetch("org/tiny", cache)
    assert snap.source == "hub" and hub.requests("model_info")


def test_branch_resolves_to_commit_sha_and_downloads_are_pinned(hub: HubStub, cache: Path) -> None:
    hub.add_repo("org/model", bert_files(1))
    second = hub.add_commit("org/model", bert_files(2))
    snap = hub_fetch("org/model", cache, "main")
    assert snap.sha == second
    assert snap.local_dir.name == second
    assert json.loads((snap.local_dir / "config.json").read_text())["version"] == 2
    assert {r.revision for r in hub.requests("resolve")} == {second}


def test_older_commit_and_tag_fetch_that_commit(hub: HubStub, cache: Path) -> None:
    first = hub.add_repo("org/model", bert_files(1))
    hub.add_commit("org/model", bert_files(2))
    hub.set_ref("org/model", "v1.0", first)
    for revision in (first, "v1.0"):
        snap = hub_fetch("org/model", cache, revision)
        assert snap.sha == first
        assert json.loads((snap.local_dir / "config.json").read_text())["version"] == 1
        assert snap.ref.revision == revision


# --------------------------------------------------------------------------------------------------- selection


def test_partial_download_skips_code_and_fetches_every_weight_file(hub: HubStub, cache: Path) -> None:
    """Issue 12: every weight-bearing file (a pickle beside safetensors, other frameworks, subfolders) is
    downloaded within --max-size; code is never downloaded; documentation is left out."""
    files = {
        **bert_files(),
        "README.md": b"# no front matter\n",
        "modeling_custom.py": b"import os; os.system('echo pwned')\n",
        "model.onnx": b"onnx" * 64,
        "onnx/model_quantized.onnx": b"onnq" * 64,
        "tf_model.h5": b"h5" * 64,
        "flax_model.msgpack": b"msgpack" * 16,
        "pytorch_model.bin": b"pickle" * 16,
        "1_Pooling/config.json": b'{"pooling_mode_mean_tokens": true}',
        "2_Dense/model.safetensors": tiny_safetensors(),
        ".gitattributes": b"*.bin filter=lfs\n",
    }
    hub.add_repo("org/mixed", files)
    snap = hub_fetch("org/mixed", cache)

    expected = {
        "README.md",
        "config.json",
        "tokenizer.json",
        "tokenizer_config.json",
        "vocab.txt",
        "model.safetensors",
        "1_Pooling/config.json",
        "model.onnx",
        "onnx/model_quantized.onnx",
        "tf_model.h5",
        "flax_model.msgpack",
        "pytorch_model.bin",
        "2_Dense/model.safetensors",
    }
    assert set(snap.downloaded) == expected
    assert set(hub.downloaded_files()) == expected
    touched = {r.filename for r in hub.requests("resolve")}
    assert touched == expected  # no HEAD or GET for anything else
    assert snap.files == sorted(files)
    skipped = {s.path: s for s in snap.skipped}
    assert set(skipped) | expected == set(files) and not set(skipped) & expected
    assert skipped["modeling_custom.py"].category == "code"
    assert skipped["modeling_custom.py"].reason == "not downloaded: code is never executed"
    assert skipped[".gitattributes"].category == "not_model_file"
    assert all(s.reason for s in snap.skipped)
    assert not (snap.local_dir / "modeling_custom.py").exists()
    assert snap.size_bytes == sum(len(files[p]) for p in expected)


def test_weight_files_over_the_size_budget_are_listed_at_a_failing_severity(hub: HubStub, cache: Path) -> None:
    """What does not fit --max-size beside the required files is skipped as too large; a pickle at high."""
    files = {**bert_files(), "pytorch_model.bin": b"\x80\x02" + b"p" * 4000, "model.onnx": b"o" * 4000}
    hub.add_repo("org/budget", files)
    required = sum(len(v) for k, v in files.items() if k not in ("pytorch_model.bin", "model.onnx"))
    snap = hub_fetch("org/budget", cache, max_size=required + 100)
    skipped = {s.path: s for s in snap.skipped}
    assert skipped["pytorch_model.bin"].category == "too_large" and skipped["pytorch_model.bin"].severity == "high"
    assert skipped["model.onnx"].category == "too_large" and skipped["model.onnx"].severity == "medium"
    assert "pytorch_model.bin" not in hub.downloaded_files()


def test_hub_security_info_is_read_beside_the_download(hub: HubStub, cache: Path) -> None:
    files = {**bert_files(), "pytorch_model.bin": b"\x80\x02N."}
    hub.add_repo("org/flagged", files)
    hub.set_security("org/flagged", "pytorch_model.bin", "unsafe", pickle_imports=[("os", "system", "dangerous")])
    snap = hub_fetch("org/flagged", cache)
    assert snap.hub_security["pytorch_model.bin"]["status"] == "unsafe"
    assert snap.hub_security["pytorch_model.bin"]["pickle_import_scan"]["highestSafetyLevel"] == "dangerous"
    assert hub.requests("tree", repo_id="org/flagged")


def test_pickle_weights_fetched_only_without_safetensors(hub: HubStub, cache: Path) -> None:
    files = {"config.json": b"{}", "pytorch_model.bin": b"\x80\x02pickle", "training_args.bin": b"\x80\x02x"}
    hub.add_repo("org/legacy", files)
    snap = hub_fetch("org/legacy", cache)
    assert snap.downloaded == ["config.json", "pytorch_model.bin", "training_args.bin"]
    assert (snap.local_dir / "pytorch_model.bin").read_bytes() == files["pytorch_model.bin"]


def test_sharded_safetensors_with_index(hub: HubStub, cache: Path) -> None:
    shards = {f"model-0000{i}-of-00002.safetensors": tiny_safetensors(i) for i in (1, 2)}
    index = {"weight_map": {"a": "model-00001-of-00002.safetensors", "b": "model-00002-of-00002.safetensors"}}
    hub.add_repo(
        "org/sharded",
        {
            "config.json": b"{}",
            "model.safetensors.index.json": json.dumps(index).encode(),
            "pytorch_model.bin.index.json": b"{}",
            **shards,
        },
    )
    snap = hub_fetch("org/sharded", cache)
    assert set(snap.downloaded) == {"config.json", "model.safetensors.index.json", *shards}
    assert [s.path for s in snap.skipped] == ["pytorch_model.bin.index.json"]


def test_select_files_is_pure_and_complete() -> None:
    sizes = {"config.json": 2, "model.safetensors": 10, "run.sh": 1, "weights.gguf": 5, "notes.txt": 3}
    selection = select_files(sizes)
    assert selection.files == ["config.json", "model.safetensors", "weights.gguf"]
    assert selection.size == 17
    assert {s.path: s.category for s in selection.skipped} == {"notes.txt": "not_model_file", "run.sh": "code"}


# --------------------------------------------------------------------------------------------------- bounds, errors


def test_size_bound_fails_before_any_download(hub: HubStub, cache: Path) -> None:
    files = bert_files()
    files["model.safetensors"] = b"\0" * 4096
    hub.add_repo("org/big", files)
    with pytest.raises(FetchError, match=r"model is 4\.\d KB, over --max-size 1\.0 KB"):
        hub_fetch("org/big", cache, max_size=1024)
    assert hub.requests("resolve") == []


def test_missing_repo_and_revision(hub: HubStub, cache: Path) -> None:
    hub.add_repo("org/real", bert_files())
    with pytest.raises(FetchError, match=f"repository org/nope not found on {hub.url}") as info:
        hub_fetch("org/nope", cache)
    assert info.value.code == "fetch_failed" and info.value.exit_code == 2
    with pytest.raises(FetchError, match="revision 'v9' not found in org/real"):
        hub_fetch("org/real", cache, "v9")


def test_gated_repo_needs_a_token(hub: HubStub, cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    hub.add_repo("org/gated", bert_files(), gated=True)
    with pytest.raises(GatedRepoError, match="--token or set HF_TOKEN") as info:
        hub_fetch("org/gated", cache)
    assert info.value.code == "access_denied"

    snap = hub_fetch("org/gated", cache, token=DEFAULT_TOKEN)
    assert "model.safetensors" in snap.downloaded
    assert {r.token for r in hub.requests("resolve", "GET")} == {DEFAULT_TOKEN}

    monkeypatch.setenv("HF_TOKEN", DEFAULT_TOKEN)
    assert hub_fetch("org/gated", tmp_cache := cache.with_name("cache2")).sha == snap.sha
    assert (tmp_cache / "models--org--gated").is_dir()


def test_gated_repo_refuses_a_token_without_access(cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HF_TOKEN", raising=False)
    with HubStub(tokens=[DEFAULT_TOKEN, "hf_other"]) as stub:
        stub.add_repo("org/gated", bert_files(), gated=True, allowed_tokens=["hf_other"])
        with pytest.raises(GatedRepoError, match="no access to gated repository org/gated"):
            hub_fetch("org/gated", cache, token=DEFAULT_TOKEN, endpoint=stub.url)
        with pytest.raises(GatedRepoError, match="Invalid credentials"):
            hub_fetch("org/gated", cache, token="hf_wrong", endpoint=stub.url)
        assert hub_fetch("org/gated", cache, token="hf_other", endpoint=stub.url).sha


def test_private_repo_looks_missing_without_token(hub: HubStub, cache: Path) -> None:
    hub.add_repo("org/private", bert_files(), private=True)
    with pytest.raises(FetchError, match="needs --token or HF_TOKEN"):
        hub_fetch("org/private", cache)
    assert hub_fetch("org/private", cache, token=DEFAULT_TOKEN).downloaded


def test_unreachable_hub_is_a_fetch_error(cache: Path) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{sock.getsockname()[1]}"
    with pytest.raises(FetchError, match=f"cannot reach {dead}"):
        hub_fetch("org/any", cache, endpoint=dead)


# --------------------------------------------------------------------------------------------------- cache, progress


def test_second_fetch_of_same_commit_downloads_nothing(hub: HubStub, cache: Path) -> None:
    sha = hub.add_repo("org/model", bert_files())
    first = hub_fetch("org/model", cache)
    assert hub.downloaded_files()
    hub.clear_log()
    for revision in (None, sha):
        again = hub_fetch("org/model", cache, revision)
        assert again.sha == first.sha and again.downloaded == first.downloaded
    assert [r.kind for r in hub.log if r.kind != "tree"] == ["model_info", "model_info"]  # tree: hub security info


def test_progress_reports_fetch_fractions(hub: HubStub, cache: Path) -> None:
    hub.add_repo("org/model", bert_files())
    calls: list[tuple[str, float | None, str]] = []
    hub_fetch(
        "org/model", cache, progress=lambda stage, fraction=None, message="": calls.append((stage, fraction, message))
    )
    fractions = [f for _, f, _ in calls if f is not None]
    assert {stage for stage, _, _ in calls} == {"fetch"}
    assert fractions == sorted(fractions) and fractions[-1] == 1.0
    assert "downloading model.safetensors" in {m for _, _, m in calls}  # byte counts from the streamed download


def test_hub_card_metadata(hub: HubStub, cache: Path) -> None:
    hub.add_repo("org/carded", bert_files(), card_data=CARD, pipeline_tag="fill-mask")
    card = hub_fetch("org/carded", cache).card
    assert card["base_model"] == CARD["base_model"] and card["license"] == "apache-2.0"
    assert card["pipeline_tag"] == "fill-mask" and card["tags"] == ["demo"]


# --------------------------------------------------------------------------------------------------- local


def test_local_folder(tmp_path: Path) -> None:
    folder = tmp_path / "model"
    (folder / "sub").mkdir(parents=True)
    (folder / ".git").mkdir()
    (folder / ".git" / "HEAD").write_text("ref: refs/heads/main\n")
    for name, data in bert_files().items():
        (folder / name).write_bytes(data)
    (folder / "sub" / "notes.txt").write_text("hi")
    (folder / "README.md").write_text("---\nlicense: mit\nbase_model: org/base\npipeline_tag: fill-mask\n---\n# x\n")
    outside = tmp_path / "secret.txt"
    outside.write_text("not part of the model")
    (folder / "leak.txt").symlink_to(outside)
    (folder / "alias.json").symlink_to(folder / "config.json")

    snap = fetch(ModelRef.parse(str(folder)))
    assert snap.source == "local" and snap.sha is None and snap.local_dir == folder.resolve()
    assert "sub/notes.txt" in snap.files and "alias.json" in snap.files and "leak.txt" not in snap.files
    assert snap.downloaded == snap.files
    reasons = {s.path: s.category for s in snap.skipped}
    assert reasons == {".git": "not_needed", "leak.txt": "symlink"}
    assert snap.card == {"base_model": "org/base", "pipeline_tag": "fill-mask", "license": "mit"}
    assert snap.size_bytes > 0

    with pytest.raises(FetchError, match="over --max-size"):
        fetch(ModelRef.parse(str(folder)), max_size=10)


def test_local_hub_cache_snapshot_keeps_blob_symlinks(hub: HubStub, cache: Path) -> None:
    hub.add_repo("org/model", bert_files())
    snap = hub_fetch("org/model", cache)
    local = fetch(ModelRef.parse(str(snap.local_dir)))
    assert local.files == snap.downloaded and local.skipped == []


def test_local_folder_with_too_many_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fetch_module, "MAX_LOCAL_FILES", 3)
    for i in range(5):
        (tmp_path / f"f{i}.txt").write_text("x")
    with pytest.raises(UsageError, match="more than 3 files"):
        fetch(ModelRef.parse(str(tmp_path)))


# --------------------------------------------------------------------------------------------------- parsing


@pytest.mark.parametrize("target", ["bert-base-uncased", "org/name", "Org-1/name.v2_x", "a/b"])
def test_parse_hub_ids(target: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    ref = ModelRef.parse(target, "main")
    assert ref == ModelRef(repo_id=target, revision="main") and not ref.is_local
    assert ref.display == f"{target}@main" and ModelRef.parse(target).display == target


@pytest.mark.parametrize(
    "target, message",
    [
        ("org/name/extra", "does not exist"),
        ("./missing", "does not exist"),
        ("/no/such/dir", "does not exist"),
        ("org--x/y", "neither an existing folder nor a valid hub repo id"),
        ("bad name", "neither"),
        ("-lead/x", "neither"),
        ("name.git", "neither"),
        ("", "TARGET is empty"),
    ],
)
def test_parse_rejects_bad_targets(target: str, message: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(UsageError, match=message) as info:
        ModelRef.parse(target)
    assert info.value.exit_code == 4


def test_parse_local_targets(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "org" / "name").mkdir(parents=True)  # an existing folder wins over the same-looking repo id
    ref = ModelRef.parse("org/name")
    assert ref.is_local and ref.path == (tmp_path / "org" / "name").resolve() and ref.display == str(ref.path)
    (tmp_path / "weights.bin").write_bytes(b"x")
    with pytest.raises(UsageError, match="is a file"):
        ModelRef.parse("weights.bin")
    with pytest.raises(UsageError, match="--revision"):
        ModelRef.parse("org/name", "main")
    with pytest.raises(UsageError):
        ModelRef()


def test_fetch_module_never_loads_code() -> None:
    source = Path(fetch_module.__file__).read_text()
    assert "import transformers" not in source and "trust_remote_code" not in source


# --------------------------------------------------------------------------------------------------- stub listing


def test_stub_listing_pages_sorts_and_filters() -> None:
    with HubStub(page_size=2) as stub:
        for i in range(5):
            task = "fill-mask" if i % 2 else "text-classification"
            stub.add_repo(f"org/m{i}", {"config.json": b"{}"}, pipeline_tag=task, created_at=f"2025-01-0{i + 1}T00:00Z")
        stub.add_commit("org/m0", {"config.json": b'{"v": 2}'})
        api = HfApi(endpoint=stub.url)

        newest = [m.id for m in api.list_models(sort="created_at", limit=5)]
        assert newest == ["org/m4", "org/m3", "org/m2", "org/m1", "org/m0"]
        assert len(stub.requests("list_models")) == 3  # 2 + 2 + 1 via Link rel="next"
        assert stub.requests("list_models")[-1].query["cursor"]

        assert [m.id for m in api.list_models(sort="last_modified", limit=1)] == ["org/m0"]
        assert {m.id for m in api.list_models(pipeline_tag="fill-mask")} == {"org/m1", "org/m3"}
        assert {m.id for m in api.list_models(filter=["transformers", "text-classification"])} == {
            "org/m0",
            "org/m2",
            "org/m4",
        }
        full = next(iter(api.list_models(sort="created_at", limit=1, expand=["createdAt", "sha", "cardData"])))
        assert full.sha == stub.repos["org/m4"].head.sha and full.created_at.day == 5


def test_one_target_parser_for_cli_and_service(tmp_path: Path, monkeypatch) -> None:
    """Regression: the CLI and the API accepted different targets. Both go through ModelRef.parse now; the service
    mode never resolves a hub id to a folder that exists in the working directory."""
    from scanner.fetch import LocalTargets, ModelRef, check_revision

    monkeypatch.chdir(tmp_path)
    (tmp_path / "org" / "name").mkdir(parents=True)
    assert ModelRef.parse("org/name").path is not None  # the CLI: an existing folder wins
    assert ModelRef.parse("org/name", local=LocalTargets.PATHS_ONLY) == ModelRef(repo_id="org/name")
    assert ModelRef.parse("/srv/models/m", local=LocalTargets.PATHS_ONLY).path == Path("/srv/models/m")
    for bad in ("foo--bar", "org/name.git", "a/b/c", "org/na\x00me", "x" * 300):
        for mode in LocalTargets:
            with pytest.raises(UsageError):
                ModelRef.parse(bad, local=mode)
    for bad_rev in ("", "a b", "../x", "-rf", "x" * 256, "v1\x00"):
        with pytest.raises(UsageError):
            check_revision(bad_rev)
    assert check_revision("v1.2") == "v1.2" and check_revision(None) is None
