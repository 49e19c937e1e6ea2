"""Pulumi entry point: `pulumi up -s dev|prod` runs this."""

from services.program import build

build()
