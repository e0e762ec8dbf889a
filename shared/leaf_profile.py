"""What goes into an X.509 leaf besides its key: the subject and the extensions.

Two ways, both for `shared.authority`'s sign pipeline: the default profile (the
token's names as SANs, step-ca's provisioner extension, the CRL/OCSP/CA-issuers
URLs) or a provisioner's `options.x509` template rendered over the request's data,
whose names then meet the same policy as the token's. Kept apart from the pipeline
because it is the one place that decides a leaf's contents, and the renewal path
(which copies its predecessor's) shares only the URLs.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from cryptography import x509

from shared.errors import BadRequest, Forbidden
from shared.keys.base import PublicKey
from shared.policy.issuance import IssuancePolicies
from shared.provisioners.base import SignAuthorization
from shared.templates import TemplateError
from shared.templates.provisioner import ProvisionerTemplate
from shared.x509.names import SANs, sans_of_names
from shared.x509.profile import ca_leaf_extensions, default_leaf_extensions, provisioner_extension

UrlForSerial = Callable[[int], str | None]


@dataclass(frozen=True, slots=True)
class LeafProfile:
    """The authority's URLs for its leaves, and the policy templated names must meet."""

    policy: IssuancePolicies
    crl_url: UrlForSerial | None = None
    ocsp_url: str | None = None
    ca_issuers_url: str | None = None

    def crl_for(self, serial: int) -> str | None:
        """The CRL distribution point for a certificate with this serial (CRLs may be sharded)."""
        return self.crl_url(serial) if self.crl_url else None

    def extensions(
        self, public_key: PublicKey, sans: SANs, common_name: str, auth: SignAuthorization, serial: int
    ) -> list[x509.Extension[x509.ExtensionType]]:
        """The default profile's extensions for the token's names.

        Raises:
            Forbidden: no subject alternative name.
        """
        names = sans.general_names()
        if not names:
            raise Forbidden("certificate must have at least one subject alternative name")
        return default_leaf_extensions(
            public_key=public_key,
            san=x509.SubjectAlternativeName(names),
            san_critical=not common_name,
            provisioner=_provisioner_extension(auth),
            crl_url=self.crl_for(serial),
            ocsp_url=self.ocsp_url,
            ca_issuers_url=self.ca_issuers_url,
        )

    def templated(
        self, configured: ProvisionerTemplate, auth: SignAuthorization, serial: int, data: Mapping[str, Any],
    ) -> tuple[x509.Name, list[x509.Extension[x509.ExtensionType]], tuple[str, tuple[str, ...]]]:
        """Subject, extensions and names from the provisioner's `options.x509` template over `data` (issue 15).

        The names (common name, SANs) are the ones the template put in the certificate, for its record.

        Raises:
            BadRequest: the template failed or gave no name.
            Forbidden: a name it gave is outside the policy.
        """
        # Imported here: a deployment without templates never loads the template data or the renderer.
        from shared.x509.templated import refusal_message, render_leaf

        try:  # the same path as `cirrus template render` (shared.x509.templated.render_leaf)
            _, leaf = render_leaf(configured.template, data)
        except TemplateError as exc:
            raise BadRequest(refusal_message(exc)) from exc
        # Names a template added (from templateData, webhook data...) meet the same policy as the token's.
        if self.policy.applies(auth.provisioner.id):
            self.policy.check(auth.provisioner.id, leaf.common_name, sans_of_names(leaf.sans))
        extensions = [*leaf.extensions, *ca_leaf_extensions(
            provisioner=_provisioner_extension(auth), crl_url=self.crl_for(serial),
            ocsp_url=self.ocsp_url, ca_issuers_url=self.ca_issuers_url,
        )]
        return leaf.subject, extensions, (leaf.common_name, leaf.san_strings)


def _provisioner_extension(auth: SignAuthorization) -> x509.Extension[x509.UnrecognizedExtension] | None:
    """step-ca's provisioner extension, unless the provisioner's claims turn it off."""
    if auth.claims.disable_smallstep_extensions:
        return None
    return provisioner_extension(auth.provisioner.type, auth.provisioner.name, auth.credential_id)
