"""AWS KMS keys (`awskms:key-id=<id | ARN | alias/NAME>[;region=R][;signing-algorithm=pss]`).

The URI follows step-ca's `awskms:` form (`key-id`, `region`, `profile`,
`credentials-file`). The private key never leaves KMS: each signature is one
`Sign` call carrying only the digest (`MessageType=DIGEST`), so a large CRL
costs the same request as a small certificate, and KMS never sees the data.

RSA keys sign with PKCS#1 v1.5 and SHA-256 by default (what X.509 CAs use);
`signing-algorithm=pss` selects RSASSA-PSS with SHA-256, MGF1-SHA-256 and a
32-byte salt, which is AWS's fixed PSS salt length. Ed25519 is refused: the
KMS algorithms Cirrus may use are ECDSA P-256/P-384 and RSA 2048-4096.

Errors: a missing key or alias, a disabled key or one of the wrong usage is a
`ConfigError` (an operator's fix); throttling, KMS internal errors and
connection failures are transient and retried under one `RetryPolicy`
deadline (botocore's own retries are off, so each attempt is one request we
bound); anything else is a `BackendError`. `boto3` is imported in the
constructor only, so `pip install -e .` without the `[aws]` extra works.
"""

from __future__ import annotations

import hashlib
import threading
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from shared.errors import BackendError, ConfigError
from shared.keys.base import KeyType, PublicKey
from shared.retry import Attempt, RetryPolicy

SCHEME = "awskms"

#: Cirrus key type -> AWS KeySpec (Ed25519 is not offered; see the module docstring).
KEY_SPECS: dict[KeyType, str] = {
    KeyType.EC_P256: "ECC_NIST_P256",
    KeyType.EC_P384: "ECC_NIST_P384",
    KeyType.RSA_2048: "RSA_2048",
    KeyType.RSA_3072: "RSA_3072",
    KeyType.RSA_4096: "RSA_4096",
}

#: Error codes that mean "try again"; everything else is a definite answer.
_TRANSIENT_CODES = frozenset(
    {"ThrottlingException", "KMSInternalException", "DependencyTimeoutException",
     "InternalFailure", "ServiceUnavailable", "RequestTimeout"}
)  # fmt: skip
_OPERATOR_CODES = {
    "NotFoundException": "no such key or alias",
    "DisabledException": "the key is disabled",
    "KMSInvalidStateException": "the key is not in a usable state (pending deletion or import?)",
    "InvalidKeyUsageException": "the key is not a SIGN_VERIFY key",
    "AccessDeniedException": "access denied (check the key policy and IAM role)",
    "UnsupportedOperationException": "the key does not support this operation",
}
_OPTIONS = ("key-id", "region", "profile", "credentials-file", "signing-algorithm")


@dataclass(frozen=True, slots=True)
class AWSKeyName:
    """A parsed `awskms:` URI."""

    key_id: str
    region: str | None
    profile: str | None
    credentials_file: str | None
    pss: bool

    @property
    def alias(self) -> str | None:
        """The alias name (`alias/...`) if the key is named by one."""
        if self.key_id.startswith("alias/"):
            return self.key_id
        return None


def parse_uri(uri: str) -> AWSKeyName:
    """Parse `awskms:key-id=...;region=...` (step-ca's option names).

    Raises:
        ConfigError: not an awskms URI, no key-id, or an unknown option.
    """
    if not uri.startswith(SCHEME + ":"):
        raise ConfigError("not an awskms key URI")
    options: dict[str, str] = {}
    for part in uri[len(SCHEME) + 1 :].split(";"):
        name, sep, value = part.partition("=")
        if not part:
            continue
        if not sep or name not in _OPTIONS or not value:
            raise ConfigError(f"awskms URI option {name!r} is unknown or empty (known: {', '.join(_OPTIONS)})")
        options[name] = value
    key_id = options.get("key-id", "")
    if not key_id or any(c.isspace() for c in key_id):
        raise ConfigError("awskms URIs look like awskms:key-id=<key id, ARN or alias/NAME>;region=R")
    algorithm = options.get("signing-algorithm", "pkcs1").lower()
    if algorithm not in ("pkcs1", "pss"):
        raise ConfigError("awskms signing-algorithm must be pkcs1 or pss")
    return AWSKeyName(
        key_id=key_id,
        region=options.get("region"),
        profile=options.get("profile"),
        credentials_file=options.get("credentials-file"),
        pss=algorithm == "pss",
    )


