# Firestore in native mode holds every record. Its composite indexes and TTL
# policies come from shared/store/firestore_indexes.json (Firebase CLI format,
# written next to the store backend whose queries need them) when the module is
# used from this repository, and from firestore_indexes.default.json otherwise.

locals {
  repo_index_file = "${path.module}/../../../shared/store/firestore_indexes.json"
  index_file      = fileexists(local.repo_index_file) ? local.repo_index_file : "${path.module}/firestore_indexes.default.json"
  index_spec      = jsondecode(file(local.index_file))

  firestore_indexes = {
    for ix in local.index_spec.indexes :
    join("/", concat([ix.collectionGroup], [for f in ix.fields : f.fieldPath])) => ix
  }

  # Collections whose documents expire (used tokens, ACME nonces, expiring
  # documents): Firestore deletes them once their TTL field is in the past.
  ttl_fields = {
    for o in try(local.index_spec.fieldOverrides, []) :
    "${o.collectionGroup}/${o.fieldPath}" => o if try(o.ttl, false)
  }
}

resource "google_firestore_database" "cirrus" {
  project                           = var.project_id
  name                              = var.firestore_database
  location_id                       = var.firestore_location
  type                              = "FIRESTORE_NATIVE"
  app_engine_integration_mode       = "DISABLED"
  point_in_time_recovery_enablement = "POINT_IN_TIME_RECOVERY_ENABLED"
  delete_protection_state           = "DELETE_PROTECTION_ENABLED"
  deletion_policy                   = "ABANDON"

  depends_on = [google_project_service.apis]
}

resource "google_firestore_index" "cirrus" {
  for_each = local.firestore_indexes

  project     = var.project_id
  database    = google_firestore_database.cirrus.name
  collection  = each.value.collectionGroup
  query_scope = try(each.value.queryScope, "COLLECTION")

  dynamic "fields" {
    for_each = each.value.fields
    content {
      field_path = fields.value.fieldPath
      order      = try(fields.value.order, null)
    }
  }
}

resource "google_firestore_field" "ttl" {
  for_each = local.ttl_fields

  project    = var.project_id
  database   = google_firestore_database.cirrus.name
  collection = each.value.collectionGroup
  field      = each.value.fieldPath

  ttl_config {}

  # No single-field indexes on the TTL timestamp: a monotonically increasing
  # indexed field caps a collection's write rate, and nothing queries it.
  index_config {}
}
