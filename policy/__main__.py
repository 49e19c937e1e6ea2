"""Entry point the Pulumi CLI runs for `pulumi preview --policy-pack policy` (it blocks, serving the
engine over gRPC). Everything it serves lives in policy/pack.py, where tests can reach it."""

import sys
from pathlib import Path

# The CLI runs this file as a script from policy/: make the repository importable as in the tests.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pulumi_policy import Policy, PolicyPack

from policy.pack import PACK_NAME, policies

served: list[Policy] = [*policies()]
PolicyPack(name=PACK_NAME, policies=served)
