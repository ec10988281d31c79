"""The server-rendered pages of sign-in: the form (登录) and the 403 page, Chinese by default.

Every value shown is HTML-escaped (``html.escape``); nothing typed by a visitor is ever
interpreted as a template. The pages use only ``/login.css`` (no inline script or style), so
they work under the app's Content-Security-Policy.
"""

from __future__ import annotations

import html

import flask

TEXT: dict[str, tuple[str, str]] = {
    "title": ("一图作战 · 登录", "One Map · Sign in"),
    "heading": ("一图作战 · 基层消防", "One Map · Fire safety"),
    "username": ("用户名", "User name"),
    "password": ("密码", "Password"),
    "submit": ("登录", "Sign in"),
    "other_lang": ("English", "中文"),
    "wrong": ("用户名或密码错误。", "Wrong user name or password."),
    "locked": ("登录失败次数过多，请 {minutes} 分钟后再试。",
               "Too many failed sign-ins; try again in {minutes} min."),
    "expired": ("登录页已过期，请重新输入。", "The sign-in page expired; please enter your details again."),
    "bad_form": ("登录请求格式错误：请使用登录页提交用户名和密码。",
                 "Malformed sign-in request: send the user name and password from the sign-in form."),
    "denied_title": ("无权访问", "Not allowed"),
    "denied": ("账号 {who} 无权打开此页面。", "The account {who} may not open this page."),
    "unknown_user": ("单点登录用户 {who} 未在本系统登记，请联系管理员添加。",
                     "The single-sign-on user {who} is not registered here; ask an administrator to add it."),
    "go_back": ("返回可访问的页面", "Go to a page you may open"),
    "sign_out": ("退出登录", "Sign out"),
}


def lang() -> str:
    """``en`` when the request asks for English (``?lang=en`` or the form's ``lang``), else ``zh``."""
    value = flask.request.args.get("lang")
    if value is None and flask.request.method == "POST":
        value = flask.request.form.get("lang")
    return "en" if value == "en" else "zh"


def text(key: str, lang_: str, **values: object) -> str:
    """The text ``key`` in ``lang_`` with ``values`` filled in (escaped later, where shown)."""
    zh, en = TEXT[key]
    return (en if lang_ == "en" else zh).format(**values)


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def _document(title: str, body: str, lang_: str, prefix: str) -> str:
    code = "en" if lang_ == "en" else "zh-CN"
    return (f'<!DOCTYPE html><html lang="{code}"><head><meta charset="utf-8">'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">'
            f'<title>{_e(title)}</title><link rel="stylesheet" href="{_e(prefix)}/login.css"></head>'
            f"<body>{body}</body></html>")


def login_page(prefix: str, lang_: str, next_url: str, csrf: str, error: str = "", username: str = "") -> str:
    """The sign-in form; ``error`` shown above it; the fields ``username``, ``password``, ``next``."""
    other = "zh" if lang_ == "en" else "en"
    error_html = f'<p class="om-login-error" role="alert">{_e(error)}</p>' if error else ""
    switch = f"{_e(prefix)}/login?lang={other}" + (f"&amp;next={_e(_quote(next_url))}" if next_url else "")
    body = (
        f'<main class="om-login"><h1>{_e(text("heading", lang_))}</h1>{error_html}'
        f'<form method="post" action="{_e(prefix)}/login" autocomplete="on">'
        f'<label for="username">{_e(text("username", lang_))}</label>'
        f'<input type="text" id="username" name="username" value="{_e(username)}" maxlength="64" '
        f'autocomplete="username" required autofocus>'
        f'<label for="password">{_e(text("password", lang_))}</label>'
        f'<input type="password" id="password" name="password" maxlength="256" '
        f'autocomplete="current-password" required>'
        f'<input type="hidden" name="next" value="{_e(next_url)}">'
        f'<input type="hidden" name="csrf" value="{_e(csrf)}">'
        f'<input type="hidden" name="lang" value="{_e(lang_)}">'
        f'<button type="submit">{_e(text("submit", lang_))}</button></form>'
        f'<a class="om-login-lang" href="{switch}">{_e(text("other_lang", lang_))}</a></main>'
    )
    return _document(text("title", lang_), body, lang_, prefix)


def _quote(value: str) -> str:
    from urllib.parse import quote

    return quote(value, safe="/")


def denied(who: str, status: int = 403, unknown_user: bool = False, home: str = "/") -> flask.Response:
    """The 403 page (HTML) saying which account may not open this page, with a way out."""
    lang_ = lang()
    prefix = flask.request.script_root
    message = text("unknown_user" if unknown_user else "denied", lang_, who=who)
    body = (f'<main class="om-denied"><h1>{_e(text("denied_title", lang_))}</h1><p>{_e(message)}</p>'
            f'<p><a href="{_e(prefix + home)}">{_e(text("go_back", lang_))}</a> · '
            f'<a href="{_e(prefix)}/logout">{_e(text("sign_out", lang_))}</a></p></main>')
    response = flask.make_response(_document(text("denied_title", lang_), body, lang_, prefix), status)
    response.mimetype = "text/html"
    return response


def plain(message: str, status: int) -> flask.Response:
    """A short text answer (a malformed request)."""
    return flask.Response(message, status=status, mimetype="text/plain")
