"""WebhookQueue: POST /<path> on a REST API goes straight into SQS through an AWS integration.

No Lambda sits in the request path, so the sender (Stripe) gets its 2xx as soon as the event is durably
queued, whatever state our consumer is in; the consumer verifies the signature later from the message."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from components.iam import allow, service_role
from components.queue import QueueSource, queue_with_dlq


def sqs_send_message_template(header_names: Sequence[str]) -> str:
    """Velocity template turning the request into an SQS SendMessage form body.

    The message body is JSON: the raw request body base64-encoded (signatures are computed over the exact
    bytes, so it must not be re-serialised), the named headers (empty string when absent, so the consumer
    can tell "missing" and reject it), and the API Gateway request id and receive time for tracing."""
    q = "${q}"  # a double quote: Velocity has no escape for it inside a double-quoted string
    lines = ["#set($q = '\"')"]
    fields = []
    for index, name in enumerate(header_names):
        lines += [
            f"#set($h{index} = $input.params().header.get('{name}'))",
            f'#if(!$h{index})#set($h{index} = "")#end',
            f"#set($h{index} = $util.escapeJavaScript($h{index}))",
        ]
        fields.append(f"{q}{name}{q}:{q}$h{index}{q}")
    message = (
        "{"
        + f"{q}body{q}:{q}$util.base64Encode($input.body){q},"
        + f"{q}headers{q}:"
        + "{"
        + ",".join(fields)
        + "},"
        + f"{q}requestId{q}:{q}$context.requestId{q},"
        + f"{q}receivedAt{q}:$context.requestTimeEpoch"
        + "}"
    )
    lines += [f'#set($message = "{message}")', "Action=SendMessage&MessageBody=$util.urlEncode($message)"]
    return "\n".join(lines)


def sqs_integration_uri(queue_arn: str) -> str:
    """arn:aws:sqs:<region>:<account>:<name> → API Gateway's service path for that queue."""
    _, partition, _, region, account, queue_name = queue_arn.split(":")
    return f"arn:{partition}:apigateway:{region}:sqs:path/{account}/{queue_name}"


@dataclass(frozen=True)
class WebhookQueueArgs:
    rest_api_id: pulumi.Input[str]
    parent_resource_id: pulumi.Input[str]
    path_part: str
    header_names: Sequence[str]
    alarm_topic_arn: pulumi.Input[str]
    visibility_timeout_seconds: int
    max_receive_count: int = 5
    max_age_alarm_seconds: int = 300


class WebhookQueue(pulumi.ComponentResource):
    queue: aws.sqs.Queue
    dlq: aws.sqs.Queue
    source: QueueSource
    resource: aws.apigateway.Resource
    method: aws.apigateway.Method
    integration: aws.apigateway.Integration
    # What an API deployment must wait for before it snapshots this route.
    deployment_dependencies: list[pulumi.CustomResource]

    def __init__(self, name: str, args: WebhookQueueArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("tbs:components:WebhookQueue", name, None, opts)
        queues = queue_with_dlq(
            f"{name}-queue",
            visibility_timeout_seconds=args.visibility_timeout_seconds,
            max_receive_count=args.max_receive_count,
            max_age_alarm_seconds=args.max_age_alarm_seconds,
            topic_arn=args.alarm_topic_arn,
            parent=self,
        )
        self.queue, self.dlq = queues.queue, queues.dlq
        self.source = QueueSource.of(self.queue, args.visibility_timeout_seconds)
        gateway_role = service_role(
            f"{name}-apigw-role",
            "apigateway.amazonaws.com",
            [allow(["sqs:SendMessage"], [self.queue.arn])],
            parent=self,
        )
        self.resource = aws.apigateway.Resource(
            f"{name}-resource",
            rest_api=args.rest_api_id,
            parent_id=args.parent_resource_id,
            path_part=args.path_part,
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.method = aws.apigateway.Method(
            f"{name}-post",
            rest_api=args.rest_api_id,
            resource_id=self.resource.id,
            http_method="POST",
            # Public by design: the sender proves itself with its signature, checked by the consumer.
            authorization="NONE",
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.integration = aws.apigateway.Integration(
            f"{name}-integration",
            rest_api=args.rest_api_id,
            resource_id=self.resource.id,
            http_method=self.method.http_method,
            type="AWS",
            integration_http_method="POST",
            uri=self.queue.arn.apply(sqs_integration_uri),
            credentials=gateway_role.role.arn,
            request_parameters={
                "integration.request.header.Content-Type": "'application/x-www-form-urlencoded'"
            },
            request_templates={"application/json": sqs_send_message_template(args.header_names)},
            # Anything but JSON is refused (415) rather than forwarded unmapped to SQS.
            passthrough_behavior="NEVER",
            opts=pulumi.ResourceOptions(parent=self, depends_on=[gateway_role.policy]),
        )
        responses = []
        for status, pattern, body in (
            ("200", None, '{"received": true}'),
            # SQS refused or failed: answer 500 so the sender retries later; nothing was queued.
            ("500", r"[45]\d{2}", '{"message": "The event could not be queued; retry later."}'),
        ):
            method_response = aws.apigateway.MethodResponse(
                f"{name}-response-{status}",
                rest_api=args.rest_api_id,
                resource_id=self.resource.id,
                http_method=self.method.http_method,
                status_code=status,
                opts=pulumi.ResourceOptions(parent=self),
            )
            responses.append(
                aws.apigateway.IntegrationResponse(
                    f"{name}-integration-response-{status}",
                    rest_api=args.rest_api_id,
                    resource_id=self.resource.id,
                    http_method=self.method.http_method,
                    status_code=method_response.status_code,
                    selection_pattern=pattern,
                    response_templates={"application/json": body},
                    opts=pulumi.ResourceOptions(parent=self, depends_on=[self.integration]),
                )
            )
        self.deployment_dependencies = [self.method, self.integration, *responses]
        self.register_outputs({"queueUrl": self.queue.url, "dlqUrl": self.dlq.url})
