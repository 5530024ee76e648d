"""The HTTP layer: routes, headers and errors of the distribution API."""
