"""Routes of this domain (filled in as the domain grows)."""

from __future__ import annotations

from server.web.routing import RouteTable

routes = RouteTable()
