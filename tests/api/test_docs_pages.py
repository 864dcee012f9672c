"""/docs (Swagger UI) and /redoc (ReDoc) work with no internet: in a real browser that may reach
only the service, every operation of /openapi.json is rendered and nothing was asked of
anywhere else."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import httpx

from browser import PageWatch, service_origin, watch
from helpers import app_client, make_settings
from serving import serving
from wa_outbound.api.docs import ASSETS_PATH, CONTENT_SECURITY_POLICY
from wa_outbound.app import create_app

if TYPE_CHECKING:
    from playwright.async_api import Browser, Page

HTTP_METHODS = {"get", "put", "post", "delete", "patch", "options", "head", "trace"}
RENDER_TIMEOUT_MS = 20_000  # two 1-2 MB bundles parsed on a shared, loaded machine
# ReDoc 2 always shows Redocly's logo from cdn.redoc.ly in its sidebar. The pages' CSP refuses
# it before any request leaves (the console says so), and ReDoc then shows no logo.
REDOCLY_LOGO = "https://cdn.redoc.ly/redoc/logo-mini.svg"


def operations(spec: dict[str, Any]) -> list[dict[str, Any]]:
    """Each operation of an OpenAPI document, with its method and path."""
    return [
        {**operation, "method": method, "path": path}
        for path, item in spec["paths"].items()
        for method, operation in item.items()
        if method in HTTP_METHODS
    ]


async def open_page(browser: Browser, origin: str, path: str) -> tuple[Page, PageWatch]:
    # Service workers would answer requests the route below never sees.
    context = await browser.new_context(service_workers="block")
    page = await context.new_page()
    seen = await watch(page, origin)
    response = await page.goto(f"{origin}{path}")
    assert response is not None
    assert response.status == 200
    assert response.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
    return page, seen


async def served_spec(base_url: str) -> dict[str, Any]:
    async with httpx.AsyncClient(base_url=base_url) as client:
        response = await client.get("/openapi.json")
    assert response.status_code == 200
    spec: dict[str, Any] = response.json()
    assert operations(spec), "the spec has no operations to look for"
    return spec


async def test_swagger_ui_renders_every_operation_without_the_internet(
    browser: Browser, sqlite_url: str
) -> None:
    async with serving(create_app(make_settings(sqlite_url))) as base_url:
        spec = await served_spec(base_url)
        expected = sorted((op["method"].upper(), op["path"]) for op in operations(spec))
        page, seen = await open_page(browser, service_origin(base_url), "/docs")

        await page.wait_for_function(
            "n => document.querySelectorAll('.opblock').length >= n",
            arg=len(expected),
            timeout=RENDER_TIMEOUT_MS,
        )
        rendered = await page.eval_on_selector_all(
            ".opblock",
            """blocks => blocks.map(b => [
                b.querySelector('.opblock-summary-method').textContent,
                b.querySelector('.opblock-summary-path').dataset.path,
            ])""",
        )
        # Late requests (a badge, an icon) would come once the spec is rendered.
        await page.wait_for_load_state("networkidle")

    assert sorted(tuple(r) for r in rendered) == expected
    assert seen.outside == []
    assert seen.errors == []


async def test_redoc_renders_every_operation_without_the_internet(
    browser: Browser, sqlite_url: str
) -> None:
    async with serving(create_app(make_settings(sqlite_url))) as base_url:
        spec = await served_spec(base_url)
        expected = sorted(f"operation/{op['operationId']}" for op in operations(spec))
        page, seen = await open_page(browser, service_origin(base_url), "/redoc")

        # ReDoc marks each operation's section; its id is the operationId.
        sections = '[data-section-id^="operation/"]'
        await page.wait_for_function(
            "([s, n]) => document.querySelectorAll(s).length >= n",
            arg=[sections, len(expected)],
            timeout=RENDER_TIMEOUT_MS,
        )
        rendered = await page.eval_on_selector_all(
            sections, "els => els.map(e => e.dataset.sectionId)"
        )
        menu_items = await page.locator('li[data-item-id*="/operation/"]').count()
        await page.wait_for_load_state("networkidle")

    assert sorted(rendered) == expected
    assert menu_items == len(expected)
    assert seen.outside == []
    assert [e for e in seen.errors if REDOCLY_LOGO not in e] == []


async def test_the_pages_name_only_assets_the_service_serves(sqlite_url: str) -> None:
    async with app_client(create_app(make_settings(sqlite_url))) as client:
        for page in ("/docs", "/redoc"):
            response = await client.get(page)
            assert response.status_code == 200
            assert response.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
            # No inline script: the policy allows none.
            assert re.findall(r"<script(?![^>]*\ssrc=)", response.text) == []
            urls = re.findall(r'(?:src|href|spec-url|data-openapi-url)="([^"]+)"', response.text)
            assert urls
            for url in urls:
                # A path on the service: no scheme, no host (not even "//host/...").
                assert url.startswith("/"), url
                assert not urlsplit(url).netloc, url
                asset = await client.get(url)
                assert asset.status_code == 200, url
                assert asset.content, url

        missing = await client.get(f"{ASSETS_PATH}/nothing.js")
        assert missing.status_code == 404
        assert missing.json()["error"]["code"]


async def test_the_pages_link_their_assets_under_the_proxy_prefix(sqlite_url: str) -> None:
    app = create_app(make_settings(sqlite_url))
    transport = httpx.ASGITransport(app, root_path="/wa")
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        swagger = (await client.get("/docs")).text
        redoc = (await client.get("/redoc")).text

    assert 'data-openapi-url="/wa/openapi.json"' in swagger
    assert f'src="/wa{ASSETS_PATH}/swagger-ui-bundle.js"' in swagger
    assert 'spec-url="/wa/openapi.json"' in redoc
    assert f'src="/wa{ASSETS_PATH}/redoc.standalone.js"' in redoc
