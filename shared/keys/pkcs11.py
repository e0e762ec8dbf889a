"""HSM keys over PKCS#11 (`pkcs11:token=T;object=L[;id=HEX][;module-path=/x.so]?pin-source=/file`).

The URI is RFC 7512's, as step-ca writes it: path attributes (`module-path`,
`token`, `slot-id`, `serial`, `object`, `id`) separated by `;`, query
attributes (`pin-source`, `module-path`) after `?`. The PIN comes from the
file `pin-source` names or from the `CIRRUS_PKCS11_PIN` environment variable;
a `pin-value` in the URI is refused, because URIs end up in config files,
logs and error messages, and the PIN never appears in either.

Signing: ECDSA keys sign a digest computed here (`CKM_ECDSA`; the raw r||s
answer is DER-encoded as X.509 wants), RSA keys sign the message with
`CKM_SHA256_RSA_PKCS`. Ed25519 is refused (token support for CKM_EDDSA
varies; step-ca does not offer it over PKCS#11 either).

A PKCS#11 session must not run two operations at once, so one session per
token is shared under a lock; a session the token closed (device reset) is
reopened once, as a transient error under the retry policy. `python-pkcs11`
is imported in the constructor only (`[pkcs11]` extra).
"""

from __future__ import annotations

import hashlib
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from shared.errors import BackendError, ConfigError
from shared.keys.base import KeyType, PublicKey
from shared.retry import RetryPolicy

SCHEME = "pkcs11"
PIN_ENV = "CIRRUS_PKCS11_PIN"

_PATH_ATTRS = ("module-path", "token", "slot-id", "serial", "object", "id")
_QUERY_ATTRS = ("pin-source", "module-path")
_CURVES: dict[KeyType, tuple[str, ec.EllipticCurve, str]] = {
    KeyType.EC_P256: ("secp256r1", ec.SECP256R1(), "sha256"),
    KeyType.EC_P384: ("secp384r1", ec.SECP384R1(), "sha384"),
}
_RSA_BITS = {KeyType.RSA_2048: 2048, KeyType.RSA_3072: 3072, KeyType.RSA_4096: 4096}
_MAX_PIN_FILE = 4096


@dataclass(frozen=True, slots=True)
class PKCS11KeyName:
    """A parsed `pkcs11:` URI (never holds the PIN itself)."""

    module_path: str | None
    token: str | None
    slot_id: int | None
    serial: str | None
    label: str | None
    key_id: bytes | None
    pin_source: str | None

    def describe(self) -> str:
        """A name for messages: token and object, never the PIN."""
        ident = f"id={self.key_id.hex()}" if self.key_id else f"object={self.label}"
        return f"pkcs11 token {self.token or self.slot_id or self.serial} {ident}"


def parse_uri(uri: str) -> PKCS11KeyName:
    """Parse an RFC 7512 key URI.

    Raises:
        ConfigError: not a pkcs11 URI, an unknown or repeated attribute, a PIN
            in the URI, no token or no object/id.
    """
    if not uri.startswith(SCHEME + ":"):
        raise ConfigError("not a pkcs11 key URI")
    path, _, query = uri[len(SCHEME) + 1 :].partition("?")
    attrs: dict[str, str] = {}
    for part, allowed, sep in ((path, _PATH_ATTRS, ";"), (query, _QUERY_ATTRS, "&")):
        for item in part.split(sep):
            if not item:
                continue
            name, eq, raw = item.partition("=")
            if name == "pin-value":
                raise ConfigError(f"pkcs11 URIs must not carry the PIN: use pin-source=FILE or {PIN_ENV}")
            if not eq or name not in allowed or name in attrs:
                raise ConfigError(f"pkcs11 URI attribute {name!r} is unknown, repeated or has no value")
            attrs[name] = unquote(raw, errors="strict")
    slot = attrs.get("slot-id")
    if slot is not None and not (slot.isascii() and slot.isdigit() and len(slot) <= 10):
        raise ConfigError("pkcs11 slot-id must be a decimal number")
    key_id: bytes | None = None
    if "id" in attrs:
        raw_id = attrs["id"].replace("%", "")
        try:
            key_id = bytes.fromhex(raw_id) if raw_id.isascii() else None
        except ValueError:
            key_id = None
        if not key_id:
            raise ConfigError("pkcs11 id must be hex bytes, e.g. id=0a10")
    if not (attrs.get("token") or slot is not None or attrs.get("serial")):
        raise ConfigError("pkcs11 URIs must name a token (token=, slot-id= or serial=)")
    if not (attrs.get("object") or key_id):
        raise ConfigError("pkcs11 URIs must name a key (object= or id=)")
    return PKCS11KeyName(
        module_path=attrs.get("module-path"),
        token=attrs.get("token"),
        slot_id=int(slot) if slot is not None else None,
        serial=attrs.get("serial"),
        label=attrs.get("object"),
        key_id=key_id,
        pin_source=attrs.get("pin-source"),
    )


