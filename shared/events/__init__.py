"""Lifecycle events as CloudEvents, and the sinks that carry them."""
