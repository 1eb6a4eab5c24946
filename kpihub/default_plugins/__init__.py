"""kpihub's built-in plugins, registered like any other (see ``kpihub.plugins.DEFAULT_PLUGINS``)."""
