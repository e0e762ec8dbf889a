"""Role-narrow storage protocols and their backends.

`base.py` holds the protocols; `memory.py` (tests), `sqlite.py` (embedded
default) and `firestore.py` implement them. `open_store(url)` picks a backend
by URL scheme so the composition root never imports a backend it does not use.
"""
