"""Stack settings: read once, from the stack's Pulumi config or CLI flags, into one frozen value.

Keys live in the `gitops:` namespace of a stack file (`stacks/Pulumi.<stack>.yaml`). Values may
come as YAML types (read from the file) or as strings (read through `pulumi.Config`), so each
parser accepts both.
"""
from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .errors import SettingsError

NAMESPACE = "gitops"

# The value of `gitops:kubeconfig` that means "the control plane `gitops cluster up` started".
LOCAL_CLUSTER = "local"


@dataclass(frozen=True)
class StackSettings:
    repo: str
    """Config repository: a local path (relative to the project), `file://`, `https://` or ssh URL."""
    ref: str = "HEAD"
    """Branch, tag or commit. `HEAD` follows the remote's default branch (or a local repo's checkout)."""
    path: str = "."
    """Folder inside the repo whose manifests are the desired state."""
    namespace: str = "default"
    """Namespace for namespaced objects that name none, as `kubectl apply -n` would do."""
    prune: bool = True
    """Delete objects removed from git. Off: they are only forgotten by Pulumi and stay in the cluster."""
    kubeconfig: str | None = None
    """Path of the kubeconfig; `local` for the local control plane; unset for the ambient one."""
    context: str | None = None
    """Context in the kubeconfig; unset for its current context."""
    skip_await: bool = False
    """Skip the provider's readiness waits (for clusters that never make Pods ready)."""
    cluster_kinds: tuple[str, ...] = ()
    """Extra cluster-scoped kinds as `Kind.group`, for custom resources whose CRD is not in the repo."""
    kube_qps: float = 200.0
    """Requests per second the provider may send the API server. The provider's own 50 made a
    refresh of 1,000 objects wait ~30 s on its client-side throttle; the API server's priority
    and fairness still protects it, and a stack has one writer."""
    kube_burst: int = 400
    """Requests the provider may send at once above `kube_qps`."""
    drift_interval: float | None = 300.0
    """Watcher: seconds between drift checks (refresh against the cluster); 0 turns them off."""
    drift_mode: str = "correct"
    """Watcher: `correct` puts hand edits back to git; `report` only logs and records them."""
    max_delete_percent: float = 50.0
    """Watcher: refuse a commit that deletes more than this share of the stack's objects."""
    allow_mass_delete: bool = False
    """Watcher: apply such a commit anyway."""
    image_policies: Mapping[str, Any] = field(default_factory=dict)
    """Image tag policies by name (`image`, `semver`, `pattern`, `extract`, `order`), checked by `images.policy`."""
    image_policy_file: str = ".gitops/images.yaml"
    """More policies, in the config repo, relative to `path`; hidden, so never deployed. Missing is fine."""
    image_interval: float | None = 120.0
    """Watcher: seconds between registry scans; 0 turns scanning off (webhooks still scan)."""
    image_mode: str = "commit"
    """`commit` writes accepted tags to git and deploys that commit; `readonly` deploys them without
    writing to git (as Flux v1's `--git-readonly`); `off` ignores the markers."""
    image_push_branch: str | None = None
    """Push image updates to this branch (for review) instead of the stack's ref."""
    image_author: str = "gitops <gitops@localhost>"
    """Author and committer of image update commits, as `Name <email>`."""
    image_commit_message: str | None = None
    """Template of the commit message; `{summary}` and `{images}` are filled in. Unset: a standard message."""
    insecure_registries: tuple[str, ...] = ()
    """Registries spoken to over plain HTTP (loopback ones always are)."""

    def resolved_repo(self, project_dir: Path) -> str:
        """A local path made absolute against the project, so the program and the CLI agree."""
        if is_remote(self.repo):
            return self.repo
        return str((project_dir / os.path.expanduser(self.repo)).resolve())

    def resolved_kubeconfig(self) -> str | None:
        if self.kubeconfig is None:
            return None
        if self.kubeconfig == LOCAL_CLUSTER:
            from .local.cluster import default_root  # late: keeps settings free of I/O modules

            return str(default_root() / "kubeconfig")
        return os.path.expanduser(self.kubeconfig)


def is_remote(repo: str) -> bool:
    """A URL (`https://`, `ssh://`, `file://`) or git's scp-like `git@host:org/repo`; else a local path."""
    head = repo.split("/", 1)[0]
    return "://" in repo or (":" in head and "@" in head)


