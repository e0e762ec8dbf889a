# The CRL bucket: CIRRUS_BLOBS for every function. crl_publish writes what the
# CA publishes: CRLs under crl/, the index of issued serials under ocsp-index/
# (shared/validation/serial_index.py) and the delegated OCSP responder
# certificate under ocsp-responder/ (shared/validation/responder_cert.py). The
# ocsp function answers from all three and reads nothing else.
#
# Public read: allUsers may read objects under crl/ only, granted on a managed
# folder. The serial index must stay private: it lists every certificate the CA
# has issued, with issuance times, which relying parties have no need to
# enumerate; OCSP answers about one serial at a time. We chose this over the two alternatives:
#   - an IAM condition on a bucket binding (resource.name.startsWith(".../objects/crl/"))
#     puts the public/private boundary in a CEL string that no reviewer or
#     scanner checks, and conditional bindings for allUsers are not where IAM's
#     guarantees are clearest;
#   - a second, wholly public bucket would make crl_publish write to two places
#     and the OCSP responder read from both.
# A managed folder is Cloud Storage's own per-prefix IAM unit: the grant is a
# plain binding, on a resource named "crl/", visible in `gcloud storage
# managed-folders get-iam-policy`. Anything written outside crl/ stays private.

locals {
  crl_bucket_name = coalesce(var.crl_bucket_name, "${var.project_id}-${var.name_prefix}-crl")
  crl_prefix      = "crl/"
  # Buckets default to the functions' region: no cross-region reads, and no
  # data outside the jurisdiction the operator chose for everything else.
  bucket_location = upper(coalesce(var.crl_bucket_location, var.region))
}

resource "google_storage_bucket" "crl" {
  #checkov:skip=CKV_GCP_114:Public access prevention must stay "inherited" so the crl/ managed folder can grant allUsers read; nothing else in the bucket is public (see the comment above).
  #checkov:skip=CKV_GCP_62:CRL downloads are anonymous and high-volume; usage logs would record nothing attributable. Writes are covered by Cloud Audit Logs.
  project                     = var.project_id
  name                        = local.crl_bucket_name
  location                    = local.bucket_location
  uniform_bucket_level_access = true
  public_access_prevention    = "inherited"
  force_destroy               = false
  labels                      = var.labels

  # Every publish overwrites with a generation precondition; versioning keeps
  # the superseded CRLs so a bad publish can be rolled back.
  versioning {
    enabled = true
  }

  lifecycle_rule {
    condition {
      days_since_noncurrent_time = var.crl_version_retention_days
    }
    action {
      type = "Delete"
    }
  }

  # A CRL is rewritten every publish (and on revocations), so its superseded
  # versions pile up faster than the age rule above removes them: keep only the
  # newest crl_versions_kept of each object (enough to roll a bad publish back).
  lifecycle_rule {
    condition {
      num_newer_versions = var.crl_versions_kept
      with_state         = "ARCHIVED"
    }
    action {
      type = "Delete"
    }
  }

  # Backstop for the serial index (shared/validation/serial_index.py deletes
  # superseded segments itself): a segment holds certificates issued before it
  # was written and is dropped a day after the last of them expires, so one
  # older than the longest certificate lifetime is named by no manifest. Its
  # deletion leaves a noncurrent version, which the first rule removes.
  lifecycle_rule {
    condition {
      age            = var.serial_index_segment_max_age_days
      matches_prefix = ["ocsp-index/"]
      matches_suffix = [".bin"]
    }
    action {
      type = "Delete"
    }
  }

  depends_on = [google_project_service.apis]
}

resource "google_storage_managed_folder" "crl_public" {
  bucket = google_storage_bucket.crl.name
  name   = local.crl_prefix
}

resource "google_storage_managed_folder_iam_member" "crl_public_read" {
  # Public on purpose: CRLs are public by design (RFC 5280 section 4.2.1.13 distribution points must be fetchable by any relying party); the grant covers the crl/ managed folder only.
  bucket         = google_storage_managed_folder.crl_public.bucket
  managed_folder = google_storage_managed_folder.crl_public.name
  role           = "roles/storage.objectViewer"
  member         = "allUsers"
}
