"""``/audit`` 审计日志 (admin only): the audit trail with filters, and whether its hash chain is intact.

Rendered on the server from the URL (``?actor=&action=&since=&until=&limit=&lang=``): the filter is
a plain GET form, so the page needs no callback. The role check is here as well as in the
sign-in gate (``dashboard.access.gate``): a principal without ``audit.read`` sees a refusal only.
"""

from __future__ import annotations

from typing import Any

import dash
from dash import dcc, html

from dashboard.access import actions, audit, current_principal
from dashboard.components.chrome import navbar, note, panel, table
from dashboard.i18n import lang_of, t
from geo.errors import OnemapError

PAGE = "audit"
PATH = "/audit"
dash.register_page(__name__, path=PATH, name="审计日志", title="一图作战 · 审计日志")

DEFAULT_LIMIT = 200
COLUMNS: tuple[tuple[str, str], ...] = (
    ("seq", "audit_seq"), ("at", "audit_at"), ("actor", "audit_actor"), ("role", "audit_role"),
    ("action", "audit_action"), ("object", "audit_object"), ("before", "audit_before"), ("after", "audit_after"),
)


def _limit(value: Any) -> int:
    """The ``limit`` parameter as a whole number within ``1..audit.MAX_LIST`` (ValueError otherwise)."""
    if value in (None, ""):
        return DEFAULT_LIMIT
    if not (isinstance(value, str) and value.isdigit() and 1 <= int(value) <= audit.MAX_LIST):
        raise ValueError(f"limit: a whole number from 1 to {audit.MAX_LIST:,}")
    return int(value)


def _field(label: str, control: Any) -> html.Label:
    return html.Label([html.Span(label), control], className="om-audit-field",
                      style={"display": "flex", "flexDirection": "column", "width": "150px", "marginRight": "8px"})


def _filter_form(lang: str, actor: str, action: str, since: str, until: str, limit: str) -> html.Form:
    """A GET form: submitting it loads ``/audit?...`` with the filters (no callback)."""
    def box(name: str, value: str, **more: Any) -> dcc.Input:
        return dcc.Input(name=name, value=value, type="text", debounce=True, style={"width": "100%"}, **more)

    return html.Form([
        dcc.Input(type="hidden", name="lang", value=lang),
        _field(t("audit_actor", lang), box("actor", actor, maxLength=200)),
        _field(t("audit_action", lang), box("action", action, list="audit-actions", placeholder=t("audit_any", lang))),
        html.Datalist([html.Option(value=a) for a in audit.AUDIT_ACTIONS], id="audit-actions"),
        _field(t("audit_since", lang), box("since", since, placeholder="YYYY-MM-DD", maxLength=40)),
        _field(t("audit_until", lang), box("until", until, placeholder="YYYY-MM-DD", maxLength=40)),
        _field(t("audit_limit", lang), box("limit", limit or str(DEFAULT_LIMIT), inputMode="numeric", maxLength=6)),
        html.Button(t("audit_filter", lang), type="submit", className="om-btn"),
    ], method="GET", action=PATH, className="om-row om-audit-form",
        style={"display": "flex", "flexWrap": "wrap", "alignItems": "flex-end", "marginBottom": "8px"})


def _verdict(lang: str) -> html.Div:
    """The chain check: intact with its head, or each problem named."""
    found = audit.verify(actions.db_path())
    if found.ok:
        head = (found.head_hash or "-")[:16]
        return html.Div(t("audit_intact", lang, rows=found.rows, seq=found.head_seq or 0, hash=head),
                        className="om-note om-audit-ok", id="audit-verdict",
                        style={"background": "#e8f5e9", "color": "#1b5e20"})
    return html.Div([html.Strong(t("audit_broken", lang, n=len(found.problems))),
                     html.Ul([html.Li(str(p)) for p in found.problems[:50]])],
                    className="om-note om-audit-broken", id="audit-verdict",
                    style={"background": "#fdecea", "color": "#8a1c1c"})


def _cell(value: Any) -> Any:
    return audit._json(value) if isinstance(value, (dict, list)) else value


def _rows(actor: str, action: str, since: str, until: str, limit: str) -> list[dict[str, Any]]:
    found = audit.rows(actions.db_path(), actor=actor or None, action=action or None, since=since or None,
                       until=until or None, limit=_limit(limit))
    return [{k: _cell(r[k]) for k, _ in COLUMNS} for r in found]


def layout(lang: str = "zh", actor: str = "", action: str = "", since: str = "", until: str = "",
           limit: str = "", **_: Any) -> html.Div:
    """The audit page for an admin; a refusal for anyone else."""
    lang = lang_of(lang)
    actor, action, since, until, limit = (v if isinstance(v, str) else "" for v in (actor, action, since, until, limit))
    who = current_principal()
    if not (who.may("audit.read") and who.may_open(PAGE)):
        return html.Div([navbar(PATH, lang), note(t("audit_denied", lang))], className="om-page")
    try:
        rows = _rows(actor, action, since, until, limit)
        listing: Any = table("audit-table", [(k, t(label, lang)) for k, label in COLUMNS], rows, page_size=25,
                             ) if rows else note(t("audit_empty", lang))
    except (OnemapError, ValueError) as exc:
        listing = note(t("audit_bad_filter", lang, why=str(exc)))
    return html.Div([
        navbar(PATH, lang),
        html.Div([
            panel(t("nav_audit", lang), [_verdict(lang), html.P(t("audit_note", lang), className="om-small")]),
            panel(t("audit_filter", lang), [_filter_form(lang, actor, action, since, until, limit), listing]),
        ], className="om-audit"),
    ], className="om-page")
