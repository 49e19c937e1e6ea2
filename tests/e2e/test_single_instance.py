"""`make dev` (python -m localcloud up) runs once per checkout: a second start is refused, saying where
the first runs; a state file left by a cloud that died is noticed and cleared; closing the terminal
(SIGHUP) stops every process the cloud started, as Ctrl-C and `kill` do, and a further signal during
that stop (`timeout` signals twice) neither cuts it short nor prints a traceback.

One real cloud, in its own session, with its state file under the test's directory (never the
checkout's .localcloud.json, so a developer's running `make dev` is left alone)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from localcloud.__main__ import AlreadyRunning, lock_path, take_instance_lock

ROOT = Path(__file__).resolve().parents[2]


def _up(state_file: Path, *extra: str, temporary: Path | None = None) -> subprocess.Popen[str]:
    """`make dev` with its state file and program cache beside `state_file`, its temporary directories
    (logs, the database) in `temporary` if given."""
    return subprocess.Popen(  # noqa: S603 - our own command
        [sys.executable, "-m", "localcloud", "up", *extra],
        cwd=ROOT,
        env={
            **os.environ,
            "TBS_LOCALCLOUD_STATE": str(state_file),
            "TBS_LOCALCLOUD_PROGRAM_CACHE": str(state_file.parent / "program"),
            "NO_COLOR": "1",
            **({"TMPDIR": str(temporary)} if temporary else {}),
        },
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # a terminal of its own: the signal reaches it alone
    )


def _processes_of(pid: int, marker: str) -> set[int]:
    """`pid`'s descendants, and any process whose command line names `marker` (PostgreSQL daemonises:
    its parent is init, not the cloud)."""
    parents: dict[int, int] = {}
    commands: dict[int, str] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            commands[int(entry.name)] = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        parents[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
    found = {child for child, command in commands.items() if marker and marker in command}
    frontier = [pid]
    while frontier:
        current = frontier.pop()
        for child, parent in parents.items():
            if parent == current and child not in found:
                found.add(child)
                frontier.append(child)
    return found


def _running(pid: int) -> bool:
    """The process exists and has not exited. PostgreSQL's postmaster daemonises (its parent is init);
    once stopped it stays a zombie wherever init does not reap orphans (this machine's init does not)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def test_a_stale_state_file_is_cleared_and_a_held_lock_refuses(tmp_path: Path) -> None:
    state_file = tmp_path / "state.json"
    state_file.write_text(json.dumps({"pid": 1, "apiUrl": "http://127.0.0.1:1/v1", "statePageUrl": "x"}))
    held = take_instance_lock(state_file)  # nobody held the lock: the file was a dead cloud's
    try:
        assert not state_file.exists()
        state_file.write_text(json.dumps({"pid": 42, "apiUrl": "http://127.0.0.1:9/v1", "statePageUrl": "p"}))
        with pytest.raises(AlreadyRunning, match=r"already running here: process 42, storefront API http"):
            take_instance_lock(state_file)
    finally:
        held.close()
    assert lock_path(state_file).exists()


def test_a_second_instance_is_refused_and_sighup_leaves_no_process(tmp_path: Path) -> None:
    state_file = tmp_path / "state.json"
    first = _up(state_file)
    try:
        deadline = time.monotonic() + 90
        while not state_file.exists():
            assert first.poll() is None, first.communicate()
            assert time.monotonic() < deadline, "the local cloud did not start"
            time.sleep(0.2)
        running = json.loads(state_file.read_text())
        assert running["pid"] == first.pid
        second = subprocess.run(
            [sys.executable, "-m", "localcloud", "up"],
            cwd=ROOT,
            env={**os.environ, "TBS_LOCALCLOUD_STATE": str(state_file)},
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert second.returncode != 0
        assert (
            f"already running here: process {first.pid}, storefront API {running['apiUrl']}" in second.stderr
        )
        assert json.loads(state_file.read_text()) == running  # the first's state is untouched

        children = _processes_of(first.pid, running["databaseDir"])
        commands = " ".join(Path(f"/proc/{pid}/cmdline").read_text() for pid in children)
        assert "moto" in commands and "postgres" in commands and "localcloud.worker" in commands
        os.kill(first.pid, signal.SIGHUP)  # the terminal closed
        time.sleep(0.3)
        os.kill(first.pid, signal.SIGTERM)  # and, mid-stop, another signal
        _, stderr = first.communicate(timeout=60)
    finally:
        if first.poll() is None:
            first.kill()
    assert first.returncode == 0, stderr
    assert "Traceback" not in stderr, stderr
    left = {pid: Path(f"/proc/{pid}/cmdline").read_text() for pid in children if _running(pid)}
    assert not left, f"left behind: {left}"
    assert not state_file.exists()


@pytest.fixture(scope="module")
def remembered_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A state directory whose program cache holds a run: the starts below replay it (~3 s each)."""
    state_file = tmp_path_factory.mktemp("remembered") / "state.json"
    started = _up(state_file)
    try:
        assert started.stdout is not None
        assert any(" is up in " in line for line in started.stdout), started.communicate()
    finally:
        os.kill(started.pid, signal.SIGINT)
        started.communicate(timeout=60)
    return state_file


# Moments of a start that replays the program: Python loading the local cloud with moto just spawned;
# moto starting, the clients being made, PostgreSQL starting; the replay and the credentials; the
# migration invocation (worker processes). (Not earlier: before its first line runs, Python answers
# Ctrl-C with its own KeyboardInterrupt, whatever the program does.)
@pytest.mark.parametrize("after_seconds", [0.6, 1.2, 1.8, 2.6])
def test_ctrl_c_at_any_moment_of_the_start_leaves_no_process(
    remembered_run: Path, after_seconds: float
) -> None:
    # Short: PostgreSQL's socket goes under it, and a socket's path has at most 107 bytes (pytest's
    # own temporary paths are longer: pgserver then finds no socket directory).
    temporary = Path(tempfile.mkdtemp(prefix="tbs-stop-"))
    starting = _up(remembered_run, temporary=temporary)
    try:
        time.sleep(after_seconds)
        started = _processes_of(starting.pid, str(temporary))
        os.kill(starting.pid, signal.SIGINT)
        _, stderr = starting.communicate(timeout=60)
    finally:
        if starting.poll() is None:
            starting.kill()
    assert "Traceback" not in stderr, stderr
    # Whatever it had started by the signal, and whatever names its temporary directory (PostgreSQL
    # daemonises: its parent is init).
    left = {
        pid: Path(f"/proc/{pid}/cmdline").read_text()
        for pid in started | _processes_of(-1, str(temporary))
        if _running(pid)
    }
    assert not left, f"left behind: {left}"
    shutil.rmtree(temporary, ignore_errors=True)
