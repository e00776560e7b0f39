"""A reviewer in a real browser: log in to the dashboard, open a script the agent ran.

Debian's Chromium, driven by Selenium through Debian's chromedriver (explicit
paths: nothing is downloaded). The same module checks the lock-down: the
engine's well-known default login is refused, and none of the engine's ports
answers on a non-loopback address of this host.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import json
import os
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from hatchet_sdk import Hatchet
from selenium import webdriver
from selenium.common.exceptions import TimeoutException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.ui import WebDriverWait

from tests.conftest import eventually, make_ticket, new_ticket_id
from tests.helpers import unavailable
from workflows.client import submit_ticket
from workflows.dashboard import Dashboard, find_dashboard
from workflows.deps import open_evidence_store
from workflows.engine import EngineInfo
from workflows.settings import SOURCE_ROOT, Settings
from workflows.support import SupportWorkflow
from workflows.transcript import ScriptEntry, fetch_transcript

pytestmark = [pytest.mark.e2e]
CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
ARTIFACTS = Path(os.environ.get("SUPPORT_AGENT_TEST_ARTIFACTS", SOURCE_ROOT / "test-artifacts"))
LOG = (
    b"2026-11-20T10:10:00Z INFO GET /api/orders 200 12ms\n"
    + b"2026-11-20T10:10:02Z ERROR orders: upstream timeout after 30000ms\n" * 4
    + b"2026-11-20T10:10:09Z WARN retrying order sync\n"
)
DEFAULT_LOGIN = {"email": "admin@example.com", "password": "Admin123!!"}


@pytest.fixture(scope="module")
def board(engine: EngineInfo | None, settings: Settings, hatchet: Hatchet) -> Dashboard:
    found = find_dashboard(settings, hatchet.tenant_id, hatchet.config.server_url)
    if found is None or not found.built:
        unavailable("the engine serves no dashboard build (setup/dashboard.sh)")
    assert found is not None
    return found


@pytest.fixture(scope="module")
def browser() -> Iterator[webdriver.Chrome]:
    if not (Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()):
        unavailable("Debian's chromium and chromium-driver are not installed (setup/browser.sh)")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    profile = tempfile.mkdtemp(prefix="dashboard-test-")
    for flag in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        # Without these Chromium keeps calling home on a closed network.
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={profile}",
        "--window-size=1400,1000",
    ):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def log_in(driver: webdriver.Chrome, board: Dashboard) -> None:
    password = board.password()
    assert board.email and password, "the engine wrote no dashboard credentials"
    wait = WebDriverWait(driver, 30)
    driver.get(f"{board.base}/auth/login")
    wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, "input#email"))).send_keys(
        board.email
    )
    driver.find_element(By.CSS_SELECTOR, "input#password").send_keys(password)
    wait.until(ec.element_to_be_clickable((By.CSS_SELECTOR, "form button"))).click()
    wait.until(lambda d: "/tenants/" in d.current_url)


def open_tab(driver: webdriver.Chrome, name: str) -> WebElement:
    """Click a task page's tab (input, output, ...) and return its panel once it has text."""
    wait = WebDriverWait(driver, 30)
    wait.until(
        ec.element_to_be_clickable((By.CSS_SELECTOR, f"[role=tab][id$='-trigger-{name}']"))
    ).click()
    selector = f"[role=tabpanel][id$='-content-{name}'][data-state=active]"
    panel = wait.until(ec.visibility_of_element_located((By.CSS_SELECTOR, selector)))
    wait.until(lambda _: panel.text.strip())
    return panel


def shown_in_json(line: str) -> str:
    """How the dashboard's JSON view shows one string: escaped, without its quotes."""
    return json.dumps(line, ensure_ascii=False)[1:-1]


@pytest.mark.asyncio(loop_scope="session")
async def test_a_reviewer_reads_a_script_and_its_output_in_the_browser(
    hatchet: Hatchet, support: SupportWorkflow, board: Dashboard, browser: webdriver.Chrome
) -> None:
    ticket = make_ticket(
        new_ticket_id("B"),
        subject="Orders sync times out",
        body="Since 10:10 order sync fails. Log attached.",
        files={"orders.log": LOG},
        store=open_evidence_store(Settings()),  # the store the workers read
    )
    ref = await submit_ticket(hatchet, support, ticket, Settings(), reply_timeout_seconds=2)
    outcome = await asyncio.wait_for(ref.aio_result(), timeout=120)
    assert outcome.scripts_run >= 1

    async def finished_script() -> ScriptEntry | None:
        scripts = (await fetch_transcript(hatchet, ref.workflow_run_id)).scripts
        return next((s for s in scripts if s.status == "COMPLETED" and s.stdout), None)

    script = await eventually(finished_script, within=30, what="a finished script in the API")
    code_line = next(
        line for line in script.code.splitlines() if len(line.strip()) > 12 and "open(" in line
    )
    output_line = next(line for line in script.stdout.splitlines() if line.startswith("FINDING"))

    await asyncio.to_thread(log_in, browser, board)
    browser.get(board.run_url(script.id))
    try:
        code_panel = await asyncio.to_thread(open_tab, browser, "input")
        # One line of the script as one row of the page, as a person sees it.
        assert shown_in_json(code_line) in code_panel.text
        assert shown_in_json(script.purpose) in code_panel.text
        browser.save_screenshot(str(ARTIFACTS / "dashboard-script.png"))
        output_panel = await asyncio.to_thread(open_tab, browser, "output")
        assert shown_in_json(output_line) in output_panel.text
    except (TimeoutException, AssertionError):
        browser.save_screenshot(str(ARTIFACTS / "dashboard-failure.png"))
        raise
    browser.save_screenshot(str(ARTIFACTS / "dashboard-output.png"))
    # The ticket's runs are one link away: the run list filtered by its metadata.
    browser.get(board.ticket_url(ticket.ticket_id))
    WebDriverWait(browser, 30).until(
        lambda d: ref.workflow_run_id in d.page_source or "support-ticket" in d.page_source
    )


