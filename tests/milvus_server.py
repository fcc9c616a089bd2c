"""A Milvus server for the tests that need one: where it is, whether it answers, and a database of one's own.

The server comes from FACETRACE_TEST_MILVUS_URI (default milvus://127.0.0.1:19530). At the default address, when
nothing answers, the first test that needs a server starts the test extra's (the PyPI `milvus` package's standalone
server, Milvus 2.3.5 in one binary) for the rest of the session, so the README's test command runs these tests on a
fresh machine too. Tests that need it are skipped when no server answers and none could be started, unless
FACETRACE_REQUIRE_MILVUS_SERVER=1 (CI), which makes that a failure. Every test session (or test) works in a database of
its own (facetrace_test_<unix time>_<random>), dropped at the end, so parallel sessions never see each other's
collections; databases that a killed session left behind for more than a day are dropped by the next one.
"""

from __future__ import annotations

import atexit
import contextlib
import importlib.util
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

SERVER_URI = os.environ.get("FACETRACE_TEST_MILVUS_URI", "milvus://127.0.0.1:19530")
REQUIRE_SERVER = os.environ.get("FACETRACE_REQUIRE_MILVUS_SERVER") == "1"
DATABASE_PREFIX = "facetrace_test_"
STALE_AFTER_S = 24 * 3600
CONNECT_TIMEOUT_S = 3.0


@dataclass(frozen=True)
class MilvusTestDatabase:
    """A database of this test session's own on the server: `uri` is what facetrace opens (milvus://host:port/db)."""

    server_uri: str
    name: str
    client: Any  # a pymilvus MilvusClient on that database

    @property
    def uri(self) -> str:
        return f"{self.server_uri.rstrip('/')}/{self.name}"

    def reset(self, keep: str = "") -> None:
        """Back to an empty database: every collection dropped, except that `keep` (if present) is only emptied.

        Emptying is for speed: a Milvus 2.3 server takes about 2.7 s to load a new collection (its coordinators'
        polling loops) and a few milliseconds to delete every row of a loaded one, so a suite that opens the same
        model's collection in every test reuses it, emptied, instead of creating it anew each time."""
        for collection in self.client.list_collections():
            if collection == keep:
                self._empty(collection)
            else:
                self.client.drop_collection(collection)

    def _empty(self, collection: str) -> None:
        """Delete every row, then wait until the server applies it: facetrace's searches are Session-consistent and
        would not wait for a delete made by this client (reads are served at what the server has applied)."""
        self.client.delete(collection, filter="id >= 0")
        deadline = time.monotonic() + 30
        while self.client.query(collection, output_fields=["count(*)"], consistency_level="Eventually")[0]["count(*)"]:
            if time.monotonic() > deadline:
                raise TimeoutError(f"the delete of every row of {collection} was not applied within 30 s")
            time.sleep(0.02)


def unavailable() -> str | None:
    """Why there is no Milvus server to test against, or None when one answers at SERVER_URI."""
    if importlib.util.find_spec("pymilvus") is None:
        return "pymilvus not installed: pip install 'facetrace[milvus]'"
    from facetrace.index.milvus_backend import parse_milvus_uri

    location = parse_milvus_uri(SERVER_URI)
    if location.is_lite:
        return f"FACETRACE_TEST_MILVUS_URI={SERVER_URI} names Milvus Lite, not a server"
    host, _, port = location.client_uri.partition("://")[2].rpartition(":")
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=CONNECT_TIMEOUT_S):
            pass
    except OSError as exc:
        return f"no Milvus server answers at {location.display} ({exc}); start one: pip install milvus; milvus-server"
    return None


_started: subprocess.Popen[bytes] | None = None
DEFAULT_SERVER_URI = "milvus://127.0.0.1:19530"
SERVER_DIR = Path(tempfile.gettempdir()) / f"facetrace-test-milvus-{os.getuid()}"
START_TIMEOUT_S = 60
START_ATTEMPTS = 3


