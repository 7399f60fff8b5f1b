"""The operations console: server-rendered pages (Jinja2 + htmx) served by `regbatch api serve`
under /console, signed in with an organisation's API key (api/console/app.py mounts it)."""
