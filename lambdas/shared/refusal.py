"""An expected refusal of a use case: the HTTP status and the message the caller sees. Each service's
domain errors derive from it; `shared.http.rest_resolver` answers every one as `{"message": …}`."""

from __future__ import annotations


class Refusal(Exception):
    status_code = 400

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message
