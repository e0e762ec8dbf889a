"""Object storage for published artefacts (CRLs, pre-signed OCSP responses)."""
