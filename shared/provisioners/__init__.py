"""Provisioners: one interface, one module per authentication method."""
