# A complete Cirrus CA deployment in one project. See docs/deploy.md.
#
#   python infra/bundle.py --out dist/cirrus-functions.zip
#   cd terraform/examples/basic
#   cp terraform.tfvars.example terraform.tfvars   # then edit it
#   terraform init && terraform apply

provider "google" {
  project = var.project_id
  region  = var.region
}

module "cirrus" {
  source = "../../modules/cirrus"

  project_id         = var.project_id
  region             = var.region
  name_prefix        = var.name_prefix
  source_bundle_path = var.source_bundle_path

  external_url         = var.external_url
  max_instances        = var.max_instances
  min_instances        = var.min_instances
  instance_concurrency = var.instance_concurrency

  kms_location             = coalesce(var.kms_location, var.region)
  key_ring_name            = var.key_ring_name
  create_root_key          = var.create_root_key
  intermediate_key_version = var.intermediate_key_version

  ocsp_responder_key_protection_level = var.ocsp_responder_key_protection_level
  ocsp_responder_key_version          = var.ocsp_responder_key_version

  firestore_location = coalesce(var.firestore_location, var.region)
  firestore_database = var.firestore_database

  crl_bucket_location          = var.crl_bucket_location
  crl_version_retention_days   = var.crl_version_retention_days
  crl_publish_interval_minutes = var.crl_publish_interval_minutes

  dashboard_invokers = var.dashboard_invokers
  labels             = var.labels
}
