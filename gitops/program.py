"""The Pulumi program: the config repo at one commit -> one Kubernetes resource per object.

The only module that imports `pulumi_kubernetes`. Run by `pulumi up` through the root
`__main__.py`, and by `gitops up` through the Automation API with the same files.
"""
from __future__ import annotations

import os
from collections.abc import Callable, Collection, Sequence
from pathlib import Path

import pulumi
import pulumi_kubernetes as k8s

from .errors import GitOpsError
from .guard import check_not_empty
from .intent import Intent
from .kube.dryrun import require_acceptance
from .kube.scopes import read_against_cluster
from .model import DesiredState
from .resources import ResourceSpec, resource_specs, settings_digest, spec_digests, targeted_specs, urn
from .settings import NAMESPACE, PROGRAM_KEYS, StackSettings, settings_from_config
from .source.git import GitSource, SourceFile

# Set by `gitops up`/the watcher: the commit it already resolved and rendered, so the program
# deploys exactly that commit even if the ref moves while the engine starts.
COMMIT_ENV = "GITOPS_COMMIT"
# Set by `gitops preview --repo`: read the commit from this clone instead (a fork's pull request).
REPO_ENV = "GITOPS_REPO"
# Set by the watcher in read-only image mode: policy -> tag, applied to the marked fields as the
# files are read, so the accepted tags are deployed without a commit.
IMAGE_TAGS_ENV = "GITOPS_IMAGE_TAGS"
# Set by `gitops up`, the watcher and the preview to the commit whose objects the API server has
# already accepted in a dry run, so the program does not ask again.
VERIFIED_ENV = "GITOPS_VERIFIED"
# Set by this project's engine runs, which save the state only when the engine ends: where the
# program writes, before registering anything, what the run may create (`gitops.intent`).
INTENT_ENV = "GITOPS_INTENT"
# Set by recovery's replay of a killed run, which only puts back into the state what that run
# created: no readiness waits, whatever the stack says (the next `up` waits), and no commit output,
# as the commit is not applied in full: the watcher applies it again.
REPLAY_ENV = "GITOPS_REPLAY"
# Set by a delta run (`intent.delta_targets`): a file of the URNs the run targets, one per line. The
# program registers only those and what they depend on; the engine leaves every other resource as
# the state has it.
TARGETS_ENV = "GITOPS_TARGETS"
# The program's one provider, by logical name: intents and recovery name it by URN.
PROVIDER_NAME = "cluster"
PROVIDER_TYPE = "pulumi:providers:kubernetes"


class KubernetesObject(pulumi.CustomResource):
    """Any Kubernetes object, registered under the provider's own type for its GVK."""

    def __init__(self, spec: ResourceSpec, opts: pulumi.ResourceOptions):
        props = dict(spec.props)
        for field in spec.secret_fields:
            props[field] = pulumi.Output.secret(props[field])
        super().__init__(spec.type, spec.name, props, opts)


def stack_settings() -> StackSettings:
    config = pulumi.Config(NAMESPACE)
    present = {key: value for key in PROGRAM_KEYS if (value := config.get(key)) is not None}
    return settings_from_config(present)


def builtin_versions() -> dict[tuple[str, str], tuple[str, ...]]:
    """Every version of every built-in kind, from the provider SDK's own type registry."""
    versions: dict[tuple[str, str], list[str]] = {}
    for modules in pulumi.runtime.rpc._RESOURCE_MODULES.values():
        for module in modules:
            for token in getattr(module, "mod_info", {}).get("classes", {}):
                _, group_version, kind = token.split(":")
                group, _, version = group_version.rpartition("/")
                versions.setdefault(("" if group == "core" else group, kind), []).append(version)
    return {key: tuple(v) for key, v in versions.items()}


