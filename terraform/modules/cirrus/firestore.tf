# Firestore in native mode holds every record. Its composite indexes and TTL
# policies come from shared/store/firestore_indexes.json (Firebase CLI format,
# written next to the store backend whose queries need them) when the module is
# used from this repository, and from firestore_indexes.default.json otherwise.

locals {
  repo_index_file = "${path.module}/../../../shared/store/firestore_indexes.json"
  index_file      = fileexists(local.repo_index_file) ? local.repo_index_file : "${path.module}/firestore_indexes.default.json"
  index_spec      = jsondecode(file(local.index_file))

  # "(default)" is the one free-tier database and there is one per project, so
  # only the default prefix takes it; another prefix gets its own database.
  firestore_database = coalesce(var.firestore_database, var.name_prefix == "cirrus" ? "(default)" : "${var.name_prefix}-db")

  firestore_indexes = {
    for ix in local.index_spec.indexes :
    join("/", concat([ix.collectionGroup], [for f in ix.fields : f.fieldPath])) => ix
  }

  # Every field override of the JSON: TTL policies (used tokens, ACME nonces,
  # expiring documents) and single-field index exemptions. An override's
  # "indexes" list is exactly the single-field indexes the field keeps: []
  # exempts it (large or monotonic fields nothing queries), a list keeps those
  # (claims.expireAt, which purge_expired queries). tests/infra/
  # test_firestore_queries.py proves every query the store issues is served.
  field_overrides = {
    for o in try(local.index_spec.fieldOverrides, []) :
    "${o.collectionGroup}/${o.fieldPath}" => o
  }
}

resource "google_firestore_database" "cirrus" {
  project                           = var.project_id
  name                              = local.firestore_database
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

moved {
  from = google_firestore_field.ttl
  to   = google_firestore_field.override
}

resource "google_firestore_field" "override" {
  for_each = local.field_overrides

  project    = var.project_id
  database   = google_firestore_database.cirrus.name
  collection = each.value.collectionGroup
  field      = each.value.fieldPath

  dynamic "ttl_config" {
    for_each = try(each.value.ttl, false) ? [each.key] : []
    content {}
  }

  index_config {
    dynamic "indexes" {
      for_each = each.value.indexes
      content {
        order        = try(indexes.value.order, null)
        array_config = try(indexes.value.arrayConfig, null)
        query_scope  = try(indexes.value.queryScope, "COLLECTION")
      }
    }
  }
}
