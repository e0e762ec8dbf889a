output "instance_id" {
  description = "The VM's instance id (the key of its trust-on-first-use claim at the CA)."
  value       = google_compute_instance.vm.instance_id
}

output "internal_dns_names" {
  description = "The names a disableCustomSANs provisioner puts in the VM's certificate."
  value = [
    "${var.name}.c.${var.project_id}.internal",
    "${var.name}.${var.zone}.c.${var.project_id}.internal",
  ]
}
