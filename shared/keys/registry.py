"""Choose a key manager by the scheme of a key URI.

Config names keys by URI (`softkms:path=...`, `cloudkms:projects/...`), as
step-ca does. `KeyManagers` is itself a `KeyManager` that dispatches each URI
to the backend for its scheme, building each backend once, on first use, so a
deployment that only uses Cloud KMS never reads a password file and one that
only uses softkms never imports the Cloud KMS SDK.

Adding a backend means one factory in `_default_factories`; callers and
config do not change. `awskms:` needs the `[aws]` extra (boto3) and `pkcs11:`
the `[pkcs11]` extra (python-pkcs11); each is imported only when a URI of its
scheme is first used.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Mapping
from pathlib import Path

from shared.errors import ConfigError
from shared.keys.base import KeyManager, KeyType, Signer

Factory = Callable[[], KeyManager]

_SCHEME = re.compile(r"^([a-z][a-z0-9+.-]*):")

#: Schemes step-ca knows that Cirrus does not offer; named so the error says so.
UNSUPPORTED_SCHEMES = ("azurekms", "yubikey", "sshagentkms", "tpmkms", "capi", "mackms", "kms")


def scheme_of(uri: str) -> str:
    """The URI's scheme; a plain absolute path counts as `softkms` (step's shorthand).

    Raises:
        ConfigError: neither a URI with a scheme nor an absolute path.
    """
    if uri.startswith("/"):
        return "softkms"
    match = _SCHEME.match(uri)
    if match is None:
        raise ConfigError("key URIs look like softkms:path=/abs/file or cloudkms:projects/...")
    return match.group(1)


def _default_factories(
    *,
    password_file: Path | None,
    cloudkms_endpoint: str | None,
) -> dict[str, Factory]:
    def softkms() -> KeyManager:
        from shared.keys.softkms import SoftKMS

        return SoftKMS(password_file=password_file)

    def cloudkms() -> KeyManager:
        from shared.keys.cloudkms import CloudKMS

        return CloudKMS(endpoint=cloudkms_endpoint)

    def awskms() -> KeyManager:
        try:
            from shared.keys.awskms import AWSKMS
        except ImportError as exc:
            raise ConfigError("awskms: keys need the aws extra: pip install 'cirrus-ca[aws]'") from exc
        return AWSKMS()

    def pkcs11() -> KeyManager:
        try:
            from shared.keys.pkcs11 import PKCS11
        except ImportError as exc:
            raise ConfigError("pkcs11: keys need the pkcs11 extra: pip install 'cirrus-ca[pkcs11]'") from exc
        return PKCS11()

    return {"softkms": softkms, "cloudkms": cloudkms, "awskms": awskms, "pkcs11": pkcs11}


class KeyManagers:
    """A `KeyManager` that routes each URI to the backend for its scheme."""

    def __init__(
        self,
        *,
        password_file: Path | None = None,
        cloudkms_endpoint: str | None = None,
        factories: Mapping[str, Factory] | None = None,
    ) -> None:
        """Register backends; none is built until a URI of its scheme is used.

        Args:
            password_file: the softkms key password file.
            cloudkms_endpoint: a non-default Cloud KMS API endpoint.
            factories: extra or replacement backends by scheme (tests inject a
                Cloud KMS manager bound to the fake service this way).
        """
        self._factories = _default_factories(
            password_file=password_file, cloudkms_endpoint=cloudkms_endpoint
        )
        self._factories.update(factories or {})
        self._managers: dict[str, KeyManager] = {}
        self._lock = threading.Lock()

    def manager_for(self, uri: str) -> KeyManager:
        """The backend that handles `uri` (built once per `KeyManagers`)."""
        scheme = scheme_of(uri)
        manager = self._managers.get(scheme)
        if manager is not None:
            return manager
        factory = self._factories.get(scheme)
        if factory is None:
            if scheme in UNSUPPORTED_SCHEMES:
                raise ConfigError(f"{scheme}: keys are not supported (use softkms, cloudkms, awskms or pkcs11)")
            raise ConfigError(f"unknown key URI scheme {scheme!r}")
        with self._lock:
            manager = self._managers.get(scheme)
            if manager is None:
                manager = factory()
                self._managers[scheme] = manager
            return manager

    def signer(self, uri: str) -> Signer:
        """Return a signer for an existing key."""
        return self.manager_for(uri).signer(uri)

    def create_key(self, uri: str, key_type: KeyType) -> Signer:
        """Create a key at `uri` (refusing to overwrite) and return its signer."""
        return self.manager_for(uri).create_key(uri, key_type)


def open_key_manager(uri: str, *, password_file: Path | None = None) -> KeyManager:
    """The backend for one URI's scheme (for one-off tools such as key ceremonies)."""
    return KeyManagers(password_file=password_file).manager_for(uri)