def _signing_algorithm(public: PublicKey, pss: bool) -> tuple[str, str]:
    """The KMS SigningAlgorithm and local digest name for a key."""
    if isinstance(public, ec.EllipticCurvePublicKey):
        if isinstance(public.curve, ec.SECP256R1):
            return "ECDSA_SHA_256", "sha256"
        if isinstance(public.curve, ec.SECP384R1):
            return "ECDSA_SHA_384", "sha384"
    elif isinstance(public, rsa.RSAPublicKey) and public.key_size in (2048, 3072, 4096):
        return ("RSASSA_PSS_SHA_256" if pss else "RSASSA_PKCS1_V1_5_SHA_256"), "sha256"
    raise ConfigError("awskms: the key must be ECC_NIST_P256, ECC_NIST_P384 or RSA 2048-4096")


class AWSKMSSigner:
    """A `Signer` for one AWS KMS key; every `sign` is one KMS `Sign` request."""

    def __init__(self, *, manager: AWSKMS, key: AWSKeyName, public: PublicKey) -> None:
        """Bind to a key whose public key the manager already fetched."""
        self._manager = manager
        self._key = key
        self._public = public
        self.algorithm, self._digest = _signing_algorithm(public, key.pss)
        #: Read by the adapter: RSA signatures are RSASSA-PSS (salt = digest length).
        self.rsa_pss = key.pss and isinstance(public, rsa.RSAPublicKey)

    def public_key(self) -> PublicKey:
        """Return the (cached) public key."""
        return self._public

    def sign(self, data: bytes) -> bytes:
        """Hash `data` locally and have KMS sign the digest."""
        digest = hashlib.new(self._digest, data).digest()
        return self._manager.sign_digest(self._key, self.algorithm, digest)


