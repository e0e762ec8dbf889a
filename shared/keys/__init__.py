"""Signing keys behind a `KeyManager`, chosen by URI scheme.

`softkms:` (encrypted PEM files) is built in; `cloudkms:`, `awskms:` and
`pkcs11:` import their SDKs only when such a URI is opened.
"""
