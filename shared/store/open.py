"""Pick a storage backend by URL scheme, importing only that backend.

A function instance that uses Firestore must not pay for importing SQLite code
and vice versa (and cloud SDKs must never load unless used), so the registry
maps a scheme to a *dotted name* that is imported on first use. Adding a
backend is one line here: a module exposing
`from_url(url: str, *, clock: Clock) -> Store`.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import cast

from shared.clock import Clock
from shared.errors import ConfigError
from shared.store.base import Store

# scheme -> module with `from_url(url, *, clock)`; imported lazily.
BACKENDS: dict[str, str] = {
    "memory": "shared.store.memory",
    "sqlite": "shared.store.sqlite",
    "firestore": "shared.store.firestore",
}

StoreOpener = Callable[..., Store]


def open_store(url: str, *, clock: Clock) -> Store:
    """Open the store a URL names: `memory:`, `sqlite:/abs/path.db`, ...

    Raises:
        ConfigError: the scheme is unknown or the backend rejects the URL.
    """
    scheme, sep, _ = url.partition(":")
    module_name = BACKENDS.get(scheme.lower()) if sep else None
    if module_name is None:
        known = ", ".join(f"{s}:" for s in sorted(BACKENDS))
        raise ConfigError(f"unknown store URL scheme in {url!r}; expected one of {known}")
    module = importlib.import_module(module_name)
    opener = cast(StoreOpener, module.from_url)
    return opener(url, clock=clock)
