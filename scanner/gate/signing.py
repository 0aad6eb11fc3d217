"""OpenSSF Model Signing verification through the `model-signing` library.

A model that ships a signature (default `model.sig`) is verified against the key, certificate chain or Sigstore
identity the policy names: the signature over the manifest first, then each signed file's digest. The result names
every file that does not match (changed, missing, or present but unsigned). A hub snapshot holds only the files a
scan reads; signed files that were not downloaded are listed as not checked, never as verified.
"""

from __future__ import annotations

import pathlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from scanner.errors import PolicyError
from scanner.gate.policy import Signatures

Status = Literal["verified", "mismatch", "unsigned", "unverifiable"]
GIT_PATHS = (".git/", ".gitattributes", ".github/", ".gitignore")


@dataclass
class SignatureResult:
    status: Status
    message: str
    mismatched: list[str] = field(default_factory=list)  # files whose digest differs, missing or unsigned
    verified: list[str] = field(default_factory=list)
    not_checked: list[str] = field(default_factory=list)  # signed, but not in a partial snapshot

    def to_dict(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "message": self.message,
            "mismatched": self.mismatched,
            "verified": self.verified,
            "not_checked": self.not_checked,
        }


def verify_folder(
    folder: Path,
    config: Signatures,
    *,
    signature: Path | None = None,
    present: list[str] | None = None,
    partial: bool = False,
    base: Path | None = None,
) -> SignatureResult:
    """Verify the model in `folder` against its signature (`signature`, default folder/config.file).

    present: the files of the model available under `folder` (default: every file there); partial: the folder
    holds only some of the model's files (a hub snapshot), so signed files absent from it are not checked.
    base: the folder the policy's key paths are relative to.
    """
    sig_path = signature or folder / config.file
    if not sig_path.is_file():
        return SignatureResult("unsigned", f"no signature ({config.file}) shipped with the model")
    try:
        verifier = _verifier(config, base or Path.cwd())
    except (OSError, ValueError, TypeError) as exc:
        raise PolicyError(f"signatures: cannot load the verification key: {type(exc).__name__}: {exc}") from exc
    if verifier is None:
        return SignatureResult(
            "unverifiable",
            f"{config.file} present, but the policy names no public_key, "
            "certificate_chain or Sigstore identity to verify it with",
        )
    try:
        expected_manifest = _verified_manifest(verifier, sig_path)
    except Exception as exc:  # model-signing raises ValueError and cryptography/sigstore errors
        return SignatureResult(
            "mismatch",
            f"{config.file} does not verify with the configured key: {type(exc).__name__}: {exc}",
            mismatched=[config.file],
        )
    return _compare(folder, expected_manifest, present, partial, config.file)


def _verifier(config: Signatures, base: Path) -> Any | None:
    from model_signing import verifying

    cfg = verifying.Config()
    if config.public_key:
        return cfg.use_elliptic_key_verifier(public_key=_path(config.public_key, base))
    if config.certificate_chain:
        return cfg.use_certificate_verifier(certificate_chain=[_path(p, base) for p in config.certificate_chain])
    if config.identity and config.oidc_issuer:
        return cfg.use_sigstore_verifier(identity=config.identity, oidc_issuer=config.oidc_issuer)
    return None


def _path(value: str, base: Path) -> Path:
    path = Path(value).expanduser()
    return path if path.is_absolute() else base / path


def _verified_manifest(cfg: Any, sig_path: Path) -> Any:
    """The manifest the signature carries, after checking the signature itself (what Config.verify does first;
    model-signing has no public call for this step, and a partial snapshot cannot pass its whole-folder check)."""
    from model_signing._signing import sign_sigstore, sign_sigstore_pb

    reader = sign_sigstore.Signature if cfg._uses_sigstore else sign_sigstore_pb.Signature
    return cfg._verifier.verify(reader.read(pathlib.Path(sig_path)))


def _hashing(manifest: Any) -> Any:
    """The manifest's hashing method; symlinks followed (a hub snapshot links into the blob store: the digests
    are of the content either way)."""
    from model_signing import hashing

    args = manifest.serialization_type
    config = hashing.Config()
    if args["method"] == "shards":
        config.use_shard_serialization(hashing_algorithm=args["hash_type"], shard_size=args["shard_size"])
    else:
        config.use_file_serialization(hashing_algorithm=args["hash_type"])
    return config.set_allow_symlinks(True)


def _file_of(identifier: str, method: str) -> str:
    return identifier.rsplit(":", 2)[0] if method == "shards" else identifier


def _digests(manifest: Any) -> dict[str, dict[str, str]]:
    """{file: {identifier: digest hex}} of a manifest."""
    method = manifest.serialization_type["method"]
    out: dict[str, dict[str, str]] = {}
    for rd in manifest.resource_descriptors():
        out.setdefault(_file_of(rd.identifier, method), {})[rd.identifier] = rd.digest.digest_hex
    return out


def _listed(folder: Path) -> list[str]:
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file() or p.is_symlink())


def _compare(
    folder: Path, expected_manifest: Any, present: list[str] | None, partial: bool, sig_name: str
) -> SignatureResult:
    expected = _digests(expected_manifest)
    ignored = set(expected_manifest.serialization_type.get("ignore_paths", []))
    available = [
        n
        for n in (present if present is not None else _listed(folder))
        if n != sig_name and n not in ignored and not n.startswith(GIT_PATHS)
    ]
    to_hash = [n for n in available if (folder / n).is_file()]
    actual = (
        _digests(_hashing(expected_manifest).hash(folder, files_to_hash=[folder / n for n in to_hash]))
        if to_hash
        else {}
    )
    mismatched, verified, not_checked, reasons = [], [], [], []
    for name in sorted(set(expected) | set(actual)):
        if name not in actual:
            if partial:
                not_checked.append(name)
            else:
                mismatched.append(name)
                reasons.append(f"{name}: signed but missing")
        elif name not in expected:
            mismatched.append(name)
            reasons.append(f"{name}: present but not signed")
        elif actual[name] != expected[name]:
            mismatched.append(name)
            reasons.append(f"{name}: digest differs from the signed one")
        else:
            verified.append(name)
    if mismatched:
        return SignatureResult(
            "mismatch",
            "signature mismatch: " + "; ".join(reasons),
            mismatched=mismatched,
            verified=verified,
            not_checked=not_checked,
        )
    extra = f"; {len(not_checked)} signed file(s) not downloaded, not checked" if not_checked else ""
    return SignatureResult(
        "verified", f"signed and verified: {len(verified)} file(s){extra}", verified=verified, not_checked=not_checked
    )
