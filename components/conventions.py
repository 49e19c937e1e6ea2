"""What the program and the local cloud must agree on, without Pulumi (the local cloud imports this; a
local cloud replaying a remembered run of the program never imports Pulumi)."""

from __future__ import annotations

# The cluster's master user: RDS keeps its password in the secret it manages (`manage_master_user_password`).
MASTER_USERNAME = "tbs_admin"
# The reports service's database in its cluster (the local cloud creates it while the program runs).
REPORTS_DATABASE = "reports"


def method_settings_path(method: str, path: str) -> str:
    """How API Gateway keys a stage's method settings: the resource path with each "/" written "~1",
    then the method (`/webhooks/stripe` POST → `~1webhooks~1stripe/POST`). The provider passes the
    path through and reads the setting back by it (hashicorp/terraform-provider-aws#9738)."""
    return f"{path.rstrip('/').replace('/', '~1') or '~1'}/{method}"
