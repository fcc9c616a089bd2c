"""The audit key file: the secret that seals the audit chain, kept outside the catalog (governance/audit.py).

`<data>/audit.key` by default (setting audit_key_file), created on first use with mode 0600 and exclusively (two
processes starting at once agree on one key). It records the seq from which entries are sealed with it, so that a
chain cut back below that seq, or rewritten as if it had never been keyed, fails verification. Whoever can read this
file can re-seal the chain: keep it readable only by the service account, and where the catalog is a shared
PostgreSQL server, give every host the same file (docs/security.md).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import secrets
import tempfile
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from facetrace.core.errors import ConfigError
from facetrace.core.types import AuditEntry
from facetrace.governance.audit import AuditHead, AuditKey, head_mac

log = logging.getLogger(__name__)

KEY_FILE_NAME = "audit.key"
_SECRET_BYTES = 32


def load_or_create(path: Path, audit_length: Callable[[], int]) -> AuditKey:
    """The key at path, made (taking over after the log's current last entry) if there is none."""
    if not path.exists():
        key = AuditKey(secrets.token_bytes(_SECRET_BYTES), audit_length() + 1)
        body = {
            "version": 1,
            "secret": key.secret.hex(),
            "keyed_from": key.keyed_from,
            "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        }
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            pass  # another process made it a moment ago: use theirs
        else:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write(json.dumps(body, indent=2) + "\n")
                handle.flush()
                os.fsync(handle.fileno())
            return key
    return _read(path)


def _read(path: Path) -> AuditKey:
    try:
        body = json.loads(path.read_text(encoding="utf-8"))
        return AuditKey(bytes.fromhex(str(body["secret"])), int(body["keyed_from"]))
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ConfigError(
            f"{path}: the audit key file is unreadable ({exc}); restore it from a backup: without it the audit "
            "log's sealed entries cannot be verified, and a new key would start a new sealed part"
        ) from exc


HEAD_FILE_NAME = "audit.head"


class HeadFile:
    """Implements HeadRecord: the newest entry's seq and hash, sealed with the key, in a small file beside it.

    Written atomically after every append, never moved back (a process that appended an older entry leaves a newer
    head alone); a lost file is written again at the next append.
    """

    def __init__(self, path: Path, key: AuditKey) -> None:
        self.path = path
        self._key = key
        self._lock = threading.Lock()  # threads of one process (requests, ingest jobs) append at once

    def record(self, entry: AuditEntry) -> None:
        """Record entry as the head unless a newer one is recorded. The entry is stored already: a head that cannot
        be written (a full disk) is logged, and the next append records its own."""
        body = {"seq": entry.seq, "hash": entry.hash, "mac": head_mac(self._key, entry.seq, entry.hash)}
        with self._lock:
            current = self.load()
            if current is not None and current[0].seq >= entry.seq:
                return
            name: str | None = None
            try:
                handle, name = tempfile.mkstemp(prefix=f".{self.path.name}.", suffix=".tmp", dir=self.path.parent)
                with os.fdopen(handle, "w", encoding="utf-8") as out:
                    out.write(json.dumps(body) + "\n")
                os.replace(name, self.path)
            except OSError as exc:
                log.warning("audit entry %d stored, its head not recorded in %s: %s", entry.seq, self.path, exc)
                if name is not None:
                    with contextlib.suppress(OSError):
                        os.unlink(name)

    def load(self) -> tuple[AuditHead, str] | None:
        try:
            body = json.loads(self.path.read_text(encoding="utf-8"))
            return AuditHead(int(body["seq"]), str(body["hash"])), str(body["mac"])
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, TypeError):
            return AuditHead(0, ""), ""  # unreadable: its seal cannot match, and verify says it was altered
