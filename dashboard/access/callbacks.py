"""Which Dash callbacks a role may fire (filled in step 2)."""

from __future__ import annotations

from dash import Dash

from dashboard.access import Principal


def refusal(app: Dash, principal: Principal) -> str | None:
    """None when ``principal`` may fire the requested callback, else why not."""
    return None
