"""How the policy matrix calls this domain's routes (merged into test_policy_matrix)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

# (method, path) -> body builder (env, session) -> JSON body or None
ROUTE_CALLS: dict[tuple[str, str], Callable[[Any, Any], Any]] = {}
# (method, path) of routes with action=None (they check what they need themselves)
PUBLIC_ROUTES: set[tuple[str, str]] = set()
# placeholder name -> async (env, actor key, session) -> value for the URL
PLACEHOLDERS: dict[str, Callable[[Any, str, Any], Awaitable[str]]] = {}
