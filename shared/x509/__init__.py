"""Building and checking X.509 certificates with pyca/cryptography."""
