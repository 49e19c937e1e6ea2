"""Operator tooling: dead-letter queues and event replay, against a deployed stack or the local cloud.

    python -m tools.ops [--stack dev | --local] dlq list | show <name> | redrive <name>
    python -m tools.ops [--stack dev | --local] events replay --from … --to … [--detail-type …]

Pure logic (names, failure reasons, event-pattern checks) lives apart from the boto3 adapters, so it is
tested without AWS."""
