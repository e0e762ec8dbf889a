"""The provisioner option `inventory`: look an entry up by what the credential proves.

In a provisioner's `options` (beside `x509` and `ssh`, as step-ca keeps them):

    "inventory": {"name": "hosts", "key": "instanceID", "require": true, "restrictNames": true}

- `name`: the inventory to read (it need not exist yet when the config loads; a missing
  inventory has no entries).
- `key`: where the lookup key comes from: `subject` (the token's `sub`), `email` (the
  token's `email`, as OIDC tokens carry it), `instanceID` and `account` (what a cloud
  instance identity proves: the AWS instance and account id, the GCP instance id and
  project, the Azure VM name and subscription), or `san` (the first requested SAN).
  Keys match exactly, as stored.
- `require` (default false): a request whose key has no entry is refused (403, no
  certificate).
- `restrictNames` (default false): when an entry is found, every requested SAN and the
  common name must be in the entry's `allowedNames` list (compared case-insensitively);
  otherwise the request is refused. (Combine with `require` so unknown keys are refused too.)

The entry (or `{}` when there is none) is given to the provisioner's templates as
`.Inventory`. The same option gates `/ssh/sign` (`ssh_inventory_entry`): the key from the SSH
credential, `restrictNames` over the principals it is granted, and `.Inventory` in SSH templates.
The option is checked when the configuration loads: a mistake is a `ConfigError` naming the
provisioner and the field.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from shared.errors import ConfigError, Forbidden, Unavailable
from shared.inventory.base import InventoryError, InventoryReader, check_name
from shared.provisioners.base import SignAuthorization

if TYPE_CHECKING:  # the X.509 path (every cold /sign) must not load the SSH package
    from shared.ssh.options import SSHSignAuthorization

KEY_SOURCES = ("subject", "email", "instanceID", "account", "san")
ALLOWED_NAMES = "allowedNames"
_FIELDS = {"name", "key", "require", "restrictNames"}


@dataclass(frozen=True, slots=True)
class InventoryOption:
    """One provisioner's `options.inventory`."""

    name: str
    key: str
    require: bool = False
    restrict_names: bool = False


def _load_one(provisioner: str, value: Any) -> InventoryOption:
    where = f"provisioner {provisioner!r}: options.inventory"
    if not isinstance(value, Mapping):
        raise ConfigError(f"{where} must be an object")
    unknown = sorted(set(value) - _FIELDS)
    if unknown:
        raise ConfigError(f"{where}: unknown field {unknown[0]!r} (expected name, key, require, restrictNames)")
    try:
        name = check_name(value.get("name"))
    except InventoryError as exc:
        raise ConfigError(f"{where}.name: {exc}") from None
    key = value.get("key")
    if key not in KEY_SOURCES:
        raise ConfigError(f"{where}.key must be one of {', '.join(KEY_SOURCES)}")
    flags = {}
    for field in ("require", "restrictNames"):
        flag = value.get(field, False)
        if not isinstance(flag, bool):
            raise ConfigError(f"{where}.{field} must be true or false")
        flags[field] = flag
    return InventoryOption(name=name, key=str(key), require=flags["require"], restrict_names=flags["restrictNames"])


def load_inventory_options(configs: Iterable[Mapping[str, Any]]) -> dict[str, InventoryOption]:
    """Each provisioner's `options.inventory`, keyed by provisioner name.

    Raises:
        ConfigError: an option that is not an object, names a bad inventory, an unknown key
            source, or has a non-boolean flag.
    """
    out: dict[str, InventoryOption] = {}
    for config in configs:
        options = config.get("options")
        if isinstance(options, Mapping) and options.get("inventory") is not None:
            name = str(config.get("name", ""))
            out[name] = _load_one(name, options["inventory"])
    return out


