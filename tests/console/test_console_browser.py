"""The console in a real browser (Debian's Chromium through Playwright) against `wa-outbound
serve` on PostgreSQL with the sandbox: sign in, replay a dead-lettered message's error code and
watch it reach READ; a wrong key, another org's message and a revoked key are refused. Every
page is kept to the service: a request anywhere else, or a console error (a CSP refusal among
them), fails the test."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import pytest

from browser import PageWatch, service_origin, watch
from console_helpers import Org, Service, console_service, dead_letter, new_org
from console_helpers import sign_in as sign_in_over_http
from helpers import ADMIN, grant

if TYPE_CHECKING:
    from playwright.async_api import Browser, BrowserContext, Page

READ_TIMEOUT_MS = 30_000


@pytest.fixture(scope="module")
def service(pg_template: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    with console_service(pg_template, tmp_path_factory.mktemp("console")) as running:
        yield running


@pytest.fixture
async def api(service: Service) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=service.base_url) as client:
        yield client


async def open_console(
    browser: Browser, service: Service
) -> tuple[BrowserContext, Page, PageWatch]:
    context = await browser.new_context(service_workers="block")
    page = await context.new_page()
    seen = await watch(page, service_origin(service.base_url))
    return context, page, seen


async def sign_in(page: Page, service: Service, key: str) -> None:
    await page.goto(f"{service_origin(service.base_url)}/console/")
    await page.get_by_label("API key or admin token").fill(key)
    await page.get_by_role("button", name="Sign in").click()


async def test_an_org_replays_a_dead_lettered_code_and_watches_it_reach_read(
    browser: Browser, service: Service, api: httpx.AsyncClient
) -> None:
    org = await new_org(api)
    await grant(api, org.auth, "+33612345678")
    message_id = await dead_letter(service.database_url, org.id)
    context, page, seen = await open_console(browser, service)

    await sign_in(page, service, org.key)
    await page.get_by_role("heading", name="Overview").wait_for()
    await page.get_by_role("link", name="Dead letters").click()
    group = page.locator(".groups li", has_text="132001")
    await group.wait_for()
    assert "check the template name" in await group.inner_text()
    await group.get_by_role("button", name="Replay all 132001…").click()
    await page.get_by_role("heading", name="Replay 1 message?").wait_for()
    await page.get_by_role("button", name="Yes, replay 1").click()
    await page.get_by_text("Replayed 1 message.").wait_for()

    # The message's page reloads itself while the message is on its way.
    await page.goto(f"{service_origin(service.base_url)}/console/messages/{message_id}")
    await page.locator("#message-status", has_text="READ").wait_for(timeout=READ_TIMEOUT_MS)
    timeline = await page.locator(".timeline").inner_text()
    await context.close()

    assert re.search(r"replayed\s+FAILED → QUEUED\s+console:wao_", timeline), timeline
    assert "status.read" in timeline
    assert seen.outside == []
    assert seen.errors == []


async def test_a_wrong_key_is_refused(browser: Browser, service: Service) -> None:
    context, page, seen = await open_console(browser, service)

    # By keyboard alone: the key's field has the focus, Enter submits.
    await page.goto(f"{service_origin(service.base_url)}/console")
    await page.keyboard.type("wao_not-a-key-of-anyone")
    await page.keyboard.press("Enter")
    error = await page.locator("#signin-error").inner_text()
    cookies = {c["name"] for c in await context.cookies()}
    await page.goto(f"{service_origin(service.base_url)}/console/dlq")
    landed = page.url
    await context.close()

    assert error == "That key is unknown or revoked."
    assert "wa_console" not in cookies
    assert landed.endswith("/console/sign-in")
    assert seen.outside == []


async def test_one_org_cannot_open_another_orgs_message_by_url(
    browser: Browser, service: Service, api: httpx.AsyncClient
) -> None:
    mine, theirs = await new_org(api, "Mine"), await new_org(api, "Theirs")
    their_message = await dead_letter(service.database_url, theirs.id)
    context, page, _seen = await open_console(browser, service)
    await sign_in(page, service, mine.key)
    await page.get_by_role("heading", name="Overview").wait_for()

    origin = service_origin(service.base_url)
    response = await page.goto(f"{origin}/console/messages/{their_message}")
    assert response is not None
    not_found = response.status
    await page.goto(f"{origin}/console/dlq")
    my_dlq = await page.locator("main").inner_text()
    await context.close()

    assert not_found == 404
    assert str(their_message)[:8] not in my_dlq
    assert "The dead-letter queue is empty." in my_dlq


async def test_revoking_the_key_ends_the_session(
    browser: Browser, service: Service, api: httpx.AsyncClient
) -> None:
    org: Org = await new_org(api)
    context, page, _seen = await open_console(browser, service)
    await sign_in(page, service, org.key)
    await page.get_by_role("heading", name="Overview").wait_for()

    response = await api.delete(f"/v1/admin/orgs/{org.id}/api-keys/{org.key_id}", headers=ADMIN)
    assert response.status_code == 204
    await page.get_by_role("link", name="Messages").click()
    await page.get_by_role("heading", name="Sign in").wait_for()
    landed = page.url
    await context.close()

    assert landed.endswith("/console/sign-in")


async def test_the_service_refuses_a_form_without_its_csrf_token(
    service: Service, api: httpx.AsyncClient
) -> None:
    org = await new_org(api)
    message_id = await dead_letter(service.database_url, org.id)
    assert (await sign_in_over_http(api, org.key)).status_code == 303

    refused = await api.post(
        "/console/dlq/apply", data={"action": "replay", "ids": str(message_id)}
    )
    still_there = await api.get("/console/dlq")

    assert refused.status_code == 403
    assert str(message_id)[:8] in still_there.text


def test_the_service_logged_no_error(service: Service) -> None:
    text = Path(service.log).read_text(errors="replace")
    assert " ERROR " not in text, text[-4000:]
    assert "Traceback" not in text, text[-4000:]
