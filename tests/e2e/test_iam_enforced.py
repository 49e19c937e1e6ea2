"""IAM is enforced in the local cloud as in AWS: a grant missing from one function's role fails that
function, with AccessDenied in its log, the way a deploy with that role would fail in AWS; with the
grant back as the program declares it, the same order goes through."""

from __future__ import annotations

import json
from typing import Any

from localcloud.client import StoreClient, wait_for
from localcloud.cloud import LocalCloud
from runtimes.local_model import LocalFunction
from tests.e2e.test_local_cloud import EBOOK, place, status_becomes

REVOKED = "events:PutEvents"  # services/fulfilment.py grants it to the fulfilment consumer's role


def fulfilment(cloud: LocalCloud) -> LocalFunction:
    return next(
        function
        for function in cloud.model.functions.values()
        if function.name.endswith("fulfilment-consumer")
    )


def without(document: dict[str, Any], action: str) -> dict[str, Any]:
    """The policy document with `action` taken out of every statement (a statement left empty goes)."""
    statements = []
    for statement in document["Statement"]:
        actions = [statement["Action"]] if isinstance(statement["Action"], str) else statement["Action"]
        kept = [granted for granted in actions if granted != action]
        if kept:
            statements.append({**statement, "Action": kept})
    return {**document, "Statement": statements}


def test_a_missing_grant_fails_its_function_with_access_denied_until_it_is_granted(
    cloud: LocalCloud, customer: StoreClient
) -> None:
    iam = cloud.client("iam")
    role_name = fulfilment(cloud).role_arn.rsplit("/", 1)[1]
    (policy_name,) = iam.list_role_policies(RoleName=role_name)["PolicyNames"]
    granted = iam.get_role_policy(RoleName=role_name, PolicyName=policy_name)["PolicyDocument"]
    revoked = without(granted, REVOKED)
    assert revoked != granted  # the program grants it
    log = cloud.log_dir / f"{fulfilment(cloud).name}.log"
    lines_before = len(log.read_text().splitlines()) if log.is_file() else 0

    def denied() -> str | None:
        lines = log.read_text().splitlines()[lines_before:] if log.is_file() else []
        return next((line for line in lines if "AccessDenied" in line and REVOKED in line), None)

    iam.put_role_policy(RoleName=role_name, PolicyName=policy_name, PolicyDocument=json.dumps(revoked))
    try:
        order = place(customer, EBOOK)  # digital only: fulfilled without the warehouse
        assert customer.control("pay", order["orderId"]).status == 200
        status_becomes(customer, order["orderId"], "PAID")  # the payment consumer keeps its grants
        line = wait_for(denied, f"the fulfilment consumer to be denied {REVOKED}")
        assert "assumed-role/" in line  # denied as its own role, not as some shared identity
        assert customer.call("GET", f"/orders/{order['orderId']}").body["status"] == "PAID"  # not fulfilled
    finally:
        # The grant back, exactly as the program declares it: the retried message now goes through.
        iam.put_role_policy(RoleName=role_name, PolicyName=policy_name, PolicyDocument=json.dumps(granted))
    status_becomes(customer, order["orderId"], "FULFILLED")
