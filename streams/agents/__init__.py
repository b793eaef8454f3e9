"""Faust agents of the stream worker; each module has a `register(app, ...)` function."""
