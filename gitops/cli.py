"""`gitops`: render, up, show, watch, tools, cluster, env. Thin: parses flags, calls the layers, prints."""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shlex
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .errors import EngineError, GitOpsError, GuardError, SettingsError, ToolMissingError
from .model import DesiredState
from .plan.model import Plan
from .settings import StackSettings, names, read_stack_settings, settings_from_config

# Every gitops:<render setting> as a `render` flag (tests/unit/test_cli.py checks none is missing).
RENDER_FLAGS: dict[str, tuple[str, dict[str, Any]]] = {
    "kustomizeRemoteBases": ("--kustomize-remote-bases", {"action": "store_true"}),
    "kustomizeHelm": ("--kustomize-helm", {"action": "store_true"}),
    "helmChart": ("--helm-chart", {"metavar": "CHART"}),
    "helmRepo": ("--helm-repo", {"metavar": "URL"}),
    "helmVersion": ("--helm-version", {"metavar": "VERSION"}),
    "helmRelease": ("--helm-release", {"metavar": "NAME"}),
    "helmValuesFiles": ("--helm-values", {"action": "append", "metavar": "FILE"}),
    "helmValues": ("--helm-set", {"metavar": "JSON"}),
    "helmHooks": ("--helm-hooks", {"choices": ("refuse", "skip", "apply")}),
}

# What an engine run needs built; the control plane's binaries are only for `gitops cluster`.
ENGINE_TOOLS = ("pulumi", "pulumi-language-python", "pulumi-resource-kubernetes")
# Renderers of kustomize folders: built when a command first meets one, or up front by the
# commands that render commits they have not seen yet (the watcher, previews).
RENDER_TOOLS = ("gitops-kustomize",)


def project_dir(given: str | None) -> Path:
    """Where `Pulumi.yaml` is: the flag, `$GITOPS_PROJECT_DIR`, the current folder, or this checkout."""
    for candidate in (given, os.environ.get("GITOPS_PROJECT_DIR"), os.getcwd(), Path(__file__).resolve().parent.parent):
        if candidate and (Path(candidate) / "Pulumi.yaml").is_file():
            return Path(candidate).resolve()
    raise SettingsError("no Pulumi.yaml found: run from the project folder or pass --project-dir")


def _settings(args: argparse.Namespace) -> tuple[StackSettings, Path]:
    if args.stack:
        root = project_dir(args.project_dir)
        settings = read_stack_settings(root, args.stack)
    elif not args.repo:
        raise SettingsError("pass --stack, or --repo (with --ref and --path)")
    else:
        root = Path.cwd()
        config = {"repo": args.repo, "ref": args.ref, "path": args.path, "namespace": args.namespace}
        for setting, (flag, _) in RENDER_FLAGS.items():
            value = getattr(args, flag.removeprefix("--").replace("-", "_"), None)
            config[setting] = _json_flag(flag, value) if setting == "helmValues" else value
        settings = settings_from_config({k: v for k, v in config.items() if v})
    extra = names("clusterKinds", ",".join(getattr(args, "cluster_kinds", None) or []))
    if extra:
        program = dataclasses.replace(settings.program, cluster_kinds=(*settings.program.cluster_kinds, *extra))
        settings = dataclasses.replace(settings, program=program)
    return settings, root


def _json_flag(flag: str, value: str | None) -> object:
    if not value:
        return None
    try:
        return json.loads(value)
    except json.JSONDecodeError as e:
        raise SettingsError(f"{flag} is not JSON: {e}") from e


def _render(settings: StackSettings, root: Path, against_cluster: bool = False) -> DesiredState:
    """The desired state at the settings' ref; `against_cluster` asks the cluster how custom kinds
    without a CRD in the repo are scoped (`render` has no cluster: it takes --cluster-kinds)."""
    from .desired import read_desired_state
    from .kube.scopes import read_against_cluster
    from .source.git import GitSource

    source = GitSource(settings.source.resolved_repo(root))
    commit = source.resolve(settings.source.ref)
    read = read_against_cluster if against_cluster else read_desired_state
    try:
        return read(source, commit, settings)
    except ToolMissingError as missing:
        # A renderer is built only once a repo needs it (a kustomize folder): then, and once.
        from .local.tools import ensure_tools

        ensure_tools(progress=_note, names=(missing.tool,))
        return read(source, commit, settings)


