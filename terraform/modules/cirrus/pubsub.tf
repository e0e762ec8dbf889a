# Pub/Sub: the events topic (lifecycle CloudEvents for subscribers) and one
# "tick" topic per scheduled function, fed by Cloud Scheduler.

resource "google_pubsub_topic" "events" {
  #checkov:skip=CKV_GCP_83:Events carry certificate metadata already public to relying parties (serials, subjects, validity), encrypted at rest with Google-managed keys; CMEK here would add a symmetric key and a service-agent grant for no gain in this threat model.
  project                    = var.project_id
  name                       = "${var.name_prefix}-events"
  labels                     = var.labels
  message_retention_duration = "604800s"

  depends_on = [google_project_service.apis]
}

resource "google_pubsub_topic" "tick" {
  #checkov:skip=CKV_GCP_83:Tick messages only name the job to run ({"job": "sweep"}); there is nothing to protect with a customer key.
  for_each = local.scheduled_functions

  project = var.project_id
  name    = "${local.function_names[each.key]}-tick"
  labels  = var.labels

  depends_on = [google_project_service.apis]
}

resource "google_cloud_scheduler_job" "tick" {
  for_each = local.scheduled_functions

  project     = var.project_id
  region      = var.region
  name        = "${local.function_names[each.key]}-tick"
  description = "Triggers ${each.key}: ${each.value.description}"
  schedule    = local.schedules[each.key]
  time_zone   = "Etc/UTC"

  pubsub_target {
    topic_name = google_pubsub_topic.tick[each.key].id
    data       = base64encode(jsonencode({ job = each.key }))
  }

  depends_on = [google_project_service.apis]
}