@pytest.fixture(scope="module", autouse=True)
def artifacts_dir() -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)


def test_the_default_login_is_refused_and_the_generated_one_works(board: Dashboard) -> None:
    login = f"{board.base}/api/v1/users/login"
    refused = requests.post(login, json=DEFAULT_LOGIN, timeout=10)
    assert refused.status_code == 401
    password = board.password()
    assert password and password != DEFAULT_LOGIN["password"]
    assert board.credentials_file is not None
    assert board.credentials_file.stat().st_mode & 0o077 == 0  # owner-only
    accepted = requests.post(login, json={"email": board.email, "password": password}, timeout=10)
    assert accepted.status_code == 200


# -- nothing answers off loopback ----------------------------------------------------------

NS = "sa-exposure"
# A /30 for our own veth pair, from the benchmarking range (RFC 2544) unless this
# host already routes it: traffic on it never leaves the pair.
CANDIDATE_LINKS = ("198.18.77.0/30", "198.19.77.0/30", "100.127.77.0/30")


def _free_link() -> ipaddress.IPv4Network:
    used = []
    for line in subprocess.run(
        ["ip", "-4", "route", "show", "table", "all"], capture_output=True, text=True, check=True
    ).stdout.splitlines():
        words = line.split()
        # "broadcast 10.0.0.255 ...", "local 127.0.0.1 ...", or "10.0.0.0/24 dev ...".
        target = words[1] if words and words[0] in ("broadcast", "local") else words[0]
        if target[:1].isdigit():
            with contextlib.suppress(ValueError):
                used.append(ipaddress.ip_network(target, strict=False))
    for candidate in map(ipaddress.IPv4Network, CANDIDATE_LINKS):
        if not any(candidate.overlaps(net) for net in used):
            return candidate
    raise AssertionError(f"every test link {CANDIDATE_LINKS} overlaps a route of this host")


LINK = _free_link()
HOST_ADDR, PEER_ADDR = (str(h) for h in LINK.hosts())


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True)


@pytest.fixture(scope="module")
def peer_namespace() -> Iterator[str]:
    """A network namespace joined to this host by a veth pair: a second host on a test link."""
    if os.geteuid() != 0 or shutil.which("ip") is None:
        unavailable("network namespaces need root and iproute2")
    with contextlib.suppress(subprocess.CalledProcessError):
        _ip("netns", "del", NS)
    with contextlib.suppress(subprocess.CalledProcessError):
        _ip("link", "del", "sa-veth-h")
    _ip("netns", "add", NS)
    try:
        _ip("link", "add", "sa-veth-h", "type", "veth", "peer", "name", "sa-veth-p")
        _ip("link", "set", "sa-veth-p", "netns", NS)
        _ip("addr", "add", f"{HOST_ADDR}/{LINK.prefixlen}", "dev", "sa-veth-h")
        _ip("link", "set", "sa-veth-h", "up")
        _ip("-n", NS, "addr", "add", f"{PEER_ADDR}/{LINK.prefixlen}", "dev", "sa-veth-p")
        _ip("-n", NS, "link", "set", "sa-veth-p", "up")
        _ip("-n", NS, "link", "set", "lo", "up")
        yield NS
    finally:
        with contextlib.suppress(subprocess.CalledProcessError):
            _ip("link", "del", "sa-veth-h")
        _ip("netns", "del", NS)


def _answers_from_peer(namespace: str, port: int) -> bool:
    probe = (
        "import socket,sys\n"
        "s=socket.socket(); s.settimeout(2)\n"
        f"sys.exit(0 if s.connect_ex(('{HOST_ADDR}', {port})) == 0 else 1)\n"
    )
    result = subprocess.run(
        ["ip", "netns", "exec", namespace, "python3", "-c", probe], capture_output=True, timeout=20
    )
    return result.returncode == 0


def test_no_engine_port_answers_on_a_non_loopback_address(
    engine: EngineInfo | None, settings: Settings, peer_namespace: str
) -> None:
    if settings.external_engine:
        pytest.skip("the external engine's exposure is its operator's")
    # The control: a listener on all interfaces is reachable from the peer, so the
    # probe can see an exposed port.
    control = socket.socket()
    control.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    control.bind(("0.0.0.0", 0))
    control.listen()
    accepter = threading.Thread(target=lambda: control.accept(), daemon=True)
    accepter.start()
    try:
        # The link takes a moment to carry traffic after it comes up.
        deadline = time.monotonic() + 15
        while not _answers_from_peer(peer_namespace, control.getsockname()[1]):
            assert time.monotonic() < deadline, "the control listener never answered the peer"
            time.sleep(0.5)
    finally:
        control.close()
    for port in (settings.engine_grpc_port, settings.engine_api_port):
        assert not _answers_from_peer(peer_namespace, port), f"port {port} answers off loopback"
    # ...while on loopback the engine is there.
    assert requests.get(f"http://127.0.0.1:{settings.engine_api_port}/api/ready", timeout=5).ok
