"""The certificate about to be handed out, as step's `x509util.Certificate` JSON (an AUTHORIZING hook's view).

Built from the signed certificate itself, whether a template or the default profile shaped it, so
the hook judges exactly what the client would receive (see `shared.webhooks.issuance` for why
the hook is asked after signing and before recording). Extensions without a named field go to
`extensions` as `{id, critical, value}` with base64 DER, as step does.
"""

from __future__ import annotations

import base64
import json
from typing import Any

from cryptography import x509
from cryptography.x509.oid import AuthorityInformationAccessOID, NameOID

from shared.templates.gojson import to_json
from shared.x509.names import SANs
from shared.x509.templated import EXT_KEY_USAGE_NAMES, go_subject

_KEY_USAGE = (
    ("digital_signature", "digitalSignature"), ("content_commitment", "contentCommitment"),
    ("key_encipherment", "keyEncipherment"), ("data_encipherment", "dataEncipherment"),
    ("key_agreement", "keyAgreement"), ("key_cert_sign", "certSign"), ("crl_sign", "crlSign"),
)
_EKU_NAMES = {oid: name for name, oid in EXT_KEY_USAGE_NAMES.items()}
# step's own spelling of each extended key usage (EXT_KEY_USAGE_NAMES holds them lowercased).
_EKU_SPELLING = {
    "any": "any", "serverauth": "serverAuth", "clientauth": "clientAuth", "codesigning": "codeSigning",
    "emailprotection": "emailProtection", "ipsecendsystem": "ipsecEndSystem", "ipsectunnel": "ipsecTunnel",
    "ipsecuser": "ipsecUser", "timestamping": "timeStamping", "ocspsigning": "ocspSigning",
    "microsoftservergatedcrypto": "microsoftServerGatedCrypto",
    "netscapeservergatedcrypto": "netscapeServerGatedCrypto",
    "microsoftcommercialcodesigning": "microsoftCommercialCodeSigning",
    "microsoftkernelcodesigning": "microsoftKernelCodeSigning",
}


def _key_usage(ku: x509.KeyUsage) -> list[str]:
    names = [js for attr, js in _KEY_USAGE if getattr(ku, attr)]
    if ku.key_agreement:
        names += ["encipherOnly"] if ku.encipher_only else []
        names += ["decipherOnly"] if ku.decipher_only else []
    return names


def _uris(access: x509.AuthorityInformationAccess, method: x509.ObjectIdentifier) -> list[str]:
    return [d.access_location.value for d in access
            if d.access_method == method and isinstance(d.access_location, x509.UniformResourceIdentifier)]


def certificate_json(cert: x509.Certificate) -> dict[str, Any]:
    """`x509util.Certificate` JSON of a certificate (without the key and validity: the body adds those)."""
    doc: dict[str, Any] = {"version": 3, "subject": _subject(cert.subject), "issuer": _subject(cert.issuer),
                           "serialNumber": cert.serial_number}
    raw: list[dict[str, Any]] = []
    for ext in cert.extensions:
        value = ext.value
        if isinstance(value, x509.SubjectKeyIdentifier):
            doc["subjectKeyId"] = base64.b64encode(value.digest).decode()
        elif isinstance(value, x509.AuthorityKeyIdentifier) and value.key_identifier is not None:
            doc["authorityKeyId"] = base64.b64encode(value.key_identifier).decode()
        elif isinstance(value, x509.SubjectAlternativeName):
            doc["dnsNames"] = value.get_values_for_type(x509.DNSName) or None
            doc["ipAddresses"] = [str(i) for i in value.get_values_for_type(x509.IPAddress)] or None
            doc["emailAddresses"] = value.get_values_for_type(x509.RFC822Name) or None
            doc["uris"] = value.get_values_for_type(x509.UniformResourceIdentifier) or None
        elif isinstance(value, x509.KeyUsage):
            doc["keyUsage"] = _key_usage(value)
        elif isinstance(value, x509.ExtendedKeyUsage):
            known = [_EKU_SPELLING[_EKU_NAMES[o]] for o in value if o in _EKU_NAMES]
            doc["extKeyUsage"] = known or None
            doc["unknownExtKeyUsage"] = [o.dotted_string for o in value if o not in _EKU_NAMES] or None
        elif isinstance(value, x509.BasicConstraints):
            doc["basicConstraints"] = {"isCA": value.ca, "maxPathLen": -1 if value.path_length is None
                                       else value.path_length}
        elif isinstance(value, x509.CertificatePolicies):
            doc["policyIdentifiers"] = [p.policy_identifier.dotted_string for p in value]
        elif isinstance(value, x509.CRLDistributionPoints):
            doc["crlDistributionPoints"] = [n.value for p in value for n in (p.full_name or [])
                                            if isinstance(n, x509.UniformResourceIdentifier)]
        elif isinstance(value, x509.AuthorityInformationAccess):
            doc["ocspServer"] = _uris(value, AuthorityInformationAccessOID.OCSP) or None
            doc["issuingCertificateURL"] = _uris(value, AuthorityInformationAccessOID.CA_ISSUERS) or None
        else:
            try:
                der = value.public_bytes()
            except (NotImplementedError, ValueError):
                continue
            raw.append({"id": ext.oid.dotted_string, "critical": ext.critical, "value": base64.b64encode(der).decode()})
    doc["extensions"] = raw or None
    return doc


def requested_certificate_json(common_name: str, sans: SANs, issuer: x509.Name) -> dict[str, Any]:
    """`x509util.Certificate` JSON of a certificate another authority will sign (registration authority).

    An RA must not forward what a hook would deny, so its AUTHORIZING hooks are asked before the
    upstream signs: they see what the RA asks for (subject, SANs, issuer) and what the RA checks the
    upstream's answer against; the upstream's own extensions and serial are not known yet (as in
    step-ca, where the hook runs on the template's output before a serial is drawn).
    """
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)] if common_name else [])
    return {
        "version": 3, "subject": _subject(subject), "issuer": _subject(issuer), "serialNumber": None,
        "dnsNames": list(sans.dns) or None, "ipAddresses": [str(i) for i in sans.ips] or None,
        "emailAddresses": list(sans.emails) or None, "uris": list(sans.uris) or None, "extensions": None,
    }


def _subject(name: x509.Name) -> Any:
    return json.loads(to_json(go_subject(name), escape_html=False))
