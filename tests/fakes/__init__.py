"""Real stand-ins served on loopback for cloud services that have no emulator here."""
