"""The page modules as the running app loaded them."""

from __future__ import annotations

import sys
from types import ModuleType


def page(name: str) -> ModuleType:
    """The module of page ``name`` that ``create_app`` loaded (call after it).

    Dash imports each page file itself, as ``pages.<name>``. Importing ``dashboard.pages.<name>``
    as well would register the page a second time, and Dash's router then refuses every later
    request of any app in the process ("duplicate paths").
    """
    return sys.modules[f"pages.{name}"]


def shown_text(component: object) -> str:
    """The text a component shows (its children, depth first)."""
    if component is None:
        return ""
    if isinstance(component, (str, int, float)):
        return str(component)
    if isinstance(component, (list, tuple)):
        return " ".join(shown_text(c) for c in component)
    return shown_text(getattr(component, "children", None))
