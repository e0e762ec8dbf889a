"""Linked authorities: CAs someone runs themselves that report what they issue and revoke.

`registry` keeps each linked authority (its trust anchors and the hash of its
bearer token), `ingest` checks and records a report (`POST /linked/v1/report`),
`client` builds and posts reports (`cirrus linked report`, and `sink`: the event
sink of an instance in linked mode). The wire format is in docs/linked.md.
"""
