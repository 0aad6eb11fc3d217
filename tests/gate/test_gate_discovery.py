"""Discovery (ast, nothing imported) and the gate over the sample codebase against the hub stand-in."""

from __future__ import annotations

import json
from pathlib import Path

from scanner.gate.discovery import discover, discover_file, read_list_file
from tests.gate.gatekit import SAMPLE, model_files

EXPECTED = {  # (file, line) -> (call, model, revision): every literal adoption of the sample
    ("app/classify.py", 5): ("pipeline", "acme/classifier", "v1"),
    ("app/download.py", 5): ("hf_hub_download", "acme/encoder", None),
    ("app/encoder.py", 7): ("AutoTokenizer.from_pretrained", "acme/encoder", None),
    ("app/encoder.py", 8): ("AutoModel.from_pretrained", "acme/encoder", "main"),
    ("app/search.py", 6): ("SentenceTransformer", "acme/sentence", None),
}


def test_sample_adoptions_found_with_file_and_line() -> None:
    found = discover([SAMPLE], SAMPLE)
    resolved = {(a.file, a.line): (a.call, a.model, a.revision) for a in found if a.unresolved is None}
    assert resolved == EXPECTED
    unresolved = [a for a in found if a.unresolved is not None]
    assert [(a.file, a.line) for a in unresolved] == [("app/search.py", 10)]
    assert "f-string" in unresolved[0].unresolved and unresolved[0].expression == 'f"acme/encoder-{lang}"'
    listed = read_list_file(SAMPLE / "models.txt", "models.txt")
    assert [(a.location, a.model, a.revision) for a in listed] == [("models.txt:2", "acme/listed", "main")]


def test_discovery_styles_and_what_is_not_resolved(tmp_path: Path) -> None:
    source = tmp_path / "styles.py"
    source.write_text(
        "import transformers as tf\n"
        "from huggingface_hub import snapshot_download\n"
        "ORG = 'acme'\n"
        "NAME = f'{ORG}/bert'\n"
        "m1 = tf.BertModel.from_pretrained(pretrained_model_name_or_path=NAME, revision=None)\n"
        "m2 = tf.pipeline('fill-mask')\n"
        "m3 = tf.pipeline(task='fill-mask', **options)\n"
        "m4 = tf.AutoModel.from_pretrained('acme/x', revision=branch)\n"
        "snapshot_download('acme/data', repo_type='dataset')\n"
        "snapshot_download('acme/y' + '-v2', revision='0123456789abcdef0123456789abcdef01234567')\n"
        "m5 = tf.pipeline('fill-mask', 'acme/positional')\n"
    )
    found = {a.line: a for a in discover_file(source, "styles.py")}
    assert found[5].model == "acme/bert" and found[5].revision is None and found[5].unresolved is None
    assert "default model" in found[6].unresolved
    assert "kwargs" in found[7].unresolved
    assert found[8].model == "acme/x" and "revision" in found[8].unresolved and found[8].expression == "branch"
    assert 9 not in found  # a dataset repo is not a model
    assert found[10].model == "acme/y-v2" and found[10].revision == "0123456789abcdef0123456789abcdef01234567"
    assert found[11].model == "acme/positional"


def test_unparsable_file_is_reported_not_skipped(tmp_path: Path) -> None:
    broken = tmp_path / "broken.py"
    broken.write_text("def f(:\n    pass\n")
    [adoption] = discover_file(broken, "broken.py")
    assert adoption.unresolved.startswith("file does not parse")


