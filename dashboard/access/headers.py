"""Security headers on every response, with a Content-Security-Policy the pages work under.

Scripts: only the app's own files and Dash's inline renderer/clientside scripts by their hash
(``Dash.csp_hashes``), computed once on the first response (every callback is known by then).
Styles: the app's own files plus inline styles (Dash components and Plotly set them). Images:
the app's own, ``data:``/``blob:`` (Leaflet, Plotly) and the basemap's tile server when
``Settings.tiles`` names one. Nothing may frame the app (clickjacking); no referrer leaves it.
Answers of the API and of sign-in are ``no-store`` (or ``private`` when the route set its own
caching): one user's answer is never kept by a shared cache.
"""

from __future__ import annotations

from urllib.parse import urlsplit

import flask
from dash import Dash

from geo.settings import Settings

TILE_ORIGINS: dict[str, tuple[str, ...]] = {
    "osm": ("https://tile.openstreetmap.org",),
    "tianditu": ("https://*.tianditu.gov.cn",),
    "amap": ("https://*.is.autonavi.com",),
}

STATIC_HEADERS: dict[str, str] = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=(), payment=()",
}


def tile_origins(settings: Settings) -> tuple[str, ...]:
    """Origins the basemap's tiles come from (none when ``tiles = "none"``, the offline default)."""
    kind = settings.tiles
    if kind in ("none", ""):
        return ()
    if kind in TILE_ORIGINS:
        return TILE_ORIGINS[kind]
    url = settings.tiles_url if kind == "local" else kind
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return ()
    host = parts.netloc
    if "{" in host:  # a subdomain placeholder such as {s}.tile.example.cn
        host = "*." + host.split(".", 1)[1] if "." in host else ""
    return (f"{parts.scheme}://{host}",) if host and "{" not in host else ()


def content_security_policy(script_hashes: list[str], images: tuple[str, ...]) -> str:
    """The CSP header value for the given inline-script hashes and extra image origins."""
    directives = {
        "default-src": ["'self'"],
        "script-src": ["'self'", *script_hashes],
        "style-src": ["'self'", "'unsafe-inline'"],
        "img-src": ["'self'", "data:", "blob:", *images],
        "font-src": ["'self'", "data:"],
        "connect-src": ["'self'"],
        "worker-src": ["'self'", "blob:"],
        "object-src": ["'none'"],
        "base-uri": ["'self'"],
        "form-action": ["'self'"],
        "frame-ancestors": ["'none'"],
    }
    return "; ".join(f"{name} {' '.join(values)}" for name, values in directives.items())


def install_headers(app: Dash, settings: Settings) -> None:
    """Add the security headers to every response of ``app``'s server."""
    images = tile_origins(settings)
    policy: list[str] = []

    @app.server.after_request
    def security_headers(response: flask.Response) -> flask.Response:
        if not policy:
            policy.append(content_security_policy(list(app.csp_hashes()), images))
        for name, value in STATIC_HEADERS.items():
            response.headers.setdefault(name, value)
        response.headers.setdefault("Content-Security-Policy", policy[0])
        if flask.request.path.startswith(("/api/", "/login", "/logout")) or response.status_code >= 400:
            cache = response.headers.get("Cache-Control")
            if cache is None:
                response.headers["Cache-Control"] = "no-store"
            elif "no-store" not in cache and "private" not in cache:  # a user's answer: no shared cache keeps it
                response.headers["Cache-Control"] = cache + ", private"
        return response
