"""The Pulumi engine through the Automation API: the shared workspace, runs, one stack as the
watcher and `gitops up` drive it, and recovery from killed runs. Callers import from here; the
modules behind it each do one of those jobs."""
from .recover import Recovery, recover
from .run import PreviewResult, RefreshResult, RunResult, event_json, outputs, preview, refresh, up
from .stack import Applied, RunPlan, StackEngine
from .workspace import (
    DEFAULT_PASSPHRASE,
    backend,
    cli_error,
    engine_env,
    project_name,
    run_lock,
    select_stack,
    stack_dir,
)

__all__ = ["DEFAULT_PASSPHRASE", "Applied", "PreviewResult", "Recovery", "RefreshResult", "RunPlan", "RunResult",
           "StackEngine", "backend", "cli_error", "engine_env", "event_json", "outputs", "preview", "project_name",
           "recover", "refresh", "run_lock", "select_stack", "stack_dir", "up"]
