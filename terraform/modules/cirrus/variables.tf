variable "project_id" {
  description = "Google Cloud project that hosts the whole deployment."
  type        = string
}

variable "region" {
  description = "Region for the functions, the Scheduler jobs and the Eventarc triggers."
  type        = string
}

variable "name_prefix" {
  description = "Prefix of every named resource, so two deployments can share a project. Lowercase letters, digits and hyphens (Cloud Run service names allow nothing else)."
  type        = string
  default     = "cirrus"

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{0,14}$", var.name_prefix))
    error_message = "name_prefix must start with a letter and use at most 15 lowercase letters, digits or hyphens."
  }
}

variable "source_bundle_path" {
  description = "Path of the zip built by `python infra/bundle.py` (functions/main.py, the shared package and requirements.txt). Its MD5 names the uploaded object, so a new bundle redeploys every function."
  type        = string
}

variable "config_path" {
  description = "Path, inside the bundle, of the deployment's config.json (CIRRUS_CONFIG). `python infra/bundle.py --config-dir DIR` ships DIR as config/."
  type        = string
  default     = "config/config.json"
}

variable "external_url" {
  description = "Public base URL, with no path, when a load balancer or custom domain fronts the HTTP functions; null makes each function use its own run.app URL in the links it returns and in the token audiences it accepts."
  type        = string
  default     = null

  validation {
    condition     = var.external_url == null || can(regex("^https://[^/]+$", var.external_url))
    error_message = "external_url must be an https origin with no path (step resolves its routes against the host root)."
  }
}

variable "kms_location" {
  description = "Cloud KMS location of the key ring. HSM protection needs a location that offers Cloud HSM (most regions and multi-regions do)."
  type        = string
}

variable "key_ring_name" {
  description = "Name of the KMS key ring; null uses \"<name_prefix>-ca\", so two deployments in one project get two rings. Key rings can never be deleted, so pick a name you will not want back."
  type        = string
  default     = null
}

variable "intermediate_key_algorithm" {
  description = "Algorithm of the intermediate (issuing) CA key. The Cirrus KMS backend supports EC P-256/P-384 and RSA PKCS#1 v1.5."
  type        = string
  default     = "EC_SIGN_P256_SHA256"

  validation {
    condition = contains([
      "EC_SIGN_P256_SHA256",
      "EC_SIGN_P384_SHA384",
      "RSA_SIGN_PKCS1_2048_SHA256",
      "RSA_SIGN_PKCS1_3072_SHA256",
      "RSA_SIGN_PKCS1_4096_SHA256",
    ], var.intermediate_key_algorithm)
    error_message = "intermediate_key_algorithm must be an EC P-256/P-384 or RSA PKCS#1 signing algorithm."
  }
}

variable "intermediate_key_version" {
  description = "Version of the intermediate key the functions sign with. KMS creates version 1 with the key; bump this after a key rotation ceremony."
  type        = number
  default     = 1
}

variable "ocsp_responder_key_protection_level" {
  description = "Protection level of the delegated OCSP responder key (EC P-256), which signs OCSP responses (one KMS call per response an instance has not cached): HSM (default, like the CA keys) or SOFTWARE (cheaper per signature; the key still never leaves KMS). KMS fixes it when the key is created, so choose before the first apply."
  type        = string
  default     = "HSM"

  validation {
    condition     = contains(["HSM", "SOFTWARE"], var.ocsp_responder_key_protection_level)
    error_message = "ocsp_responder_key_protection_level must be HSM or SOFTWARE."
  }
}

variable "ocsp_responder_key_version" {
  description = "Version of the OCSP responder key the ocsp function signs with and crl_publish certifies (CIRRUS_OCSP_KEY). KMS creates version 1 with the key; bump this after adding a version to rotate it."
  type        = number
  default     = 1
}

variable "create_root_key" {
  description = "Create an HSM root key in the same key ring. Leave false to keep the root entirely offline (recommended when you have a ceremony process); no function is ever granted use of the root key either way."
  type        = bool
  default     = false
}

variable "root_key_algorithm" {
  description = "Algorithm of the optional root key."
  type        = string
  default     = "EC_SIGN_P384_SHA384"
}

variable "firestore_location" {
  description = "Firestore location (a region such as europe-west1 or a multi-region such as nam5). It cannot be changed after creation."
  type        = string
}

variable "firestore_database" {
  description = "Firestore database ID. Null uses \"(default)\" (free-tier eligible) when name_prefix is \"cirrus\" and \"<name_prefix>-db\" otherwise, so a second deployment in the project gets its own database; a named database also isolates Cirrus from other apps in the project."
  type        = string
  default     = null
}

