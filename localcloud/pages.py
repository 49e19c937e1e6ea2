"""The local cloud's own pages, served beside the stage: the state page (/_local/) and Swagger UI
(/_local/swagger), both from this machine only (the browser loads nothing from the internet).

Swagger UI's files come from the pinned `swagger-ui-bundle-v2` package (requirements-dev.txt), not a CDN."""

from __future__ import annotations

import json
import mimetypes
from importlib.resources import files
from pathlib import Path

# The package ships one Swagger UI release under vendor/swagger-ui-<version>/.
SWAGGER_ASSETS = next(Path(str(files("swagger_ui_bundle") / "vendor")).glob("swagger-ui-*"))
SWAGGER_ASSET_PREFIX = "/_local/swagger-ui/"
# The files the page loads; only these are served (no path from a request touches the file system).
SWAGGER_FILES = (
    "swagger-ui.css",
    "swagger-ui-bundle.js",
    "swagger-ui-standalone-preset.js",
    "favicon-32x32.png",
)


def swagger_asset(name: str) -> tuple[bytes, str] | None:
    """A Swagger UI file and its content type; None for any other name."""
    if name not in SWAGGER_FILES:
        return None
    content_type = mimetypes.guess_type(name)[0] or "application/octet-stream"
    return (SWAGGER_ASSETS / name).read_bytes(), content_type


def swagger_page(customer_token: str) -> str:
    """Swagger UI on docs/openapi.json, the customer token already entered for the `cognito` scheme."""
    return f"""<!doctype html><html><head><meta charset="utf-8"><title>The Better Store API (local)</title>
<link rel="icon" href="{SWAGGER_ASSET_PREFIX}favicon-32x32.png">
<link rel="stylesheet" href="{SWAGGER_ASSET_PREFIX}swagger-ui.css"></head>
<body><div id="ui"></div><script src="{SWAGGER_ASSET_PREFIX}swagger-ui-bundle.js"></script>
<script>
const ui = SwaggerUIBundle({{
  url: "/_local/openapi.json", dom_id: "#ui", persistAuthorization: false,
  onComplete: () => ui.preauthorizeApiKey("cognito", {json.dumps(customer_token)}),
}});
</script></body></html>"""


STATE_PAGE = """<!doctype html><html><head><meta charset="utf-8"><title>The Better Store — local cloud</title>
<style>
body { font: 13px/1.4 system-ui, sans-serif; margin: 16px; color: #222; }
h1 { font-size: 18px; margin: 0 0 4px; } h2 { font-size: 14px; margin: 18px 0 4px; }
table { border-collapse: collapse; width: 100%; } td, th { padding: 2px 8px; border-bottom: 1px solid #eee;
text-align: left; vertical-align: top; white-space: nowrap; } th { background: #f6f6f6; }
.failed td { color: #b00020; } .muted { color: #888; } .grid { display: grid; grid-template-columns: 1fr 1fr;
gap: 0 24px; } code { font-size: 12px; } .reason { white-space: normal; }
</style></head><body>
<h1>The Better Store — local cloud</h1>
<div class="muted">refreshed every second · <span id="updated">loading…</span> ·
<a href="/_local/swagger">Swagger UI</a></div>
<h2>Orders</h2><table id="orders"><thead><tr><th>order</th><th>status</th><th>timeline</th></tr></thead>
<tbody></tbody></table>
<div class="grid"><div>
<h2>Webhook deliveries</h2><table id="webhooks"><thead><tr><th>event</th><th>type</th><th>gateway</th>
<th>verdict</th></tr></thead><tbody></tbody></table>
<h2>Recent bus events</h2><table id="events"><thead><tr><th>time</th><th>event</th><th>order</th>
<th>consumer</th></tr></thead><tbody></tbody></table>
</div><div>
<h2>Queues</h2><table id="queues"><thead><tr><th>queue</th><th>waiting</th><th>in flight</th></tr></thead>
<tbody></tbody></table>
</div></div>
<h2>Function invocations</h2><table id="invocations"><thead><tr><th>time</th><th>function</th><th>trigger</th>
<th>order</th><th>outcome</th><th>ms</th><th>start</th><th>reason</th></tr></thead><tbody></tbody></table>
<script>
const text = (value) => document.createTextNode(value == null ? "" : String(value));
const time = (epoch) => new Date(epoch * 1000).toLocaleTimeString();
function fill(id, rows) {
  const body = document.querySelector(`#${id} tbody`);
  body.replaceChildren(...rows.map(([cells, failed]) => {
    const row = document.createElement("tr");
    if (failed) row.className = "failed";
    for (const cell of cells) {
      const td = document.createElement("td"); td.appendChild(text(cell)); row.appendChild(td);
    }
    return row;
  }));
}
async function refresh() {
  try {
    const state = await (await fetch("/_local/state.json")).json();
    fill("orders", state.orders.map((o) => [[o.orderId, o.status,
      o.timeline.map((t) => `${time(t.at)} ${t.step}`).join(" → ")], false]));
    fill("webhooks", state.webhooks.map((w) => [[w.event, w.type, w.gatewayStatus, w.verdict], w.failed]));
    fill("events", state.events.map((e) => [[time(e.at), e.type, e.orders.join(", "), e.consumer], false]));
    fill("queues", state.queues.map((q) => [[q.name, q.waiting, q.inFlight], q.dlq && q.waiting > 0]));
    fill("invocations", state.invocations.map((i) => [[time(i.at), i.function, i.trigger,
      i.order_ids.join(", "), i.outcome, Math.round(i.duration_ms), i.cold ? "cold" : "warm", i.reason],
      !i.ok]));
    document.getElementById("updated").textContent = `updated ${new Date().toLocaleTimeString()}`;
  } catch (error) {
    document.getElementById("updated").textContent = `the local cloud does not answer (${error})`;
  }
}
refresh();
setInterval(refresh, 1000);
</script></body></html>"""
