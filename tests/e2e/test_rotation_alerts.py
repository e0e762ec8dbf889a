"""`authority.expiring` covers every intermediate generation, not only the configured one.

A staged successor that lapses before it is activated strands the rotation, and an old generation
still signs CRLs and OCSP answers for its certificates, so the sweep warns about each generation's
chain (once each, across sweeps), as it does for every further authority's chain
(tests/e2e/test_authorities_va.py).
"""

from __future__ import annotations

from pathlib import Path

from cryptography import x509

from shared.cli import main as cirrus_main
from shared.config import Settings
from shared.runtime import build_services
from tests.e2e.test_rotation import new_intermediate


def _expiring_serials(services: object) -> list[str]:
    events = services.store.list_events(limit=1000)  # type: ignore[attr-defined]
    return [e.subject for e in events if e.type == "dev.cirrus.authority.expiring"]


def test_staged_and_active_generations_raise_authority_expiring_once(authority_dir: Path, tmp_path: Path) -> None:
    # `cirrus init`'s intermediate and root last ten years: nothing to warn about before staging.
    services = build_services(Settings.load(authority_dir / "config.json"))
    try:
        assert services.expiry_alerts() == 0
    finally:
        services.close()

    staged_crt, staged_uri = new_intermediate(authority_dir, tmp_path, "Staged")  # 30 days: inside the 90-day window
    assert cirrus_main(["ca", "stage-intermediate", "--dir", str(authority_dir), "--cert", str(staged_crt),
                        "--kms", staged_uri]) == 0  # fmt: skip
    staged = x509.load_pem_x509_certificate(staged_crt.read_bytes())
    services = build_services(Settings.load(authority_dir / "config.json"))
    try:
        assert services.expiry_alerts() == 1
        assert _expiring_serials(services) == [str(staged.serial_number)]

        # Activated, it still counts once; a second staged generation gets its own warning.
        assert cirrus_main(["ca", "activate", "--dir", str(authority_dir), "--cert", str(staged_crt)]) == 0
        other_crt, other_uri = new_intermediate(authority_dir, tmp_path, "Other")
        assert cirrus_main(["ca", "stage-intermediate", "--dir", str(authority_dir), "--cert", str(other_crt),
                            "--kms", other_uri]) == 0  # fmt: skip
        services.rotating.rotation.recheck = 0  # type: ignore[union-attr] - see the new record now
        assert services.expiry_alerts() == 1
        other = x509.load_pem_x509_certificate(other_crt.read_bytes())
        assert sorted(_expiring_serials(services)) == sorted([str(staged.serial_number), str(other.serial_number)])
        assert services.expiry_alerts() == 0  # once each, across sweeps
    finally:
        services.close()
