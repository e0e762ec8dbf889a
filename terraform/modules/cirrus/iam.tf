# One service account per function, each with only what its function does.
# Who holds what (tests/infra/test_terraform.py asserts exactly this table):
#
#   function     project (Firestore db only)  resource-scoped
#   ca_api       datastore.user               invoke issuer; publish events; objectViewer on the CRL bucket (serves /crl)
#   acme         datastore.user               invoke issuer; publish events; objectViewer on the CRL bucket (serves /crl)
#   ocsp         -                            signerVerifier on the OCSP responder key; objectViewer on the CRL bucket
#   issuer       datastore.user               signerVerifier on the intermediate key; publish events; objectViewer on the
#                                             CRL bucket (the roots' ARLs: never sign or renew under a revoked intermediate)
#   dashboard    datastore.user               publish events (reads everything; writes revocations, sign-in tokens);
#                                             objectViewer on the CRL bucket (CRL and ARL status on the authorities page)
#   crl_publish  datastore.user               signerVerifier on the CRL-signing (intermediate) key; publicKeyViewer on the
#                                             OCSP responder key; objectUser on the CRL bucket; publish events
#   sweep        datastore.user               publish events
#
# Why each resource-scoped role, by the code that needs it: ROLE_NEEDS in
# tests/infra/test_terraform.py, which fails when a grant here has no row
# there, or a row no grant.
#
# Cloud Build runs as its own account (google_service_account.build): it
# writes build logs, pushes the function image, and reads the source bundle.
#
# Only the issuer and crl_publish can sign with the CA key, and neither takes
# requests from the internet: the issuer is invocable only by ca_api's and
# acme's accounts, and crl_publish only by its own Eventarc trigger. Exception,
# by design of the rollout: while the issuer is not deployed (deployed = false
# in functions.tf), ca_api and acme issue in-process and hold the issuer's key
# roles instead.
#
# The public ocsp function signs with its own delegated responder key, which
# crl_publish certifies (a short-lived certificate with EKU OCSPSigning), and
# holds no role on the CA key: a compromised responder could sign false OCSP
# answers, never a certificate or a CRL. It needs no Firestore access either:
# everything it reads is in the CRL bucket, which crl_publish writes: the CRLs
# (crl/, public), the issued-serial index (ocsp-index/, private) and the
# responder certificate (ocsp-responder/, private).
#
# Only functions that are deployed get an account or any grant.

resource "google_service_account" "fn" {
  for_each = local.deployed

  project      = var.project_id
  account_id   = "${local.function_names[each.key]}-fn"
  display_name = "Cirrus ${each.key} function"
  description  = "Runtime identity of the ${each.key} function: ${each.value.description}"

  depends_on = [google_project_service.apis]
}

resource "google_service_account" "build" {
  project      = var.project_id
  account_id   = "${var.name_prefix}-build"
  display_name = "Cirrus function builds"
  description  = "Cloud Build identity for the Cirrus functions: writes build logs, pushes their images, reads the source bundle."

  depends_on = [google_project_service.apis]
}

resource "google_project_iam_member" "build" {
  for_each = toset(local.build_roles)

  project = var.project_id
  role    = each.value
  member  = "serviceAccount:${google_service_account.build.email}"
}

resource "google_storage_bucket_iam_member" "build_source" {
  bucket = google_storage_bucket.source.name
  role   = "roles/storage.objectViewer"
  member = "serviceAccount:${google_service_account.build.email}"
}

