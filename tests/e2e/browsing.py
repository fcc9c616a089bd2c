"""What the browser tests share: the page helpers, and a uvicorn server for an engine on a free local port.

Needs Debian's chromium and chromium-driver (.ci/run installs them). Without them the tests skip, unless
FACETRACE_REQUIRE_BROWSER=1 (CI), where they fail. The browser fixture is in conftest.py.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from facetrace.engine import Engine
from facetrace.server.app import create_app
from facetrace.server.passwords import Argon2Hasher
from facetrace.server.serving import server_config

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
PASSWORD = "correct horse battery staple"


def unavailable(reason: str) -> None:
    if os.environ.get("FACETRACE_REQUIRE_BROWSER") == "1":
        pytest.fail(f"FACETRACE_REQUIRE_BROWSER=1 but {reason}")
    pytest.skip(reason)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def serving(engine: Engine, users: Sequence[tuple[str, str]]) -> Iterator[str]:
    """The engine's app under uvicorn on a free local port, with these (name, role) users (password PASSWORD);
    yields the base URL, and stops the server and closes the engine after."""
    import uvicorn

    hasher = Argon2Hasher()
    for name, role in users:
        engine.users.add_user(name, role, "cli:test", password=PASSWORD, hasher=hasher)
    port = free_port()
    server = uvicorn.Server(server_config(create_app(engine), engine, "127.0.0.1", port))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "uvicorn did not start"
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        engine.close()


def screenshot(driver: Any, path: Path, *, docs_name: str | None = None) -> None:
    """Save the page as PNG at path (and check it is not blank). With docs_name and FACETRACE_UI_SHOTS set to a
    folder (e.g. docs/ui), also write a small copy there as <docs_name>.png: that is how docs/ui.md's pictures are
    taken, `FACETRACE_UI_SHOTS=docs/ui pytest tests/e2e`."""
    driver.save_screenshot(str(path))
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000, f"{path} looks empty"
    shots = os.environ.get("FACETRACE_UI_SHOTS")
    if docs_name and shots:
        from PIL import Image

        with Image.open(path) as image:
            small = image.convert("RGB")
            small.thumbnail((960, 4000))
            small = small.quantize(colors=128)
        Path(shots).mkdir(parents=True, exist_ok=True)
        small.save(Path(shots) / f"{docs_name}.png", optimize=True)


def click_and_load(driver: Any, element: Any) -> None:
    """Click something that submits a form or follows a link, and wait until the next page has loaded."""
    from selenium.common.exceptions import WebDriverException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    page = driver.find_element(By.TAG_NAME, "html")
    element.click()

    def page_replaced(_: Any) -> bool:
        # Selenium's staleness_of only catches StaleElementReferenceException; while Chromium swaps documents the
        # old node can also be reported as "does not belong to the document", which means the same thing.
        try:
            page.is_enabled()
        except WebDriverException:
            return True
        return False

    WebDriverWait(driver, 30).until(page_replaced)
    WebDriverWait(driver, 30).until(lambda d: d.execute_script("return document.readyState") == "complete")


def sign_in(driver: Any, base_url: str, name: str) -> None:
    from selenium.webdriver.common.by import By

    driver.get(f"{base_url}/ui/login")
    driver.find_element(By.ID, "username").send_keys(name)
    driver.find_element(By.ID, "password").send_keys(PASSWORD)
    click_and_load(driver, driver.find_element(By.ID, "sign-in"))
    assert name in driver.find_element(By.CSS_SELECTOR, "header .who").text


def sign_out(driver: Any) -> None:
    from selenium.webdriver.common.by import By

    click_and_load(driver, driver.find_element(By.CSS_SELECTOR, "header .who button"))
    assert "/ui/login" in driver.current_url
