"""RFC 8555 ACME server: JWS, nonces, accounts, orders, challenges, finalize.

`ACMEServer` (in `server.py`) is the entry point; everything else is a small
module named for one concern so each can be read and tested alone.
"""