def register(state: DesiredState, settings: StackSettings, intent: Path | None = None,
             targets: Collection[str] | None = None) -> list[KubernetesObject]:
    """One resource per object (with `targets`, per targeted object); `intent` is written first,
    naming every one of them."""
    # ConfigMaps and Secrets are updated in place, as `kubectl apply`, Flux and Argo CD do; the
    # provider's default would replace them (new UID) on every data change. Objects marked
    # `immutable: true` are still replaced, as Kubernetes requires.
    skip_await = settings.program.skip_await or bool(os.environ.get(REPLAY_ENV))
    specs = resource_specs(state, skip_await=skip_await, builtin_versions=builtin_versions())
    stack, project = pulumi.get_stack(), pulumi.get_project()
    if targets is not None:
        specs = targeted_specs(specs, targets, stack, project)
    if intent is not None:
        Intent(commit=state.commit, provider=urn(stack, project, PROVIDER_TYPE, PROVIDER_NAME),
               digests=spec_digests(specs, stack, project), settings=settings_digest(settings),
               image_tags=os.environ.get(IMAGE_TAGS_ENV)).write(intent)
    provider = k8s.Provider(PROVIDER_NAME, kubeconfig=settings.cluster.resolved_kubeconfig(),
                            context=settings.cluster.context, enable_server_side_apply=True,
                            enable_config_map_mutable=True, enable_secret_mutable=True,
                            kube_client_settings=k8s.KubeClientSettingsArgs(qps=settings.cluster.kube_qps,
                                                                            burst=settings.cluster.kube_burst))
    by_name: dict[str, KubernetesObject] = {}
    # Specs come in file order, but a dependency may be declared in a later file.
    for spec in _dependencies_first(specs):
        opts = pulumi.ResourceOptions(
            provider=provider,
            depends_on=[by_name[n] for n in spec.depends_on],
            aliases=[pulumi.Alias(type_=t) for t in spec.alias_types],
            retain_on_delete=not settings.program.prune,
            additional_secret_outputs=list(spec.secret_fields),
        )
        by_name[spec.name] = KubernetesObject(spec, opts)
    return list(by_name.values())


def _dependencies_first(specs: Sequence[ResourceSpec]) -> list[ResourceSpec]:
    # Dependencies are only Namespaces and CRDs, which depend on nothing: one pass suffices.
    needed = {n for s in specs for n in s.depends_on}
    return [s for s in specs if s.name in needed] + [s for s in specs if s.name not in needed]


def image_rewrite(encoded: str | None, path: str) -> Callable[[list[SourceFile]], list[SourceFile]] | None:
    if not encoded:
        return None
    from .images.automation import apply_choices, decode_choices

    chosen = decode_choices(encoded)
    return lambda files: apply_choices(files, chosen, path)


def run(project_dir: str | None = None) -> None:
    """Entry point of the Pulumi program."""
    try:
        settings = stack_settings()
        source = GitSource(os.environ.get(REPO_ENV)
                           or settings.source.resolved_repo(Path(project_dir or os.getcwd())))
        commit = os.environ.get(COMMIT_ENV) or source.resolve(settings.source.ref)
        rewrite = image_rewrite(os.environ.get(IMAGE_TAGS_ENV), settings.source.path)
        state = read_against_cluster(source, commit, settings, rewrite=rewrite)
        check_not_empty(state, settings.safety.allow_empty)
        # `gitops up` and the watcher ask the API server before they start the engine; a plain
        # `pulumi up` gets the same verdict here, before the first resource is registered.
        if settings.safety.server_dry_run and os.environ.get(VERIFIED_ENV) != commit:
            require_acceptance(settings.cluster, state.manifests, commit)
    except GitOpsError as e:
        # A clean message instead of a traceback; nothing has been registered yet.
        raise pulumi.RunError(str(e)) from e
    intent, targets = os.environ.get(INTENT_ENV), os.environ.get(TARGETS_ENV)
    register(state, settings, Path(intent) if intent else None,
             set(Path(targets).read_text().split()) if targets else None)
    pulumi.export("repo", state.repo)
    pulumi.export("ref", settings.source.ref)
    pulumi.export("commit", "" if os.environ.get(REPLAY_ENV) else state.commit)
    pulumi.export("path", state.path)
    pulumi.export("objectCount", len(state.manifests))
    pulumi.export("subjects", state.subjects)

