"""IAM documents built as data (not via an invoke), so tests and the policy pack can read every statement."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_aws as aws

Statement = dict[str, Any]


def allow(actions: list[str], resources: list[pulumi.Input[str]], **condition: Any) -> Statement:
    statement: Statement = {"Effect": "Allow", "Action": sorted(actions), "Resource": resources}
    if condition:
        statement["Condition"] = condition
    return statement


def policy_document(statements: list[Statement]) -> pulumi.Output[str]:
    return pulumi.Output.json_dumps({"Version": "2012-10-17", "Statement": statements})


def assume_role_policy(service: str) -> str:
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [{"Effect": "Allow", "Principal": {"Service": service}, "Action": "sts:AssumeRole"}],
        }
    )


@dataclass(frozen=True)
class ServiceRole:
    role: aws.iam.Role
    # Depend on the policy, not just the role: a role without its policy cannot do the work yet.
    policy: aws.iam.RolePolicy


def service_role(
    name: str, service: str, statements: list[Statement], parent: pulumi.Resource
) -> ServiceRole:
    """A role `service` assumes with exactly `statements`, as one inline policy (reviewable in one place)."""
    role = aws.iam.Role(
        name,
        assume_role_policy=assume_role_policy(service),
        opts=pulumi.ResourceOptions(parent=parent),
    )
    policy = aws.iam.RolePolicy(
        f"{name}-policy",
        role=role.id,
        policy=policy_document(statements),
        opts=pulumi.ResourceOptions(parent=role),
    )
    return ServiceRole(role=role, policy=policy)
