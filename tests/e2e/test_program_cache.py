"""A local cloud that replays the program's last run (what `make dev` does while nothing the program read
has changed) has everything a local cloud that ran the program made: every table, queue, bus, rule,
target, archive, secret, topic, bucket and role with its policies, and the same model and exports, with
moto's new identifiers wherever the run used the old ones."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from localcloud.client import StoreClient
from localcloud.cloud import LocalCloud
from localcloud.program_cache import ProgramCache

# Where an answer names the resource itself: what moto may give anew each time. Everything else (a
# policy naming a secret, an environment naming a queue) must follow these, or the replay left it stale.
IDENTITY_KEYS = {
    "Arn",
    "ARN",
    "RoleId",
    "TableId",
    "TableArn",
    "QueueUrl",
    "QueueArn",
    "EventBusArn",
    "RuleArn",
    "ArchiveArn",
    "TopicArn",
}
# Times, and secret versions' ids (moto's, by version), which differ between any two starts.
VOLATILE_KEYS = {"CreatedTimestamp", "LastModifiedTimestamp", "SecretVersionsToStages"}


def plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {
            key: plain(item) for key, item in value.items() if key not in {"ResponseMetadata", *VOLATILE_KEYS}
        }
    if isinstance(value, list | tuple):
        return [plain(item) for item in value]
    return value if isinstance(value, str | int | float | bool) or value is None else None


def moto_state(cloud: LocalCloud) -> dict[str, Any]:
    """Every resource of the services the program materialises, by name."""
    client = cloud.operator_client
    dynamodb, sqs, events = client("dynamodb"), client("sqs"), client("events")
    secrets, iam = client("secretsmanager"), client("iam")
    state: dict[str, Any] = {
        "tables": {
            name: [
                dynamodb.describe_table(TableName=name)["Table"],
                dynamodb.describe_time_to_live(TableName=name)["TimeToLiveDescription"],
            ]
            for name in dynamodb.list_tables()["TableNames"]
        },
        "queues": {
            url.rsplit("/", 1)[1]: {
                "QueueUrl": url,
                **sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"],
            }
            for url in sqs.list_queues().get("QueueUrls", [])
        },
        "buses": {
            bus["Name"]: {
                "bus": bus,
                "rules": {
                    rule["Name"]: [
                        rule,
                        events.list_targets_by_rule(Rule=rule["Name"], EventBusName=bus["Name"])["Targets"],
                    ]
                    for rule in events.list_rules(EventBusName=bus["Name"])["Rules"]
                },
            }
            for bus in events.list_event_buses()["EventBuses"]
        },
        "archives": [
            events.describe_archive(ArchiveName=archive["ArchiveName"])
            for archive in events.list_archives()["Archives"]
        ],
        "secrets": {
            secret["Name"]: [
                secret,
                login(secrets.get_secret_value(SecretId=secret["ARN"]).get("SecretString")),
            ]
            for secret in secrets.list_secrets()["SecretList"]
        },
        "topics": client("sns").list_topics()["Topics"],
        "buckets": [bucket["Name"] for bucket in client("s3").list_buckets()["Buckets"]],
        "roles": {
            role["RoleName"]: {
                "role": role,
                "inline": {
                    name: iam.get_role_policy(RoleName=role["RoleName"], PolicyName=name)["PolicyDocument"]
                    for name in iam.list_role_policies(RoleName=role["RoleName"])["PolicyNames"]
                },
                "attached": iam.list_attached_role_policies(RoleName=role["RoleName"])["AttachedPolicies"],
            }
            for role in iam.list_roles()["Roles"]
        },
    }
    # As JSON has it (the model's pairs become lists); the id moto gives an archive's own rule (it names
    # nothing the program made) masked.
    text = json.dumps({"moto": plain(state), "model": cloud.model.to_json()})
    loaded: dict[str, Any] = json.loads(re.sub(r"(archive/[\w-]+):[0-9a-f-]{36}", r"\1:<moto's id>", text))
    return loaded


def login(secret: str | None) -> str | None:
    """A secret's value, but a database login's password: the migration invocation sets a new one at
    every start (as at every deploy)."""
    try:
        value = json.loads(secret or "")
    except ValueError:
        return secret
    if isinstance(value, dict) and "password" in value:
        value["password"] = "<set by the migrator>"  # noqa: S105 - a placeholder
    return json.dumps(value)


def identities(first: Any, second: Any, found: dict[str, str]) -> dict[str, str]:
    """The identifiers of the same resources (same place, same name) in two states."""
    if isinstance(first, dict) and isinstance(second, dict):
        for key in first.keys() & second.keys():
            if key in IDENTITY_KEYS and isinstance(first[key], str) and isinstance(second[key], str):
                found[first[key]] = second[key]
            else:
                identities(first[key], second[key], found)
    elif isinstance(first, list) and isinstance(second, list):
        for one, other in zip(first, second, strict=False):
            identities(one, other, found)
    return found


def renamed(state: dict[str, Any], to: dict[str, Any]) -> dict[str, Any]:
    """`state` with each of its resources' identifiers replaced by the same resource's in `to`."""
    text = json.dumps(state, sort_keys=True)
    for old, new in sorted(identities(state, to, {}).items(), key=lambda pair: -len(pair[0])):
        text = text.replace(old, new)
    result: dict[str, Any] = json.loads(text)
    return result


def started(program_cache: Path, log_dir: Path, fresh: bool = False) -> LocalCloud:
    return LocalCloud(
        stack="dev", quiet=True, program_cache=program_cache, log_dir=log_dir, fresh=fresh
    ).start()


def changed_identifiers(state: dict[str, Any], to: dict[str, Any]) -> set[str]:
    return {old for old, new in identities(state, to, {}).items() if old != new}


def test_a_replayed_start_has_what_running_the_program_made(tmp_path: Path) -> None:
    cache_dir = tmp_path / "cache"
    ran = started(cache_dir, tmp_path / "ran")
    try:
        assert ran.program_status.startswith("ran it (no earlier run of it is remembered)")
        made = moto_state(ran)
    finally:
        ran.stop()

    replayed = started(cache_dir, tmp_path / "replayed")
    try:
        assert replayed.program_status.startswith("replayed its last run")
        replayed_state = moto_state(replayed)
        # And it works: the storefront's functions find their table with the replayed environment.
        replayed.seed_data()
        products = StoreClient(replayed.api_url).call("GET", "/products")
        assert (products.status, len(products.body["products"]) > 0) == (200, True)
    finally:
        replayed.stop()
    assert replayed_state["moto"]["queues"], "nothing was made"
    assert renamed(made, replayed_state) == replayed_state
    # And no identifier of the first start survives anywhere in the second, whatever form it took.
    stale = changed_identifiers(made, replayed_state)
    assert stale, "moto gave no resource a new identifier: the renaming went untested"
    replayed_text = json.dumps(replayed_state)
    assert [old for old in stale if old in replayed_text] == []
    first_moto = next(iter(made["moto"]["queues"].values()))["QueueUrl"].split("/")[2]  # its host:port
    assert first_moto not in replayed_text


def test_a_fresh_start_runs_the_program_and_remembers_that_run(tmp_path: Path) -> None:
    cache_dir = tmp_path / "cache"
    started(cache_dir, tmp_path / "first").stop()
    cache = ProgramCache(cache_dir, "dev", LocalCloud().program_config)
    first = cache.path.read_text()
    fresh = started(cache_dir, tmp_path / "fresh", fresh=True)
    try:
        assert fresh.program_status == "ran it (asked to run it afresh); this run is remembered"
    finally:
        fresh.stop()
    assert cache.path.read_text() != first  # moto's new identifiers: a new run was remembered


def test_a_remembered_run_moto_refuses_is_dropped_and_the_program_run(tmp_path: Path) -> None:
    cache_dir = tmp_path / "cache"
    started(cache_dir, tmp_path / "ran").stop()
    cache = ProgramCache(cache_dir, "dev", LocalCloud().program_config)
    remembered = json.loads(cache.path.read_text())
    creating = next(call for call in remembered["calls"] if call["operation"] == "create_queue")
    creating["params"]["QueueName"] = "not a queue name!"  # SQS refuses it (InvalidParameterValue)
    cache.path.write_text(json.dumps(remembered))

    again = started(cache_dir, tmp_path / "again")
    try:
        assert again.program_status.startswith("ran it (its remembered run failed (ClientError")
        assert all(" " not in url for url in again.model.queue_urls.values())
    finally:
        again.stop()
    assert ProgramCache(cache_dir, "dev", LocalCloud().program_config).recall()[1].startswith("replayed")
