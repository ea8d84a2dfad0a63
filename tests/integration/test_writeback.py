"""Write-back against real git: bare repos as remotes, and a remote served over the network by
`git daemon` (with pushes enabled) that is stopped and restarted mid-test. No control plane.

Races are made deterministic by the edit function itself: on its first call it pushes a competing
commit from another clone, i.e. after our fetch and before our push. The remotes refuse
non-fast-forward updates, so a force push could not succeed either."""
from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from gitops.errors import SettingsError, SourceError
from gitops.images.message import commit_message
from gitops.images.writeback import Author, WriteBack, write_back

from gitdaemon import GitDaemon
from gitrepo import ConfigRepo

WEB = "127.0.0.1:5000/demo/web"
# Odd bytes on purpose (CRLF, no final newline, tabs, UTF-8): all must survive untouched.
DEPLOY = ("# démo\r\napiVersion: apps/v1\r\nkind: Deployment\r\nspec:\r\n  replicas: 1\r\n\ttemplate: {}\r\n"
          f"  image: {WEB}:1.2.3 # {{\"$imagepolicy\": \"demo:web\"}}\r\n  trailing: no-newline").encode()
BOT = Author("image bot", "bot@example.invalid")


def git(repo: Path, *args: str, input: bytes | None = None) -> str:
    flag = "--git-dir" if repo.suffix == ".git" else "-C"
    return subprocess.run(["git", flag, str(repo), *args], input=input, check=True,
                          capture_output=True).stdout.decode().strip()


def show(remote: Path, rev: str, path: str) -> bytes:
    return subprocess.run(["git", "--git-dir", str(remote), "show", f"{rev}:{path}"], check=True,
                          capture_output=True).stdout


def bump(old: bytes, new: bytes):
    """An edit in the style of the image marker: re-found in whatever content it is given."""
    def edit(path: str, data: bytes) -> bytes:
        return data.replace(f"{WEB}:".encode() + old, f"{WEB}:".encode() + new)
    return edit


