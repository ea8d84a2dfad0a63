"""Stack settings: each key declared once, grouped by concern, read once into frozen values.

Keys live in the `gitops:` namespace of a stack file (`stacks/Pulumi.<stack>.yaml`). Each is
declared below with its name, type (its parser), default and meaning; `settings_table()` renders
those declarations as the README's table, and a unit test keeps the README equal to it. Values may
come as YAML types (read from the file) or as strings (read through `pulumi.Config`), so each
parser accepts both.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import re
import string
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .errors import SettingsError
from .paths import cluster_root
from .urls import is_remote, normalized

NAMESPACE = "gitops"

# The value of `gitops:kubeconfig` that means "the control plane `gitops cluster up` started".
LOCAL_CLUSTER = "local"

# What an image commit message template may use (see `images.message`).
TEMPLATE_FIELDS = ("summary", "images")

Parser = Callable[[str, Any], Any]


@dataclass(frozen=True)
class Key:
    """The declaration of one setting."""

    name: str
    """As written in the stack file, without the `gitops:` prefix."""
    parse: Parser
    shown: str
    """The default as the README shows it."""
    meaning: str
    """What it does and why its default is what it is, as the README says it."""


def setting(name: str, default: Any, meaning: str, parse: Parser, shown: str | None = None) -> Any:
    """A dataclass field declaring the stack setting `name`."""
    key = Key(name, parse, shown if shown is not None else _shown(default), meaning)
    if isinstance(default, dict | list):
        return field(default_factory=lambda: type(default)(default), metadata={"key": key})
    return field(default=default, metadata={"key": key})


def _shown(default: Any) -> str:
    if isinstance(default, bool):
        return f"`{str(default).lower()}`"
    if isinstance(default, float):
        return f"`{default:g}`"
    return f"`{json.dumps(default) if isinstance(default, dict | list) else default}`"


# ---------------------------------------------------------------- parsers: (key, raw value) -> value


def text(key: str, value: Any) -> str | None:
    return None if value in (None, "") else str(value)


def flag(key: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    word = str(value).strip().lower()
    if word in ("true", "yes", "1", "on"):
        return True
    if word in ("false", "no", "0", "off"):
        return False
    raise SettingsError(f"{NAMESPACE}:{key} must be true or false, not {value!r}")


def names(key: str, value: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        # `pulumi.Config` hands structured values over as JSON text.
        try:
            value = json.loads(value) if value.strip().startswith("[") else value.split(",")
        except json.JSONDecodeError as e:
            raise SettingsError(f"{NAMESPACE}:{key} is not a valid list: {e}") from e
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise SettingsError(f"{NAMESPACE}:{key} must be a list of strings")
    return tuple(v.strip() for v in value if v.strip())


def number(key: str, value: Any) -> float:
    try:
        parsed = float(value)
    except (TypeError, ValueError) as e:
        raise SettingsError(f"{NAMESPACE}:{key} must be a number, not {value!r}") from e
    if parsed < 0 or parsed != parsed:
        raise SettingsError(f"{NAMESPACE}:{key} must not be negative, not {value!r}")
    return parsed


def interval(key: str, value: Any) -> float | None:
    """Seconds; 0 turns the thing off (None)."""
    return number(key, value) or None


def positive(key: str, value: Any) -> float:
    parsed = number(key, value)
    if not parsed:
        raise SettingsError(f"{NAMESPACE}:{key} must be more than 0, not {value!r}")
    return parsed


def count(key: str, value: Any) -> int:
    return int(positive(key, value))


def percent(key: str, value: Any) -> float:
    parsed = number(key, value)
    if parsed > 100:
        raise SettingsError(f"{NAMESPACE}:{key} is a percentage (0-100), not {value!r}")
    return parsed


def choice(*choices: str) -> Parser:
    def parse(key: str, value: Any) -> str:
        word = str(value).strip()
        if word not in choices:
            raise SettingsError(f"{NAMESPACE}:{key} must be one of {', '.join(choices)}, not {value!r}")
        return word
    return parse


def mapping(key: str, value: Any) -> Mapping[str, Any]:
    if isinstance(value, str):
        try:
            value = json.loads(value) if value.strip() else {}
        except json.JSONDecodeError as e:
            raise SettingsError(f"{NAMESPACE}:{key} is not a valid mapping: {e}") from e
    if not isinstance(value, dict):
        raise SettingsError(f"{NAMESPACE}:{key} must be a mapping")
    return value


def author(key: str, value: Any) -> str:
    written = str(value).strip()
    if not re.fullmatch(r"[^<>]+ <[^<>@\s]+@[^<>\s]*>", written):
        raise SettingsError(f"{NAMESPACE}:{key} must look like `Name <email>`, not {value!r}")
    return written


def template(key: str, value: Any) -> str | None:
    written = text(key, value)
    if written is not None:
        check_template(written)
    return written


def check_template(written: str) -> None:
    """Raise SettingsError unless a commit message template uses only `TEMPLATE_FIELDS`."""
    allowed = ", ".join("{" + name + "}" for name in TEMPLATE_FIELDS)
    try:
        parsed = list(string.Formatter().parse(written))
    except ValueError as e:
        raise SettingsError(f"commit message template is malformed ({e}); use {allowed}, "
                            "and {{ }} for braces") from e
    for _literal, name, _spec, _conversion in parsed:
        # Attribute and index lookups (`{summary.__class__}`) are refused with the rest.
        if name is not None and name not in TEMPLATE_FIELDS:
            shown = "{" + name + "}" if name else "{} (positional)"
            raise SettingsError(f"commit message template has unknown placeholder {shown}; use {allowed}")
    try:
        written.format(**dict.fromkeys(TEMPLATE_FIELDS, ""))
    except (ValueError, TypeError) as e:  # a bad format spec such as `{summary:d}`
        raise SettingsError(f"commit message template cannot be rendered: {e}") from e


def folder(key: str, value: Any) -> str:
    return normalized(text(key, value) or ".") or "."


# ---------------------------------------------------------------- the settings, by concern


@dataclass(frozen=True)
class SourceSettings:
    """Which commit of which repository, and which folder of it, is the desired state."""

    repo: str = setting("repo", "", "config repository: local path (relative to the project), `https://`, "
                        "`ssh://`, `git@host:org/repo`, or `file://` URL", text, shown="(required)")
    ref: str = setting("ref", "HEAD", "branch, tag or commit; `HEAD` is the remote's default branch (or a local "
                       "repo's checkout)", text)
    path: str = setting("path", ".", "folder in the repo whose manifests are the desired state", folder)

    def resolved_repo(self, project_dir: Path) -> str:
        """A local path made absolute against the project, so the program and the CLI agree."""
        if is_remote(self.repo):
            return self.repo
        return str((project_dir / os.path.expanduser(self.repo)).resolve())


@dataclass(frozen=True)
class ProgramSettings:
    """How the manifests become Pulumi resources."""

    namespace: str = setting("namespace", "default", "namespace for namespaced objects that name none, as "
                             "`kubectl apply -n` would use", text)
    prune: bool = setting("prune", True, "delete objects removed from git; `false` only forgets them (Pulumi "
                          "`retainOnDelete`; takes effect for objects applied while it is off)", flag)
    skip_await: bool = setting("skipAwait", False, "add `pulumi.com/skipAwait: \"true\"` to every object: no "
                               "readiness waits (for clusters that never run Pods)", flag)
    cluster_kinds: tuple[str, ...] = setting(
        "clusterKinds", (), "extra cluster-scoped kinds as `Kind.group`, for custom resources whose CRD is not in "
        "the repo (e.g. `[ClusterIssuer.cert-manager.io]`); kinds not known to be cluster-scoped are treated as "
        "namespaced", names, shown="`[]`")


@dataclass(frozen=True)
class RenderSettings:
    """How folders that are not plain manifests are rendered: kustomize (as Flux) and Helm (as Argo CD)."""

    kustomize_remote_bases: bool = setting("kustomizeRemoteBases", False, "let kustomizations reach "
                                           "the network: remote bases (`https://host/org/repo//dir?ref=v1`, as Flux "
                                           "does by default), remote files, and `helmCharts` pulled from a `repo`; "
                                           "off, a kustomization reaches no host at all", flag)
    kustomize_helm: bool = setting("kustomizeHelm", False, "inflate a kustomization's `helmCharts` with the pinned "
                                   "helm (kustomize's `--enable-helm`; off in Flux too), from the kustomization's "
                                   "`charts/` folder, or pulled with `kustomizeRemoteBases`", flag)
    helm_chart: str | None = setting("helmChart", None, "a chart from a Helm repository instead of a folder: its "
                                     "name with `helmRepo`, or a whole `oci://host/path/chart` reference; "
                                     "`gitops:path` then only holds its values files", text, shown="none")
    helm_repo: str | None = setting("helmRepo", None, "the Helm repository (`https://...`) of `helmChart`", text,
                                    shown="none")
    helm_version: str | None = setting("helmVersion", None, "the chart version (or semver range) of `helmChart`; "
                                       "required with it, so a new chart release is a commit, not a surprise", text,
                                       shown="none")
    helm_release: str | None = setting("helmRelease", None, "Helm release name when `gitops:path` is a chart (a "
                                       "`Chart.yaml` there), as `helm template <release>` takes it", text,
                                       shown="the chart folder's name")
    helm_values_files: tuple[str, ...] = setting("helmValuesFiles", (), "values files of the chart, relative to "
                                                 "the chart folder, applied in order after its `values.yaml` (as "
                                                 "Argo CD's `valueFiles`)", names, shown="`[]`")
    helm_values: Mapping[str, Any] = setting("helmValues", {}, "inline values, applied last (as Argo CD's "
                                             "`valuesObject`)", mapping, shown="`{}`")
    helm_hooks: str = setting("helmHooks", "refuse", "objects with a `helm.sh/hook` annotation: `refuse` (a clear "
                              "error: there are no install phases), `skip` (as `helm template --no-hooks`), or "
                              "`apply` as ordinary objects; `test` hooks are always left out, as Argo CD does",
                              choice("refuse", "skip", "apply"))


@dataclass(frozen=True)
class ClusterSettings:
    """Which cluster, and how hard the provider may talk to it."""

    kubeconfig: str | None = setting("kubeconfig", None, "kubeconfig path, or `local` for the control plane of "
                                     "`gitops cluster up`", text, shown="ambient (`$KUBECONFIG`, `~/.kube/config`)")
    context: str | None = setting("context", None, "context in that kubeconfig", text, shown="current context")
    kube_qps: float = setting("kubeQps", 200.0, "requests per second the provider may send the API server; the "
                              "provider's own 50 made a refresh of 1,000 objects wait ~30 s on its client-side "
                              "throttle (the API server's priority and fairness still protects it)", positive,
                              shown="`200`")
    kube_burst: int = setting("kubeBurst", 400, "requests the provider may send at once above `kubeQps`", count)

    def resolved_kubeconfig(self) -> str | None:
        if self.kubeconfig is None:
            return None
        if self.kubeconfig == LOCAL_CLUSTER:
            return str(cluster_root() / "kubeconfig")
        return os.path.expanduser(self.kubeconfig)


@dataclass(frozen=True)
class WatchSettings:
    """What the watcher does between commits."""

    drift_interval: float | None = setting("driftInterval", 300.0, "watcher: seconds between drift checks (a "
                                           "refresh against the cluster); `0` turns them off", interval, shown="`300`")
    full_run_interval: float | None = setting(
        "fullRunInterval", 3600.0, "a commit that changes some objects sends only those (and what it deletes) "
        "through the engine (`up --target`) while the stack's last run was this project's own and succeeded; every "
        "this many seconds, after a `pulumi up` by hand, a failed run, a drift found or a settings change, a run "
        "sends every object; `0`: every run does", interval, shown="`3600`")
    drift_mode: str = setting("driftMode", "correct", "watcher: `correct` puts hand edits back to git (refresh, "
                              "then `up`); `report` only logs and records them (preview-only refresh)",
                              choice("correct", "report"))


@dataclass(frozen=True)
class SafetySettings:
    """What keeps a bad commit from changing anything: checked by `gitops up`, the watcher and the program."""

    max_delete_percent: float = setting("maxDeletePercent", 50.0, "refuse a commit that would delete more than this "
                                        "share of the stack's objects (an emptied or renamed folder), in `gitops up` "
                                        "and the watcher", percent, shown="`50`")
    allow_mass_delete: bool = setting("allowMassDelete", False, "apply such a commit anyway (`gitops up "
                                      "--allow-mass-delete` for one run)", flag)
    allow_empty: bool = setting("allowEmpty", False, "accept a desired state of no objects at all, which prunes "
                                "everything the stack holds; off, an empty or mistyped folder is an error", flag)
    server_dry_run: bool = setting("serverDryRun", True, "before anything is applied, the API server dry-runs every "
                                   "object of the commit (concurrently, as Flux does): a rejected object stops the "
                                   "whole commit with nothing applied", flag)


@dataclass(frozen=True)
class ImageSettings:
    """Image automation: which tags to follow, and how accepted tags reach git."""

    policies: Mapping[str, Any] = setting("imagePolicies", {}, "image tag policies by name (see [Image "
                                          "automation](#image-automation))", mapping)
    policy_file: str = setting("imagePolicyFile", ".gitops/images.yaml", "more policies in the config repo, "
                               "relative to `path` (hidden, so never deployed); missing is fine", text)
    interval: float | None = setting("imageInterval", 120.0, "watcher: seconds between registry scans; `0`: only "
                                     "the registry webhook scans", interval, shown="`120`")
    mode: str = setting("imageMode", "commit", "`commit`: write accepted tags to git, then deploy that commit; "
                        "`readonly`: deploy them without writing to git; `off`: ignore markers",
                        choice("commit", "readonly", "off"))
    push_branch: str | None = setting("imagePushBranch", None, "push image commits to this branch instead, for "
                                      "review; deployed once merged", text, shown="(the stack's ref)")
    author: str = setting("imageAuthor", "gitops <gitops@localhost>", "author and committer of image commits, "
                          "`Name <email>`", author, shown="`gitops <gitops@localhost>`")
    commit_message: str | None = setting("imageCommitMessage", None, "commit message template; `{summary}` (one "
                                         "line) and `{images}` (one line per image) are filled in; any other "
                                         "placeholder is refused when the settings are read", template,
                                         shown="standard")
    insecure_registries: tuple[str, ...] = setting("insecureRegistries", (), "registries spoken to over plain HTTP "
                                                   "(loopback ones always are)", names, shown="`[]`")


GROUPS = {"source": SourceSettings, "program": ProgramSettings, "render": RenderSettings,
          "cluster": ClusterSettings, "safety": SafetySettings,
          "watch": WatchSettings, "images": ImageSettings}


@dataclass(frozen=True)
class StackSettings:
    source: SourceSettings
    program: ProgramSettings = ProgramSettings()
    render: RenderSettings = RenderSettings()
    cluster: ClusterSettings = ClusterSettings()
    safety: SafetySettings = SafetySettings()
    watch: WatchSettings = WatchSettings()
    images: ImageSettings = ImageSettings()


def keys(*groups: type) -> dict[str, tuple[str, Key]]:
    """Setting name -> (attribute, declaration), for the given groups (default: all)."""
    found = {}
    for group in groups or tuple(GROUPS.values()):
        for f in dataclasses.fields(group):
            key: Key = f.metadata["key"]
            found[key.name] = (f.name, key)
    return found


# The keys the Pulumi program needs: the rest only matter to the watcher and image automation.
PROGRAM_KEYS = tuple(keys(SourceSettings, ProgramSettings, ClusterSettings, SafetySettings))


def settings_from_config(config: Mapping[str, Any]) -> StackSettings:
    """Build settings from `gitops:` keys (with or without the prefix); every problem named."""
    values = {k.removeprefix(f"{NAMESPACE}:"): v for k, v in config.items()}
    known = keys()
    unknown = sorted(k for k in values if k not in known and ":" not in k)
    if unknown:
        raise SettingsError(f"unknown setting(s) {', '.join(f'{NAMESPACE}:{k}' for k in unknown)}; "
                            f"known: {', '.join(sorted(known))}")
    if not values.get("repo"):
        raise SettingsError(f"{NAMESPACE}:repo is required (a git URL or a local path)")
    groups = {}
    for name, group in GROUPS.items():
        parsed = {}
        for f in dataclasses.fields(group):
            key: Key = f.metadata["key"]
            if values.get(key.name) not in (None, ""):
                parsed[f.name] = key.parse(key.name, values[key.name])
        groups[name] = group(**parsed)
    return StackSettings(**groups)


def split_author(written: str) -> tuple[str, str]:
    name, _, email = written.rpartition(" <")
    return name.strip(), email.rstrip(">")


def stack_file(project_dir: Path, stack: str) -> Path:
    return project_dir / "stacks" / f"Pulumi.{stack}.yaml"


# Pulumi writes its passphrase salt into a stack file the first time it uses the stack.
SALT_KEY = "encryptionsalt"


def stack_fingerprint(stack_bytes: bytes) -> str:
    """A digest of what a stack file says: when it changes, the settings to apply changed.

    The engine's first use of a stack is not a change, though Pulumi then writes the file again:
    it adds its salt (left out here) and writes scalar settings as strings (`true` becomes
    "true", `8` "8"), so scalars are compared as Pulumi writes them."""
    try:
        document = yaml.safe_load(stack_bytes)
    except yaml.YAMLError:
        document = None
    if not isinstance(document, dict):
        return hashlib.sha256(stack_bytes).hexdigest()
    said = {str(k): v for k, v in document.items() if k != SALT_KEY}
    if isinstance(said.get("config"), dict):
        said["config"] = {str(k): _as_pulumi_writes(v) for k, v in said["config"].items()}
    return hashlib.sha256(json.dumps(said, sort_keys=True, default=str).encode()).hexdigest()


def _as_pulumi_writes(value: Any) -> Any:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value) if isinstance(value, (int, float)) else value


def read_stack_settings(project_dir: Path, stack: str) -> StackSettings:
    """Settings straight from the stack file, for commands that must not start the engine."""
    path = stack_file(project_dir, stack)
    try:
        document = yaml.safe_load(path.read_text()) or {}
    except FileNotFoundError as e:
        raise SettingsError(f"no stack file {path}; create it with the gitops:repo setting") from e
    except yaml.YAMLError as e:
        raise SettingsError(f"{path}: invalid YAML: {e}") from e
    config = document.get("config") if isinstance(document, dict) else None
    if not isinstance(config, dict):
        raise SettingsError(f"{path}: `config` must be a mapping")
    ours = {k: v for k, v in config.items() if str(k).startswith(f"{NAMESPACE}:")}
    try:
        return settings_from_config(ours)
    except SettingsError as e:
        raise SettingsError(f"{path}: {e}") from e


def settings_table(groups: Iterable[type] = ()) -> str:
    """The README's table of settings, from the declarations."""
    rows = ["| setting | default | meaning |", "|---|---|---|"]
    rows += [f"| `{NAMESPACE}:{name}` | {key.shown} | {key.meaning} |" for name, (_, key) in keys(*groups).items()]
    return "\n".join(rows) + "\n"


if __name__ == "__main__":
    print(settings_table(), end="")
