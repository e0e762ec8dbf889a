"""Inventories: named catalogs (hosts, services, locations, people) looked up at issuance.

`base` holds the record shapes, the limits every boundary checks and the storage protocol;
`imports` parses CSV/JSON imports; `gate` is the provisioner option that looks an entry up by
what a credential proves; `changes` applies a change and announces it (`inventory.changed`).
"""
