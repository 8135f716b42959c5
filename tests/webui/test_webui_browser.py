"""The pages in headless Chromium (Debian's, via Playwright): sign in over OIDC, register a
provider and a git service, submit a ticket with the client library, watch it on /tickets,
download the result, purge as admin. Screenshots of the main pages are saved on the way
(into DSS_WEBUI_SCREENSHOTS when set, e.g. docs/screenshots; else a temporary folder)."""
from __future__ import annotations

import os
import re
import threading
from pathlib import Path

import pytest
from werkzeug.serving import make_server

from dss_client import DSSClient
from dss_server import create_app
from dss_server import db as database
from dss_server.services import auth
from helpers import CT_SAMPLES, free_port
from webui_oidc_provider import OIDCProvider
from webui_support import git_service_repo

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
CT_IMAGE = CT_SAMPLES / "totalseg_abdomen_ct_3mm.nii.gz"
ADMIN_EMAIL = "browser.admin@example.org"
ROBOT_EMAIL = "browser.robot@example.org"

pytestmark = [pytest.mark.browser, pytest.mark.slow,
              pytest.mark.skipif(not CHROMIUM.exists(),
                                 reason="Debian's chromium is not installed at /usr/bin/chromium "
                                        "(apt-get install chromium); no browser is downloaded")]
sync_api = pytest.importorskip("playwright.sync_api",
                               reason="Playwright for Python is not installed "
                                      "(pip install playwright==1.65.2)")


@pytest.fixture
def server(make_database, tmp_path):
    """The web server on a loopback port (a thread), signing in through a loopback OIDC provider."""
    url = make_database("dss_webui_browser")
    engine = database.make_engine(url)
    database.migrate(engine)
    engine.dispose()
    with OIDCProvider() as provider:
        provider.email, provider.name = ADMIN_EMAIL, "Browser Admin"
        app = create_app(dict(database_url=url, datastore=tmp_path / "datastore",
                              var_dir=tmp_path / "var", secret_key="browser-test", noauth=False,
                              oidc_issuer=provider.issuer, oidc_client_id=provider.client_id,
                              oidc_client_secret=provider.client_secret))
        with app.extensions["dss_sessions"]() as db:
            auth.ensure_user(db, ADMIN_EMAIL, "Browser Admin", sysadmin=True, tier="poweruser")
            db.commit()
        http = make_server("127.0.0.1", free_port(), app, threaded=True)
        thread = threading.Thread(target=http.serve_forever, daemon=True)
        thread.start()
        try:
            yield f"http://127.0.0.1:{http.server_port}"
        finally:
            http.shutdown()
            thread.join(5)
            app.extensions["dss_engine"].dispose()


@pytest.fixture
def page(tmp_path):
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        context = browser.new_context(viewport={"width": 1100, "height": 760},
                                      accept_downloads=True)
        tab = context.new_page()
        tab.on("dialog", lambda dialog: dialog.accept())  # the "really purge?" confirmations
        tab.set_default_timeout(15000)
        yield tab
        browser.close()


@pytest.fixture
def shots(tmp_path):
    folder = Path(os.environ.get("DSS_WEBUI_SCREENSHOTS") or tmp_path / "screenshots")
    folder.mkdir(parents=True, exist_ok=True)

    def shoot(tab, name: str) -> None:
        tab.screenshot(path=str(folder / f"{name}.png"))
    return shoot


def sign_in_and_get_token(page, server, shots) -> str:
    page.goto(server + "/")
    page.click("text=Sign in to get a token")
    page.click("text=Sign in with your organisation's account")
    page.wait_for_url(server + "/token")
    assert page.locator("nav .me").inner_text() == ADMIN_EMAIL
    page.check("input[name=cb]")
    page.click("text=Continue")
    page.click("text=Show my token")
    token = page.locator("#token").inner_text()
    assert re.fullmatch(r"[0-9a-f]{48}", token)
    shots(page, "token")
    return token


