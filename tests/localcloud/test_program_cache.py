"""The program's last run, remembered (localcloud/program_cache.py): replayed only while nothing the program
read has changed, with moto's fresh identifiers wherever the run used the old ones."""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from localcloud import program_cache
from localcloud.program_cache import (
    SHORTEST_IDENTIFIER,
    Call,
    Identifiers,
    ProgramCache,
    ProgramRun,
    declared_reads,
    first_change,
    signature,
)
from project_paths import PROJECT_ROOT
from runtimes.local_model import LocalFunction, LocalMapping, LocalModel, LocalRoute, LocalSchedule
from runtimes.stacks import known_stacks

# Identifiers in capitals and digits, the text around them in other characters: no identifier can be
# made by what surrounds it.
IDENTIFIERS = st.text(
    alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789", min_size=SHORTEST_IDENTIFIER, max_size=24
)
FILLER = st.text(alphabet='abcxyz:/-_ {}"', min_size=1, max_size=6)


@st.composite
def renamings_and_texts(draw: st.DrawFn) -> tuple[dict[str, str], list[list[str | int]]]:
    base = draw(st.lists(IDENTIFIERS, min_size=1, max_size=4, unique=True))
    # Some identifiers begin others (a queue's URL and its DLQ's): the longest must win where both match.
    extended = draw(st.lists(st.tuples(st.sampled_from(base), IDENTIFIERS), max_size=3))
    old = list(dict.fromkeys(base + [start + rest for start, rest in extended]))
    new = draw(st.lists(IDENTIFIERS, min_size=len(old), max_size=len(old)))
    renamed = dict(zip(old, new, strict=True))
    # Each text: filler, then identifiers (by index) each followed by filler.
    texts = draw(
        st.lists(
            st.lists(st.tuples(st.integers(0, len(old) - 1), FILLER), max_size=4).map(
                lambda parts: [part for pair in parts for part in pair]
            ),
            min_size=1,
            max_size=5,
        )
    )
    return renamed, [[draw(FILLER), *text] for text in texts]


def render(text: list[str | int], identifiers: list[str]) -> str:
    return "".join(identifiers[part] if isinstance(part, int) else part for part in text)


@given(renamings_and_texts())
def test_each_remembered_identifier_is_replaced_wherever_it_appears(
    case: tuple[dict[str, str], list[list[str | int]]],
) -> None:
    renamed, texts = case
    old, new = list(renamed), list(renamed.values())
    identifiers = Identifiers()
    identifiers.learn({"QueueUrl": old}, {"QueueUrl": new})
    remembered = {"Params": [render(text, old) for text in texts], "Nested": {"Key": render(texts[0], old)}}
    assert identifiers.apply(remembered) == {
        "Params": [render(text, new) for text in texts],
        "Nested": {"Key": render(texts[0], new)},
    }


def test_an_answer_teaches_only_changed_identifiers_of_what_it_names() -> None:
    identifiers = Identifiers()
    identifiers.learn(
        {
            "Role": {"Arn": "arn:aws:iam::1:role/r", "RoleId": "AROAOLD000001", "Path": "/"},
            "TableDescription": {"TableStatus": "CREATING", "TableId": "3f1c-old-uuid"},
            "QueueUrls": ["http://127.0.0.1:4001/1/q"],
            "VersionId": "short",
        },
        {
            "Role": {"Arn": "arn:aws:iam::1:role/r", "RoleId": "AROANEW000002", "Path": "/x"},
            "TableDescription": {"TableStatus": "ACTIVE!!", "TableId": "9a2d-new-uuid"},
            "QueueUrls": ["http://127.0.0.1:5002/1/q"],
            "VersionId": "other",
        },
    )
    # Unchanged, too short, or not where an answer names a resource (a status): not identifiers.
    assert identifiers.renamed == {
        "AROAOLD000001": "AROANEW000002",
        "3f1c-old-uuid": "9a2d-new-uuid",
        "http://127.0.0.1:4001/1/q": "http://127.0.0.1:5002/1/q",
    }


