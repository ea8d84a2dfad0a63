"""The git source against real repositories (local path and a bare remote by file:// URL)."""
import os
import shutil

import pytest

from gitops.errors import ManifestError, SourceError
from gitops.source.git import GitSource, redact
from gitops.urls import normalized

from gitrepo import ConfigRepo

CM = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: %s}\n"


@pytest.fixture
def repo(tmp_path):
    r = ConfigRepo(tmp_path / "work")
    r.write({"deploy/a.yaml": CM % "a", "README.md": "hi"}, "first")
    return r


def test_local_repo_resolves_branch_tag_sha_and_head(repo):
    first = repo.head()
    repo.git("tag", "-a", "v1", "-m", "release")
    second = repo.write({"deploy/b.yaml": CM % "b"})
    source = GitSource(str(repo.root))
    assert source.resolve("main") == second == source.resolve("HEAD")
    assert source.resolve("v1") == first
    assert source.resolve(first[:10]) == first
    assert [f.path for f in source.read(first, "deploy")] == ["deploy/a.yaml"]
    assert [f.path for f in source.read(second, "deploy")] == ["deploy/a.yaml", "deploy/b.yaml"]


def test_reading_never_touches_the_work_tree(repo):
    (repo.root / "deploy" / "a.yaml").write_text("uncommitted edit")
    source = GitSource(str(repo.root))
    assert source.read(source.resolve("HEAD"), "deploy")[0].data == (CM % "a").encode()
    assert (repo.root / "deploy" / "a.yaml").read_text() == "uncommitted edit"


def test_errors_name_repo_ref_and_path(repo, tmp_path):
    source = GitSource(str(repo.root))
    with pytest.raises(SourceError, match=r"ref not found .*ref nope"):
        source.resolve("nope")
    with pytest.raises(ManifestError, match=r"missing:1: 'missing' does not exist at commit"):
        source.read(repo.head(), "missing")
    with pytest.raises(ManifestError, match=r"README.md:1: gitops:path 'README.md' is not a folder"):
        source.read(repo.head(), "README.md")
    with pytest.raises(SourceError, match="not a git repository"):
        GitSource(str(tmp_path / "nowhere"))


def test_remote_is_cached_and_not_fetched_when_the_ref_has_not_moved(repo, tmp_path):
    bare = tmp_path / "remote.git"
    repo.push_to(bare)
    cache = tmp_path / "cache"
    source = GitSource(f"file://{bare}", cache_dir=cache)
    sha = source.resolve("main")
    assert [f.path for f in source.read(sha, "deploy")] == ["deploy/a.yaml"]
    clones = list(cache.iterdir())
    assert len(clones) == 1
    # A new source object reuses the cache; with the remote gone, a known commit needs no network.
    shutil.move(bare, tmp_path / "moved.git")
    again = GitSource(f"file://{bare}", cache_dir=cache)
    assert again.resolve(sha) == sha
    assert again.read(sha, "deploy")[0].path == "deploy/a.yaml"
    with pytest.raises(SourceError, match="cannot reach the remote"):
        again.resolve("main")
    shutil.move(tmp_path / "moved.git", bare)
    new = repo.write({"deploy/c.yaml": CM % "c"})
    repo.push_to(bare)
    assert again.resolve("main") == new
    assert len(again.read(new, "deploy")) == 2
    assert list(cache.iterdir()) == clones


def test_remote_tags_and_missing_refs(repo, tmp_path):
    repo.git("tag", "-a", "v2", "-m", "annotated")
    bare = tmp_path / "remote.git"
    repo.push_to(bare)
    source = GitSource(f"file://{bare}", cache_dir=tmp_path / "cache")
    assert source.resolve("v2") == repo.head()
    assert source.resolve("HEAD") == repo.head()
    with pytest.raises(SourceError, match="ref not found on the remote"):
        source.resolve("no-such-branch")


def test_credentials_never_reach_messages(tmp_path):
    assert redact("https://user:tok3n@example.invalid/r.git") == "https://***@example.invalid/r.git"
    with pytest.raises(SourceError) as info:
        GitSource("https://user:tok3n@127.0.0.1:9/r.git", cache_dir=tmp_path).resolve("main")
    assert "tok3n" not in str(info.value)


@pytest.mark.parametrize("written", ["deploy", "./deploy", "deploy/", "deploy/../deploy", "/deploy", " deploy "])
def test_a_path_is_normalised(repo, written):
    assert [f.path for f in GitSource(str(repo.root)).read(repo.head(), written)] == ["deploy/a.yaml"]


@pytest.mark.parametrize("written,expected", [("", ""), (".", ""), ("/", ""), ("a/./b/", "a/b"), ("../x", "x"),
                                              ("a/../../x", "x")])
def test_normalised_paths_never_leave_the_repo(written, expected):
    assert normalized(written) == expected


def symlinked(repo, links: dict[str, str], files: dict[str, str] | None = None) -> str:
    for name, text in (files or {}).items():
        path = repo.root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    for link, target in links.items():
        path = repo.root / link
        path.parent.mkdir(parents=True, exist_ok=True)
        os.symlink(target, path)
    repo.git("add", "-A")
    repo.git("commit", "-q", "-m", "links")
    return repo.head()


