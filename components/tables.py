"""DynamoDB tables as the project uses them: on-demand, KMS-encrypted, recoverable in production."""

from __future__ import annotations

from collections.abc import Sequence

import pulumi
import pulumi_aws as aws

# What Powertools' DynamoDBPersistenceLayer calls, and nothing more.
IDEMPOTENCY_ACTIONS = ["dynamodb:DeleteItem", "dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem"]


def table(
    name: str,
    *,
    hash_key: str,
    range_key: str | None = None,
    production: bool,
    parent: pulumi.Resource,
    global_indexes: Sequence[tuple[str, str, str]] = (),
    ttl_attribute: str | None = None,
) -> aws.dynamodb.Table:
    """`global_indexes`: (index name, hash key, range key), all string keys, projecting everything."""
    keys = {hash_key, *([range_key] if range_key else [])}
    for _, index_hash, index_range in global_indexes:
        keys |= {index_hash, index_range}
    return aws.dynamodb.Table(
        name,
        billing_mode="PAY_PER_REQUEST",
        hash_key=hash_key,
        range_key=range_key,
        attributes=[{"name": key, "type": "S"} for key in sorted(keys)],
        # key_schemas, not the hash_key/range_key that pulumi-aws 7 deprecates ("Use key_schema instead",
        # aws.dynamodb.TableGlobalSecondaryIndexArgs); the index is the same, so nothing is replaced.
        global_secondary_indexes=[
            {
                "name": index,
                "key_schemas": [
                    {"attribute_name": index_hash, "key_type": "HASH"},
                    {"attribute_name": index_range, "key_type": "RANGE"},
                ],
                "projection_type": "ALL",
            }
            for index, index_hash, index_range in global_indexes
        ],
        ttl={"attribute_name": ttl_attribute, "enabled": True} if ttl_attribute else None,
        server_side_encryption={"enabled": True},
        point_in_time_recovery={"enabled": production},
        deletion_protection_enabled=production,
        opts=pulumi.ResourceOptions(parent=parent, protect=production),
    )


def idempotency_table(name: str, production: bool, parent: pulumi.Resource) -> aws.dynamodb.Table:
    """Powertools' layout: key `id`, expiry in `expiration` (a TTL, so DynamoDB cleans up for free)."""
    return table(name, hash_key="id", ttl_attribute="expiration", production=production, parent=parent)
