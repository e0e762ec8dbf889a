# CA keys live in Cloud KMS and never leave it. The key ring cannot be deleted
# (a KMS rule), and the keys carry prevent_destroy: destroying an issuing key
# strands every certificate and CRL it signed.

resource "google_kms_key_ring" "ca" {
  project  = var.project_id
  name     = var.key_ring_name
  location = var.kms_location
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