def cmd_render(args: argparse.Namespace) -> int:
    from .render import to_yaml

    settings, root = _settings(args)
    sys.stdout.write(to_yaml(_render(settings, root), show_secrets=args.show_secrets))
    return 0


def cmd_up(args: argparse.Namespace) -> int:
    from . import engine
    from .guard import check_deletions, check_not_empty
    from .kube.dryrun import require_acceptance
    from .local.tools import ensure_tools
    from .program import VERIFIED_ENV

    settings, root = _settings(args)
    # Validate before the engine starts: a broken commit must leave state and cluster untouched.
    state = _render(settings, root, against_cluster=True)
    check_not_empty(state, settings.safety.allow_empty)
    print(f"desired state: {len(state.manifests)} objects from {state.repo} at {state.commit[:12]} ({state.path})")
    ensure_tools(progress=print, names=ENGINE_TOOLS)
    # One engine run of the stack at a time (a watcher's included); in its turn, what a killed run
    # left behind is repaired first, so a `gitops up` after any interruption just works.
    stack = engine.StackEngine(root, args.stack, engine.engine_env())

    def told(holder: dict[str, Any]) -> None:
        print(f"waiting for another run of stack {args.stack} to finish (pid {holder.get('pid', '?')})", flush=True)

    with stack.turn(on_wait=told) as recovery:
        for line in recovery.lines():
            print(f"recover: {line}", flush=True)
        try:
            current = stack.applied().subjects
            guard = check_deletions(current, state.subjects, max_delete_percent=settings.safety.max_delete_percent,
                                    allow_mass_delete=settings.safety.allow_mass_delete or args.allow_mass_delete)
            if not guard.allowed:
                raise GuardError(f"commit {state.commit[:12]}: {guard.message}")
            program_env = {}
            plan = stack.plan(state, settings, refresh=args.refresh)
            if settings.safety.server_dry_run:
                verdict = require_acceptance(settings.cluster, plan.to_verify(state.manifests), state.commit)
                print(f"server dry run: {verdict.summary}", flush=True)
                program_env[VERIFIED_ENV] = state.commit
            result = stack.up(state.commit, on_output=None if args.quiet else _print_line, refresh=args.refresh,
                              program_env=program_env, plan=plan)
        except EngineError:
            # Damaged state makes the engine fail with a bare "EOF"; a deeper look names the file and the fix.
            stack.deep_recover()
            raise
    changes = ", ".join(f"{op} {n}" for op, n in sorted(result.changes.items())) or "no changes"
    sent = "" if result.targeted is None else f" ({result.targeted} changed object(s) sent to the engine)"
    print(f"up: stack {result.stack} at {result.commit[:12]}: {changes} in {result.seconds:.1f} s{sent}")
    return 0


def cmd_preview(args: argparse.Namespace) -> int:
    """What merging a ref would change, against the stack's state and cluster; changes neither."""
    from . import engine
    from .local.tools import ensure_tools
    from .plan import render
    from .plan.preview import preview_plan

    root = project_dir(args.project_dir)
    settings = read_stack_settings(root, args.stack)
    ensure_tools(progress=_note, names=ENGINE_TOOLS + RENDER_TOOLS)
    plan = preview_plan(root, args.stack, settings, ref=args.ref, repo=args.repo, refresh=not args.no_refresh,
                        progress=_note)
    marker = f"{engine.project_name(root)}/{args.stack}"
    if args.format == "json":
        sys.stdout.write(render.to_json(plan) + "\n")
    elif args.format == "markdown":
        sys.stdout.write(render.to_markdown(plan, marker=marker))
    else:
        sys.stdout.write(render.to_text(plan, color=sys.stdout.isatty()))
    sys.stdout.flush()
    if args.comment:
        _publish(plan, args.comment, marker, with_status=args.status)
    if not plan.ok:
        return 1
    if args.detailed_exitcode and plan.has_changes:
        return 2
    return 0


