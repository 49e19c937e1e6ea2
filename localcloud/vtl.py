"""API Gateway's mapping templates, rendered locally with the airspeed Velocity engine.

`$util`, `$input` and `$context` behave as API Gateway documents them for the functions our templates
use; the local gateway and the tests render the program's real template with them."""

from __future__ import annotations

import base64
import json
import urllib.parse
from typing import Any

import airspeed


class ApiGatewayUtil:
    def escapeJavaScript(self, text: str) -> str:
        return json.dumps(text)[1:-1]

    def base64Encode(self, text: str) -> str:
        return base64.b64encode(text.encode()).decode()

    def urlEncode(self, text: str) -> str:
        return urllib.parse.quote_plus(text)


class ApiGatewayInput:
    def __init__(self, body: str, headers: dict[str, str], query: dict[str, str] | None = None) -> None:
        self.body = body
        self._headers = headers
        self._query = query or {}

    def params(self) -> dict[str, dict[str, str]]:
        return {"header": self._headers, "querystring": self._query, "path": {}}


def render(template: str, body: str, headers: dict[str, str], context: dict[str, Any]) -> str:
    variables = {"util": ApiGatewayUtil(), "input": ApiGatewayInput(body, headers), "context": context}
    return str(airspeed.Template(template).merge(variables))