class AWSKMS:
    """A `KeyManager` for `awskms:` URIs over `boto3`."""

    def __init__(self, *, client: Any | None = None, retry: RetryPolicy | None = None) -> None:
        """Take a ready client (tests) or build one per region/profile on first use.

        Without a client, boto3's usual configuration applies (environment,
        shared config, instance role), including `AWS_ENDPOINT_URL_KMS` for a
        private endpoint.
        """
        import botocore.exceptions

        self._client = client
        self._clients: dict[tuple[str | None, str | None, str | None], Any] = {}
        self._retry = retry or RetryPolicy()
        self._client_error: type[Exception] = botocore.exceptions.ClientError
        self._transient: tuple[type[Exception], ...] = (
            botocore.exceptions.EndpointConnectionError,
            botocore.exceptions.ConnectionClosedError,
            botocore.exceptions.ReadTimeoutError,
            botocore.exceptions.ConnectTimeoutError,
        )
        self._public: dict[str, PublicKey] = {}
        self._lock = threading.Lock()

    # ---- plumbing ------------------------------------------------------------------------------

    def _kms(self, key: AWSKeyName) -> Any:
        if self._client is not None:
            return self._client
        ident = (key.region, key.profile, key.credentials_file)
        with self._lock:
            client = self._clients.get(ident)
            if client is None:
                client = self._new_client(key)
                self._clients[ident] = client
            return client

    @staticmethod
    def _new_client(key: AWSKeyName) -> Any:
        import boto3
        import botocore.session
        from botocore.config import Config

        core = botocore.session.Session(profile=key.profile)
        if key.credentials_file:
            core.set_config_variable("credentials_file", key.credentials_file)
        session = boto3.Session(botocore_session=core, region_name=key.region)
        config = Config(retries={"total_max_attempts": 1}, connect_timeout=5, read_timeout=10)
        return session.client("kms", config=config)

    def _request(self, key: AWSKeyName, operation: str, attempt: Attempt, **params: Any) -> Any:
        """One KMS request, classified for the retry policy. Never echoes key material."""
        del attempt  # botocore's own timeouts bound each request
        try:
            return getattr(self._kms(key), operation)(**params)
        except self._transient as exc:
            raise BackendError(f"AWS KMS {operation}: {type(exc).__name__}", transient=True) from exc
        except self._client_error as exc:
            code = str(getattr(exc, "response", {}).get("Error", {}).get("Code", ""))
            if code in _TRANSIENT_CODES:
                raise BackendError(f"AWS KMS {operation}: {code}", transient=True) from exc
            if code in _OPERATOR_CODES:
                raise ConfigError(f"AWS KMS {operation} {key.key_id}: {_OPERATOR_CODES[code]}") from exc
            raise BackendError(f"AWS KMS {operation}: {code or 'error'}") from exc

    def _call(self, key: AWSKeyName, operation: str, **params: Any) -> Any:
        return self._retry.call(
            lambda a: self._request(key, operation, a, **params), what=f"AWS KMS {operation}"
        )

    def _alias_exists(self, key: AWSKeyName, attempt: Attempt) -> bool:
        """Whether the alias names a key (only NotFound means no; other errors propagate)."""
        try:
            self._request(key, "describe_key", attempt, KeyId=key.alias)
        except ConfigError as exc:
            cause = exc.__cause__
            code = str(getattr(cause, "response", {}).get("Error", {}).get("Code", ""))
            if code == "NotFoundException":
                return False
            raise
        return True

    # ---- KeyManager ----------------------------------------------------------------------------

    def signer(self, uri: str) -> AWSKMSSigner:
        """Return a signer for the key `uri` names (public key fetched once per manager)."""
        key = parse_uri(uri)
        return AWSKMSSigner(manager=self, key=key, public=self._public_key(key))

    def _public_key(self, key: AWSKeyName) -> PublicKey:
        cache_key = f"{key.region}|{key.key_id}"
        cached = self._public.get(cache_key)
        if cached is not None:
            return cached
        response = self._call(key, "get_public_key", KeyId=key.key_id)
        if response.get("KeyUsage") not in (None, "SIGN_VERIFY"):
            raise ConfigError(f"AWS KMS key {key.key_id} is not a SIGN_VERIFY key")
        try:
            loaded = serialization.load_der_public_key(bytes(response["PublicKey"]))
        except (KeyError, ValueError) as exc:
            raise BackendError("AWS KMS GetPublicKey: unreadable public key") from exc
        if not isinstance(loaded, ec.EllipticCurvePublicKey | rsa.RSAPublicKey):
            raise ConfigError(f"AWS KMS key {key.key_id} is not an ECDSA or RSA key")
        _signing_algorithm(loaded, key.pss)
        self._public[cache_key] = loaded
        return loaded

    def sign_digest(self, key: AWSKeyName, algorithm: str, digest: bytes) -> bytes:
        """Sign a precomputed digest (one `Sign` request per attempt)."""
        response = self._call(
            key, "sign", KeyId=key.key_id, Message=digest, MessageType="DIGEST",
            SigningAlgorithm=algorithm,
        )  # fmt: skip
        if response.get("SigningAlgorithm") not in (None, algorithm):
            raise BackendError("AWS KMS Sign: answered with another signing algorithm")
        return bytes(response["Signature"])

    def create_key(self, uri: str, key_type: KeyType) -> AWSKMSSigner:
        """Create a SIGN_VERIFY key and point the URI's alias at it.

        A new key is named by its alias (`key-id=alias/NAME`), since AWS picks
        key ids; an existing alias is never moved (ConfigError), so a ceremony
        run twice cannot replace a CA key.
        """
        key = parse_uri(uri)
        if key.alias is None:
            raise ConfigError("name a new AWS KMS key by its alias: awskms:key-id=alias/NAME")
        spec = KEY_SPECS.get(key_type)
        if spec is None:
            raise ConfigError(f"AWS KMS cannot hold {key_type.value} keys; use EC-P256, EC-P384 or RSA")
        if self._retry.call(lambda a: self._alias_exists(key, a), what="AWS KMS DescribeKey"):
            raise ConfigError(f"refusing to overwrite existing AWS KMS key {key.alias}")
        created = self._call(
            key, "create_key", KeySpec=spec, KeyUsage="SIGN_VERIFY",
            Description=f"Cirrus CA key {key.alias}",
        )  # fmt: skip
        key_id = created["KeyMetadata"]["KeyId"]
        self._call(key, "create_alias", AliasName=key.alias, TargetKeyId=key_id)
        return self.signer(uri)
