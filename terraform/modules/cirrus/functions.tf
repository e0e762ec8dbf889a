# The functions of a Cirrus deployment. One entry per entry point in
# functions/main.py: tests/infra/test_terraform.py fails when the two differ,
# so a new entry point cannot ship without its resource, and the reverse.
#
#   trigger  "http" or "schedule" (CloudEvent from a Pub/Sub topic fed by Cloud Scheduler)
#   access   who may invoke: "public" (allUsers), "internal" (only the service
#            accounts of the functions listed in local.issuer_callers),
#            "authenticated" (var.dashboard_invokers), "event" (its own trigger)
#   signs    gets CIRRUS_KEY and KMS signing permission on the intermediate key
#            (the OCSP responder key, CIRRUS_OCSP_KEY, goes by local.ocsp_key_roles
#            in iam.tf instead: ocsp signs with it, crl_publish certifies it)
#   events   may publish lifecycle events to the events topic
#   concurrency  requests one instance serves at once by default (var.instance_concurrency
#            overrides it per function): 8 for the HTTP functions, whose requests mostly
#            wait on Firestore, KMS or the bucket, so one instance (and one cold start)
#            serves a burst that would otherwise start eight; 1 for the scheduled ones
#   deployed false while its entry point has not landed in functions/main.py:
#            declared here so the design is whole, but nothing is created for
#            it (Cloud Build would fail on a missing entry point). The test
#            says which flag to flip when main.py gains or loses one.
locals {
  functions = {
    ca_api = {
      description  = "step-ca HTTP API (sign, renew, revoke, roots, provisioners)"
      trigger      = "http"
      access       = "public"
      signs        = false
      events       = true
      calls_issuer = true
      deployed     = true
      memory       = "512Mi"
      timeout      = 60
      concurrency  = 8
    }
    acme = {
      description  = "ACME (RFC 8555) server"
      trigger      = "http"
      access       = "public"
      signs        = false
      events       = true
      calls_issuer = true
      deployed     = true
      memory       = "512Mi"
      timeout      = 60
      concurrency  = 8
    }
    ocsp = {
      description  = "OCSP responder answering from the published CRLs and serial index, signing with the delegated responder key"
      trigger      = "http"
      access       = "public"
      signs        = false
      events       = false
      calls_issuer = false
      deployed     = true
      memory       = "256Mi"
      timeout      = 30
      concurrency  = 8
    }
    issuer = {
      description  = "Private signing service: the only HTTP function allowed to use the intermediate key"
      trigger      = "http"
      access       = "internal"
      signs        = true
      events       = true
      calls_issuer = false
      deployed     = true
      memory       = "512Mi"
      timeout      = 60
      concurrency  = 8
    }
    dashboard = {
      description  = "Operator dashboard (authenticated users only)"
      trigger      = "http"
      access       = "authenticated"
      signs        = false
      events       = true
      calls_issuer = false
      deployed     = true
      memory       = "512Mi"
      timeout      = 60
      concurrency  = 8
    }
    crl_publish = {
      description  = "Signs and publishes CRLs and the issued-serial index; renews the OCSP responder certificate"
      trigger      = "schedule"
      access       = "event"
      signs        = true
      events       = true
      calls_issuer = false
      deployed     = true
      memory       = "1Gi"
      timeout      = 540
      concurrency  = 1
    }
    sweep = {
      description  = "Expiry alerts; cleanup of used tokens and nonces"
      trigger      = "schedule"
      access       = "event"
      signs        = false
      events       = true
      calls_issuer = false
      deployed     = true
      memory       = "512Mi"
      timeout      = 540
      concurrency  = 1
    }
  }

  deployed        = { for name, f in local.functions : name => f if f.deployed }
  issuer_deployed = local.functions.issuer.deployed

  # Functions that call the private issuer. Until the issuer is deployed its
  # callers issue in-process and therefore sign themselves (local.signers):
  # deploying the issuer takes KMS access away from the internet-facing ones.
  issuer_callers = [for name, f in local.deployed : name if f.calls_issuer && local.issuer_deployed]
  signers        = [for name, f in local.deployed : name if f.signs || (f.calls_issuer && !local.issuer_deployed)]

  # Cloud Scheduler cadence of each scheduled function. crl_publish also
  # publishes the serial index that tells the OCSP responder a certificate
  # exists, so its interval bounds how long a new certificate reads "unknown"
  # (default 10 minutes: OCSP-08 allows 15; see var.crl_publish_interval_minutes).
  schedules = {
    crl_publish = "*/${var.crl_publish_interval_minutes} * * * *"
    sweep       = var.sweep_schedule
  }

  scheduled_functions = { for name, f in local.deployed : name => f if f.trigger == "schedule" }

  # Instance sizing against cold starts (README "Cold starts"): warm instances and requests per
  # instance, each function's default overridden by the variables.
  min_instances = { for name, f in local.functions : name => lookup(var.min_instances, name, 0) }
  concurrency = {
    for name, f in local.functions :
    name => f.trigger == "schedule" ? 1 : lookup(var.instance_concurrency, name, f.concurrency)
  }

  # Cloud Run service names allow no underscores.
  function_names = { for name, f in local.functions : name => "${var.name_prefix}-${replace(name, "_", "-")}" }

  # 2nd gen functions answer on this URL as well as on their run.app URL. It is
  # computed rather than read from the issuer resource so that every function
  # can be one for_each resource without referring to itself.
  issuer_url = local.own_urls["issuer"]

  signing_key_uri = "cloudkms:${google_kms_crypto_key.intermediate.id}/cryptoKeyVersions/${var.intermediate_key_version}"

  # The delegated OCSP responder key (CIRRUS_OCSP_KEY): ocsp signs with it,
  # crl_publish reads its public key to certify it. Same functions as the
  # grants on it (local.ocsp_key_roles), so the URI never reaches a function
  # that could not use it.
  ocsp_responder_key_uri = "cloudkms:${google_kms_crypto_key.ocsp_responder.id}/cryptoKeyVersions/${var.ocsp_responder_key_version}"

  # The SSH CA keys (CIRRUS_SSH_USER_KEY, CIRRUS_SSH_HOST_KEY), handed to the
  # functions with a role on them (local.ssh_key_roles).
  ssh_key_uris = { for kind, key in google_kms_crypto_key.ssh : kind => "cloudkms:${key.id}/cryptoKeyVersions/1" }

  # Each HTTP function's own address: its Cloud Run URL, https://SERVICE-PROJECT_NUMBER.REGION.run.app,
  # with no path. The step CLI resolves /root, /1.0/sign ... against the host
  # root, so a path-bearing address (REGION-PROJECT.cloudfunctions.net/NAME)
  # loses its path and reaches nothing; the run.app host keeps every route
  # where step-ca has it. It is computed (deterministic per service) rather than
  # read from the function so that every function can be one for_each resource
  # without referring to itself.
  own_urls = {
    for name, f in local.functions :
    name => "https://${local.function_names[name]}-${data.google_project.this.number}.${var.region}.run.app"
  }

  # The external URL each HTTP function puts in links (ACME directory,
  # certificate URLs) and whose host its token audience check accepts.
  # var.external_url (a custom domain fronting them all) wins. The issuer gets
  # ca_api's: it re-checks the tokens clients minted for ca_api's address
  # (`aud` = <ca_url>/1.0/sign), so that host must be one it accepts.
  external_urls = {
    for name, f in local.functions :
    name => coalesce(var.external_url, local.own_urls[name == "issuer" ? "ca_api" : name])
  }

  # Settings every function reads (shared/config.py is their only reader).
  # CIRRUS_CONFIG names the config.json shipped in the bundle (infra/bundle.py
  # --config-dir); the others override its store, blobs and key entries.
  common_env = {
    CIRRUS_CONFIG = var.config_path
    CIRRUS_STORE  = "firestore:projects/${var.project_id}/databases/${google_firestore_database.cirrus.name}?shards=${var.firestore_shards}"
    CIRRUS_BLOBS  = "gs://${google_storage_bucket.crl.name}"
    CIRRUS_EVENTS = "pubsub:${google_pubsub_topic.events.id}"
  }

  function_env = {
    for name, f in local.deployed : name => merge(
      local.common_env,
      contains(local.signers, name) ? { CIRRUS_KEY = local.signing_key_uri } : {},
      contains(keys(local.ocsp_key_roles), name) ? { CIRRUS_OCSP_KEY = local.ocsp_responder_key_uri } : {},
      contains(keys(local.ssh_key_roles), name) ? { CIRRUS_SSH_USER_KEY = local.ssh_key_uris["user"] } : {},
      contains(keys(local.ssh_key_roles), name) ? { CIRRUS_SSH_HOST_KEY = local.ssh_key_uris["host"] } : {},
      contains(local.issuer_callers, name) ? { CIRRUS_ISSUER_URL = local.issuer_url } : {},
      f.trigger == "http" ? { CIRRUS_EXTERNAL_URL = local.external_urls[name] } : {},
      # The Functions Framework's gunicorn runs THREADS request threads (default 4 per CPU):
      # as many as the requests Cloud Run sends at once, so none waits for a thread.
      f.trigger == "http" ? { THREADS = tostring(local.concurrency[name]) } : {},
    )
  }
}