def register_provider_and_service(page, server, shots, repo: Path) -> str:
    """Returns the provider token issued for the daemon account."""
    page.goto(server + "/admin/providers")
    page.fill("input[name=name]", "browser-lab")
    page.click("text=Create")
    page.wait_for_url(server + "/admin/providers/browser-lab")
    page.fill("input[placeholder^=dispatcher]", ROBOT_EMAIL)
    page.click("text=Issue a provider token")
    robot_token = page.locator("#token").inner_text()
    assert page.locator("td", has_text=ROBOT_EMAIL).count() == 1
    page.fill("input[name=repo]", str(repo))
    page.fill("input[name=ref]", "main")
    page.click("text=Register service")
    page.locator(".flash.ok", has_text="Registered service").wait_for()
    shots(page, "admin-provider")
    return robot_token


def test_sign_in_register_submit_watch_download_purge(server, page, shots, tmp_path):
    if not CT_IMAGE.exists():
        pytest.skip(f"CT sample {CT_IMAGE} is missing (see /work/shared/ct-samples/README.md)")
    token = sign_in_and_get_token(page, server, shots)
    page.goto(server + "/")
    shots(page, "home")
    user = DSSClient(server)
    assert user.login(token) == ADMIN_EMAIL  # the token from the page works in a client
    repo, githash = git_service_repo(tmp_path, "BrowserLungs")
    robot_token = register_provider_and_service(page, server, shots, repo)
    page.goto(server + "/services")
    assert page.locator("h2", has_text="BrowserLungs").count() == 1
    shots(page, "services")

    ticket_id = user.submit_workspace(CT_IMAGE, "BrowserLungs")
    robot = DSSClient(server)
    robot.login(robot_token)
    claim = robot.claim([githash], provider="browser-lab", code="browser")
    assert claim.ticket_id == ticket_id
    robot.set_progress(ticket_id, 0.0, 1.0, 0.5)
    preview = tmp_path / "preview.png"
    page.screenshot(path=str(preview), clip={"x": 0, "y": 0, "width": 120, "height": 60})
    robot.attach(ticket_id, preview, "preview of the lungs", "image/png")
    robot.log_message(ticket_id, "info", "Lungs segmented")

    page.goto(server + "/tickets")
    row = page.locator("tr", has_text=f"#{ticket_id}")
    assert row.locator(".status").inner_text() == "claimed"
    assert row.locator("progress").get_attribute("value") == "0.500"
    shots(page, "tickets")
    robot.set_progress(ticket_id, 0.0, 1.0, 0.8)  # the page reloads itself while tickets run
    page.wait_for_selector("progress[value='0.800']")

    result = tmp_path / "lungs_seg.nii.gz"
    result.write_bytes(b"pretend segmentation")
    robot.upload_result(ticket_id, result)
    robot.set_status(ticket_id, "success")
    link = page.locator(f"a[href='/tickets/{ticket_id}']").get_attribute("href")
    page.goto(server + link)
    assert page.locator(".status").first.inner_text() == "success"
    assert page.locator("img[alt='preview of the lungs']").evaluate("img => img.naturalWidth") > 0
    shots(page, "ticket")
    with page.expect_download() as download_info:
        page.click("text=lungs_seg.nii.gz")
    assert Path(download_info.value.path()).read_bytes() == b"pretend segmentation"

    page.goto(server + "/admin")
    assert page.locator("svg.chart").count() == 3
    shots(page, "admin-dashboard")
    page.goto(server + "/admin/tickets")
    shots(page, "admin-tickets")
    page.fill("input[name=days]", "0")
    page.click("button:has-text('Purge')")
    page.locator(".flash.ok", has_text="Purged 1 tickets.").wait_for()
    assert user.status(ticket_id) == "deleted"
    page.goto(server + "/admin/users")
    shots(page, "admin-users")
