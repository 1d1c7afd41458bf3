"""The HTTP layer: thin handlers over the services. Only ``app.py`` imports it."""
