"""Pulumi entry point: `pulumi up` runs this; all logic lives in the `gitops` package."""
from gitops.program import run

run()
