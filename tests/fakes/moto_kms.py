"""AWS KMS for tests: moto's server, in this process, with three of its quirks corrected.

moto is the well-kept AWS stand-in, but its KMS differs from AWS in ways that
would make a correct client look wrong. Each correction below applies to the
test server only (production code talks to AWS as AWS documents it):

1. `MessageType=DIGEST` is ignored: moto hashes the digest again, so the
   signature is over H(H(m)). AWS signs the digest as given. Corrected by
   signing the digest as `Prehashed`.
2. RSASSA-PSS uses the maximum salt length; AWS uses a salt as long as the
   digest (32 bytes for SHA-256). Corrected to the digest length.
3. A disabled key still signs; AWS answers `DisabledException`. Corrected.

The server runs in-process (`ThreadedMotoServer`) so the corrections can patch
moto's response handler; requests still go through boto3 and HTTP on loopback.
"""

from __future__ import annotations

import base64
import json
import logging
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa, utils

_HASHES = {"256": hashes.SHA256, "384": hashes.SHA384, "512": hashes.SHA512}


def _aws_sign(private: Any, message: bytes, message_type: str, algorithm: str) -> bytes:
    """Sign as AWS KMS does (digest taken as given; PSS salt = digest length)."""
    hash_ = _HASHES[algorithm[-3:]]()
    chosen: Any = utils.Prehashed(hash_) if message_type == "DIGEST" else hash_
    if isinstance(private, ec.EllipticCurvePrivateKey):
        return private.sign(message, ec.ECDSA(chosen))
    assert isinstance(private, rsa.RSAPrivateKey)
    if "PSS" in algorithm:
        pad: Any = padding.PSS(mgf=padding.MGF1(hash_), salt_length=hash_.digest_size)
    else:
        pad = padding.PKCS1v15()
    return private.sign(message, pad, chosen)


def _patched_sign(self: Any) -> str:
    from moto.kms.exceptions import ValidationException

    key_id = self._get_param("KeyId")
    message = self._get_param("Message")
    message_type = self._get_param("MessageType") or "RAW"
    algorithm = self._get_param("SigningAlgorithm")
    self._validate_key_id(key_id)
    if isinstance(message, str):
        message = message.encode("utf-8")  # as moto's own handler does
    if not message:
        raise ValidationException("Message must have length greater than or equal to 1")
    key = self.kms_backend.describe_key(key_id)
    if not key.enabled or key.key_state == "Disabled":
        from moto.core.exceptions import JsonRESTError

        raise JsonRESTError("DisabledException", f"{key.arn} is disabled.")
    if algorithm not in key.signing_algorithms:
        raise ValidationException(f"SigningAlgorithm {algorithm} is not valid for this key")
    signature = _aws_sign(key.private_key.private_key, message, message_type, algorithm)
    return json.dumps(
        {"KeyId": key.arn, "Signature": base64.b64encode(signature).decode(), "SigningAlgorithm": algorithm}
    )


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextmanager
def serve_moto_kms() -> Iterator[str]:
    """Run moto's KMS on loopback with the corrections; yield its endpoint URL."""
    from moto.kms.responses import KmsResponse
    from moto.moto_server.threaded_moto_server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one access line per request otherwise
    original = KmsResponse.sign
    KmsResponse.sign = _patched_sign  # type: ignore[method-assign]
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=_free_port(), verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()
        KmsResponse.sign = original  # type: ignore[method-assign]


def kms_client(endpoint: str) -> Any:
    """A boto3 KMS client for the test server (fake credentials, no botocore retries)."""
    import boto3
    from botocore.config import Config

    return boto3.client(
        "kms", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="testing",
        aws_secret_access_key="testing", config=Config(retries={"total_max_attempts": 1}),
    )  # fmt: skip
