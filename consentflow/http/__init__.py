"""The HTTP API (``consentflow serve``): the app, its keys and roles, errors, pages, replay and the collector."""
