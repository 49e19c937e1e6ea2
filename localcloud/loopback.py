"""The HTTP server the local cloud's emulators run on (the Data API, the gateway, the fake Stripe)."""

from __future__ import annotations

import sys
from http.server import ThreadingHTTPServer
from typing import Any


class LoopbackServer(ThreadingHTTPServer):
    """A thread per connection, none of which holds up the process's exit. A client that hangs up (a
    connection a pool drops, a test's client closed mid-request) is nothing to report, as it is nothing
    to the real endpoints; socketserver would print its traceback to stderr, over whatever else runs
    (the console, a test capturing its own output)."""

    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        if isinstance(sys.exc_info()[1], ConnectionError):
            return
        super().handle_error(request, client_address)
