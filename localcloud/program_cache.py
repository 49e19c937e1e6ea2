"""The program's last run on the local cloud, remembered, so that `make dev` replays it rather than running
the program again when nothing the program read has changed.

Running the program under the materialising mocks (runtimes/materialize.py) costs seconds of Pulumi's
mock runtime; what the run leaves behind is small: about ninety calls to moto (create this queue, put
that role policy …) and the LocalModel the local cloud runs. A run is remembered with everything it read:
the file of every module loaded in the process (the project's by content, installed packages' by size and
modification time), the few files it reads besides (`declared_reads`, kept honest by a test), and its
stack and config; not remembered if any of it was modified while it ran. docs/localcloud.md has the rest.
A start whose reads all still match replays the calls on the fresh moto instead. moto gives a few
resources new identifiers each time (a secret's ARN suffix, a role's id, the port in the queues' URLs),
so each answer is compared with the remembered one and a changed identifier is replaced wherever the rest
of the run used it: later calls, the model, the exports. `python -m localcloud up --fresh` always runs
the program (and remembers that run)."""

from __future__ import annotations

import hashlib
import json
import os
import re
import sys
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from project_paths import LAMBDAS_DIR, MIGRATIONS_DIR, PROJECT_ROOT, stack_file
from runtimes.local_model import LocalModel

# Bumped when what is remembered changes shape (this file, like every module loaded, is among a run's
# reads as well: editing it makes the program run again).
FORMAT = 1
DIGEST_LENGTH = 16  # of the key, in the file's name
# A remembered identifier shorter than this is not replaced in later calls: short strings that changed
# (a count, a flag) are not identifiers, and replacing them inside longer strings would corrupt those.
SHORTEST_IDENTIFIER = 8
# Where an answer names a resource (QueueUrl, TableArn, RoleId, …): only these are learnt as identifiers.
IDENTIFIER_KEY_ENDINGS = ("Arn", "ARN", "Id", "Url", "URL", "Arns", "Ids", "Urls")


@dataclass
class Call:
    """One call the materialising mocks made to moto, with moto's answer (JSON types only)."""

    service: str
    operation: str
    params: dict[str, Any]
    answer: Any


@dataclass
class ProgramRun:
    calls: list[Call]
    model: LocalModel  # with the program's exports
    # path → signature of what it was when the program read it ("dir/" keys are directory listings).
    reads: dict[str, str] = field(default_factory=dict)


# --- what the program read ------------------------------------------------------------------------------


_ROOT = f"{PROJECT_ROOT}/"
# Installed packages, by their files' size and time (the virtualenv may live inside the checkout, or be
# linked into it); the project's own files by content.
_INSTALLED = tuple(
    {f"{prefix}/" for prefix in (sys.prefix, sys.base_prefix)}
    | {f"{Path(prefix).resolve()}/" for prefix in (sys.prefix, sys.base_prefix)}
)


def _is_installed(path: str) -> bool:
    return not path.startswith(_ROOT) or path.startswith(_INSTALLED)


def _is_listed(name: str) -> bool:
    # Compiled bytecode comes and goes as Python runs things, hidden files as tools and editors do: the
    # program reads neither.
    return name != "__pycache__" and not name.endswith(".pyc") and not name.startswith(".")


def _listed_names(directory: str) -> list[str]:
    return sorted(name for name in os.listdir(directory) if _is_listed(name))


def signature(key: str) -> str:
    """What a read file (or, for a key ending in "/", a directory's listing) is now, to compare with
    what it was when the program ran. Keys are absolute, or relative to the checkout for its files."""
    path = key if os.path.isabs(key) else _ROOT + key
    try:
        if key.endswith("/"):
            return "names " + hashlib.sha256("\n".join(_listed_names(path)).encode()).hexdigest()
        if _is_installed(path):
            stat = os.stat(path)
            return f"stat {stat.st_size} {stat.st_mtime_ns}"
        with open(path, "rb") as file:
            return "sha256 " + hashlib.file_digest(file, "sha256").hexdigest()
    except (FileNotFoundError, NotADirectoryError):
        return "missing"


