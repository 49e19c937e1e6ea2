"""The local cloud's moto (localcloud/moto_server.py) keeps AWS's promises under concurrency and decides
IAM per resource: what the store's correctness and least-privilege roles rely on."""

from __future__ import annotations

import json
import threading
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from localcloud.moto_process import MotoServer, enforce_iam, running_moto

REGION = "ap-southeast-2"
OPERATOR = {"aws_access_key_id": "local", "aws_secret_access_key": "local"}


@pytest.fixture(scope="module")
def endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with running_moto(MotoServer(tmp_path_factory.mktemp("moto") / "moto.log")) as url:
        yield url


def client(endpoint: str, service: str, **credentials: Any) -> Any:
    return boto3.client(service, endpoint_url=endpoint, region_name=REGION, **(credentials or OPERATOR))


def table(endpoint: str, name: str, range_key: bool = False, index: bool = False) -> str:
    keys = [{"AttributeName": "pk", "KeyType": "HASH"}]
    attributes = [{"AttributeName": "pk", "AttributeType": "S"}]
    extra: dict[str, Any] = {}
    if range_key:
        keys.append({"AttributeName": "sk", "KeyType": "RANGE"})
        attributes.append({"AttributeName": "sk", "AttributeType": "S"})
    if index:
        attributes.append({"AttributeName": "g", "AttributeType": "S"})
        extra["GlobalSecondaryIndexes"] = [
            {
                "IndexName": "by-g",
                "KeySchema": [{"AttributeName": "g", "KeyType": "HASH"}],
                "Projection": {"ProjectionType": "ALL"},
            }
        ]
    arn: str = client(endpoint, "dynamodb").create_table(
        TableName=name,
        KeySchema=keys,
        AttributeDefinitions=attributes,
        BillingMode="PAY_PER_REQUEST",
        **extra,
    )["TableDescription"]["TableArn"]
    return arn


