"""`scripts/stale-locks`: what a killed `pulumi` leaves in a file backend is cleared, and nothing else.

The half-written sidecar is the one a real SIGKILL left in `test_up_killed_mid_iteration…`: gocloud.dev's
fileblob truncates `<stack>.json.attrs` in place before it renames the new state file into place, so a
kill in between leaves an empty sidecar beside the previous (whole) state, and every command then fails
with `failed to load checkpoint: EOF`.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
STATE = '{"version": 3, "checkpoint": {"stack": "organization/p/s"}}'
ATTRS = '{"user.cache_control": "", "user.content_type": "application/octet-stream", "md5": "AAAA"}'


def dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def backend(tmp_path: Path, pid: int) -> Path:
    """A file backend in the layout the engine writes: a lock of `pid` on stack p/s, a state with sidecars."""
    root = tmp_path / "backend"
    locks, stacks = root / ".pulumi" / "locks" / "p" / "s", root / ".pulumi" / "stacks" / "p"
    locks.mkdir(parents=True)
    stacks.mkdir(parents=True)
    (locks / "abc.json").write_text(json.dumps({"pid": pid, "hostname": socket.gethostname(), "timestamp": "t"}))
    (locks / "abc.json.attrs").write_text(ATTRS)
    (stacks / "s.json").write_text(STATE)
    (stacks / "s.json.attrs").write_text("")  # truncated, never written: the kill came in between
    (stacks / "s.json.18ee07c5b855c948.tmp").write_text(STATE + " ")  # the new state, never renamed
    (stacks / "s.json.bak").write_text(STATE)
    (stacks / "s.json.bak.attrs").write_text(ATTRS)
    (stacks / "other.json.attrs").write_text("")  # another stack's: not this lock's business
    return root


def stale_locks(root: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(REPO / "scripts" / "stale-locks"), str(root)], capture_output=True, text=True,
                          timeout=60, check=True)


def test_a_dead_writers_lock_half_written_sidecar_and_temporary_file_are_removed(tmp_path: Path) -> None:
    root = backend(tmp_path, dead_pid())
    result = stale_locks(root)
    stacks = root / ".pulumi" / "stacks" / "p"
    assert "removed the lock of stack 's'" in result.stderr
    assert "(s.json.18ee07c5b855c948.tmp, s.json.attrs)" in result.stderr
    assert sorted(p.name for p in stacks.iterdir()) == ["other.json.attrs", "s.json", "s.json.bak",
                                                         "s.json.bak.attrs"]
    assert (stacks / "s.json").read_text() == STATE  # the last state written whole is kept
    assert not list((root / ".pulumi" / "locks").rglob("*.json*"))


def test_a_live_writers_files_are_left_alone(tmp_path: Path) -> None:
    with subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"]) as live:
        try:
            root = backend(tmp_path, live.pid)
            result = stale_locks(root)
        finally:
            live.kill()
    assert result.stderr == ""
    stacks = root / ".pulumi" / "stacks" / "p"
    assert (stacks / "s.json.attrs").exists() and (stacks / "s.json.18ee07c5b855c948.tmp").exists()
    assert (root / ".pulumi" / "locks" / "p" / "s" / "abc.json").exists()