locals {
  # Project-level roles, granted under an IAM condition that names the Cirrus
  # Firestore database, so they reach no other database in the project.
  project_roles = {
    ca_api      = ["roles/datastore.user"]
    acme        = ["roles/datastore.user"]
    ocsp        = []
    issuer      = ["roles/datastore.user"]
    dashboard   = ["roles/datastore.user"]
    crl_publish = ["roles/datastore.user"]
    sweep       = ["roles/datastore.user"]
  }

  project_role_grants = {
    for grant in flatten([
      for fn, roles in local.project_roles : [for role in roles : { function = fn, role = role }]
      if contains(keys(local.deployed), fn)
    ]) : "${grant.function}/${grant.role}" => grant
  }

  # Roles on the intermediate (issuing) key. crl_publish signs CRLs with the
  # issuing CA's key, as RFC 5280 expects of a direct CRL. A function that
  # issues in-process because the issuer is not deployed (local.signers) gets
  # the issuer's roles.
  # signerVerifier covers GetPublicKey (cryptoKeyVersions.viewPublicKey), the
  # only other call shared/keys/cloudkms.py makes outside create_key.
  key_roles = {
    issuer      = ["roles/cloudkms.signerVerifier"]
    crl_publish = ["roles/cloudkms.signerVerifier"]
  }

  intermediate_key_grants = {
    for grant in flatten([
      for fn in local.signers : [
        for role in lookup(local.key_roles, fn, local.key_roles.issuer) : { function = fn, role = role }
      ]
    ]) : "${grant.function}/${grant.role}" => grant
  }

  # Roles on the delegated OCSP responder key (kms.tf). ocsp signs responses
  # with it (signerVerifier covers reading its public key, which the signer
  # fetches once). crl_publish issues the responder certificate for that public
  # key with the CA key, so it needs GetPublicKey only: publicKeyViewer, not
  # viewer (shared/keys/cloudkms.py reads no key metadata outside create_key).
  # Every function listed here also gets CIRRUS_OCSP_KEY (functions.tf).
  ocsp_key_roles = {
    ocsp        = ["roles/cloudkms.signerVerifier"]
    crl_publish = ["roles/cloudkms.publicKeyViewer"]
  }

  ocsp_key_grants = {
    for grant in flatten([
      for fn, roles in local.ocsp_key_roles : [for role in roles : { function = fn, role = role }]
      if contains(keys(local.deployed), fn)
    ]) : "${grant.function}/${grant.role}" => grant
  }

  # Roles on the SSH user and host CA keys (kms.tf). Whoever signs X.509
  # certificates signs SSH ones: the issuer, or ca_api while the issuer is not
  # deployed. ca_api otherwise only reads the public keys (/ssh/roots,
  # /ssh/config), and crl_publish reads them for the KRL. Every function listed
  # here also gets CIRRUS_SSH_USER_KEY and CIRRUS_SSH_HOST_KEY (functions.tf).
  ssh_key_roles = {
    issuer      = ["roles/cloudkms.signerVerifier", "roles/cloudkms.publicKeyViewer"]
    ca_api      = local.issuer_deployed ? ["roles/cloudkms.publicKeyViewer"] : ["roles/cloudkms.signerVerifier", "roles/cloudkms.publicKeyViewer"]
    crl_publish = ["roles/cloudkms.publicKeyViewer"]
  }

  ssh_key_grants = {
    for grant in flatten([
      for fn, roles in local.ssh_key_roles : [
        for kind in ["user", "host"] : [for role in roles : { function = fn, role = role, kind = kind }]
      ] if contains(keys(local.deployed), fn)
    ]) : "${grant.kind}/${grant.function}/${grant.role}" => grant
  }

  # ca_api and acme serve /crl (shared/api/mounts.py) from the bucket; ocsp
  # reads the CRLs, the serial index and its certificate; issuer reads the
  # roots' ARLs before it signs; the dashboard reads the CRLs and the ARLs for
  # its authorities page; crl_publish reads and
  # overwrites (an overwrite needs objects.delete) what it publishes:
  # objectUser, which unlike objectAdmin cannot change object ACLs or IAM.
  crl_bucket_roles = {
    ca_api      = "roles/storage.objectViewer"
    acme        = "roles/storage.objectViewer"
    ocsp        = "roles/storage.objectViewer"
    issuer      = "roles/storage.objectViewer"
    dashboard   = "roles/storage.objectViewer"
    crl_publish = "roles/storage.objectUser"
  }

  # The Cloud Build account's project roles (build logs, the function image in
  # Artifact Registry's gcf-artifacts repository, which Cloud Functions creates).
  build_roles = ["roles/logging.logWriter", "roles/artifactregistry.writer"]

  crl_bucket_grants = {
    for fn, role in local.crl_bucket_roles : fn => { function = fn, role = role }
    if contains(keys(local.deployed), fn)
  }

  event_publishers = [for name, f in local.deployed : name if f.events]

  # Non-public invokers: the issuer's callers, the dashboard's users, and each
  # scheduled function's own trigger identity (Eventarc pushes as that account).
  invoker_grants = merge(
    { for caller in local.issuer_callers : "issuer/${caller}" => {
      function = "issuer"
      member   = "serviceAccount:${google_service_account.fn[caller].email}"
    } },
    { for member in var.dashboard_invokers : "dashboard/${member}" => {
      function = "dashboard"
      member   = member
    } if local.functions.dashboard.deployed },
    { for name, f in local.scheduled_functions : "${name}/trigger" => {
      function = name
      member   = "serviceAccount:${google_service_account.fn[name].email}"
    } },
  )

  public_functions = { for name, f in local.deployed : name => f if f.access == "public" }
}

