"""SQL statements for the SQLite store's record tables, built from the codec's constant column lists.

One place for the statements several roles run inside the same transaction: an issuance
writes the token claim, endpoint, certificate and events; a revocation writes its events;
a document write may claim a token. Values are always bound, never formatted in.
"""

from __future__ import annotations

from shared.model import TokenClaim
from shared.store import codec
from shared.store.sqlite_schema import claim_digest

CLAIM_INSERT = "INSERT OR IGNORE INTO used_tokens (digest, namespace, key, expires_at) VALUES (?, ?, ?, ?)"


def claim_row(claim: TokenClaim) -> tuple[bytes, str, str, int]:
    """A token claim as its `used_tokens` row."""
    return (
        claim_digest(claim.namespace, claim.key),
        claim.namespace,
        claim.key,
        codec.to_epoch_us(claim.expires_at, "expires_at"),
    )


CERT_INSERT = (
    f"INSERT INTO certificates ({', '.join(codec.CERTIFICATE_COLUMNS)}) "  # noqa: S608
    f"VALUES ({', '.join('?' * len(codec.CERTIFICATE_COLUMNS))})"
)
CERT_SELECT = f"SELECT {', '.join(codec.CERTIFICATE_COLUMNS)} FROM certificates"  # noqa: S608
ENDPOINT_INSERT = (
    f"INSERT OR IGNORE INTO endpoints ({', '.join(codec.ENDPOINT_COLUMNS)}) "  # noqa: S608
    f"VALUES ({', '.join('?' * len(codec.ENDPOINT_COLUMNS))})"
)
ENDPOINT_SELECT = f"SELECT {', '.join(codec.ENDPOINT_COLUMNS)} FROM endpoints"  # noqa: S608
REVOCATION_INSERT = (
    f"INSERT INTO revocations ({', '.join(codec.REVOCATION_COLUMNS)}) "  # noqa: S608
    f"VALUES ({', '.join('?' * len(codec.REVOCATION_COLUMNS))})"
)
REVOCATION_SELECT = f"SELECT {', '.join(codec.REVOCATION_COLUMNS)} FROM revocations"  # noqa: S608
# OR IGNORE: an event id already logged is a retry of the same fact, not a new one.
EVENT_INSERT = (
    f"INSERT OR IGNORE INTO events ({', '.join(codec.EVENT_COLUMNS)}) "  # noqa: S608
    f"VALUES ({', '.join('?' * len(codec.EVENT_COLUMNS))})"
)
EVENT_SELECT = f"SELECT {', '.join(codec.EVENT_COLUMNS)} FROM events"  # noqa: S608