def credential_key(option: InventoryOption, auth: SignAuthorization) -> str | None:
    """The lookup key the credential proves for `option.key`, or None if it proves none."""
    if option.key == "subject":
        sub = auth.token_claims.get("sub")
        value: Any = sub if isinstance(sub, str) else auth.subject
    elif option.key == "email":
        value = auth.token_claims.get("email")
    elif option.key == "san":
        value = auth.sans[0] if auth.sans else None
    else:
        value = auth.identity.get(option.key)
    return value if isinstance(value, str) and value else None


def ssh_credential_key(option: InventoryOption, auth: SSHSignAuthorization, token: Mapping[str, Any]) -> str | None:
    """The lookup key an `/ssh/sign` credential proves: `subject` is the token's `sub` (the key id where
    a token has none), `email` its `email` claim, `instanceID`/`account` what a cloud identity proves,
    `san` the first principal the credential is granted (before a template changes them)."""
    if option.key == "subject":
        sub = token.get("sub")
        value: Any = sub if isinstance(sub, str) else auth.key_id
    elif option.key == "email":
        value = token.get("email")
    elif option.key == "san":
        value = auth.principals[0] if auth.principals else None
    else:
        value = auth.identity.get(option.key)
    return value if isinstance(value, str) and value else None


def ssh_inventory_entry(
    option: InventoryOption | None,
    reader: InventoryReader | None,
    auth: SSHSignAuthorization,
    token: Mapping[str, Any],
) -> dict[str, Any] | None:
    """The entry for this `/ssh/sign` request (`{}` when none), or None when the provisioner has no option.

    `restrictNames` checks the principals the credential is granted (and the key id is not a name:
    it is the certificate's label, not something a server matches), the same moment as the X.509
    path checks the requested SANs: before a template shapes the certificate.

    Raises:
        Forbidden: `require` and no entry, or `restrictNames` and a principal outside the entry's.
        Unavailable: the option is set but this deployment has no inventory store.
    """
    if option is None:
        return None
    return entry_for_key(option, reader, ssh_credential_key(option, auth, token), common_name="",
                         names=auth.principals)


def _check_names(entry: Mapping[str, Any], common_name: str, names: Iterable[str]) -> None:
    allowed = entry.get(ALLOWED_NAMES)
    if not isinstance(allowed, list):
        raise Forbidden("the inventory entry allows no names")
    allowed_set = {a.lower() for a in allowed if isinstance(a, str)}
    wanted = [*names, *([common_name] if common_name else [])]
    outside = [n for n in wanted if n.lower() not in allowed_set]
    if outside:
        raise Forbidden(f"name {outside[0]!r} is not allowed by the inventory")


def inventory_entry(
    option: InventoryOption | None,
    reader: InventoryReader | None,
    auth: SignAuthorization,
    *,
    common_name: str,
    names: Iterable[str],
) -> dict[str, Any] | None:
    """The entry for this X.509 request (`{}` when none), or None when the provisioner has no option.

    Raises:
        Forbidden: `require` and no entry, or `restrictNames` and a name outside the entry's.
        Unavailable: the option is set but this deployment has no inventory store.
    """
    if option is None:
        return None
    return entry_for_key(option, reader, credential_key(option, auth), common_name=common_name, names=names)


def entry_for_key(
    option: InventoryOption,
    reader: InventoryReader | None,
    key: str | None,
    *,
    common_name: str,
    names: Iterable[str],
) -> dict[str, Any]:
    """The option applied to a key already taken from the credential (the SSH path can call this with
    its own key and principals as `names`): the entry, or `{}` when there is none and it is not required.

    Raises:
        Forbidden: `require` and no entry, or `restrictNames` and a name outside the entry's.
        Unavailable: no inventory store.
    """
    if reader is None:
        raise Unavailable("inventory lookups are not available")
    entry = reader.get_inventory_entry(option.name, key) if key is not None else None
    if entry is None:
        if option.require:
            raise Forbidden("the credential has no entry in the inventory")
        return {}
    if option.restrict_names:
        _check_names(entry, common_name, names)
    return entry
