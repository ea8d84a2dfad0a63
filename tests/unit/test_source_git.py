"""The git source against real repositories (local path and a bare remote by file:// URL)."""
import shutil

import pytest

from gitops.errors import SourceError
from gitops.source.git import GitSource, redact

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
    with pytest.raises(SourceError, match=r"path not found in the commit .*path missing"):
        source.read(repo.head(), "missing")
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
