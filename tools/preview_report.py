"""Turn the log of a `make policy` / `make deploy` run into Markdown for the job summary and the PR comment.

    python -m tools.preview_report --stack acme/tbs/dev --outcome failure --log build/pulumi-dev.log \\
        [--command preview] --out build/pulumi-dev.md

pulumi/actions comments only after a successful command (its src/main.ts throws before commenting), so a
failed preview, the case a reviewer most needs to see, left no trace on the pull request. This report leads
with what failed: preflight lines, the CLI's `error:` lines, mandatory policy violations; then the
"Policies" and "Resources" sections as the CLI printed them (pkg/backend/display/progress.go), and the
end of the log. Standard library only: it must run when an earlier step, even `make install`, failed."""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Sequence
from pathlib import Path

# GitHub refuses comments over 65,536 characters; pulumi/actions keeps to 64,000 for the same reason.
COMMENT_LIMIT = 64_000
MAX_PROBLEMS = 20
ANSI = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]")
SECTIONS = ("Policies:", "Resources:")


def marker(stack: str, command: str) -> str:
    """Hidden in the comment, so the next run edits it instead of adding another."""
    return f"<!-- tbs-pulumi-report {command} {stack} -->"


def _section(lines: list[str], heading: str) -> list[str]:
    """A top-level section of the CLI's summary: its heading line and the indented lines under it."""
    if heading not in lines:
        return []
    start = len(lines) - 1 - lines[::-1].index(heading)
    body = [heading]
    for line in lines[start + 1 :]:
        if line and not line.startswith(" "):
            break
        body.append(line)
    while body and not body[-1].strip():
        body.pop()
    return body


def _violations(policies: list[str]) -> list[str]:
    """Each mandatory violation with the message lines under it."""
    found: list[str] = []
    for index, line in enumerate(policies):
        if "[mandatory]" not in line:
            continue
        indent = len(line) - len(line.lstrip())
        detail = []
        for following in policies[index + 1 :]:
            if len(following) - len(following.lstrip()) <= indent or not following.strip():
                break
            detail.append(following.strip())
        found.append(" — ".join([line.strip().removeprefix("- ").strip(), *detail[1:]]))
    return found


def problems(lines: list[str]) -> list[str]:
    found: list[str] = []
    for line in lines:
        text = line.strip()
        if text.startswith("preflight:") and "preflight: note:" not in text:
            found.append(text.removeprefix("preflight:").strip())
        elif text.startswith("error:"):
            found.append(text.removeprefix("error:").strip())
    found += _violations(_section(lines, "Policies:"))
    return list(dict.fromkeys(found))[:MAX_PROBLEMS]


def _fence(text: str) -> str:
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    ticks = "`" * max(3, longest + 1)
    return f"{ticks}text\n{text}\n{ticks}"


def render(stack: str, command: str, outcome: str, log: Path) -> str:
    passed = outcome == "success"
    title = (
        f"### {'✅' if passed else '❌'} `pulumi {command}` of `{stack}` {'passed' if passed else 'failed'}"
    )
    footer = f"\n{marker(stack, command)}\n"
    if not log.is_file() or not log.read_text(errors="replace").strip():
        return (
            f"{title}\n\nThe {command} did not run: a step before it failed (see the job log: checkout, "
            f"`make install`, credentials).\n{footer}"
        )
    text = ANSI.sub("", log.read_text(errors="replace"))
    lines = text.splitlines()
    parts = [title, ""]
    found = problems(lines)
    if found and not passed:
        parts += ["**What failed**", "", *(f"- {problem}" for problem in found), ""]
    for heading in SECTIONS:
        section = _section(lines, heading)
        if section:
            parts += [f"**{heading.rstrip(':')}**", "", _fence("\n".join(section)), ""]
    head = "\n".join(parts)
    room = COMMENT_LIMIT - len(head) - len(footer) - 200
    tail = text[-room:] if room > 0 else ""
    if len(tail) < len(text):
        tail = "…\n" + tail[tail.find("\n") + 1 :]
    summary = f"<summary>Output (the end, {len(tail):,} characters)</summary>"
    details = f"<details>{summary}\n\n{_fence(tail)}\n\n</details>\n"
    return f"{head}\n{details}{footer}"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--stack", required=True)
    parser.add_argument(
        "--outcome", required=True, help="the step's outcome: success, failure, cancelled, skipped"
    )
    parser.add_argument("--log", type=Path, required=True)
    parser.add_argument("--command", default="preview")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(render(args.stack, args.command, args.outcome, args.log))
    return 0


if __name__ == "__main__":
    sys.exit(main())
