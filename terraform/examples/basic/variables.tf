variable "project_id" {
  description = "Google Cloud project to deploy into. Billing must be enabled."
  type        = string
}

variable "region" {
  description = "Region of the functions and the Scheduler jobs, e.g. europe-west1."
  type        = string
}

variable "name_prefix" {
  description = "Prefix of resource names; change it to run two deployments in one project."
  type        = string
  default     = "cirrus"
}

variable "source_bundle_path" {
  description = "The zip built by `python infra/bundle.py`, relative to this directory."
  type        = string
  default     = "../../../dist/cirrus-functions.zip"
}

variable "kms_location" {
  description = "Cloud KMS location of the CA key ring; null uses var.region."
  type        = string
  default     = null
}

variable "key_ring_name" {
  description = "KMS key ring name; null uses \"<name_prefix>-ca\". Key rings are permanent: a name once used cannot be reused in that location."
  type        = string
  default     = null
}

variable "intermediate_key_version" {
  description = "Version of the intermediate key the functions sign with; bump it after a rotation ceremony (docs/deploy.md, Operations)."
  type        = number
  default     = 1
}

variable "ocsp_responder_key_version" {
  description = "Version of the OCSP responder key; bump it after adding a version to rotate the key (docs/deploy.md, Operations)."
  type        = number
  default     = 1
}

variable "external_url" {
  description = "Public base URL (no path) when a custom domain fronts the HTTP functions; null gives each function its run.app URL."
  type        = string
  default     = null
}

variable "max_instances" {
  description = "Upper bound on instances per HTTP function (cost cap under a request flood)."
  type        = number
  default     = 20
}

variable "min_instances" {
  description = "Instances kept warm per function, e.g. { ca_api = 1, ocsp = 1 } (no cold start, billed while idle); default none."
  type        = map(number)
  default     = {}
}

variable "instance_concurrency" {
  description = "Requests one instance serves at once, per HTTP function, e.g. { ocsp = 32 }; default 8 each."
  type        = map(number)
  default     = {}
}

variable "firestore_database" {
  description = "Firestore database ID; null uses \"(default)\" for the \"cirrus\" prefix and \"<name_prefix>-db\" otherwise."
  type        = string
  default     = null
}

variable "create_root_key" {
  description = "Also create an HSM root key in KMS. False keeps the root offline; see docs/deploy.md, 'Bootstrap the CA keys'."
  type        = bool
  default     = false
}

variable "ocsp_responder_key_protection_level" {
  description = "HSM (default) or SOFTWARE for the OCSP responder key, which signs OCSP responses (one KMS call per response not served from cache). Fixed when the key is created."
  type        = string
  default     = "HSM"
}

variable "firestore_location" {
  description = "Firestore location; null uses var.region. Fixed once the database exists."
  type        = string
  default     = null
}

variable "crl_bucket_location" {
  description = "Location of the CRL bucket (a region, dual-region or multi-region such as EU or US); null uses var.region."
  type        = string
  default     = null
}

variable "crl_version_retention_days" {
  description = "Days a superseded CRL bucket object version is kept (recovery from a bad publish)."
  type        = number
  default     = 30
}

variable "crl_publish_interval_minutes" {
  description = "Minutes between crl_publish runs (a divisor of 60). Each run also publishes the serial index the OCSP responder answers from, so at most 10 keeps OCSP authoritative within 15 minutes of issuance (BR, OCSP-08)."
  type        = number
  default     = 10
}

variable "dashboard_invokers" {
  description = "Principals allowed to use the dashboard, e.g. [\"group:pki-admins@example.com\"]."
  type        = list(string)
  default     = []
}

variable "labels" {
  description = "Labels for every resource that takes them."
  type        = map(string)
  default     = { app = "cirrus-ca" }
}
