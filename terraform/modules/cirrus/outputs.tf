locals {
  # Each HTTP function's client-facing URL, null for one not deployed.
  deployed_external_url = {
    for name, f in local.functions : name => f.deployed ? local.external_urls[name] : null
  }
}

output "function_urls" {
  description = "HTTPS URL (run.app, no path) of each HTTP function; scheduled functions have none."
  value = {
    for name, f in local.deployed : name => google_cloudfunctions2_function.fn[name].service_config[0].uri
    if f.trigger == "http"
  }
}

output "ca_url" {
  description = "Where step CLI clients point (`step ca bootstrap --ca-url`): an address with no path (ca_api's run.app URL, or external_url when a custom domain fronts the functions), which is also the host ca_api and the issuer accept in token audiences."
  value       = local.deployed_external_url["ca_api"]
}

output "acme_directory_base" {
  description = "Base of the ACME directories; append `/acme/<provisioner>/directory`."
  value       = local.deployed_external_url["acme"]
}

output "ocsp_url" {
  description = "OCSP responder URL to put in the authority information access extension (config.json crl.ocspURL); the function answers at any path."
  value       = local.deployed_external_url["ocsp"]
}

output "issuer_url" {
  description = "Private issuer URL, callable only by the ca_api and acme service accounts (null until the issuer is deployed)."
  value       = local.issuer_deployed ? local.issuer_url : null
}

output "crl_bucket" {
  description = "Bucket holding the published CRLs (public, under crl/), the issued-serial index and the OCSP responder certificate (both private)."
  value       = google_storage_bucket.crl.name
}

output "crl_base_url" {
  description = "Public HTTP base of the CRLs (config.json crl.baseURL): the bucket's root. Cirrus appends the object name, crl/<authority>.crl, itself."
  value       = "https://storage.googleapis.com/${google_storage_bucket.crl.name}"
}

output "intermediate_key_id" {
  description = "Cloud KMS key of the intermediate CA."
  value       = google_kms_crypto_key.intermediate.id
}

output "intermediate_key_uri" {
  description = "The cloudkms: URI the issuer and crl_publish sign with (CIRRUS_KEY)."
  value       = local.signing_key_uri
}

output "ocsp_responder_key_id" {
  description = "Cloud KMS key of the delegated OCSP responder; crl_publish certifies it, nobody needs to by hand."
  value       = google_kms_crypto_key.ocsp_responder.id
}

output "ocsp_responder_key_uri" {
  description = "The cloudkms: URI the ocsp function signs with and crl_publish certifies (CIRRUS_OCSP_KEY)."
  value       = local.ocsp_responder_key_uri
}

output "ssh_key_uris" {
  description = "The cloudkms: URIs of the SSH user and host CA keys (CIRRUS_SSH_USER_KEY, CIRRUS_SSH_HOST_KEY)."
  value       = local.ssh_key_uris
}

output "root_key_id" {
  description = "Cloud KMS key of the root CA, or null when the root is kept offline."
  value       = var.create_root_key ? google_kms_crypto_key.root[0].id : null
}

output "firestore_database" {
  description = "Firestore database name (CIRRUS_STORE)."
  value       = google_firestore_database.cirrus.name
}

output "events_topic" {
  description = "Pub/Sub topic carrying lifecycle events; subscribe to it to consume them."
  value       = google_pubsub_topic.events.id
}

output "service_accounts" {
  description = "Runtime service account email of each function."
  value       = { for name, sa in google_service_account.fn : name => sa.email }
}