resource "google_project_iam_member" "fn" {
  for_each = local.project_role_grants

  project = var.project_id
  role    = each.value.role
  member  = "serviceAccount:${google_service_account.fn[each.value.function].email}"

  condition {
    title       = "cirrus-firestore-only"
    description = "Only the Cirrus Firestore database"
    expression  = "resource.name == \"projects/${var.project_id}/databases/${google_firestore_database.cirrus.name}\""
  }
}

resource "google_kms_crypto_key_iam_member" "intermediate" {
  for_each = local.intermediate_key_grants

  crypto_key_id = google_kms_crypto_key.intermediate.id
  role          = each.value.role
  member        = "serviceAccount:${google_service_account.fn[each.value.function].email}"
}

resource "google_kms_crypto_key_iam_member" "ocsp_responder" {
  for_each = local.ocsp_key_grants

  crypto_key_id = google_kms_crypto_key.ocsp_responder.id
  role          = each.value.role
  member        = "serviceAccount:${google_service_account.fn[each.value.function].email}"
}

resource "google_kms_crypto_key_iam_member" "ssh" {
  for_each = local.ssh_key_grants

  crypto_key_id = google_kms_crypto_key.ssh[each.value.kind].id
  role          = each.value.role
  member        = "serviceAccount:${google_service_account.fn[each.value.function].email}"
}

resource "google_storage_bucket_iam_member" "crl" {
  for_each = local.crl_bucket_grants

  bucket = google_storage_bucket.crl.name
  role   = each.value.role
  member = "serviceAccount:${google_service_account.fn[each.value.function].email}"
}

resource "google_pubsub_topic_iam_member" "events_publisher" {
  for_each = toset(local.event_publishers)

  project = var.project_id
  topic   = google_pubsub_topic.events.name
  role    = "roles/pubsub.publisher"
  member  = "serviceAccount:${google_service_account.fn[each.key].email}"
}

resource "google_cloud_run_v2_service_iam_member" "invoker" {
  for_each = local.invoker_grants

  project  = var.project_id
  location = var.region
  name     = google_cloudfunctions2_function.fn[each.value.function].name
  role     = "roles/run.invoker"
  member   = each.value.member
}

resource "google_cloud_run_v2_service_iam_member" "public" {
  # Public on purpose: ca_api, acme and ocsp are a certificate authority's public protocol endpoints (step-ca API, RFC 8555, RFC 6960); clients authenticate with tokens, JWS or nothing, never Google IAM. The issuer and dashboard are excluded by the for_each filter.
  for_each = local.public_functions

  project  = var.project_id
  location = var.region
  name     = google_cloudfunctions2_function.fn[each.key].name
  role     = "roles/run.invoker"
  member   = "allUsers"
}
