"""Panels a page renders after its map has painted: the map first, the controls around it next.

Side panels with heavy controls and the map's legend are built with the layout as usual, but
travel in a ``dcc.Store`` and are put into their (empty, already laid-out) box by a clientside callback
once the map's opening layers have painted (``mapview.painted_id``, ``afterMapPaint``). Dash
then mounts them like any other callback output: their own callbacks fire as they appear.
The browser builds the map before those components (about a hundred Dash components, dropdowns
and date pickers with their lazy bundles), which is what a wall display or a planner opening
the page looks at first; the panels follow within a frame or two of the map's first paint.
"""

from __future__ import annotations

from typing import Any

from dash import ClientsideFunction, Input, Output, State, clientside_callback, dcc, html


def tree_id(box_id: str) -> str:
    """Id of the store holding the deferred contents of the box ``box_id``."""
    return f"{box_id}-tree"


def after_paint(box_id: str, children: Any, class_name: str) -> list[Any]:
    """The box ``box_id`` (empty at first, laid out with ``class_name``) and the store of its
    ``children``, which fill it once the page's map has painted.
    The page registers the box at import (``register``), as Dash callbacks must be."""
    return [html.Div(id=box_id, className=class_name), dcc.Store(id=tree_id(box_id), data=children)]


def register(box_id: str, painted_id: str) -> None:
    """The clientside callback filling ``box_id`` once ``painted_id`` is set (at import, once per box)."""
    clientside_callback(
        ClientsideFunction(namespace="onemap", function_name="deferredTree"),
        Output(box_id, "children"),
        Input(painted_id, "data"),
        State(tree_id(box_id), "data"),
        State(box_id, "children"),
        prevent_initial_call=True,
    )
