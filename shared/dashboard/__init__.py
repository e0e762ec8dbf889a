"""The operator dashboard: server-rendered HTML at `/dashboard` (no JavaScript, one stylesheet)."""