def declared_reads(stack: str) -> list[str]:
    """What the program reads besides its modules' code: its stack file, the names of the files under
    lambdas/ (each function's code archive lists them) and the migrations (their fingerprint is the
    migration invocation's input). tests/localcloud/test_program_cache.py runs the program under an
    audit hook (PEP 578) and fails if it reads anything else."""
    keys = [str(stack_file(stack).relative_to(PROJECT_ROOT))]
    for directory, subdirectories, _ in os.walk(LAMBDAS_DIR):
        subdirectories[:] = sorted(name for name in subdirectories if _is_listed(name))
        keys.append(f"{Path(directory).relative_to(PROJECT_ROOT)}/")
    keys += [str(path.relative_to(PROJECT_ROOT)) for path in sorted(MIGRATIONS_DIR.glob("*.sql"))]
    return keys


def module_files() -> set[str]:
    """Keys of the file of every module loaded in this process: the program's, and the local cloud's own
    (its code shapes the run: the config it gives the program, the mocks' clients)."""
    keys = set()
    for module in list(sys.modules.values()):
        file = getattr(module, "__file__", None)
        if file:
            file = os.path.abspath(file)
            keys.add(file if _is_installed(file) else file[len(_ROOT) :])
    return keys


def process_started_ns() -> int:
    """When this process started (Linux's /proc; the boot time is in whole seconds, so this may be up to
    a second early: a file changed just before the start then counts as changed during the run)."""
    ticks = int(Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()[19])
    boot = next(
        int(line.split()[1])
        for line in Path("/proc/stat").read_text().splitlines()
        if line.startswith("btime ")
    )
    return boot * 1_000_000_000 + ticks * 1_000_000_000 // os.sysconf("SC_CLK_TCK")


def _modified_since(key: str, moment_ns: int) -> bool:
    try:
        return os.stat(key if os.path.isabs(key) else _ROOT + key).st_mtime_ns >= moment_ns
    except FileNotFoundError:
        return True


def declared_signatures(stack: str) -> dict[str, str]:
    return {key: signature(key) for key in declared_reads(stack)}


def program_reads(
    stack: str, since_ns: int, declared_before: Mapping[str, str]
) -> tuple[dict[str, str], str | None]:
    """The signature of everything the run of the program in this process read (called once it has
    run), or none and the first thing that changed while it ran: signed only now, a file saved during
    the run would be taken for what the run read. The declared reads are compared with their signatures
    from before the run (`declared_before`); module files with the process's start (`since_ns`), by
    modification time."""
    declared = declared_signatures(stack)
    changed = next(
        (
            key
            for key in sorted(declared.keys() | declared_before.keys())
            if declared.get(key) != declared_before.get(key)
        ),
        None,
    )
    modules = sorted(module_files() - declared.keys())
    changed = changed or next((key for key in modules if _modified_since(key, since_ns)), None)
    if changed is not None:
        return {}, changed
    return {**declared, **{key: signature(key) for key in modules}}, None


def first_change(reads: Mapping[str, str]) -> str | None:
    """The first thing the program read that is not what it was, or None."""
    for key, remembered in reads.items():
        if signature(key) != remembered:
            return key
    return None


# --- the calls ----------------------------------------------------------------------------------------


def _plain(value: Any) -> Any:
    """An answer in JSON types: what a later call or the model may have taken from it (timestamps and
    the response's metadata are neither)."""
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items() if key != "ResponseMetadata"}
    if isinstance(value, list | tuple):
        return [_plain(item) for item in value]
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    return None


class RecordingClients:
    """The operator's clients, each call the materialising mocks make recorded with moto's answer."""

    def __init__(self, clients: Callable[[str], Any]) -> None:
        self._clients = clients
        self.calls: list[Call] = []
        self._lock = threading.Lock()

    def __call__(self, service: str) -> Any:
        return _RecordedClient(self, service)

    def _call(self, service: str, operation: str, params: dict[str, Any]) -> Any:
        answer = getattr(self._clients(service), operation)(**params)
        with self._lock:
            self.calls.append(Call(service, operation, json.loads(json.dumps(params)), _plain(answer)))
        return answer


class _RecordedClient:
    def __init__(self, recorder: RecordingClients, service: str) -> None:
        self._recorder = recorder
        self._service = service

    def __getattr__(self, operation: str) -> Callable[..., Any]:
        return lambda **params: self._recorder._call(self._service, operation, params)


