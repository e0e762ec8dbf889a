"""The HTTP layer on Werkzeug (what Functions Framework hands a function)."""
