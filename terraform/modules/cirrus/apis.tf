# Every resource that calls a Google API depends on this enablement, directly
# (depends_on) or through a resource it refers to: on a fresh project Terraform
# would otherwise create key rings, accounts, topics and buckets in parallel with
# turning their APIs on, and the first apply fails. tests/infra/test_terraform.py
# walks those references for every resource. Cloud Resource Manager serves the
# project IAM bindings and the project-number lookup; Compute backs the default
# network Cloud Run and Cloud Build use.
locals {
  required_apis = [
    "cloudbuild.googleapis.com",
    "artifactregistry.googleapis.com",
    "cloudfunctions.googleapis.com",
    "run.googleapis.com",
    "eventarc.googleapis.com",
    "pubsub.googleapis.com",
    "cloudscheduler.googleapis.com",
    "firestore.googleapis.com",
    "cloudkms.googleapis.com",
    "storage.googleapis.com",
    "iam.googleapis.com",
    "cloudresourcemanager.googleapis.com",
    "compute.googleapis.com",
  ]
}

resource "google_project_service" "apis" {
  for_each = toset(local.required_apis)

  project            = var.project_id
  service            = each.value
  disable_on_destroy = false
}
