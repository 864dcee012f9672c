"""The API's documentation pages, `/docs` (Swagger UI) and `/redoc` (ReDoc), with every asset
served by the service itself, so that they work on a machine with no internet access.

Swagger UI's and ReDoc's bundles and the favicon come from the `fastapi-offline` package (pinned
in pyproject.toml); the one script of our own, which starts Swagger UI, is in `static/`. The pages
hold no inline script and answer a Content-Security-Policy that allows nothing from elsewhere:
an asset that would still come from the internet is refused by the browser, not fetched. One
is: ReDoc's sidebar always shows Redocly's logo from cdn.redoc.ly; refused, it is left out.
"""

from __future__ import annotations

from html import escape

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

ASSETS_PATH = "/docs/assets"
# Looked up in this order: our own files, then the bundles of fastapi-offline.
ASSET_PACKAGES: list[str | tuple[str, str]] = [
    ("wa_outbound.api", "static"),
    ("fastapi_offline", "static"),
]

CONTENT_SECURITY_POLICY = "; ".join(
    (
        "default-src 'none'",
        "script-src 'self'",
        # Both apply styles at run time (ReDoc writes <style> elements); nothing loads from it.
        "style-src 'self' 'unsafe-inline'",
        # Swagger UI's stylesheet draws its icons as data: SVGs.
        "img-src 'self' data:",
        # The spec, and Swagger UI's "Try it out" calls.
        "connect-src 'self'",
        # ReDoc's search runs in a worker its bundle makes from a blob.
        "worker-src blob:",
        "frame-ancestors 'none'",
        "base-uri 'none'",
        "form-action 'none'",
    )
)

router = APIRouter(include_in_schema=False)


def install(app: FastAPI) -> None:
    """Serves the two pages and their assets; `app` must be built with docs_url and redoc_url
    off, so that FastAPI's own pages, which load from a CDN, are not registered."""
    app.mount(ASSETS_PATH, StaticFiles(packages=ASSET_PACKAGES), name="docs-assets")
    app.include_router(router)


def _urls(request: Request) -> tuple[str, str]:
    """The assets' base URL and the spec's, behind any proxy prefix (`root_path`), escaped."""
    root = request.scope.get("root_path", "")
    return escape(f"{root}{ASSETS_PATH}"), escape(f"{root}{request.app.openapi_url}")


def _page(request: Request, *, title: str, head: str, body: str) -> HTMLResponse:
    assets, _ = _urls(request)
    html = f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{escape(request.app.title)} - {title}</title>
<link rel="icon" type="image/png" href="{assets}/favicon.png">
{head}
</head>
<body>
{body}
</body>
</html>
"""
    return HTMLResponse(html, headers={"Content-Security-Policy": CONTENT_SECURITY_POLICY})


@router.get("/docs")
async def swagger_ui(request: Request) -> HTMLResponse:
    assets, spec = _urls(request)
    return _page(
        request,
        title="Swagger UI",
        head=f'<link rel="stylesheet" href="{assets}/swagger-ui.css">',
        body=(
            f'<div id="swagger-ui" data-openapi-url="{spec}"></div>\n'
            f'<script src="{assets}/swagger-ui-bundle.js"></script>\n'
            f'<script src="{assets}/swagger-ui-init.js"></script>'
        ),
    )


@router.get("/redoc")
async def redoc(request: Request) -> HTMLResponse:
    assets, spec = _urls(request)
    # ReDoc's bundle starts itself on the <redoc> element, reading the spec from its attribute.
    return _page(
        request,
        title="ReDoc",
        head="",
        body=(
            f'<redoc spec-url="{spec}"></redoc>\n'
            f'<script src="{assets}/redoc.standalone.js"></script>'
        ),
    )