def run_together(count: int, work: Any) -> list[Any]:
    results: list[Any] = [None] * count
    start = threading.Barrier(count)

    def run(index: int) -> None:
        start.wait()
        results[index] = work(index)

    threads = [threading.Thread(target=run, args=(index,)) for index in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return results


def test_a_conditional_write_succeeds_once_however_many_race_for_it(endpoint: str) -> None:
    table(endpoint, "race")
    dynamodb = client(endpoint, "dynamodb")

    def claim(index: int) -> tuple[list[int], list[str]]:
        """The keys this racer won, and the errors of the ones it lost."""
        won, errors = [], []
        for attempt in range(20):
            try:
                dynamodb.put_item(
                    TableName="race",
                    Item={"pk": {"S": f"key-{attempt}"}, "by": {"N": str(index)}},
                    ConditionExpression="attribute_not_exists(pk)",
                )
                won.append(attempt)
            except ClientError as error:
                errors.append(str(error.response["Error"]["Code"]))
        return won, errors

    outcomes = run_together(8, claim)
    assert {code for _, errors in outcomes for code in errors} == {"ConditionalCheckFailedException"}
    winners = Counter(attempt for won, _ in outcomes for attempt in won)
    assert winners == Counter(range(20))  # every key won exactly once
    for index, (won, _) in enumerate(outcomes):
        for attempt in won:  # and holds its winner's write
            item = dynamodb.get_item(TableName="race", Key={"pk": {"S": f"key-{attempt}"}})["Item"]
            assert item["by"]["N"] == str(index)


def test_a_failed_transaction_does_not_undo_writes_made_meanwhile(endpoint: str) -> None:
    table(endpoint, "ledger", range_key=True)
    dynamodb = client(endpoint, "dynamodb")
    dynamodb.put_item(TableName="ledger", Item={"pk": {"S": "blocked"}, "sk": {"S": "x"}})

    def work(index: int) -> None:
        for step in range(25):
            if index == 0:  # a transaction that always fails its condition, and rolls back
                with pytest.raises(ClientError):
                    dynamodb.transact_write_items(
                        TransactItems=[
                            {
                                "Put": {
                                    "TableName": "ledger",
                                    "Item": {"pk": {"S": "t"}, "sk": {"S": str(step)}},
                                }
                            },
                            {
                                "ConditionCheck": {
                                    "TableName": "ledger",
                                    "Key": {"pk": {"S": "blocked"}, "sk": {"S": "x"}},
                                    "ConditionExpression": "attribute_not_exists(pk)",
                                }
                            },
                        ]
                    )
            else:
                dynamodb.put_item(TableName="ledger", Item={"pk": {"S": f"w{index}"}, "sk": {"S": str(step)}})

    run_together(4, work)
    for writer in (1, 2, 3):
        items = dynamodb.query(
            TableName="ledger",
            KeyConditionExpression="pk = :pk",
            ExpressionAttributeValues={":pk": {"S": f"w{writer}"}},
        )["Items"]
        assert len(items) == 25
    assert (
        dynamodb.query(
            TableName="ledger",
            KeyConditionExpression="pk = :pk",
            ExpressionAttributeValues={":pk": {"S": "t"}},
        )["Items"]
        == []
    )


def test_an_update_expression_used_again_applies_each_calls_own_names_and_values(endpoint: str) -> None:
    """moto's parse of an UpdateExpression is reused for the same text: nothing of one call may leak into
    the next (its names, its values, the item it changed), in an UpdateItem or inside a transaction."""
    table(endpoint, "counters")
    dynamodb = client(endpoint, "dynamodb")
    expression = (
        "SET #label = :label, #log = list_append(if_not_exists(#log, :empty), :entry) ADD #count :one"
    )

    def update(key: str, label_attribute: str, step: int) -> dict[str, Any]:
        return {
            "TableName": "counters",
            "Key": {"pk": {"S": key}},
            "UpdateExpression": expression,
            "ExpressionAttributeNames": {"#label": label_attribute, "#log": "log", "#count": "count"},
            "ExpressionAttributeValues": {
                ":label": {"S": f"step-{step}"},
                ":empty": {"L": []},
                ":entry": {"L": [{"N": str(step)}]},
                ":one": {"N": "1"},
            },
        }

    for step in range(4):
        dynamodb.update_item(**update(f"k{step % 2}", f"label{step}", step))
    dynamodb.transact_write_items(TransactItems=[{"Update": update("k2", "label4", 4)}])
    items = {
        key: dynamodb.get_item(TableName="counters", Key={"pk": {"S": key}})["Item"]
        for key in ("k0", "k1", "k2")
    }
    assert items["k0"] == {
        "pk": {"S": "k0"},
        "label0": {"S": "step-0"},
        "label2": {"S": "step-2"},
        "log": {"L": [{"N": "0"}, {"N": "2"}]},
        "count": {"N": "2"},
    }
    assert items["k1"]["log"] == {"L": [{"N": "1"}, {"N": "3"}]} and "label0" not in items["k1"]
    assert items["k2"] == {
        "pk": {"S": "k2"},
        "label4": {"S": "step-4"},
        "log": {"L": [{"N": "4"}]},
        "count": {"N": "1"},
    }


def test_an_update_expression_valid_with_some_names_is_refused_with_names_breaking_it(endpoint: str) -> None:
    """What DynamoDB refuses for the expression's structure (two actions on one path, a key attribute
    updated) is refused whatever names or tables the same text was accepted with before: a structure
    checked once is only trusted again for the same text, names and table keys."""
    table(endpoint, "paths")
    dynamodb = client(endpoint, "dynamodb")
    expression = "SET #a = :x, #b = :y"

    def update(names: dict[str, str]) -> None:
        dynamodb.update_item(
            TableName="paths",
            Key={"pk": {"S": "k"}},
            UpdateExpression=expression,
            ExpressionAttributeNames=names,
            ExpressionAttributeValues={":x": {"S": "x"}, ":y": {"S": "y"}},
        )

    for _ in range(2):
        update({"#a": "first", "#b": "second"})
        with pytest.raises(ClientError, match=r"Two document paths overlap|duplicate"):
            update({"#a": "same", "#b": "same"})
        with pytest.raises(ClientError, match="key"):
            update({"#a": "pk", "#b": "second"})
    assert dynamodb.get_item(TableName="paths", Key={"pk": {"S": "k"}})["Item"] == {
        "pk": {"S": "k"},
        "first": {"S": "x"},
        "second": {"S": "y"},
    }


def test_no_message_is_lost_while_others_are_sent_received_and_deleted(endpoint: str) -> None:
    sqs = client(endpoint, "sqs")
    url = sqs.create_queue(QueueName="busy", Attributes={"VisibilityTimeout": "60"})["QueueUrl"]
    sent = 4 * 60
    received: Counter[str] = Counter()
    lock = threading.Lock()

    def work(index: int) -> None:
        if index < 4:
            for number in range(60):
                sqs.send_message(QueueUrl=url, MessageBody=f"{index}-{number}")
            return
        idle = 0
        while idle < 20:
            messages = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", [])
            idle = 0 if messages else idle + 1
            for message in messages:
                with lock:
                    received[message["Body"]] += 1
                sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])

    run_together(8, work)
    leftover = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=0).get(
        "Messages", []
    )
    assert len(received) + len({m["Body"] for m in leftover} - set(received)) == sent