def test_an_identifier_that_begins_another_is_replaced_whole_where_the_longer_is() -> None:
    identifiers = Identifiers()
    identifiers.learn(
        {"QueueUrl": ["http://127.0.0.1:4001/1/q", "http://127.0.0.1:4001/1/q-dlq"]},
        {"QueueUrl": ["http://127.0.0.1:5002/1/orders", "http://127.0.0.1:5002/1/orders-dead"]},
    )
    policy = '{"deadLetterTargetArn": "x", "url": "http://127.0.0.1:4001/1/q-dlq"}'
    assert identifiers.apply([policy, "http://127.0.0.1:4001/1/q"]) == [
        '{"deadLetterTargetArn": "x", "url": "http://127.0.0.1:5002/1/orders-dead"}',
        "http://127.0.0.1:5002/1/orders",
    ]


def a_model() -> LocalModel:
    """Every field of the model set, some to values JSON would change (tuples, nested dictionaries)."""
    function = LocalFunction(
        name="tbs-dev-order-api",
        arn="arn:aws:lambda:ap-southeast-2:123456789012:function:tbs-dev-order-api",
        handler="order.handlers.api.handler",
        environment={"ORDERS_TABLE": "tbs-dev-orders", "SECRET_ARN": "arn:…:secret:key-AbCdEf"},
        timeout_seconds=10,
        async_retries=1,
        async_dlq_arn="arn:aws:sqs:ap-southeast-2:123456789012:dlq",
        role_arn="arn:aws:iam::123456789012:role/tbs-dev-order-api",
        reserved_concurrency=5,
    )
    return LocalModel(
        functions={function.name: function},
        mappings=[LocalMapping("arn:aws:sqs:…:q", function.name, 10, 1, True, 5)],
        routes={
            ("POST", "/orders"): LocalRoute(
                "POST", "/orders", "COGNITO_USER_POOLS", {"type": "AWS_PROXY", "responses": {"200": {}}}
            )
        },
        stage_name="v1",
        rest_api_id="abc123",
        invocations=[(function.name, '{"action": "migrate"}')],
        schedules=[LocalSchedule("sweep", "rate(5 minutes)", 300, function.arn)],
        queue_urls={"arn:aws:sqs:…:q": "http://127.0.0.1:1/123456789012/q"},
        exports={"apiUrl": "https://abc123.execute-api/v1", "tables": ["a", "b"]},
        roles=[function.role_arn],
        method_settings={"*/*": {"throttlingBurstLimit": 100, "metricsEnabled": True}},
        gateway_responses={"DEFAULT_4XX": {"statusCode": None, "templates": {}, "parameters": {}}},
    )


def test_the_model_comes_back_from_json_equal() -> None:
    model = a_model()
    assert LocalModel.from_json(json.loads(json.dumps(model.to_json()))) == model


def a_run(reads: dict[str, str] | None = None) -> ProgramRun:
    return ProgramRun(
        calls=[Call("sqs", "create_queue", {"QueueName": "q"}, {"QueueUrl": "http://127.0.0.1:1/1/q"})],
        model=a_model(),
        reads=reads or {},
    )


def test_a_remembered_run_is_recalled_as_it_was(tmp_path: Path) -> None:
    cache = ProgramCache(tmp_path, "dev", {"tbs:a": "1"})
    assert cache.recall() == (None, "no earlier run of it is remembered")
    cache.remember(a_run())
    recalled, why = cache.recall()
    assert recalled == a_run()
    assert why.startswith("replayed its last run (1 calls to moto)")


def test_a_run_is_recalled_only_for_its_own_stack_and_config(tmp_path: Path) -> None:
    ProgramCache(tmp_path, "dev", {"tbs:a": "1"}).remember(a_run())
    assert ProgramCache(tmp_path, "dev", {"tbs:a": "2"}).recall()[0] is None
    assert ProgramCache(tmp_path, "prod", {"tbs:a": "1"}).recall()[0] is None
    assert ProgramCache(tmp_path, "dev", {"tbs:a": "1"}).recall()[0] is not None