data "google_project" "this" {
  project_id = var.project_id

  depends_on = [google_project_service.apis]
}

resource "google_storage_bucket" "source" {
  #checkov:skip=CKV_GCP_62:Holds only the function source zip, which is also in version control; access logs add nothing.
  project                     = var.project_id
  name                        = "${var.project_id}-${var.name_prefix}-fn-source"
  location                    = local.bucket_location
  uniform_bucket_level_access = true
  public_access_prevention    = "enforced"
  force_destroy               = true
  labels                      = var.labels

  versioning {
    enabled = true
  }

  lifecycle_rule {
    condition {
      days_since_noncurrent_time = 7
    }
    action {
      type = "Delete"
    }
  }

  depends_on = [google_project_service.apis]
}

resource "google_storage_bucket_object" "bundle" {
  # Named by content so that a new bundle changes the functions' source and redeploys them.
  name   = "cirrus-${filemd5(var.source_bundle_path)}.zip"
  bucket = google_storage_bucket.source.name
  source = var.source_bundle_path
}

resource "google_cloudfunctions2_function" "fn" {
  #checkov:skip=CKV_GCP_124:ca_api, acme and ocsp are public protocol endpoints and must accept internet traffic; the issuer and dashboard need ALLOW_ALL too (callers without a VPC connector arrive from outside) and are closed by IAM instead; scheduled functions get ALLOW_INTERNAL_ONLY.
  for_each = local.deployed

  project     = var.project_id
  location    = var.region
  name        = local.function_names[each.key]
  description = each.value.description
  labels      = var.labels

  build_config {
    runtime     = "python311"
    entry_point = each.key
    # Our own build identity: new projects, and organisations that stop the
    # automatic grants to the default compute/Cloud Build accounts, fail builds
    # that run as those.
    service_account = google_service_account.build.id
    source {
      storage_source {
        bucket = google_storage_bucket.source.name
        object = google_storage_bucket_object.bundle.name
      }
    }
  }

  service_config {
    service_account_email = google_service_account.fn[each.key].email
    available_memory      = each.value.memory
    timeout_seconds       = each.value.timeout
    min_instance_count    = local.min_instances[each.key]
    # More than one request at a time needs a whole vCPU (Cloud Run refuses it on a fraction);
    # imports at start are CPU-bound too, so the whole vCPU also shortens each cold start.
    max_instance_request_concurrency = local.concurrency[each.key]
    available_cpu                    = local.concurrency[each.key] > 1 ? "1" : null
    # Scheduled functions run one at a time: two crl_publish instances would
    # race on the CRL number and the serial index (each write has a generation
    # precondition, so one run fails), and a tick every few minutes needs no more.
    max_instance_count             = each.value.trigger == "schedule" ? 1 : var.max_instances
    all_traffic_on_latest_revision = true
    # Scheduled functions are reached only through Eventarc; HTTP functions sit
    # behind IAM (see iam.tf), which is what keeps the issuer private: functions
    # without a VPC connector reach each other over Google's front end, which
    # internal-only ingress would refuse.
    ingress_settings      = each.value.trigger == "schedule" ? "ALLOW_INTERNAL_ONLY" : "ALLOW_ALL"
    environment_variables = local.function_env[each.key]
  }

  dynamic "event_trigger" {
    for_each = each.value.trigger == "schedule" ? [each.key] : []
    content {
      trigger_region        = var.region
      event_type            = "google.cloud.pubsub.topic.v1.messagePublished"
      pubsub_topic          = google_pubsub_topic.tick[event_trigger.value].id
      retry_policy          = "RETRY_POLICY_DO_NOT_RETRY"
      service_account_email = google_service_account.fn[each.key].email
    }
  }

  depends_on = [
    google_project_service.apis,
    google_project_iam_member.build,
    google_storage_bucket_iam_member.build_source,
  ]
}