def test_symlinks_inside_the_repo_are_followed_to_files_and_folders(repo):
    head = symlinked(repo, {"deploy/linked.yaml": "../shared/c.yaml", "deploy/more": "../shared/extra",
                            "live": "deploy"},
                     {"shared/c.yaml": CM % "c", "shared/extra/d.yaml": CM % "d"})
    source = GitSource(str(repo.root))
    files = {f.path: f.data for f in source.read(head, "deploy")}
    assert files == {"deploy/a.yaml": (CM % "a").encode(), "deploy/linked.yaml": (CM % "c").encode(),
                     "deploy/more/d.yaml": (CM % "d").encode()}
    # The stack's folder itself may be a link: its files keep the path as the user wrote it.
    assert sorted(f.path for f in source.read(head, "live")) == ["live/a.yaml", "live/linked.yaml", "live/more/d.yaml"]


@pytest.mark.parametrize("target", ["/etc", "../../outside", "../..", "/etc/passwd"])
def test_a_symlink_leading_outside_the_repo_is_refused(repo, target):
    head = symlinked(repo, {"deploy/escape": target})
    with pytest.raises(ManifestError, match="deploy/escape:1: symlink 'deploy/escape' points outside the repository"):
        GitSource(str(repo.root)).read(head, "deploy")


def test_a_folder_swapped_for_a_symlink_outside_the_repo_is_refused(repo, tmp_path):
    shutil.rmtree(repo.root / "deploy")
    repo.git("add", "-A")
    head = symlinked(repo, {"deploy": str(tmp_path)})
    with pytest.raises(ManifestError, match="points outside the repository"):
        GitSource(str(repo.root)).read(head, "deploy")


@pytest.mark.parametrize("links,message", [
    ({"deploy/loop": "loop2", "deploy/loop2": "loop"}, "symlinks in a row"),
    ({"deploy/cycle": "."}, "leads back into a folder"),
    ({"deploy/dangling.yaml": "nothing.yaml"}, "'deploy/nothing.yaml' does not exist"),
])
def test_symlink_loops_and_dangling_links_are_problems(repo, links, message):
    head = symlinked(repo, links)
    with pytest.raises(ManifestError, match=message):
        GitSource(str(repo.root)).read(head, "deploy")


def test_a_file_too_large_for_any_manifest_is_not_read_and_is_refused_unless_ignored(repo):
    from gitops.desired import desired_state_from_files
    from gitops.manifests.limits import MAX_FILE_BYTES
    from gitops.source.git import READ_LIMIT_BYTES

    assert READ_LIMIT_BYTES == MAX_FILE_BYTES  # nothing the parse would read is left unread
    big = "# " + "x" * READ_LIMIT_BYTES + "\n"
    head = repo.write({"deploy/big.yaml": big, "deploy/blob.bin": big})
    files = {f.path: f for f in GitSource(str(repo.root)).read(head, "deploy")}
    assert files["deploy/big.yaml"].data == b"" and files["deploy/big.yaml"].size == len(big)
    assert files["deploy/blob.bin"].unread_size == len(big)
    assert files["deploy/a.yaml"].data == (CM % "a").encode() and files["deploy/a.yaml"].unread_size is None

    def read(extra=()):
        return desired_state_from_files([*files.values(), *extra], repo="r", commit=head, path="deploy",
                                        namespace="apps")

    with pytest.raises(ManifestError) as info:
        read()
    assert [str(p) for p in info.value.problems] == [
        "deploy/big.yaml:1: the file is 32.0 MiB; at most 32 MiB is read (ten times the largest object the API "
        "server accepts): split it"]
    from gitops.source.git import SourceFile

    assert [m.id.name for m in read([SourceFile("deploy/.gitopsignore", b"big.yaml\n")]).manifests] == ["a"]
    with pytest.raises(ManifestError, match=r"deploy/\.gitopsignore:1: .* too large"):
        read([SourceFile("deploy/.gitopsignore", b"", unread_size=READ_LIMIT_BYTES + 1)])


def test_a_scratch_tree_holds_the_commit_but_no_link_out_of_it(repo, tmp_path):
    import os
    import subprocess

    (repo.root / "deploy" / "inside.yaml").symlink_to("a.yaml")
    (repo.root / "deploy" / "outside.yaml").symlink_to("/etc/passwd")
    (repo.root / "up.yaml").symlink_to("../../etc/hostname")
    subprocess.run(["git", "-C", str(repo.root), "add", "-A"], check=True)
    subprocess.run(["git", "-C", str(repo.root), "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "links"],
                   check=True)
    repo.git("checkout", "-q", "--", ".")
    (repo.root / "deploy" / "a.yaml").write_text("uncommitted")  # the work tree is never read
    source = GitSource(str(repo.root))
    with source.tree(source.resolve("HEAD")) as tree:
        assert (tree / "deploy" / "a.yaml").read_text() == CM % "a"
        assert os.readlink(tree / "deploy" / "inside.yaml") == "a.yaml"
        assert not (tree / "deploy" / "outside.yaml").exists() and not (tree / "deploy" / "outside.yaml").is_symlink()
        assert not (tree / "up.yaml").is_symlink()
        kept = tree
    assert not kept.exists()
