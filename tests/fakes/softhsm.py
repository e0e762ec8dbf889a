"""A SoftHSM2 token in a temporary directory, for PKCS#11 tests.

SoftHSM2 (Debian's `softhsm2`) is a real PKCS#11 module. `SOFTHSM2_CONF` must
point at our config before the module is first loaded in this process, and a
module initialises only once per process, so one token directory serves the
whole test session.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

MODULE = "/usr/lib/softhsm/libsofthsm2.so"
TOKEN = "cirrus-test"
PIN = "246810"
SO_PIN = "13579111"
#: A second token nobody logs into, for wrong-PIN tests (login state is per process and token,
#: and SoftHSM2 sees only tokens that existed when the module was first loaded).
UNUSED_TOKEN = "cirrus-unused"


@dataclass(frozen=True)
class SoftHSM:
    """Where the token lives and how to address it."""

    module: str
    token: str
    pin_file: Path

    def uri(self, label: str, *, pin_file: Path | None = None) -> str:
        """A pkcs11 key URI for object `label` on the test token."""
        return f"pkcs11:module-path={self.module};token={self.token};object={label}?pin-source={pin_file or self.pin_file}"


def available() -> bool:
    """Whether SoftHSM2 is installed here."""
    return Path(MODULE).exists() and shutil.which("softhsm2-util") is not None


def init_token(directory: Path) -> SoftHSM:
    """Create the config, an initialised token and a PIN file under `directory`."""
    tokens = directory / "tokens"
    tokens.mkdir(parents=True, exist_ok=True)
    conf = directory / "softhsm2.conf"
    conf.write_text(f"directories.tokendir = {tokens}\nobjectstore.backend = file\nlog.level = ERROR\n")
    os.environ["SOFTHSM2_CONF"] = str(conf)
    for label in (TOKEN, UNUSED_TOKEN):
        subprocess.run(
            ["softhsm2-util", "--init-token", "--free", "--label", label, "--pin", PIN, "--so-pin", SO_PIN],
            check=True, capture_output=True, env={**os.environ, "SOFTHSM2_CONF": str(conf)},
        )  # fmt: skip
    pin_file = directory / "pin"
    pin_file.write_text(PIN + "\n")
    pin_file.chmod(0o600)
    return SoftHSM(module=MODULE, token=TOKEN, pin_file=pin_file)
