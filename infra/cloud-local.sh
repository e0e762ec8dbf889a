#!/usr/bin/env bash
# Local cloud mode: the Cloud Functions against the Firestore, Pub/Sub and Cloud Storage emulators.
#
#   infra/cloud-local.sh --dir ./ca [--prefix X] [--bucket B] [--schedule crl_publish=60] ...
#
# Starts missing emulators (infra/emulators.sh), one Functions Framework process per entry point of
# functions/main.py, prints their URLs, and stops what it started on Ctrl-C. Details and every option:
# docs/cloud-local.md and `python3 infra/cloud_local.py --help`.
set -euo pipefail
exec "${PYTHON:-python3}" "$(dirname "$0")/cloud_local.py" "$@"
