"""Per-provisioner certificate templates: `options.x509` / `options.ssh` with `template` (inline
text), `templateFile` (a path, relative to the config's folder) and `templateData` (an object given
to the template as top-level keys), as in step-ca's ca.json; an inline `template` that does not start
with `{` is base64 of the template text, as step-ca reads it.

Every template is read and parsed when the configuration loads, so a broken template is a refusal
to start (ConfigError naming the provisioner and the template line), never a surprise at issuance.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from shared.errors import ConfigError
from shared.templates import MAX_TEMPLATE_BYTES, Template, TemplateError


@dataclass(frozen=True, slots=True)
class ProvisionerTemplate:
    """A provisioner's parsed template and its `templateData`."""

    template: Template
    data: Mapping[str, Any] = field(default_factory=dict)


def with_webhooks(given: Any, answers: Mapping[str, Any]) -> dict[str, Any]:
    """`.Webhooks` as step-ca's `SetWebhook` leaves it once ENRICHING hooks answered: each answer under
    its hook's name, added to the object a provisioner's templateData already put under `Webhooks`
    (an answer wins over a templateData value of the same name); a templateData `Webhooks` that is
    not an object is replaced."""
    return {**given, **answers} if isinstance(given, dict) else dict(answers)


def _load_one(name: str, kind: str, options: Any, base_dir: Path | None) -> ProvisionerTemplate | None:
    where = f"provisioner {name!r}: options.{kind}"
    if options is None:
        return None
    if not isinstance(options, Mapping):
        raise ConfigError(f"{where} must be an object")
    text = options.get("template")
    path = options.get("templateFile")
    data = options.get("templateData", {})
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        raise ConfigError(f"{where}.templateData must be an object")
    if text is not None and path is not None:
        raise ConfigError(f"{where}: set template or templateFile, not both")
    label = f"{name}.{kind}"
    if path is not None:
        if not isinstance(path, str) or not path:
            raise ConfigError(f"{where}.templateFile must be a path")
        file = Path(path)
        if not file.is_absolute() and base_dir is not None:
            file = base_dir / file
        try:
            raw = file.read_bytes()
        except OSError as exc:
            raise ConfigError(f"{where}.templateFile {path}: {exc.strerror}") from None
        if len(raw) > MAX_TEMPLATE_BYTES:
            raise ConfigError(f"{where}.templateFile {path} is larger than {MAX_TEMPLATE_BYTES} bytes")
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise ConfigError(f"{where}.templateFile {path} is not UTF-8 text") from None
        label = file.name
    if text is None:
        return None
    if not isinstance(text, str):
        raise ConfigError(f"{where}.template must be a string")
    if path is None and not text.strip().startswith("{"):
        text = _from_base64(text, where)  # step-ca: inline text not starting with `{` is base64
    try:
        template = Template(text, name=label)
    except TemplateError as exc:
        raise ConfigError(f"{where}: {exc}") from None
    return ProvisionerTemplate(template, dict(data))


def _from_base64(text: str, where: str) -> str:
    try:
        raw = base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise ConfigError(f"{where}.template is neither JSON text (starting with {{) nor base64") from None
    if len(raw) > MAX_TEMPLATE_BYTES:
        raise ConfigError(f"{where}.template is larger than {MAX_TEMPLATE_BYTES} bytes")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ConfigError(f"{where}.template (base64) is not UTF-8 text") from None


def load_templates(configs: Iterable[Mapping[str, Any]], kind: str, base_dir: Path | None = None
                   ) -> dict[str, ProvisionerTemplate]:
    """Each provisioner's `options.<kind>` template ("x509" or "ssh"), keyed by provisioner name."""
    out: dict[str, ProvisionerTemplate] = {}
    for config in configs:
        name = str(config.get("name", ""))
        options = config.get("options")
        if options is None:
            continue
        if not isinstance(options, Mapping):
            raise ConfigError(f"provisioner {name!r}: options must be an object")
        loaded = _load_one(name, kind, options.get(kind), base_dir)
        if loaded is not None:
            out[name] = loaded
    return out
