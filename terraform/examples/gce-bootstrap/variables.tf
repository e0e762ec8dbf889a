variable "project_id" {
  description = "The project the VM runs in (one of the GCP provisioner's projectIDs)."
  type        = string
}

variable "region" {
  description = "The region of the provider's default location."
  type        = string
  default     = "us-central1"
}

variable "zone" {
  description = "The zone the VM runs in."
  type        = string
  default     = "us-central1-a"
}

variable "name" {
  description = "The VM's name: its certificate's common name and the first label of its internal DNS names."
  type        = string
  default     = "web-1"
}

variable "machine_type" {
  description = "The VM's machine type."
  type        = string
  default     = "e2-small"
}

variable "image" {
  description = "The boot image (a Debian or Ubuntu image with python3 and systemd)."
  type        = string
  default     = "debian-cloud/debian-12"
}

variable "subnetwork" {
  description = "The subnetwork to attach the VM to (with Cloud NAT for outbound access)."
  type        = string
  default     = "default"
}

variable "ca_url" {
  description = "The Cirrus CA's URL, e.g. the ca_url output of the basic example."
  type        = string
}

variable "ca_fingerprint" {
  description = "Hex SHA-256 of the CA's root certificate: the only trust the VM starts with."
  type        = string
}

variable "provisioner" {
  description = "The name of the CA's GCP provisioner."
  type        = string
  default     = "gce"
}

variable "cirrus_package" {
  description = "What pip installs for the cirrus client (a package name, wheel URL or path)."
  type        = string
  default     = "cirrus-ca"
}

variable "labels" {
  description = "Labels for the VM."
  type        = map(string)
  default     = {}
}
