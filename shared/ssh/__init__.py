"""OpenSSH certificates: the wire format, the SSH certificate authority and its KRL."""