variable "firestore_shards" {
  description = "Shards of every time-ordered Firestore index (the `shard` field leading each composite index; docs/scale.md). Firestore sustains about 500 writes/s into a rising index range, so N shards carry about N x 500 issuances/s; the default 16 covers 5,000/s with headroom. Raise it freely; lowering it needs a shard backfill first."
  type        = number
  default     = 16

  validation {
    condition     = var.firestore_shards >= 1 && var.firestore_shards <= 64 && floor(var.firestore_shards) == var.firestore_shards
    error_message = "firestore_shards must be an integer from 1 to 64."
  }
}

variable "crl_bucket_name" {
  description = "Globally unique name of the bucket that holds published CRLs, the issued-serial index and the OCSP responder certificate. Null derives one from the project ID."
  type        = string
  default     = null
}

variable "crl_bucket_location" {
  description = "Location of the CRL bucket and of the function source bucket; null uses var.region."
  type        = string
  default     = null
}

variable "crl_version_retention_days" {
  description = "Days a superseded (noncurrent) object version is kept in the CRL bucket before deletion. Versioning lets you recover from a bad publish; this bounds its cost."
  type        = number
  default     = 30
}

variable "crl_versions_kept" {
  description = "Superseded versions of each CRL object kept in the bucket (newest first); older ones are deleted by a lifecycle rule, as are versions older than crl_version_retention_days."
  type        = number
  default     = 100

  validation {
    condition     = var.crl_versions_kept >= 1
    error_message = "crl_versions_kept must be at least 1."
  }
}

variable "serial_index_segment_max_age_days" {
  description = "Age in days after which a lifecycle rule deletes serial-index segments (ocsp-index/*.bin) the publisher failed to delete. Must exceed the longest certificate lifetime any provisioner allows plus one day (the index keeps a segment until a day after its last certificate expires); the default covers the 398-day public TLS maximum."
  type        = number
  default     = 400

  validation {
    condition     = var.serial_index_segment_max_age_days >= 2
    error_message = "serial_index_segment_max_age_days must be at least 2."
  }
}

variable "crl_publish_interval_minutes" {
  description = "How often Cloud Scheduler triggers crl_publish, which publishes the CRLs, the issued-serial index the OCSP responder answers from, and the responder certificate. Must divide 60. At most 10 keeps OCSP authoritative within 15 minutes of issuance (CA/B Forum BRs, standards OCSP-08): a new certificate waits up to one interval for the index, plus up to a minute for responder instances to re-read it, plus the run itself. The CRL's own validity (crl.cacheDuration in config.json) does not depend on it."
  type        = number
  default     = 10

  validation {
    condition     = contains([1, 2, 3, 4, 5, 6, 10, 12, 15, 20, 30, 60], var.crl_publish_interval_minutes)
    error_message = "crl_publish_interval_minutes must divide 60."
  }
}

variable "sweep_schedule" {
  description = "Cron schedule (UTC) of the sweep: expiry alerts, used-token and nonce cleanup."
  type        = string
  default     = "0 * * * *"
}

variable "dashboard_invokers" {
  description = "IAM principals allowed to open the dashboard, e.g. [\"group:pki-admins@example.com\"]. Empty means nobody until you add one."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for m in var.dashboard_invokers : !contains(["allUsers", "allAuthenticatedUsers"], m)])
    error_message = "The dashboard is never public: allUsers and allAuthenticatedUsers are refused."
  }
}

variable "max_instances" {
  description = "Upper bound on instances per HTTP function; it caps cost under a request flood. Scheduled functions always run at most one instance."
  type        = number
  default     = 20
}

variable "min_instances" {
  description = "Instances kept warm per function, by function name (e.g. { ca_api = 1, ocsp = 1 }): a kept instance answers without a cold start (README: what a cold start costs) and is billed while idle. Unlisted functions scale to zero (default: all)."
  type        = map(number)
  default     = {}

  validation {
    condition     = alltrue([for name, n in var.min_instances : contains(["ca_api", "acme", "ocsp", "issuer", "dashboard", "crl_publish", "sweep"], name) && n >= 0 && n <= 100 && floor(n) == n])
    error_message = "min_instances maps a function name (ca_api, acme, ocsp, issuer, dashboard, crl_publish, sweep) to a whole number from 0 to 100."
  }
}

variable "instance_concurrency" {
  description = "Requests one instance serves at once, by HTTP function name (2nd gen max_instance_request_concurrency), over each function's default in local.functions (8 for every HTTP function). Above 1 the function gets one whole vCPU, which Cloud Run requires for it; 1 gives the memory size's default fraction. Scheduled functions always take one at a time."
  type        = map(number)
  default     = {}

  validation {
    condition     = alltrue([for name, n in var.instance_concurrency : contains(["ca_api", "acme", "ocsp", "issuer", "dashboard"], name) && n >= 1 && n <= 1000 && floor(n) == n])
    error_message = "instance_concurrency maps an HTTP function name (ca_api, acme, ocsp, issuer, dashboard) to a whole number from 1 to 1000."
  }
}

variable "labels" {
  description = "Labels added to every resource that takes them."
  type        = map(string)
  default     = {}
}