def test_a_run_remembered_by_another_version_of_the_cache_or_unreadable_is_not_replayed(
    tmp_path: Path,
) -> None:
    cache = ProgramCache(tmp_path, "dev", {})
    cache.remember(a_run())
    document = json.loads(cache.path.read_text())
    document["key"]["format"] += 1
    cache.path.write_text(json.dumps(document))
    assert cache.recall() == (None, "its remembered run is of another version of the local cloud")
    cache.path.write_text("{ half a file")
    assert cache.recall()[1].startswith(f"{cache.path.name} is unreadable (")
    document["key"]["format"] -= 1
    del document["calls"][0]["answer"]  # the right key, a wrong shape
    cache.path.write_text(json.dumps(document))
    assert cache.recall()[1].startswith(f"{cache.path.name} is unreadable (TypeError")


def test_one_run_is_kept_per_stack(tmp_path: Path) -> None:
    ProgramCache(tmp_path, "prod", {}).remember(a_run())
    ProgramCache(tmp_path, "dev", {"tbs:a": "1"}).remember(a_run())
    left_by_a_killed_start = ProgramCache(tmp_path, "dev", {"tbs:a": "2"}).path.with_suffix(".77.partial")
    left_by_a_killed_start.write_text("{")
    kept = ProgramCache(tmp_path, "dev", {"tbs:a": "2"})
    kept.remember(a_run())
    assert sorted(path.name for path in tmp_path.iterdir()) == sorted(
        [kept.path.name, ProgramCache(tmp_path, "prod", {}).path.name]
    )


