"""Reusable building blocks of The Better Store: the components its services are made of (QueueConsumer
and IdempotentConsumer, WebhookQueue, EventSubscription, ServerlessDb, one file each) and the pieces they
share (Function and RestApi, queues, tables, alarms, iam, dashboard)."""