@pytest.fixture(autouse=True)
def cache(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("GITOPS_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


@pytest.fixture
def remote(tmp_path) -> Path:
    seed = ConfigRepo(tmp_path / "seed")
    seed.write({"apps/deploy.yaml": DEPLOY.decode(), "apps/other.yaml": "a: 1\n", "tools/run.sh": "echo 1.2.3\n"})
    seed.git("update-index", "--chmod=+x", "tools/run.sh")
    seed.git("commit", "-q", "-m", "executable")
    seed.git("tag", "v1")
    bare = tmp_path / "remote.git"
    seed.push_to(bare)
    git(bare, "config", "receive.denyNonFastForwards", "true")
    return bare


class Competitor:
    """Another clone that pushes to the remote, as a person or another tool would."""

    def __init__(self, remote: str, root: Path):
        subprocess.run(["git", "clone", "-q", remote, str(root)], check=True, capture_output=True)
        self.root, self.pushed = root, []
        for key, value in (("user.email", "human@example.invalid"), ("user.name", "human"),
                           ("commit.gpgsign", "false")):
            git(root, "config", key, value)

    def commit(self, path: str, change) -> str:
        git(self.root, "pull", "-q", "--ff-only")
        file = self.root / path
        file.parent.mkdir(parents=True, exist_ok=True)
        file.write_bytes(change(file.read_bytes() if file.exists() else b""))
        git(self.root, "add", path)
        git(self.root, "commit", "-q", "-m", f"human edit {len(self.pushed)}")
        git(self.root, "push", "-q", "origin", "HEAD")
        self.pushed.append(git(self.root, "rev-parse", "HEAD"))
        return self.pushed[-1]


def racing(edit, competitor: Competitor, path: str, change, times: int = 1):
    """`edit`, which on its first `times` calls lets the competitor push first."""
    calls: list[bytes] = []

    def wrapped(file: str, data: bytes) -> bytes | None:
        calls.append(data)
        if len(calls) <= times:
            competitor.commit(path, change)
        return edit(file, data)
    wrapped.calls = calls  # type: ignore[attr-defined]
    return wrapped


def test_edit_is_committed_as_the_author_with_the_message_and_pushed(remote):
    before = git(remote, "rev-parse", "main")
    message = commit_message([(WEB, "1.2.3", "1.2.4", ["apps/deploy.yaml", "tools/run.sh"])])
    result = write_back(WriteBack(str(remote), "main", author=BOT), ["tools/run.sh", "./apps/deploy.yaml"],
                        lambda path, data: data.replace(b"1.2.3", b"1.2.4"), message)

    assert result.commit == git(remote, "rev-parse", "main") != before
    assert (result.branch, result.attempts, result.files) == ("main", 1, ("apps/deploy.yaml", "tools/run.sh"))
    assert git(remote, "log", "-1", "--format=%P%n%an <%ae>%n%cn <%ce>", "main").splitlines() == [
        before, "image bot <bot@example.invalid>", "image bot <bot@example.invalid>"]
    assert git(remote, "log", "-1", "--format=%B", "main") == message
    # One line changed, every other byte as it was; the executable bit kept; no other file touched.
    assert show(remote, "main", "apps/deploy.yaml") == DEPLOY.replace(b":1.2.3 #", b":1.2.4 #")
    assert git(remote, "diff", "--name-only", before, "main").splitlines() == ["apps/deploy.yaml", "tools/run.sh"]
    assert git(remote, "ls-tree", "main", "tools/run.sh").startswith("100755 ")
    assert git(remote, "rev-parse", "main^{tree}") != git(remote, "rev-parse", f"{before}^{{tree}}")


@pytest.mark.parametrize("edit", [lambda path, data: data, lambda path, data: None], ids=["same bytes", "None"])
def test_no_change_makes_no_commit(remote, edit):
    before = git(remote, "rev-parse", "main")
    result = write_back(WriteBack(str(remote), "main"), ["apps/deploy.yaml", "missing.yaml", "apps"], edit, "nothing")
    assert (result.commit, result.files, result.attempts) == (None, (), 1)
    assert git(remote, "rev-parse", "main") == before


def test_head_means_the_remotes_default_branch(remote):
    git(remote, "branch", "live", "main")
    git(remote, "symbolic-ref", "HEAD", "refs/heads/live")
    main = git(remote, "rev-parse", "main")
    result = write_back(WriteBack(f"file://{remote}", "HEAD"), ["apps/deploy.yaml"], bump(b"1.2.3", b"1.2.4"), "bump")
    assert result.branch == "live"
    assert git(remote, "rev-parse", "live") == result.commit
    assert git(remote, "rev-parse", "main") == main


@pytest.mark.parametrize("ref", ["v1", "nope"])
def test_the_ref_must_be_a_branch(remote, ref):
    with pytest.raises(SourceError, match=f"needs a branch.*ref {ref}"):
        write_back(WriteBack(str(remote), ref), ["apps/deploy.yaml"], bump(b"1.2.3", b"1.2.4"), "bump")


def test_race_on_another_file_keeps_both_commits_ours_on_top(remote, tmp_path):
    other = Competitor(str(remote), tmp_path / "other")
    edit = racing(bump(b"1.2.3", b"1.2.4"), other, "apps/other.yaml", lambda data: b"a: 2\n")
    result = write_back(WriteBack(str(remote), "main", author=BOT, max_attempts=3), ["apps/deploy.yaml"], edit, "bump")

    assert result.attempts == 2 and len(edit.calls) == 2
    assert git(remote, "rev-parse", "main") == result.commit
    assert git(remote, "rev-parse", "main^") == other.pushed[0]  # ours on top of theirs, linear
    assert git(remote, "rev-list", "--merges", "main") == ""
    subprocess.run(["git", "--git-dir", str(remote), "merge-base", "--is-ancestor", other.pushed[0], "main"],
                   check=True)
    assert show(remote, "main", "apps/other.yaml") == b"a: 2\n"
    assert show(remote, "main", "apps/deploy.yaml") == DEPLOY.replace(b":1.2.3 #", b":1.2.4 #")


def test_race_on_another_line_of_the_same_file_reapplies_the_edit_on_the_new_content(remote, tmp_path):
    other = Competitor(str(remote), tmp_path / "other")
    edit = racing(bump(b"1.2.3", b"1.2.4"), other, "apps/deploy.yaml",
                  lambda data: data.replace(b"replicas: 1", b"replicas: 3"))
    result = write_back(WriteBack(str(remote), "main"), ["apps/deploy.yaml"], edit, "bump")

    assert result.attempts == 2
    assert b"replicas: 3" in edit.calls[1]  # the second round saw the competitor's content
    assert git(remote, "rev-parse", "main^") == other.pushed[0]
    assert git(remote, "rev-list", "--merges", "main") == ""
    assert show(remote, "main", "apps/deploy.yaml") == (
        DEPLOY.replace(b"replicas: 1", b"replicas: 3").replace(b":1.2.3 #", b":1.2.4 #"))


def test_race_that_makes_our_change_already_done_ends_without_a_commit(remote, tmp_path):
    other = Competitor(str(remote), tmp_path / "other")
    edit = racing(bump(b"1.2.3", b"1.2.4"), other, "apps/deploy.yaml", lambda data: data.replace(b"1.2.3", b"1.2.4"))
    result = write_back(WriteBack(str(remote), "main"), ["apps/deploy.yaml"], edit, "bump")
    assert (result.commit, result.attempts) == (None, 2)
    assert git(remote, "rev-parse", "main") == other.pushed[0]


def test_gives_up_after_max_attempts_when_the_branch_always_moves(remote, tmp_path):
    other = Competitor(str(remote), tmp_path / "other")
    edit = racing(bump(b"1.2.3", b"1.2.4"), other, "apps/other.yaml", lambda data: data + b"#\n", times=99)
    with pytest.raises(SourceError, match=r"gave up after 3 attempts.*last push rejected: fetch first.*ref main"):
        write_back(WriteBack(str(remote), "main", max_attempts=3), ["apps/deploy.yaml"], edit, "bump")
    assert len(edit.calls) == 3
    assert git(remote, "rev-parse", "main") == other.pushed[-1]  # only theirs landed
    assert b"1.2.4" not in show(remote, "main", "apps/deploy.yaml")


def test_push_branch_is_created_from_the_base_then_built_on_its_own_head(remote, tmp_path):
    target = WriteBack(str(remote), "main", push_branch="gitops/images")
    base = git(remote, "rev-parse", "main")
    first = write_back(target, ["apps/deploy.yaml"], bump(b"1.2.3", b"1.2.4"), "first")
    assert first.branch == "gitops/images"
    assert git(remote, "rev-parse", "gitops/images") == first.commit
    assert git(remote, "rev-parse", "gitops/images^") == base
    assert git(remote, "rev-parse", "main") == base

    # main moves on meanwhile; the review branch keeps growing from its own head.
    moved = Competitor(str(remote), tmp_path / "other").commit("apps/other.yaml", lambda data: b"a: 9\n")
    second = write_back(target, ["apps/deploy.yaml"], bump(b"1.2.4", b"1.2.5"), "second")
    assert git(remote, "rev-parse", "gitops/images") == second.commit
    assert git(remote, "rev-parse", "gitops/images^") == first.commit
    assert b":1.2.5 #" in show(remote, "gitops/images", "apps/deploy.yaml")
    assert git(remote, "rev-parse", "main") == moved
    assert b"1.2.3" in show(remote, "main", "apps/deploy.yaml")


def test_other_push_refusals_are_errors_not_retried(remote):
    hook = remote / "hooks" / "pre-receive"
    hook.write_text("#!/bin/sh\necho 'main is frozen' >&2\nexit 1\n")
    hook.chmod(0o755)
    calls = []
    edit = bump(b"1.2.3", b"1.2.4")
    with pytest.raises(SourceError, match=r"push refused: \[remote rejected\] \(pre-receive hook declined\).*frozen"):
        write_back(WriteBack(str(remote), "main"), ["apps/deploy.yaml"], lambda p, d: calls.append(p) or edit(p, d),
                   "x")
    assert calls == ["apps/deploy.yaml"]


def test_non_bare_repo_with_the_branch_checked_out_is_refused_clearly(tmp_path):
    work = ConfigRepo(tmp_path / "work")
    work.write({"apps/deploy.yaml": DEPLOY.decode()})
    with pytest.raises(SourceError, match="needs a bare remote or a URL: branch main is checked out"):
        write_back(WriteBack(str(work.root), "main"), ["apps/deploy.yaml"], bump(b"1.2.3", b"1.2.4"), "bump")


def test_network_remote_down_is_a_clear_error_and_works_again_after_restart(remote, tmp_path):
    served = tmp_path / "served"
    served.mkdir()
    remote.rename(served / "config.git")
    daemon = GitDaemon(served, push=True)
    daemon.start()
    try:
        target = WriteBack(daemon.url("config.git"), "main", author=BOT)
        first = write_back(target, ["apps/deploy.yaml"], bump(b"1.2.3", b"1.2.4"), "over the network")
        assert git(served / "config.git", "rev-parse", "main") == first.commit

        daemon.stop()
        with pytest.raises(SourceError) as down:
            write_back(target, ["apps/deploy.yaml"], bump(b"1.2.4", b"1.2.5"), "while down")
        text = str(down.value)
        assert "cannot reach the remote" in text and "Connection refused" in text
        assert f"repo git://127.0.0.1:{daemon.port}/config.git" in text
        assert "Traceback" not in text and len(text.splitlines()) == 1

        daemon.start()
        again = write_back(target, ["apps/deploy.yaml"], bump(b"1.2.4", b"1.2.5"), "back up")
        assert git(served / "config.git", "rev-parse", "main") == again.commit
        assert git(served / "config.git", "rev-parse", "main^") == first.commit
    finally:
        daemon.stop()


def test_credentials_in_the_url_never_reach_the_message():
    from gitdaemon import free_port

    port = free_port()  # nothing listens there
    with pytest.raises(SourceError, match="cannot reach the remote") as failed:
        write_back(WriteBack(f"http://robot:s3cr3t-token@127.0.0.1:{port}/config.git", "main"), ["a.yaml"],
                   lambda p, d: d, "x")
    assert "s3cr3t" not in str(failed.value) and "s3cr3t" not in repr(failed.value)
    assert failed.value.repo == f"http://***@127.0.0.1:{port}/config.git"


@pytest.mark.parametrize(("make", "match"), [
    (lambda: WriteBack("r", "main", max_attempts=0), "at least 1"),
    (lambda: Author("", "a@b"), "name '' is empty"),
    (lambda: Author("bot", "<a@b>"), "email"),
])
def test_bad_settings(make, match):
    with pytest.raises(SettingsError, match=match):
        make()


@pytest.mark.parametrize("path", ["../x.yaml", "/etc/passwd", "."])
def test_paths_must_stay_in_the_repo(remote, path):
    with pytest.raises(SourceError, match="relative to the repo root"):
        write_back(WriteBack(str(remote), "main"), [path], lambda p, d: d, "x")
