"""The one HTML layout of the admin pages: plain, server-rendered, no scripts."""

from __future__ import annotations

from html import escape

from aiohttp import web

__all__ = ["escape", "html_page"]

_STYLE = """
body { font: 16px/1.5 system-ui, sans-serif; max-width: 44rem; margin: 3rem auto; padding: 0 1rem;
       color: #1d2330; }
h1 { font-size: 1.5rem; margin-bottom: .25rem; }
.state { display: inline-block; padding: .15rem .6rem; border-radius: 1rem; font-weight: 600; }
.ok { background: #dff5e3; color: #14642a; } .warn { background: #fff1cc; color: #7a5200; }
.bad { background: #fde2e1; color: #8f1d17; }
table { border-collapse: collapse; margin: 1rem 0; } td, th { padding: .3rem .8rem .3rem 0;
       text-align: left; vertical-align: top; } th { font-weight: 500; color: #5b6475; }
a.button { display: inline-block; background: #248a3d; color: white; padding: .6rem 1.2rem;
       border-radius: .4rem; text-decoration: none; font-weight: 600; }
p.note { color: #5b6475; font-size: .9rem; }
"""


def html_page(title: str, body: str, *, status: int = 200) -> web.Response:
    """A complete page; ``body`` is trusted HTML (callers escape what they interpolate)."""
    text = (
        "<!doctype html>\n<html lang=en><head><meta charset=utf-8>"
        '<meta name=viewport content="width=device-width, initial-scale=1">'
        f"<title>{escape(title)} · pandadoc-proxy</title><style>{_STYLE}</style></head>"
        f"<body>{body}</body></html>\n"
    )
    response = web.Response(text=text, content_type="text/html", status=status)
    # Admin pages show the state of credentials: never cached, never framed.
    response.headers["Cache-Control"] = "no-store"
    response.headers["X-Frame-Options"] = "DENY"
    response.headers["Content-Security-Policy"] = "default-src 'none'; style-src 'unsafe-inline'"
    response.headers["Referrer-Policy"] = "no-referrer"
    return response
