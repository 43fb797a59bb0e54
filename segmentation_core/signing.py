"""Ed25519 keys for signed artefacts: make a key pair, load either half, sign and verify bytes.

Optional and off by default. The training job signs each version's ``manifest.json`` with the private key
(``--signing-key``); a scoring service given the public key (``--verify-key``) serves only versions whose
signature verifies with it. The manifest holds the sha256 of every other file of the version, so its
signature covers the whole artefact. Where the signature lives in a version folder, and what exactly is
signed, is the artefact format's business (:mod:`segmentation_core.artefact`); this module only holds keys.

Keys are PEM files (PKCS#8 private key, unencrypted; SubjectPublicKeyInfo public key), so that stock tools
read them (``openssl pkey -in signing.pem -pubout``). A key is named by its id: the first 16 hex digits of the
sha256 of its 32 raw public bytes. Uses ``cryptography`` (pyca), whose Ed25519 is OpenSSL's.
"""
from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

ALGORITHM = "ed25519"
MAX_KEY_FILE_BYTES = 4096


def _key_id(public: Ed25519PublicKey) -> str:
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


def _read_key_file(path: Path, what: str) -> bytes:
    try:
        with open(path, "rb") as fh:
            data = fh.read(MAX_KEY_FILE_BYTES + 1)
    except OSError as exc:
        raise ValueError(f"{what} {path}: cannot read it: {exc.strerror or exc}") from None
    if len(data) > MAX_KEY_FILE_BYTES:
        raise ValueError(f"{what} {path}: over {MAX_KEY_FILE_BYTES} bytes; not a PEM key")
    return data


@dataclass(frozen=True, eq=False)
class VerifyKey:
    """An Ed25519 public key that checks signatures."""

    key: Ed25519PublicKey
    path: str = ""

    @property
    def key_id(self) -> str:
        """16 hex digits naming the key (sha256 of its raw bytes)."""
        return _key_id(self.key)

    def verify(self, data: bytes, signature: bytes) -> bool:
        """True when ``signature`` is this key's signature of ``data``."""
        try:
            self.key.verify(signature, data)
        except InvalidSignature:
            return False
        return True


@dataclass(frozen=True, eq=False)
class SigningKey:
    """An Ed25519 private key that signs artefacts."""

    key: Ed25519PrivateKey
    path: str = ""

    @property
    def verify_key(self) -> VerifyKey:
        """Its public half."""
        return VerifyKey(self.key.public_key(), self.path)

    @property
    def key_id(self) -> str:
        """16 hex digits naming the key pair (sha256 of the raw public key)."""
        return _key_id(self.key.public_key())

    def sign(self, data: bytes) -> bytes:
        """The 64-byte Ed25519 signature of ``data``."""
        return self.key.sign(data)


def load_signing_key(path: Path | str) -> SigningKey:
    """The private key in PEM file ``path``; ValueError naming the file when it is not an Ed25519 private key."""
    data = _read_key_file(Path(path), "signing key")
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as exc:
        raise ValueError(f"signing key {path}: not an unencrypted PEM private key ({exc})") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise ValueError(f"signing key {path}: a {type(key).__name__}, not an Ed25519 key")
    return SigningKey(key, str(path))


def load_verify_key(path: Path | str) -> VerifyKey:
    """The public key in PEM file ``path``; ValueError naming the file when it is not an Ed25519 public key."""
    data = _read_key_file(Path(path), "verify key")
    try:
        key = serialization.load_pem_public_key(data)
    except (ValueError, TypeError) as exc:
        raise ValueError(f"verify key {path}: not a PEM public key ({exc})") from None
    if not isinstance(key, Ed25519PublicKey):
        raise ValueError(f"verify key {path}: a {type(key).__name__}, not an Ed25519 key")
    return VerifyKey(key, str(path))


def generate_key_pair(private_path: Path | str, public_path: Path | str) -> str:
    """Write a new key pair (private key mode 0600; neither file may exist yet); returns the key id."""
    private_path, public_path = Path(private_path), Path(public_path)
    for path in (private_path, public_path):
        if path.exists():
            raise ValueError(f"{path} exists: refusing to overwrite a key (remove it first)")
    key = Ed25519PrivateKey.generate()
    private_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                    serialization.NoEncryption())
    public_pem = key.public_key().public_bytes(serialization.Encoding.PEM,
                                               serialization.PublicFormat.SubjectPublicKeyInfo)
    fd = os.open(private_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(private_pem)
    fd = os.open(public_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    with os.fdopen(fd, "wb") as fh:
        fh.write(public_pem)
    return _key_id(key.public_key())
