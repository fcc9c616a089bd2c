"""The server-rendered web UI under /ui: Jinja2 templates, a signed session cookie, no JavaScript."""
