"""Cirrus CA core library.

Nothing here imports a cloud SDK at module top: backends import theirs lazily so
that a function pays at cold start only for what it uses.
"""

__version__ = "0.1.0"
