"""Instance identity and webhooks: a GCP token's hook request names the instance as step-ca does
(`authorizationPrincipal` = the instance id), and an AUTHORIZING hook can refuse a VM."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.unit.provisioners.test_gcp import certificates, google, make_api, metadata_token, sign  # noqa: F401
from tests.webhook_receiver import answer, hook, webhook_receiver


def test_gcp_hooks_get_the_instance_as_authorization_principal(make_api: Any, google: Any,  # noqa: F811
                                                               authority_dir: Path) -> None:
    with webhook_receiver() as receiver:
        receiver.routes["/"] = answer(True)
        api = make_api(options={"webhooks": [hook("cmdb", receiver.base + "/vm", "AUTHORIZING")]})
        r = sign(api, metadata_token(google[1]))
        assert r.status_code == 201, r.text
        body = receiver.seen[0].json()
        assert body["authorizationPrincipal"] == google[0].instance.instance_id
        assert body["provisionerName"] == "google" and "x5cCertificate" not in body
        receiver.routes["/"] = answer(False, error={"code": "unknown-vm", "message": "not in the CMDB"})
        r = sign(api, metadata_token(google[1]))
        assert r.status_code == 403 and r.get_json()["message"] == "not in the CMDB (unknown-vm)"
    assert certificates(authority_dir) == 1
