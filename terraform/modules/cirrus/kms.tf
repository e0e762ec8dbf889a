# CA keys and the OCSP responder key live in Cloud KMS and never leave it. The
# key ring cannot be deleted (a KMS rule), and the keys carry prevent_destroy:
# destroying an issuing key strands every certificate and CRL it signed.

resource "google_kms_key_ring" "ca" {
  project  = var.project_id
  name     = coalesce(var.key_ring_name, "${var.name_prefix}-ca")
  location = var.kms_location

  depends_on = [google_project_service.apis]
}

resource "google_kms_crypto_key" "intermediate" {
  #checkov:skip=CKV_GCP_43:Rotation periods apply only to symmetric ENCRYPT_DECRYPT keys; an asymmetric CA signing key is rotated by a ceremony that also issues a new intermediate certificate (docs/deploy.md).
  name     = "${var.name_prefix}-intermediate"
  key_ring = google_kms_key_ring.ca.id
  purpose  = "ASYMMETRIC_SIGN"
  labels   = var.labels

  version_template {
    algorithm        = var.intermediate_key_algorithm
    protection_level = "HSM"
  }

  lifecycle {
    prevent_destroy = true
  }
}

# The delegated OCSP responder's key (RFC 6960 section 4.2.2.2, standards OCSP-05).
# The ocsp function signs responses with it, so the internet-facing responder
# never holds a role on the CA key. crl_publish, which holds the CA key, reads
# only its public key, to issue and renew the short-lived responder certificate
# (shared/validation/responder_cert.py) that the ocsp function then reads from
# the CRL bucket. Protection level is a variable because this key signs far
# more often than the CA key (one KMS call per OCSP response an instance has not
# cached): HSM by default, like the CA keys; SOFTWARE costs less per signature.
# KMS fixes a key's protection level at creation.
resource "google_kms_crypto_key" "ocsp_responder" {
  #checkov:skip=CKV_GCP_43:Rotation periods apply only to symmetric ENCRYPT_DECRYPT keys; the responder key is rotated by adding a key version and setting ocsp_responder_key_version, after which crl_publish certifies the new version on its next run (docs/deploy.md).
  name     = "${var.name_prefix}-ocsp-responder"
  key_ring = google_kms_key_ring.ca.id
  purpose  = "ASYMMETRIC_SIGN"
  labels   = var.labels

  version_template {
    algorithm        = "EC_SIGN_P256_SHA256"
    protection_level = var.ocsp_responder_key_protection_level
  }

  # Losing it is not fatal (crl_publish certifies a new key within one run) but
  # leaves OCSP answering tryLater until then; a rename must not do that silently.
  lifecycle {
    prevent_destroy = true
  }
}

# The SSH user and host CA keys (shared/ssh): SSH certificates are signed by the
# function that signs X.509 ones (the issuer, or its callers until it is
# deployed), one AsymmetricSign per certificate over the hand-built OpenSSH
# certificate. ca_api reads their public keys for /ssh/roots and /ssh/config;
# crl_publish reads them to write the KRL. EC P-256, the default of
# `step ca init --ssh`, which every OpenSSH since 5.7 accepts.
resource "google_kms_crypto_key" "ssh" {
  #checkov:skip=CKV_GCP_43:Rotation periods apply only to symmetric ENCRYPT_DECRYPT keys; an SSH CA key is rotated by publishing the new key beside the old one in known_hosts and TrustedUserCAKeys first.
  for_each = toset(["user", "host"])

  name     = "${var.name_prefix}-ssh-${each.key}"
  key_ring = google_kms_key_ring.ca.id
  purpose  = "ASYMMETRIC_SIGN"
  labels   = var.labels

  version_template {
    algorithm        = "EC_SIGN_P256_SHA256"
    protection_level = "HSM"
  }

  # Every host and user trusts this exact key: replacing it silently would lock them out.
  lifecycle {
    prevent_destroy = true
  }
}

# Optional online-in-KMS root. No function is granted any role on it; only the
# operator who runs the bootstrap ceremony uses it, with their own credentials.
resource "google_kms_crypto_key" "root" {
  #checkov:skip=CKV_GCP_43:Rotation periods apply only to symmetric keys; a root key is replaced by a new root, never rotated in place.
  count = var.create_root_key ? 1 : 0

  name     = "${var.name_prefix}-root"
  key_ring = google_kms_key_ring.ca.id
  purpose  = "ASYMMETRIC_SIGN"
  labels   = var.labels

  version_template {
    algorithm        = var.root_key_algorithm
    protection_level = "HSM"
  }

  lifecycle {
    prevent_destroy = true
  }
}