def _read_pin(name: PKCS11KeyName) -> str:
    if name.pin_source:
        path = Path(name.pin_source)
        try:
            with path.open("rb") as handle:
                raw = handle.read(_MAX_PIN_FILE + 1)
        except OSError as exc:
            raise ConfigError(f"pkcs11: cannot read the PIN file {path}: {exc.strerror}") from exc
        if len(raw) > _MAX_PIN_FILE:
            raise ConfigError(f"pkcs11: the PIN file {path} is too large")
        return raw.decode("utf-8", errors="strict").strip("\r\n")
    from shared.config import environment_value

    pin = environment_value(PIN_ENV)
    if not pin:
        raise ConfigError(f"pkcs11: no PIN: set pin-source=FILE in the URI or {PIN_ENV}")
    return pin


class PKCS11Signer:
    """A `Signer` for one private key object on a token."""

    def __init__(self, *, manager: PKCS11, name: PKCS11KeyName, public: PublicKey) -> None:
        """Bind to a key whose public half the manager already read."""
        self._manager = manager
        self._name = name
        self._public = public

    def public_key(self) -> PublicKey:
        """Return the public key (read once from the token)."""
        return self._public

    def sign(self, data: bytes) -> bytes:
        """Sign on the token (ECDSA over a local digest, RSA PKCS#1 v1.5 SHA-256)."""
        return self._manager.sign(self._name, self._public, data)