def test_gate_on_sample_scans_each_sha_once_and_points_sarif_at_adopting_lines(hub, sample, cli) -> None:
    first = cli("gate", "--format", "json")
    assert first.code == 0, first.stdout + first.stderr
    data = json.loads(first.stdout)
    models = {(m["model"], m["revision"]): m for m in data["models"]}
    assert set(models) == {
        ("acme/encoder", None),
        ("acme/encoder", "main"),
        ("acme/sentence", None),
        ("acme/classifier", "v1"),
        ("acme/listed", "main"),
    }
    assert data["scans_run"] == 4  # acme/encoder and acme/encoder@main are one sha: scanned once
    assert models[("acme/encoder", "main")]["sha"] == models[("acme/encoder", None)]["sha"]
    assert {o for o in (m["origin"] for m in data["models"])} == {"scanned", "this run"}
    assert [(u["file"], u["line"]) for u in data["unresolved"]] == [("app/search.py", 10)]
    weights = hub.downloaded_files("acme/encoder").count("model.safetensors")
    assert weights == 1

    sarif = cli("gate", "--format", "sarif")
    assert sarif.code == 0
    run = json.loads(sarif.stdout)["runs"][0]
    sites = {
        (
            r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"],
            r["locations"][0]["physicalLocation"]["region"]["startLine"],
        )
        for r in run["results"]
    }
    assert ("app/search.py", 10) in sites  # the unresolved f-string
    assert {
        ("app/encoder.py", 7),
        ("app/encoder.py", 8),
        ("app/download.py", 5),
        ("app/classify.py", 5),
        ("app/search.py", 6),
        ("models.txt", 2),
    } <= sites  # PAT006 (static-only) at every adoption
    assert "scans_run" in run["properties"] and run["properties"]["scans_run"] == 0  # second run: all cached


def test_dangerous_model_fails_at_its_adopting_line(hub, sample, cli) -> None:
    import pickle

    files = model_files(9.0)
    del files["model.safetensors"]

    class Evil:
        def __reduce__(self):
            return (eval, ("1+1",))

    files["pytorch_model.bin"] = pickle.dumps(Evil())
    hub.add_commit("acme/sentence", {**files, "model.safetensors": None})
    result = cli("gate", "--format", "sarif")
    assert result.code == 1
    run = json.loads(result.stdout)["runs"][0]
    bad = [r for r in run["results"] if r["ruleId"] == "PAT002"]
    assert bad and bad[0]["level"] == "error"
    loc = bad[0]["locations"][0]["physicalLocation"]
    assert (loc["artifactLocation"]["uri"], loc["region"]["startLine"]) == ("app/search.py", 6)
    assert "pytorch_model.bin" in bad[0]["relatedLocations"][0]["physicalLocation"]["artifactLocation"]["uri"]


def test_local_folder_adoption_is_scanned_in_place(hub, sample, cli) -> None:
    folder = sample / "models" / "local-bert"
    folder.mkdir(parents=True)
    for name, data in model_files(5.0).items():
        (folder / name).write_bytes(data)
    (sample / "app" / "local.py").write_text(
        "from transformers import AutoModel\n\nmodel = AutoModel.from_pretrained('models/local-bert')\n"
    )
    result = cli("gate", "--format", "json")
    assert result.code == 0, result.stderr
    local = [m for m in json.loads(result.stdout)["models"] if m["source"] == "local"]
    assert [(m["model"], m["adoptions"][0]["file"]) for m in local] == [("models/local-bert", "app/local.py")]
    assert local[0]["identity"].startswith("files-") and local[0]["verdict"] == "inconclusive"


def test_unreachable_server_falls_back_to_local_scans(tmp_path: Path, monkeypatch, cli) -> None:
    from tests.hub_stub import HubStub

    with HubStub() as stub:
        stub.add_repo("acme/encoder", model_files())
        monkeypatch.setenv("HF_ENDPOINT", stub.url)
        (tmp_path / "a.py").write_text(
            "from transformers import AutoModel\nm = AutoModel.from_pretrained('acme/encoder')\n"
        )
        (tmp_path / "patronus.toml").write_text("static_only = true\n")
        monkeypatch.chdir(tmp_path)
        result = cli("gate", "--server", "http://127.0.0.1:9", "--format", "json")
    assert result.code == 0, result.stderr
    [model] = json.loads(result.stdout)["models"]
    assert model["origin"] == "scanned" and "unavailable" in model["origin_detail"]