class Identifiers:
    """Remembered identifiers → the ones moto gave this time, learnt by comparing answers."""

    def __init__(self) -> None:
        self.renamed: dict[str, str] = {}
        self._pattern: re.Pattern[str] | None = None

    def learn(self, remembered: Any, fresh: Any, naming: bool = False) -> None:
        """Compares a remembered answer with this time's; `naming`: under a key that names a resource."""
        if isinstance(remembered, str) and isinstance(fresh, str):
            if naming and remembered != fresh and len(remembered) >= SHORTEST_IDENTIFIER:
                self.renamed[remembered] = fresh
                self._pattern = None
        elif isinstance(remembered, dict) and isinstance(fresh, dict):
            for key in remembered.keys() & fresh.keys():
                self.learn(remembered[key], fresh[key], naming or key.endswith(IDENTIFIER_KEY_ENDINGS))
        elif isinstance(remembered, list) and isinstance(fresh, list):
            for old, new in zip(remembered, fresh, strict=False):
                self.learn(old, new, naming)

    def apply(self, value: Any) -> Any:
        """`value` with every remembered identifier in it (whole or inside a longer string: an ARN in a
        policy document) replaced by this time's."""
        if not self.renamed:
            return value
        if isinstance(value, str):
            if not any(old in value for old in self.renamed):
                return value
            if self._pattern is None:
                # Longest first: one identifier may begin another (a queue's URL and its DLQ's).
                alternatives = sorted(self.renamed, key=len, reverse=True)
                self._pattern = re.compile("|".join(re.escape(old) for old in alternatives))
            return self._pattern.sub(lambda match: self.renamed[match[0]], value)
        if isinstance(value, dict):
            return {self.apply(key): self.apply(item) for key, item in value.items()}
        if isinstance(value, list):
            return [self.apply(item) for item in value]
        return value


def replay(run: ProgramRun, clients: Callable[[str], Any]) -> LocalModel:
    """Make the remembered calls on this moto; the model (and exports) with this moto's identifiers."""
    identifiers = Identifiers()
    for call in run.calls:
        answer = getattr(clients(call.service), call.operation)(**identifiers.apply(call.params))
        identifiers.learn(call.answer, _plain(answer))
    return LocalModel.from_json(identifiers.apply(run.model.to_json()))


# --- where runs are kept ----------------------------------------------------------------------------


class ProgramCache:
    """One remembered run per stack and config, in `directory` (build/localcloud by default)."""

    def __init__(self, directory: Path, stack: str, config: Mapping[str, str]) -> None:
        self.stack = stack
        self.key = {"format": FORMAT, "python": sys.version, "stack": stack, "config": dict(config)}
        digest = hashlib.sha256(json.dumps(self.key, sort_keys=True).encode()).hexdigest()[:DIGEST_LENGTH]
        self.path = directory / f"program-{stack}-{digest}.json"

    def recall(self) -> tuple[ProgramRun | None, str]:
        """The remembered run if nothing it read has changed; else None and why not (for the console)."""
        try:
            document = json.loads(self.path.read_text())
        except FileNotFoundError:
            return None, "no earlier run of it is remembered"
        except (OSError, ValueError) as error:
            return None, f"{self.path.name} is unreadable ({error})"
        if not isinstance(document, dict) or document.get("key") != self.key:
            return None, "its remembered run is of another version of the local cloud"
        try:
            changed = first_change(document["reads"])
            run = ProgramRun(
                calls=[Call(**call) for call in document["calls"]],
                model=LocalModel.from_json(document["model"]),
                reads=document["reads"],
            )
        except (AttributeError, KeyError, TypeError, ValueError) as error:
            return None, f"{self.path.name} is unreadable ({type(error).__name__}: {error})"
        if changed is not None:
            return None, f"{changed} changed since its last run"
        return run, f"replayed its last run ({len(run.calls)} calls to moto): nothing it reads has changed"

    def remember(self, run: ProgramRun) -> None:
        document = {
            "key": self.key,
            "reads": run.reads,
            "calls": [call.__dict__ for call in run.calls],
            "model": run.model.to_json(),
        }
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # Written whole, then renamed: a cloud starting meanwhile reads the old run or the new, never half.
        partial = self.path.with_suffix(f".{os.getpid()}.partial")
        partial.write_text(json.dumps(document, indent=1))
        partial.replace(self.path)
        # One run per stack is kept: the others are of another config or version, and so are partial
        # files that a killed start left.
        digest = "?" * DIGEST_LENGTH
        for pattern in (f"program-{self.stack}-{digest}.json", f"program-{self.stack}-{digest}.*.partial"):
            for other in self.path.parent.glob(pattern):
                if other != self.path:
                    other.unlink(missing_ok=True)