@pytest.fixture
def checkout(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A stand-in checkout: its files are keyed relative to it and signed by content."""
    monkeypatch.setattr(program_cache, "_ROOT", f"{tmp_path}/")
    (tmp_path / "services").mkdir()
    (tmp_path / "services" / "order.py").write_text("TABLE = 'orders'\n")
    (tmp_path / "lambdas").mkdir()
    (tmp_path / "lambdas" / "handler.py").write_text("")
    return tmp_path


def test_a_change_to_what_the_program_read_is_named(
    checkout: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    installed = tmp_path_factory.mktemp("site-packages") / "pulumi.py"
    installed.write_text("VERSION = 1\n")
    keys = ["services/order.py", "lambdas/", str(installed)]
    reads = {key: signature(key) for key in keys}
    assert first_change(reads) is None

    (checkout / "services" / "order.py").write_text("TABLE = 'orders-v2'\n")
    assert first_change(reads) == "services/order.py"
    reads = {key: signature(key) for key in keys}

    (checkout / "lambdas" / "refunds.py").write_text("")
    assert first_change(reads) == "lambdas/"
    reads = {key: signature(key) for key in keys}

    os.utime(installed, ns=(1, 1))  # an installed package: by size and time
    assert first_change(reads) == str(installed)
    reads = {key: signature(key) for key in keys}

    (checkout / "services" / "order.py").unlink()
    assert first_change(reads) == "services/order.py"


def test_bytecode_and_hidden_files_are_not_what_the_program_lists(checkout: Path) -> None:
    reads = {"lambdas/": signature("lambdas/")}
    (checkout / "lambdas" / "__pycache__").mkdir()
    (checkout / "lambdas" / "handler.cpython-311.pyc").write_text("")
    (checkout / "lambdas" / ".handler.py.swp").write_text("")
    assert first_change(reads) is None


def test_every_module_loaded_is_keyed_the_checkouts_by_path_in_it(
    checkout: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.syspath_prepend(str(checkout))
    (checkout / "services" / "__init__.py").write_text("")
    monkeypatch.delitem(sys.modules, "services", raising=False)
    monkeypatch.delitem(sys.modules, "services.order", raising=False)
    importlib.import_module("services.order")
    keys = program_cache.module_files()
    assert {"services/order.py", "services/__init__.py", os.path.abspath(pytest.__file__)} <= keys
    assert signature("services/order.py").startswith("sha256 ")
    assert signature(os.path.abspath(pytest.__file__)).startswith("stat ")


def test_a_run_whose_reads_changed_while_it_ran_is_not_remembered(
    checkout: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (checkout / "Pulumi.dev.yaml").write_text("config: {}\n")
    monkeypatch.setattr(program_cache, "declared_reads", lambda stack: ["Pulumi.dev.yaml", "lambdas/"])
    monkeypatch.setattr(program_cache, "module_files", lambda: {"services/order.py"})

    def a_run(during: Callable[[], object]) -> str | None:
        run_began = time.time_ns()
        declared_before = program_cache.declared_signatures("dev")
        during()
        return program_cache.program_reads("dev", run_began, declared_before)[1]

    # What Python and tools write beside the code while it runs is not a change to what it read (other
    # processes' workers compile the handlers meanwhile).
    assert a_run(lambda: (checkout / "lambdas" / "__pycache__").mkdir()) is None
    order = checkout / "services" / "order.py"
    assert a_run(lambda: order.write_text("TABLE = 'saved while it ran'\n")) == "services/order.py"
    stack = checkout / "Pulumi.dev.yaml"
    assert a_run(lambda: stack.write_text("config: {a: 1}\n")) == "Pulumi.dev.yaml"
    assert a_run(lambda: (checkout / "lambdas" / "refunds.py").write_text("")) == "lambdas/"
    assert program_cache.process_started_ns() <= time.time_ns()


# The program run for each stack in a process of its own, watched: the files it opens and the directories
# it lists (audit hooks, PEP 578), and, at the end, the files of the modules loaded.
AUDITED_PROGRAM = """
import json, os, sys
opened, listed = set(), set()
def audit(event, args):
    if event not in ("open", "os.listdir", "os.scandir") or not args:
        return
    if not isinstance(args[0], (str, bytes, os.PathLike)):
        return  # a file descriptor
    path = os.path.abspath(os.fsdecode(args[0]))
    if event == "open":
        opened.add(path)
    elif "importlib" not in sys._getframe(1).f_code.co_filename:  # importlib lists what it imports from
        listed.add(path)
sys.addaudithook(audit)
from runtimes.recording import record
seen = {}
for stack in sys.argv[1:]:
    record(stack, {})
    seen[stack] = {"opened": sorted(opened), "listed": sorted(listed)}
    opened.clear(), listed.clear()
modules = [os.path.abspath(m.__file__) for m in list(sys.modules.values()) if getattr(m, "__file__", None)]
print(json.dumps({"stacks": seen, "modules": modules}))
"""


def test_the_program_reads_nothing_but_its_modules_and_what_it_declares() -> None:
    """The cache replays a run only while everything it read is unchanged: a file the program starts to
    read without declaring it (declared_reads) would be missed. Run the program and watch it. (A check
    that only stats a file, `Path.exists()`, raises no audit event: the program makes none but on the
    packages it lists, whose listings are declared.)"""
    answer = subprocess.run(  # noqa: S603 - this interpreter, fixed code
        [sys.executable, "-c", AUDITED_PROGRAM, *known_stacks()],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "PYTHONPATH": str(PROJECT_ROOT)},
    )
    seen: dict[str, Any] = json.loads(answer.stdout.splitlines()[-1])
    root = f"{PROJECT_ROOT}/"
    installed = (f"{sys.prefix}/", f"{Path(sys.prefix).resolve()}/")
    modules = set(seen["modules"])

    def ours(path: str) -> bool:
        return path.startswith(root) and not path.startswith(installed) and "__pycache__" not in path

    undeclared: dict[str, list[str]] = {}
    for stack, reads in seen["stacks"].items():
        declared = set(declared_reads(stack))
        files = [path for path in reads["opened"] if ours(path) and path not in modules]
        listings = [f"{path}/" for path in reads["listed"] if ours(path)]
        undeclared[stack] = [
            path[len(root) :] for path in files + listings if path[len(root) :] not in declared
        ]
    assert undeclared == {stack: [] for stack in known_stacks()}