class PKCS11:
    """A `KeyManager` for `pkcs11:` URIs over `python-pkcs11`."""

    def __init__(self, *, module_path: str | None = None, retry: RetryPolicy | None = None) -> None:
        """Remember the default module; the library loads on first use.

        Args:
            module_path: the PKCS#11 module when a URI does not name one
                (default: `CIRRUS_PKCS11_MODULE`, else SoftHSM2's Debian path).
            retry: deadline and backoff for a token that reset.
        """
        import pkcs11
        import pkcs11.exceptions

        self._p11 = pkcs11
        self._exc = pkcs11.exceptions
        self._default_module = (
            module_path or _environment("CIRRUS_PKCS11_MODULE") or "/usr/lib/softhsm/libsofthsm2.so"
        )
        self._retry = retry or RetryPolicy(deadline=5.0)
        self._sessions: dict[tuple[str, str | None, int | None, str | None], Any] = {}
        self._lock = threading.RLock()

    # ---- sessions ------------------------------------------------------------------------------

    def _token(self, name: PKCS11KeyName) -> Any:
        module = name.module_path or self._default_module
        try:
            lib = _library(self._p11, module)
        except (OSError, RuntimeError, self._exc.PKCS11Error) as exc:
            raise ConfigError(f"pkcs11: cannot load the module {module}") from exc
        try:
            if name.slot_id is not None:
                for slot in lib.get_slots(token_present=True):
                    if slot.slot_id == name.slot_id:
                        return slot.get_token()
                raise ConfigError(f"pkcs11: no token in slot {name.slot_id}")
            return lib.get_token(token_label=name.token, token_serial=name.serial.encode() if name.serial else None)
        except (self._exc.NoSuchToken, self._exc.MultipleTokensReturned) as exc:
            raise ConfigError(f"pkcs11: no single token named {name.token or name.serial}") from exc

    def _session(self, name: PKCS11KeyName) -> Any:
        ident = (name.module_path or self._default_module, name.token, name.slot_id, name.serial)
        session = self._sessions.get(ident)
        if session is None:
            token = self._token(name)
            try:
                session = token.open(user_pin=_read_pin(name), rw=True)
            except (self._exc.PinIncorrect, self._exc.PinInvalid, self._exc.PinLenRange) as exc:
                raise ConfigError(f"pkcs11: the token refused the PIN ({name.describe()})") from exc
            except self._exc.UserAlreadyLoggedIn:
                # PKCS#11 login is per application, not per session: another manager in this
                # process logged in already, and a new session shares that login.
                session = token.open(rw=True)
            except self._exc.PinLocked as exc:
                raise ConfigError(f"pkcs11: the token's user PIN is locked ({name.describe()})") from exc
            self._sessions[ident] = session
        return session

    def _drop_session(self, name: PKCS11KeyName) -> None:
        ident = (name.module_path or self._default_module, name.token, name.slot_id, name.serial)
        self._sessions.pop(ident, None)

    def _with_session(self, name: PKCS11KeyName, what: str, operation: Any) -> Any:
        """Run `operation(session)` under the lock; a lost session is reopened as a retry."""
        transient = (self._exc.SessionClosed, self._exc.SessionHandleInvalid, self._exc.DeviceRemoved,
                     self._exc.DeviceError)  # fmt: skip

        def attempt(_: Any) -> Any:
            with self._lock:
                session = self._session(name)
                try:
                    return operation(session)
                except transient as exc:
                    self._drop_session(name)
                    raise BackendError(f"pkcs11 {what}: {type(exc).__name__}", transient=True) from exc
                except self._exc.NoSuchKey as exc:
                    raise ConfigError(f"pkcs11: no key {name.describe()}") from exc
                except self._exc.MultipleObjectsReturned as exc:
                    raise ConfigError(f"pkcs11: several keys match {name.describe()}; add id=") from exc
                except self._exc.PKCS11Error as exc:
                    raise BackendError(f"pkcs11 {what}: {type(exc).__name__}") from exc

        return self._retry.call(attempt, what=f"pkcs11 {what}")

    def _find(self, session: Any, name: PKCS11KeyName, object_class: Any) -> Any:
        kwargs: dict[str, Any] = {"object_class": object_class}
        if name.label:
            kwargs["label"] = name.label
        if name.key_id:
            kwargs["id"] = name.key_id
        return session.get_key(**kwargs)

    # ---- KeyManager ----------------------------------------------------------------------------

    def signer(self, uri: str) -> PKCS11Signer:
        """Return a signer for the private key object the URI names."""
        name = parse_uri(uri)
        public = self._with_session(name, "read public key", lambda s: self._read_public(s, name))
        return PKCS11Signer(manager=self, name=name, public=public)

    def _read_public(self, session: Any, name: PKCS11KeyName) -> PublicKey:
        p11 = self._p11
        self._find(session, name, p11.ObjectClass.PRIVATE_KEY)  # the key we will sign with exists
        public = self._find(session, name, p11.ObjectClass.PUBLIC_KEY)
        if public.key_type == p11.KeyType.EC:
            from cryptography.hazmat.primitives.serialization import load_der_public_key
            from pkcs11.util.ec import encode_ec_public_key

            loaded = load_der_public_key(encode_ec_public_key(public))
            if isinstance(loaded, ec.EllipticCurvePublicKey) and isinstance(
                loaded.curve, ec.SECP256R1 | ec.SECP384R1
            ):
                return loaded
        elif public.key_type == p11.KeyType.RSA:
            modulus = int.from_bytes(public[p11.Attribute.MODULUS], "big")
            exponent = int.from_bytes(public[p11.Attribute.PUBLIC_EXPONENT], "big")
            key = rsa.RSAPublicNumbers(exponent, modulus).public_key()
            if key.key_size in (2048, 3072, 4096):
                return key
        raise ConfigError(f"{name.describe()} is not a P-256, P-384 or RSA 2048-4096 key")

    def sign(self, name: PKCS11KeyName, public: PublicKey, data: bytes) -> bytes:
        """Sign `data` with the key the name points at."""
        p11 = self._p11
        if isinstance(public, ec.EllipticCurvePublicKey):
            digest_name = "sha384" if public.curve.key_size >= 384 else "sha256"
            digest = hashlib.new(digest_name, data).digest()

            def op(session: Any) -> bytes:
                raw = self._find(session, name, p11.ObjectClass.PRIVATE_KEY).sign(
                    digest, mechanism=p11.Mechanism.ECDSA
                )
                half = len(raw) // 2
                return encode_dss_signature(int.from_bytes(raw[:half], "big"), int.from_bytes(raw[half:], "big"))

            result: bytes = self._with_session(name, "sign", op)
            return result
        signature: bytes = self._with_session(
            name, "sign",
            lambda s: self._find(s, name, p11.ObjectClass.PRIVATE_KEY).sign(
                data, mechanism=p11.Mechanism.SHA256_RSA_PKCS
            ),
        )  # fmt: skip
        return signature

    def create_key(self, uri: str, key_type: KeyType) -> PKCS11Signer:
        """Generate a non-extractable key pair on the token (refusing to overwrite)."""
        name = parse_uri(uri)
        if key_type not in _CURVES and key_type not in _RSA_BITS:
            raise ConfigError(f"pkcs11 keys may be EC-P256, EC-P384 or RSA, not {key_type.value}")
        p11 = self._p11

        def generate(session: Any) -> None:
            try:
                self._find(session, name, p11.ObjectClass.PRIVATE_KEY)
            except self._exc.NoSuchKey:
                pass
            else:
                raise ConfigError(f"refusing to overwrite existing key {name.describe()}")
            common: dict[str, Any] = {"store": True, "label": name.label or ""}
            if name.key_id:
                common["id"] = name.key_id
            private_template = {p11.Attribute.SENSITIVE: True, p11.Attribute.EXTRACTABLE: False,
                                p11.Attribute.SIGN: True}  # fmt: skip
            public_template = {p11.Attribute.VERIFY: True}
            if key_type in _CURVES:
                from pkcs11.util.ec import encode_named_curve_parameters

                params = session.create_domain_parameters(
                    p11.KeyType.EC,
                    {p11.Attribute.EC_PARAMS: encode_named_curve_parameters(_CURVES[key_type][0])},
                    local=True,
                )
                params.generate_keypair(
                    private_template=private_template, public_template=public_template, **common
                )
            else:
                session.generate_keypair(
                    p11.KeyType.RSA, _RSA_BITS[key_type],
                    private_template=private_template, public_template=public_template, **common,
                )  # fmt: skip

        self._with_session(name, "generate key", generate)
        return self.signer(uri)


def _environment(name: str) -> str | None:
    from shared.config import environment_value

    return environment_value(name)


_LIBS: dict[str, Any] = {}
_LIBS_LOCK = threading.Lock()


def _library(p11: Any, module: str) -> Any:
    """Load each PKCS#11 module once per process (C_Initialize may run only once)."""
    with _LIBS_LOCK:
        lib = _LIBS.get(module)
        if lib is None:
            lib = p11.lib(module)
            _LIBS[module] = lib
        return lib
