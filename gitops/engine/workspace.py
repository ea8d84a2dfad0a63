"""The Pulumi workspace every engine run shares: environment, stack selection, and the run lock.

Runs the same `Pulumi.yaml` program a person runs with `pulumi up`, so both give one result.
"""
from __future__ import annotations

import functools
import os
import tempfile
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path

import yaml
from pulumi import automation as auto
from pulumi.automation._stack import StackInitMode  # the mode `Stack()` takes; not re-exported

from ..errors import EngineError
from ..paths import bin_dir, state_root, tool_env
from ..settings import SALT_KEY, stack_file
from ..state.backend import Backend
from ..state.locks import StackLock
from ..text import last_lines

# The local state's passphrase when the user has set none: local stacks need no ceremony,
# and real stacks set PULUMI_CONFIG_PASSPHRASE(_FILE) or another secrets provider.
DEFAULT_PASSPHRASE = "gitops-local"


def engine_env(base: Mapping[str, str] | None = None) -> dict[str, str]:
    """Tools first on PATH, plus a local state backend and passphrase unless the user chose others.
    A file backend gets `Backend.with_file_defaults` (no metadata side files to be left half-written)."""
    env = tool_env(base if base is not None else os.environ)
    if not env.get("PULUMI_BACKEND_URL"):
        root = state_root()
        root.mkdir(parents=True, exist_ok=True)
        env["PULUMI_BACKEND_URL"] = f"file://{root}"
    env["PULUMI_BACKEND_URL"] = Backend(env["PULUMI_BACKEND_URL"]).with_file_defaults().url
    if "PULUMI_CONFIG_PASSPHRASE" not in env and "PULUMI_CONFIG_PASSPHRASE_FILE" not in env:
        env["PULUMI_CONFIG_PASSPHRASE"] = DEFAULT_PASSPHRASE
    return env


def backend(env: Mapping[str, str]) -> Backend:
    return Backend(env.get("PULUMI_BACKEND_URL", ""))


def project_name(project_dir: Path) -> str:
    try:
        return str((yaml.safe_load((project_dir / "Pulumi.yaml").read_text()) or {}).get("name") or "gitops")
    except (OSError, yaml.YAMLError):
        return "gitops"


def stack_dir(project_dir: Path, stack: str, env: Mapping[str, str]) -> Path:
    """This project's own files of one stack (watcher status, run records, locks): beside a file
    backend's state, so every process using that backend on this machine finds the same locks."""
    return backend(env).gitops_dir(project_name(project_dir), stack, base=project_dir, fallback=state_root())


def run_lock(project_dir: Path, stack: str, env: Mapping[str, str]) -> StackLock:
    """Held around every engine run of the stack by this project's processes (`gitops up`, the
    watcher), and around the repair of a killed run's leftovers, which must never race a live run."""
    return StackLock(stack_dir(project_dir, stack, env) / "run.lock", what="an engine run of the stack is in progress")


def intent_path(project_dir: Path, stack: str, env: Mapping[str, str]) -> Path:
    """Where a run names what it may create (`gitops.intent`); present only while a run has not ended."""
    return stack_dir(project_dir, stack, env) / "intent.json"


class _Workspace(auto.LocalWorkspace):
    """The Automation API's workspace, reading a file backend's outputs from the checkpoint.

    `Stack.up` asks for the outputs after every run, with two `pulumi stack output` processes
    (each derives the passphrase key): about a second of a small commit's run."""

    def stack_outputs(self, stack_name: str) -> auto.OutputMap:
        files = backend(self.env_vars).stack_files(project_name(Path(self.work_dir)), stack_name,
                                                   base=Path(self.work_dir))
        values = files.outputs() if files else None
        if values is None:
            return super().stack_outputs(stack_name)
        return {key: auto.OutputValue(value="[secret]", secret=True) if _is_ciphertext(value)
                else auto.OutputValue(value=value, secret=False) for key, value in values.items()}