def start_local_server() -> None:
    """When nothing answers at the default address and the test extra's `milvus-server` is installed, start one
    (data under SERVER_DIR, kept between runs so that its binary is unpacked once) for the rest of this test session,
    stopped when the session's process ends. A server named by FACETRACE_TEST_MILVUS_URI is never started."""
    global _started
    if _started is not None or SERVER_URI != DEFAULT_SERVER_URI or unavailable() is None:
        return
    launcher = shutil.which("milvus-server", path=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    if launcher is None:
        return
    # Shorter time-tick and load-check intervals than Milvus's defaults (200 and 1000 ms): a strongly consistent read
    # waits at most 50 ms and a new collection loads in about 1.5 s instead of 2.7 s, for about 5 % of a core idle.
    command = [
        launcher,
        "--data",
        str(SERVER_DIR),
        "--proxy-port",
        "19530",
        "--extra-config",
        "proxy.timeTickInterval=50",
        "--extra-config",
        "queryCoord.checkInterval=100",
    ]
    atexit.register(_stop_local_server)
    log = SERVER_DIR / "server.out"
    # Now and then (seen in about one start of three inside a busy test session, never in five back-to-back starts
    # alone) the server prints its banner but its proxy never listens: such a start is stopped, its logs kept beside
    # the data (failed-start-N), and the server started afresh.
    for attempt in range(1, START_ATTEMPTS + 1):
        shutil.rmtree(SERVER_DIR / "data", ignore_errors=True)
        SERVER_DIR.mkdir(parents=True, exist_ok=True)
        with log.open("wb") as out:
            _started = subprocess.Popen(
                command, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True
            )
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            # The launcher prints its banner once the server's health check passes; then the proxy must answer.
            if "Welcome to use Milvus" in log.read_text(errors="replace") and unavailable() is None:
                return
            time.sleep(1)
        _stop_local_server()
        if (SERVER_DIR / "logs").is_dir():
            shutil.copytree(SERVER_DIR / "logs", SERVER_DIR / f"failed-start-{attempt}", dirs_exist_ok=True)
        if unavailable() is None:  # another session's server, started meanwhile: use it
            return
    tail = f"({unavailable()})\n" + log.read_text(errors="replace")[-2000:]
    raise RuntimeError(
        f"the local Milvus server ({' '.join(command)}) did not answer in {START_ATTEMPTS} starts of "
        f"{START_TIMEOUT_S} s each (logs: {SERVER_DIR}/failed-start-*):\n{tail}"
    )


def _stop_local_server() -> None:
    """Stop the server's whole process group: the launcher may have exited and left the server running in it."""
    if _started is None:
        return
    group = _started.pid  # start_new_session: the launcher leads the group
    for sig, wait_s in ((signal.SIGTERM, 10.0), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(group, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline:
            with contextlib.suppress(subprocess.TimeoutExpired):
                _started.wait(timeout=0.2)
            try:
                os.killpg(group, 0)
            except ProcessLookupError:
                return


def skip_or_fail(reason: str) -> None:
    if REQUIRE_SERVER:
        pytest.fail(f"{reason}; FACETRACE_REQUIRE_MILVUS_SERVER=1 makes this a failure")
    pytest.skip(reason)


@contextmanager
def server_database(*, create: bool = True) -> Iterator[MilvusTestDatabase]:
    """A database of one's own on the server (skipped, or failed in CI, when none answers), dropped with its
    collections at the end. create=False only picks the unused name, for a test in which facetrace creates it."""
    start_local_server()
    reason = unavailable()
    if reason is not None:
        skip_or_fail(reason)
    from pymilvus import MilvusClient

    from facetrace.index.milvus_backend import parse_milvus_uri

    location = parse_milvus_uri(SERVER_URI)
    admin = MilvusClient(uri=location.client_uri, token=location.token, timeout=30)
    _drop_stale_databases(admin, location.client_uri, location.token)
    name = f"{DATABASE_PREFIX}{int(time.time())}_{secrets.token_hex(4)}"
    if create:
        admin.create_database(name)
    client = MilvusClient(uri=location.client_uri, token=location.token, db_name=name, timeout=30)
    try:
        yield MilvusTestDatabase(server_uri=location.display, name=name, client=client)
    finally:
        if name in admin.list_databases():
            _drop_database(admin, client, name)
        client.close()
        admin.close()


def _drop_database(admin: Any, client: Any, name: str) -> None:
    for collection in client.list_collections():
        client.drop_collection(collection)
    admin.drop_database(name)


def _drop_stale_databases(admin: Any, client_uri: str, token: str) -> None:
    from pymilvus import MilvusClient

    now = time.time()
    for name in admin.list_databases():
        stamp = name.removeprefix(DATABASE_PREFIX).split("_")[0]
        if name.startswith(DATABASE_PREFIX) and stamp.isdigit() and now - int(stamp) > STALE_AFTER_S:
            client = MilvusClient(uri=client_uri, token=token, db_name=name, timeout=30)
            try:
                _drop_database(admin, client, name)
            finally:
                client.close()