def test_an_eventbridge_delivery_to_sqs_has_the_event_envelope(endpoint: str) -> None:
    events, sqs = client(endpoint, "events"), client(endpoint, "sqs")
    url = sqs.create_queue(QueueName="target")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    events.create_event_bus(Name="bus")
    events.put_rule(Name="all", EventBusName="bus", EventPattern=json.dumps({"source": ["test"]}))
    events.put_targets(Rule="all", EventBusName="bus", Targets=[{"Id": "q", "Arn": arn}])
    events.put_events(Entries=[{"EventBusName": "bus", "Source": "test", "DetailType": "T", "Detail": "{}"}])
    body = json.loads(sqs.receive_message(QueueUrl=url)["Messages"][0]["Body"])
    assert set(body) == {
        "version",
        "id",
        "detail-type",
        "source",
        "account",
        "time",
        "region",
        "resources",
        "detail",
    }
    assert body["account"] == "123456789012" and body["time"].endswith("Z")


@pytest.fixture(scope="module")
def role(endpoint: str) -> dict[str, str]:
    """A role allowed GetItem on one table and its index, Query on the index, PutEvents on one bus,
    GetSecretValue on one secret, GetObject in one bucket; IAM enforced from here on in this module's
    server."""
    orders = table(endpoint, "orders", index=True)
    s3 = client(endpoint, "s3")
    for bucket in ("files", "others"):
        s3.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": REGION})
        s3.put_object(Bucket=bucket, Key="a", Body=b"a")
    table(endpoint, "other")
    secrets = client(endpoint, "secretsmanager")
    granted_secret = secrets.create_secret(Name="granted", SecretString="s")["ARN"]
    secrets.create_secret(Name="withheld", SecretString="s")
    iam = client(endpoint, "iam")
    trust = {
        "Statement": [
            {"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}
        ]
    }
    role_arn = iam.create_role(RoleName="fn", AssumeRolePolicyDocument=json.dumps(trust))["Role"]["Arn"]
    statements = [
        {"Effect": "Allow", "Action": ["dynamodb:GetItem"], "Resource": [orders]},
        {"Effect": "Allow", "Action": ["dynamodb:Query"], "Resource": [f"{orders}/index/*"]},
        {
            "Effect": "Allow",
            "Action": ["events:PutEvents"],
            "Resource": [f"arn:aws:events:{REGION}:123456789012:event-bus/bus"],
        },
        {"Effect": "Allow", "Action": ["secretsmanager:GetSecretValue"], "Resource": [granted_secret]},
        {"Effect": "Allow", "Action": ["s3:GetObject"], "Resource": ["arn:aws:s3:::files/*"]},
    ]
    iam.put_role_policy(
        RoleName="fn",
        PolicyName="p",
        PolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": statements}),
    )
    keys = client(endpoint, "sts").assume_role(RoleArn=role_arn, RoleSessionName="fn")["Credentials"]
    enforce_iam(endpoint)
    return {
        "aws_access_key_id": keys["AccessKeyId"],
        "aws_secret_access_key": keys["SecretAccessKey"],
        "aws_session_token": keys["SessionToken"],
    }


def denied(call: Any) -> str:
    with pytest.raises(ClientError) as error:
        call()
    return str(error.value.response["Error"]["Code"])


def test_a_role_may_do_exactly_what_its_policy_grants_on_the_resources_it_names(
    endpoint: str, role: dict[str, str]
) -> None:
    dynamodb, events = client(endpoint, "dynamodb", **role), client(endpoint, "events", **role)
    key = {"pk": {"S": "x"}}
    assert "Item" not in dynamodb.get_item(TableName="orders", Key=key)  # granted on this table
    assert denied(lambda: dynamodb.get_item(TableName="other", Key=key)) == "AccessDeniedException"
    assert denied(lambda: dynamodb.put_item(TableName="orders", Item=key)) == "AccessDeniedException"
    query = {"KeyConditionExpression": "g = :g", "ExpressionAttributeValues": {":g": {"S": "a"}}}
    assert dynamodb.query(TableName="orders", IndexName="by-g", **query)["Items"] == []  # the index's ARN
    assert (
        denied(
            lambda: dynamodb.query(
                TableName="orders",
                KeyConditionExpression="pk = :g",
                ExpressionAttributeValues={":g": {"S": "a"}},
            )
        )
        == "AccessDeniedException"
    )
    entry = {"Source": "test", "DetailType": "T", "Detail": "{}"}
    assert events.put_events(Entries=[{**entry, "EventBusName": "bus"}])["FailedEntryCount"] == 0
    assert (
        denied(lambda: events.put_events(Entries=[{**entry, "EventBusName": "default"}]))
        == "AccessDeniedException"
    )


def test_a_secret_is_authorised_by_its_arn_however_the_caller_names_it(
    endpoint: str, role: dict[str, str]
) -> None:
    """A grant names a secret's ARN (with its random suffix); a caller may name the secret by its name,
    its ARN, or its ARN without the suffix ("Authentication and access control for AWS Secrets Manager",
    https://docs.aws.amazon.com/secretsmanager/latest/userguide/auth-and-access.html)."""
    secrets = client(endpoint, "secretsmanager", **role)
    arn = client(endpoint, "secretsmanager").describe_secret(SecretId="granted")["ARN"]
    for secret_id in ("granted", arn):
        assert secrets.get_secret_value(SecretId=secret_id)["SecretString"] == "s"
    assert denied(lambda: secrets.get_secret_value(SecretId="withheld")) == "AccessDeniedException"


def test_credentials_nobody_issued_are_refused(endpoint: str, role: dict[str, str]) -> None:
    forged = {**role, "aws_secret_access_key": "not-the-secret"}
    assert denied(lambda: client(endpoint, "dynamodb", **forged).list_tables()) == "InvalidSignatureException"
    stranger = {"aws_access_key_id": "AKIASTRANGER", "aws_secret_access_key": "x"}
    assert (
        denied(lambda: client(endpoint, "dynamodb", **stranger).list_tables())
        == "UnrecognizedClientException"
    )


def test_an_object_is_authorised_by_its_arn_in_the_one_evaluator(endpoint: str, role: dict[str, str]) -> None:
    """S3 has its own authorisation path in moto; the same policies decide it ("Amazon Resource Names for
    S3", https://docs.aws.amazon.com/AmazonS3/latest/userguide/s3-arn-format.html)."""
    s3 = client(endpoint, "s3", **role)
    assert s3.get_object(Bucket="files", Key="a")["Body"].read() == b"a"
    assert denied(lambda: s3.get_object(Bucket="others", Key="a")) == "AccessDenied"
    assert denied(lambda: s3.put_object(Bucket="files", Key="b", Body=b"b")) == "AccessDenied"


def test_a_presigned_url_carries_its_signers_permissions_until_it_expires(
    endpoint: str, role: dict[str, str]
) -> None:
    s3 = boto3.client(
        "s3", endpoint_url=endpoint, region_name=REGION, config=Config(signature_version="s3v4"), **role
    )

    def fetch(bucket: str, expires: int = 60) -> int:
        url = s3.generate_presigned_url(
            "get_object", Params={"Bucket": bucket, "Key": "a"}, ExpiresIn=expires
        )
        try:
            with urllib.request.urlopen(url, timeout=10) as answer:  # noqa: S310 - loopback
                return int(answer.status)
        except urllib.error.HTTPError as error:
            return error.code

    assert fetch("files") == 200
    assert fetch("others") == 403  # the signer may not read it, so neither may the URL
    assert fetch("files", expires=0) == 403


def test_the_operator_is_the_accounts_root(endpoint: str, role: dict[str, str]) -> None:
    """Whichever protocol a service speaks (JSON, query, REST-XML), the operator is never limited."""
    assert "TableNames" in client(endpoint, "dynamodb").list_tables()
    assert "QueueUrl" in client(endpoint, "sqs").create_queue(QueueName="operators")
    s3 = client(endpoint, "s3")
    s3.put_object(Bucket="others", Key="b", Body=b"b")
    assert s3.get_object(Bucket="others", Key="b")["Body"].read() == b"b"
