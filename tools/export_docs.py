"""Generate docs/openapi.json (from the API resolvers) and docs/events/*.json (from the event models).

python -m tools.export_docs          write them (what `make docs` runs)
python -m tools.export_docs --check  exit 1 if the committed files are stale (the tests do this too)"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from pathlib import Path

from project_paths import DOCS_DIR, PROJECT_ROOT
from services.order import PUBLIC_ROUTES

ROOT, DOCS = PROJECT_ROOT, DOCS_DIR

# Importing a handler module reads its settings; documentation needs none of the real values.
DOC_ENVIRONMENT = {
    "ORDERS_TABLE": "-",
    "PRODUCTS_TABLE": "-",
    "IDEMPOTENCY_TABLE": "-",
    "EVENT_BUS_NAME": "-",
    "AWS_DEFAULT_REGION": "ap-southeast-2",
}


# The webhook route has no Lambda behind it (API Gateway → SQS), so no resolver describes it.
WEBHOOK_PATH = {
    "post": {
        "summary": "Stripe webhook: queued as received (raw body and Stripe-Signature), verified later",
        "operationId": "stripe_webhook",
        "security": [],
        "parameters": [
            {"name": "Stripe-Signature", "in": "header", "required": True, "schema": {"type": "string"}}
        ],
        "requestBody": {"required": True, "content": {"application/json": {"schema": {"type": "object"}}}},
        "responses": {
            "200": {
                "description": "Queued",
                "content": {"application/json": {"example": {"received": True}}},
            },
            "415": {"description": "Not JSON"},
            "500": {"description": "Could not be queued; Stripe retries"},
        },
    }
}


def _route_key(method: str, path: str) -> tuple[str, str]:
    """A route as API Gateway's template and Powertools' path both name it: parameters unnamed."""
    return method.lower(), re.sub(r"\{[^}]+\}", "{}", path)


def openapi() -> str:
    """One document for the whole storefront API: the order, fulfilment and reports resolvers and the
    webhook. The routes the program declares public (services.order.PUBLIC_ROUTES) need no token."""
    for name, value in DOC_ENVIRONMENT.items():
        os.environ.setdefault(name, value)
    sys.path.insert(0, str(ROOT / "lambdas"))
    from aws_lambda_powertools.event_handler.openapi.models import HTTPBearer

    from fulfilment.handlers.api import app as fulfilment
    from order.handlers.api import app as orders
    from reports.handlers.report_api import app as reports

    schema = json.loads(
        orders.get_openapi_json_schema(
            security_schemes={"cognito": HTTPBearer(bearerFormat="JWT", description="Cognito ID token")},
            security=[{"cognito": []}],
            title="The Better Store storefront API",
            version="1.0.0",
            description="Stage base path /v1. Every route but the catalog (/products) and the Stripe webhook "
            "needs a Cognito ID token (Authorization header); /reports/monthly also needs the admin group, "
            "/fulfilment/* the warehouse group.",
        )
    )
    for app in (fulfilment, reports):
        other = json.loads(app.get_openapi_json_schema())
        schema["paths"].update(other["paths"])
        schema["components"]["schemas"].update(other.get("components", {}).get("schemas", {}))
    public = {_route_key(method, path) for method, path in PUBLIC_ROUTES}
    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            if _route_key(method, path) in public:
                operation["security"] = []
    schema["paths"]["/webhooks/stripe"] = WEBHOOK_PATH
    return json.dumps(schema, indent=2, sort_keys=True) + "\n"


def documents() -> dict[Path, str]:
    sys.path.insert(0, str(ROOT / "lambdas"))
    from shared.events import json_schemas

    files = {DOCS / "openapi.json": openapi()}
    files.update({DOCS / "events" / name: text for name, text in json_schemas().items()})
    return files


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.export_docs")
    parser.add_argument("--check", action="store_true")
    args = parser.parse_args(argv)
    stale = []
    for path, text in documents().items():
        if args.check:
            if not path.is_file() or path.read_text() != text:
                stale.append(path.relative_to(ROOT).as_posix())
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
            print(f"wrote {path.relative_to(ROOT)}")
    if stale:
        print(f"stale: {', '.join(stale)}; run `make docs`", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
