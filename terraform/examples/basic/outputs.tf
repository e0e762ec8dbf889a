output "ca_url" {
  description = "Point step CLI clients here: `step ca bootstrap --ca-url <ca_url> --fingerprint <root fingerprint>`."
  value       = module.cirrus.ca_url
}

output "acme_directory_base" {
  description = "ACME clients use <acme_directory_base>/acme/<provisioner>/directory."
  value       = module.cirrus.acme_directory_base
}

output "ocsp_url" {
  description = "OCSP responder URL for the AIA extension of issued certificates."
  value       = module.cirrus.ocsp_url
}

output "function_urls" {
  description = "URL of every HTTP function, by entry point."
  value       = module.cirrus.function_urls
}

output "crl_bucket" {
  description = "Bucket that holds the published CRLs."
  value       = module.cirrus.crl_bucket
}

output "crl_base_url" {
  description = "Public base URL of the CRLs, for the CRL distribution points extension."
  value       = module.cirrus.crl_base_url
}

output "intermediate_key_id" {
  description = "KMS key of the intermediate CA; its version 1 is what `cirrus ca bootstrap --kms` certifies."
  value       = module.cirrus.intermediate_key_id
}

output "intermediate_key_uri" {
  description = "cloudkms: URI the issuer signs with."
  value       = module.cirrus.intermediate_key_uri
}

output "ocsp_responder_key_uri" {
  description = "cloudkms: URI of the delegated OCSP responder key; crl_publish certifies it on its first run."
  value       = module.cirrus.ocsp_responder_key_uri
}

output "root_key_id" {
  description = "KMS key of the root CA, or null when the root is offline."
  value       = module.cirrus.root_key_id
}

output "events_topic" {
  description = "Pub/Sub topic of lifecycle events."
  value       = module.cirrus.events_topic
}
