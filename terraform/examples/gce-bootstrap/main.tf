# A GCE VM that gets its TLS certificate from Cirrus CA at boot, from its instance identity.
#
# The CA needs a GCP provisioner for this project (config.json, step-ca's shape):
#   {"type": "GCP", "name": "gce", "projectIDs": ["<project>"], "disableCustomSANs": true}
# On first boot the startup script installs the `cirrus` client, runs `cirrus bootstrap`
# (the VM's Google-signed identity token is its credential; trust on first use gives each
# instance one certificate), writes key and certificate to /etc/cirrus, and enables a systemd
# timer that renews the certificate with mTLS. The VM's service account needs no roles:
# fetching an identity token for itself is always allowed.
#
#   cd terraform/examples/gce-bootstrap
#   terraform init && terraform apply -var project_id=... -var ca_url=... -var ca_fingerprint=...

provider "google" {
  project = var.project_id
  region  = var.region
}

resource "google_service_account" "vm" {
  account_id   = "${var.name}-vm"
  display_name = "Cirrus-bootstrapped VM ${var.name} (no roles)"
}

resource "google_compute_instance" "vm" {
  # checkov:skip=CKV_GCP_38:an example VM; its disk holds only the certificate key (0600), Google-managed encryption is enough here
  name         = var.name
  zone         = var.zone
  machine_type = var.machine_type

  boot_disk {
    initialize_params {
      image = var.image
    }
  }

  network_interface {
    subnetwork = var.subnetwork
    # No external address: the VM reaches the CA and the package index through Cloud NAT.
  }

  service_account {
    email  = google_service_account.vm.email
    scopes = ["openid"]
  }

  shielded_instance_config {
    enable_secure_boot          = true
    enable_vtpm                 = true
    enable_integrity_monitoring = true
  }

  metadata = {
    block-project-ssh-keys = "true"
    enable-oslogin         = "TRUE"
    serial-port-enable     = "false"
    startup-script = templatefile("${path.module}/startup.sh.tftpl", {
      ca_url         = var.ca_url
      ca_fingerprint = var.ca_fingerprint
      provisioner    = var.provisioner
      package        = var.cirrus_package
    })
  }

  labels = var.labels
}