class _Stack(auto.Stack):
    def info(self, show_secrets: bool = True) -> auto.UpdateSummary | None:
        """`Stack.up` ends with `pulumi stack history` for a summary this project takes from the
        run's own events (`run.up`): one process fewer per run."""
        return auto.UpdateSummary(kind="update", start_time=datetime.now(UTC), message="", environment={},
                                  config={}, result="succeeded")


def _is_ciphertext(value: object) -> bool:
    return isinstance(value, dict) and "ciphertext" in value


def select_stack(project_dir: Path, stack: str, env: Mapping[str, str] | None = None) -> auto.Stack:
    env = dict(env or engine_env())
    _salt_stack_file(project_dir, stack, env)
    try:
        return _Stack(stack, _Workspace(**vars(_options(project_dir, env))), StackInitMode.CREATE_OR_SELECT)
    except auto.errors.CommandError as e:
        raise EngineError(f"cannot select stack {stack}: {cli_error(e)}") from e


@functools.cache
def _command(root: Path) -> auto.PulumiCommand:
    # Made once per process: making one runs `pulumi version`.
    return auto.PulumiCommand(root=str(root), skip_version_check=True)


def _options(work_dir: Path, env: Mapping[str, str]) -> auto.LocalWorkspaceOptions:
    # PulumiCommand runs `<root>/bin/pulumi`.
    return auto.LocalWorkspaceOptions(work_dir=str(work_dir), env_vars=dict(env),
                                      pulumi_command=_command(bin_dir().parent), secrets_provider="passphrase")



def _salt_stack_file(project_dir: Path, stack: str, env: Mapping[str, str]) -> None:
    """Give a stack file its passphrase salt without Pulumi writing the user's file.

    Pulumi writes `encryptionsalt` into the stack file the first time it uses a stack, truncating
    the file and writing it again in place: a run killed at that moment leaves the user's settings
    empty. So the first selection runs on a scratch copy of the project, and the one line Pulumi
    added is appended to the real file through a rename. Later runs find the salt and write nothing."""
    path = stack_file(project_dir, stack)
    try:
        text = path.read_text()
        document = yaml.safe_load(text) or {}
    except (OSError, yaml.YAMLError):
        return  # reported by whoever reads the settings
    if not isinstance(document, dict) or SALT_KEY in document or "secretsprovider" in document:
        return
    with tempfile.TemporaryDirectory(prefix="gitops-salt-") as scratch:
        root = Path(scratch)
        (root / "stacks").mkdir()
        (root / "Pulumi.yaml").write_bytes((project_dir / "Pulumi.yaml").read_bytes())
        (root / "stacks" / path.name).write_text(text)
        try:
            auto.create_or_select_stack(stack_name=stack, work_dir=str(root), opts=_options(root, env))
        except auto.errors.CommandError as e:
            raise EngineError(f"cannot select stack {stack}: {cli_error(e)}") from e
        salted_text = (root / "stacks" / path.name).read_text()
        salted = yaml.safe_load(salted_text) or {}
    salt = salted.get(SALT_KEY) if isinstance(salted, dict) else None
    if not isinstance(salt, str):
        return
    # Appended, the user's comments and layout stay; a file in flow style (JSON) cannot take an
    # appended key, and gets Pulumi's own rewrite instead.
    appended = text + ("" if text.endswith("\n") or not text else "\n") + f"{SALT_KEY}: {salt}\n"
    try:
        fits = yaml.safe_load(appended) == {**document, SALT_KEY: salt}
    except yaml.YAMLError:
        fits = False
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(appended if fits else salted_text)
    os.replace(tmp, path)


def cli_error(error: Exception, count: int = 12) -> str:
    """The end of a CLI error's output, where Pulumi puts the reason."""
    return "\n".join(last_lines(str(getattr(error, "stderr", "") or error), count))
