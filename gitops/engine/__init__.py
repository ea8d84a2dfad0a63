"""The Pulumi engine through the Automation API: the shared workspace, runs, and recovery from
killed runs. Callers import from here; the modules behind it each do one of those jobs."""
from .recover import Recovery, recover
from .run import PreviewResult, RunResult, event_json, outputs, preview, up
from .workspace import (DEFAULT_PASSPHRASE, backend, engine_env, last_lines, project_name, run_lock, select_stack,
                        stack_dir)

__all__ = ["DEFAULT_PASSPHRASE", "PreviewResult", "Recovery", "RunResult", "backend", "engine_env", "event_json",
           "last_lines", "outputs", "preview", "project_name", "recover", "run_lock", "select_stack", "stack_dir", "up"]
