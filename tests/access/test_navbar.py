"""The navigation bar links only the pages the signed-in role may open."""

from __future__ import annotations

import flask
import pytest

from dashboard.access import LOCAL, ROLES, Principal, set_current_principal
from dashboard.components.chrome import navbar


def _links(principal: Principal, lang: str = "zh") -> list[str]:
    with flask.Flask("navbar").test_request_context("/"):
        set_current_principal(principal)
        nav = navbar("/", lang)
    return [a.href for a in nav.children[1].children]


@pytest.mark.parametrize("role, expected", [
    ("wall", ["/wall"]),
    ("viewer", ["/", "/wall", "/plan", "/review", "/province"]),
    ("admin", ["/", "/wall", "/plan", "/review", "/province", "/audit"]),
])
def test_each_role_sees_links_to_its_pages_only(role: str, expected: list[str]) -> None:
    assert _links(Principal("u", ROLES[role])) == expected
    assert _links(Principal("u", ROLES[role]), "en") == [h + "?lang=en" for h in expected]


def test_with_no_users_the_local_user_sees_every_page() -> None:
    assert "/audit" in _links(LOCAL) and "/province" in _links(LOCAL)
