"""step-ca's SignResponse, assembled from cached pieces, is exactly the JSON a plain encode gives."""

from __future__ import annotations

import json

import pytest

from shared.api.stepca import TLS_OPTIONS, sign_response


class _Issued:
    def __init__(self, chain: list[str]) -> None:
        self._chain = chain

    def pem_chain(self) -> list[str]:
        return list(self._chain)


@pytest.mark.parametrize(
    "chain",
    [
        ["-----BEGIN CERTIFICATE-----\nleaf\n-----END CERTIFICATE-----\n", "-----BEGIN CERTIFICATE-----\nint\n"],
        ["leaf only"],
        ["leaf", "intermediate 1", 'intermediate "2"\n\u00e9'],
    ],
)
def test_sign_response_is_the_plain_encoding(chain: list[str]) -> None:
    response = sign_response(_Issued(chain))  # type: ignore[arg-type]
    expected = {"crt": chain[0], "ca": chain[1] if len(chain) > 1 else None, "certChain": chain, "tlsOptions": TLS_OPTIONS}
    assert response.status_code == 201 and response.mimetype == "application/json"
    assert response.get_data(as_text=True) == json.dumps(expected, separators=(",", ":"))