def _bool(key: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("true", "yes", "1", "on"):
        return True
    if text in ("false", "no", "0", "off"):
        return False
    raise SettingsError(f"{NAMESPACE}:{key} must be true or false, not {value!r}")


def _list(key: str, value: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        # `pulumi.Config` hands structured values over as JSON text.
        try:
            value = json.loads(value) if value.strip().startswith("[") else value.split(",")
        except json.JSONDecodeError as e:
            raise SettingsError(f"{NAMESPACE}:{key} is not a valid list: {e}") from e
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise SettingsError(f"{NAMESPACE}:{key} must be a list of strings")
    return tuple(v.strip() for v in value if v.strip())


def _number(key: str, value: Any) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError) as e:
        raise SettingsError(f"{NAMESPACE}:{key} must be a number, not {value!r}") from e
    if number < 0:
        raise SettingsError(f"{NAMESPACE}:{key} must not be negative, not {value!r}")
    return number


def _percent(key: str, value: Any) -> float:
    number = _number(key, value)
    if number > 100:
        raise SettingsError(f"{NAMESPACE}:{key} is a percentage (0-100), not {value!r}")
    return number


def _choice(key: str, value: Any, choices: tuple[str, ...]) -> str:
    text = str(value).strip()
    if text not in choices:
        raise SettingsError(f"{NAMESPACE}:{key} must be one of {', '.join(choices)}, not {value!r}")
    return text


def settings_from_config(config: Mapping[str, Any]) -> StackSettings:
    """Build settings from `gitops:` keys (with or without the prefix)."""
    values = {k.removeprefix(f"{NAMESPACE}:"): v for k, v in config.items()}
    known = {"repo", "ref", "path", "namespace", "prune", "kubeconfig", "context", "skipAwait", "clusterKinds",
             "kubeQps", "kubeBurst",
             "driftInterval", "driftMode", "maxDeletePercent", "allowMassDelete", "imagePolicies", "imagePolicyFile",
             "imageInterval", "imageMode", "imagePushBranch", "imageAuthor", "imageCommitMessage",
             "insecureRegistries"}
    unknown = sorted(k for k in values if k not in known and ":" not in k)
    if unknown:
        raise SettingsError(f"unknown setting(s) {', '.join(f'{NAMESPACE}:{k}' for k in unknown)}; known: {', '.join(sorted(known))}")
    repo = values.get("repo")
    if not repo:
        raise SettingsError(f"{NAMESPACE}:repo is required (a git URL or a local path)")

    def text(key: str, default: str | None) -> str | None:
        value = values.get(key)
        return default if value in (None, "") else str(value)

    return StackSettings(
        repo=str(repo),
        ref=text("ref", "HEAD") or "HEAD",
        path=(text("path", ".") or ".").strip("/") or ".",
        namespace=text("namespace", "default") or "default",
        prune=_bool("prune", values.get("prune", True)),
        kubeconfig=text("kubeconfig", None),
        context=text("context", None),
        skip_await=_bool("skipAwait", values.get("skipAwait", False)),
        cluster_kinds=_list("clusterKinds", values.get("clusterKinds", [])),
        kube_qps=_number("kubeQps", values.get("kubeQps", 200)) or 200.0,
        kube_burst=int(_number("kubeBurst", values.get("kubeBurst", 400))) or 400,
        drift_interval=_number("driftInterval", values.get("driftInterval", 300)) or None,
        drift_mode=_choice("driftMode", values.get("driftMode", "correct"), ("correct", "report")),
        max_delete_percent=_percent("maxDeletePercent", values.get("maxDeletePercent", 50)),
        allow_mass_delete=_bool("allowMassDelete", values.get("allowMassDelete", False)),
        image_policies=_mapping("imagePolicies", values.get("imagePolicies", {})),
        image_policy_file=text("imagePolicyFile", ".gitops/images.yaml") or ".gitops/images.yaml",
        image_interval=_number("imageInterval", values.get("imageInterval", 120)) or None,
        image_mode=_choice("imageMode", values.get("imageMode", "commit"), ("commit", "readonly", "off")),
        image_push_branch=text("imagePushBranch", None),
        image_author=_author(values.get("imageAuthor", "gitops <gitops@localhost>")),
        image_commit_message=text("imageCommitMessage", None),
        insecure_registries=_list("insecureRegistries", values.get("insecureRegistries", [])),
    )


def _mapping(key: str, value: Any) -> Mapping[str, Any]:
    if isinstance(value, str):
        try:
            value = json.loads(value) if value.strip() else {}
        except json.JSONDecodeError as e:
            raise SettingsError(f"{NAMESPACE}:{key} is not a valid mapping: {e}") from e
    if not isinstance(value, dict):
        raise SettingsError(f"{NAMESPACE}:{key} must be a mapping")
    return value


def _author(value: Any) -> str:
    text = str(value).strip()
    if not re.fullmatch(r"[^<>]+ <[^<>@\s]+@[^<>\s]*>", text):
        raise SettingsError(f"{NAMESPACE}:imageAuthor must look like `Name <email>`, not {value!r}")
    return text


def split_author(author: str) -> tuple[str, str]:
    name, _, email = author.rpartition(" <")
    return name.strip(), email.rstrip(">")


def stack_file(project_dir: Path, stack: str) -> Path:
    return project_dir / "stacks" / f"Pulumi.{stack}.yaml"


def read_stack_settings(project_dir: Path, stack: str) -> StackSettings:
    """Settings straight from the stack file, for commands that must not start the engine."""
    path = stack_file(project_dir, stack)
    try:
        document = yaml.safe_load(path.read_text()) or {}
    except FileNotFoundError as e:
        raise SettingsError(f"no stack file {path}; create it with the gitops:repo setting") from e
    except yaml.YAMLError as e:
        raise SettingsError(f"{path}: invalid YAML: {e}") from e
    config = document.get("config") or {}
    if not isinstance(config, dict):
        raise SettingsError(f"{path}: `config` must be a mapping")
    ours = {k: v for k, v in config.items() if str(k).startswith(f"{NAMESPACE}:")}
    try:
        return settings_from_config(ours)
    except SettingsError as e:
        raise SettingsError(f"{path}: {e}") from e