def _publish(plan: Plan, target_text: str, marker: str, with_status: bool) -> None:
    from .plan import render
    from .plan.github import GitHubClient
    from .plan.gitlab import GitLabClient
    from .plan.target import parse_target

    target = parse_target(target_text)
    forge = GitLabClient if target.provider == "gitlab" else GitHubClient
    client: GitHubClient | GitLabClient = forge.from_environment(os.environ)
    bodies = render.markdown_comments(plan, marker=marker, limit=client.max_comment_chars)
    ids = client.upsert_comments(target.repository, target.number, bodies, marker)
    _note(f"plan posted to {target_text} as {len(ids)} comment(s)")
    if with_status and plan.commit:
        state = "failure" if plan.problems else "error" if plan.error else "success"
        # One status per stack: several stacks previewing one pull request must not overwrite each other.
        client.set_status(target.repository, plan.commit, state, render.summary(plan),
                          context=f"gitops/preview/{plan.stack}")
        _note(f"status {state} set on {plan.commit[:12]}")


def _note(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def cmd_images(args: argparse.Namespace) -> int:
    """Each marked image field, its policy, its tag now and the tag the policy would pick, and why."""
    import json

    from .images.scan import ImageScanner, describe
    from .source.git import GitSource

    root = project_dir(args.project_dir)
    settings = read_stack_settings(root, args.stack)
    source = GitSource(settings.source.resolved_repo(root))
    commit = source.resolve(settings.source.ref)
    scanner = ImageScanner(os.environ, settings.images.insecure_registries)
    try:
        result = scanner.scan(source.read(commit, settings.source.path), commit, settings,
                              f"stacks/Pulumi.{args.stack}.yaml: gitops:imagePolicies", source=source)
    finally:
        scanner.close()
    rows = [describe(check) for check in result.checks]
    if args.format == "json":
        print(json.dumps({"commit": commit, "images": rows, "registry_requests": dict(scanner.requests_made)},
                         indent=2))
        return 0
    if not rows:
        print(f"no marked image fields at {commit[:12]} ({settings.source.path})")
        return 0
    print(f"image fields marked for automation at {commit[:12]}, mode {settings.images.mode}:")
    for row in rows:
        where = f"{row['subject'] or '-'}" + (f" container {row['container']}" if row["container"] else "")
        if row["locked"]:
            state = "locked"
        elif row["moves"]:
            state = f"-> {row['chosen']}"
        else:
            state = "up to date" if row["chosen"] else "no choice"
        print(f"\n  {row['location']}  {where}\n    {row['field']} follows {row['policy']}: {row['image'] or '?'}"
              f"\n    now {row['current'] or '-'}  {state}\n    {row['reason']}")
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    """What the stack's last `up` put in the cluster, as kubectl shows it."""
    import subprocess
    from collections import defaultdict

    from . import engine

    root = project_dir(args.project_dir)
    settings = read_stack_settings(root, args.stack)
    env = engine.engine_env()
    outputs = engine.outputs(engine.select_stack(root, args.stack, env))
    subjects = outputs.get("subjects") or []
    if not subjects:
        print(f"stack {args.stack} has no objects yet: run `gitops up --stack {args.stack}`")
        return 0
    print(f"stack {args.stack}: {len(subjects)} objects at commit {str(outputs.get('commit'))[:12]}")
    by_namespace: dict[str, list[str]] = defaultdict(list)
    for subject in subjects:
        parts = subject.split("/")
        kind, namespace, name = (parts[0], "", parts[1]) if len(parts) == 2 else parts
        by_namespace[namespace].append(f"{kind}/{name}")  # kubectl resolves kinds by discovery
    kubeconfig = settings.cluster.resolved_kubeconfig()
    context = settings.cluster.context
    base = ["kubectl", *(["--kubeconfig", kubeconfig] if kubeconfig else []),
            *(["--context", context] if context else [])]
    for namespace, objects in sorted(by_namespace.items()):
        print(f"\n# {'namespace ' + namespace if namespace else 'cluster-scoped'}")
        subprocess.run([*base, "get", *(["-n", namespace] if namespace else []), *objects], env=env, check=False)
    return 0


def cmd_tools(args: argparse.Namespace) -> int:
    from .local.tools import describe, ensure_tools

    started = time.monotonic()
    tools = ensure_tools(progress=print)
    for name, version, source, path in describe(tools):
        print(f"{name:28} {version:10} {source:6} {path}")
    print(f"tools ready in {time.monotonic() - started:.1f} s")
    return 0


def cmd_cluster(args: argparse.Namespace) -> int:
    from .local import cluster
    from .local.tools import ensure_tools

    if args.action == "up":
        tools = ensure_tools(progress=print, names=cluster.COMPONENTS)
        running = cluster.cluster_up({name: tool.path for name, tool in tools.items()}, progress=print)
        print(f"kubeconfig: {running.kubeconfig}")
    elif args.action == "down":
        if not cluster.cluster_down(progress=print):
            print("no local control plane was running")
    else:
        status = cluster.cluster_status()
        print(f"running at {status.server}; kubeconfig: {status.kubeconfig}" if status else "not running")
        return 0 if status else 3
    return 0


def cmd_env(args: argparse.Namespace) -> int:
    """Shell exports so that plain `pulumi up -s <stack>` uses the same tools, state and passphrase."""
    from . import engine

    env = engine.engine_env()
    for key in ("PATH", "PULUMI_BACKEND_URL", "PULUMI_CONFIG_PASSPHRASE", "PULUMI_SKIP_UPDATE_CHECK",
                "PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION"):
        if key in env:
            print(f"export {key}={shlex.quote(env[key])}")
    return 0


def cmd_watch(args: argparse.Namespace) -> int:
    """Keep the stack equal to git until stopped; the loop itself lives in gitops/watch/."""
    from . import engine
    from .local.tools import ensure_tools
    from .watch import detach
    from .watch.loop import Watcher, WatchOptions, install_signal_handlers
    from .watch.record import Log

    if detach.has_controlling_terminal():
        return detach.run_detached(args.argv)
    root = project_dir(args.project_dir)
    read_stack_settings(root, args.stack)  # a typo in the stack file fails now, not in the loop
    log = Log(args.log_format)
    ensure_tools(progress=lambda line: log("tools", line), names=ENGINE_TOOLS + RENDER_TOOLS)
    watcher = Watcher(WatchOptions(project_dir=root, stack=args.stack, interval=args.interval,
                                   lock_timeout=args.lock_timeout), log, env=engine.engine_env())
    install_signal_handlers(watcher)
    server = None
    if args.listen:
        from .watch.server import Endpoints, parse_listen, serve

        secret = os.environ.get("GITOPS_WEBHOOK_SECRET", "").encode() or None
        server = serve(parse_listen(args.listen), Endpoints(
            status=watcher.status, metrics=watcher.metrics.render, trigger=watcher.trigger,
            on_webhook=watcher.metrics.webhook, secret=secret,
            trigger_images=watcher.trigger_images))
        host, port = str(server.server_address[0]), server.server_address[1]
        log("http.listen", f"serving /healthz /status /metrics /hooks/git /hooks/registry on {host}:{port}",
            webhooks="on" if secret else "off")
    try:
        return watcher.run(once=args.once)
    finally:
        if server:
            server.shutdown()
            server.server_close()


def _print_line(line: str) -> None:
    print(line.rstrip("\n"), flush=True)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="gitops", description="Keep a Kubernetes cluster equal to a git config repository, through Pulumi.")
    parser.add_argument("--project-dir", help="folder of Pulumi.yaml (default: current folder or this checkout)")
    commands = parser.add_subparsers(dest="command", required=True)

    def source_flags(p: argparse.ArgumentParser) -> None:
        p.add_argument("--stack", "-s", help="stack whose settings to use (stacks/Pulumi.<stack>.yaml)")
        p.add_argument("--repo", help="config repo URL or local path (instead of --stack)")
        p.add_argument("--ref", help="branch, tag or commit (default HEAD)")
        p.add_argument("--path", help="folder in the repo (default: the root)")
        p.add_argument("--namespace", help="namespace for objects that name none (default: default)")

    render = commands.add_parser("render", help="print the desired state as YAML; touches no cluster")
    source_flags(render)
    render.add_argument("--cluster-kinds", action="append", metavar="Kind.group",
                        help="a custom kind the cluster serves cluster-scoped, whose CRD is not in the repo "
                             "(repeatable, or comma-separated), as gitops:clusterKinds")
    render.add_argument("--show-secrets", action="store_true", help="print Secret values (redacted by default)")
    # The render settings of a stack, for trying a folder without one (with --repo).
    for setting, (flag, options) in RENDER_FLAGS.items():
        render.add_argument(flag, **{"help": f"as gitops:{setting}", **options})
    render.set_defaults(func=cmd_render)

    up = commands.add_parser("up", help="apply the desired state of a stack")
    up.add_argument("--stack", "-s", required=True)
    up.add_argument("--quiet", "-q", action="store_true", help="print only the summary")
    up.add_argument("--allow-mass-delete", action="store_true",
                    help="apply a commit that deletes more than gitops:maxDeletePercent of the stack's objects, once")
    up.add_argument("--refresh", action="store_true",
                    help="read every object from the cluster first, so objects deleted or edited by hand are put back")
    up.set_defaults(func=cmd_up, repo=None)

    preview = commands.add_parser("preview", help="plan what a branch or commit would change; changes nothing")
    preview.add_argument("--stack", "-s", required=True)
    preview.add_argument("--ref", help="branch, tag or commit to preview (default: the stack's ref)")
    preview.add_argument("--repo", help="read the ref from this clone of the config repo (e.g. a fork's checkout)")
    preview.add_argument("--format", choices=("text", "markdown", "json"), default="text")
    preview.add_argument("--comment", metavar="github:OWNER/REPO#N",
                         help="post the plan on a pull request (or gitlab:GROUP/PROJECT!IID), editing its earlier "
                              "comment")
    preview.add_argument("--status", action="store_true", help="with --comment: also set a commit status on the ref")
    preview.add_argument("--detailed-exitcode", action="store_true", help="exit 0 no changes, 2 changes, 1 error")
    preview.add_argument("--no-refresh", action="store_true",
                         help="compare with the state of the last `up` instead of reading the cluster first")
    preview.set_defaults(func=cmd_preview)

    images = commands.add_parser("images", help="list marked image fields, their policies and the tags they would take")
    images.add_argument("--stack", "-s", required=True)
    images.add_argument("--format", choices=("text", "json"), default="text")
    images.set_defaults(func=cmd_images)

    show = commands.add_parser("show", help="list what a stack's last `up` created, from the cluster")
    show.add_argument("--stack", "-s", required=True)
    show.set_defaults(func=cmd_show)

    watch = commands.add_parser("watch", help="keep a stack equal to git: poll, apply new commits, correct drift")
    watch.add_argument("--stack", "-s", required=True)
    watch.add_argument("--interval", type=float, default=30.0, help="seconds between polls of the ref (default 30)")
    watch.add_argument("--once", action="store_true",
                       help="one cycle, then exit: 0 nothing changed, 2 changes applied, 1 error")
    watch.add_argument("--log-format", choices=("text", "json"), default="text", help="json: one object per line")
    watch.add_argument("--listen", metavar="127.0.0.1:PORT",
                       help="serve /healthz, /status, /metrics and POST /hooks/git (secret: $GITOPS_WEBHOOK_SECRET)")
    watch.add_argument("--lock-timeout", type=float, default=None,
                       help="seconds to wait while another watcher holds the stack (default: wait; 0: exit 1 at once)")
    watch.set_defaults(func=cmd_watch)

    tools = commands.add_parser("tools", help="find or build the pinned engine and control-plane binaries")
    tools.set_defaults(func=cmd_tools)

    cluster = commands.add_parser("cluster", help="a local control plane on 127.0.0.1")
    cluster.add_argument("action", choices=("up", "down", "status"))
    cluster.set_defaults(func=cmd_cluster)

    env = commands.add_parser("env", help="print shell exports for running `pulumi` directly")
    env.set_defaults(func=cmd_env)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)
    try:
        code: int = args.func(args)
        return code
    except GitOpsError as e:
        print(f"gitops: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
