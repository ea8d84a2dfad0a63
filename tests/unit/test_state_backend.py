"""`PULUMI_BACKEND_URL` parsed once: the file backend's folder, its options, and this project's defaults."""
from pathlib import Path

import pytest

from gitops.state.backend import Backend, StackFiles


@pytest.mark.parametrize("url, root", [
    ("file:///srv/state", "/srv/state"),
    ("file:///srv/state?no_tmp_dir=true", "/srv/state"),
    ("file:///srv/state?metadata=skip&no_tmp_dir=true", "/srv/state"),
    ("file://./state", "/project/state"),
    ("file://state", "/project/state"),
])
def test_the_file_backend_folder_is_read_as_pulumi_reads_it(url, root):
    assert Backend(url).root(base=Path("/project")) == Path(root)


def test_home_is_expanded(monkeypatch):
    monkeypatch.setenv("HOME", "/home/someone")
    assert Backend("file://~/.pulumi-state").root() == Path("/home/someone/.pulumi-state")


@pytest.mark.parametrize("url", ["https://api.pulumi.com", "s3://bucket/state", "postgres://u@localhost/db",
                                 "azblob://container", ""])
def test_other_backends_have_no_folder_and_are_left_as_given(url):
    backend = Backend(url)
    assert backend.root() is None and backend.stack_files("p", "s") is None
    assert backend.with_file_defaults() == backend


def test_file_urls_get_metadata_skip_unless_they_choose():
    assert Backend("file:///srv/state").with_file_defaults().url == "file:///srv/state?metadata=skip"
    assert Backend("file:///srv/state?no_tmp_dir=true").with_file_defaults().options == {
        "no_tmp_dir": "true", "metadata": "skip"}
    chosen = Backend("file:///srv/state?metadata=")  # the user asked for side files: kept
    assert chosen.with_file_defaults() == chosen


def test_gitops_files_sit_beside_a_file_backend_and_elsewhere_per_backend(tmp_path):
    assert Backend("file:///srv/state?metadata=skip").gitops_dir("gitops", "dev", fallback=tmp_path) == \
        Path("/srv/state/.gitops-watch/gitops/dev")
    one = Backend("https://api.pulumi.com").gitops_dir("gitops", "dev", fallback=tmp_path)
    other = Backend("s3://bucket").gitops_dir("gitops", "dev", fallback=tmp_path)
    assert one.parent.parent.parent == tmp_path / "watch" and one != other


def test_a_stack_owns_only_its_own_files():
    files = StackFiles(Path("/s"), "gitops", "prod")
    owned = ["prod.json", "prod.json.bak", "prod.json.attrs", "prod.json.bak.attrs", "prod.json.gz",
             "prod.json.zst.bak", "prod.pulumi-tags", "prod.json.18f2a3b4c5d6e7f8.tmp",
             "prod.json.bak.18f2a3b4c5d6e7f8.tmp"]
    foreign = ["prod.eu.json", "prod.eu.json.attrs", "production.json", "dev.json", "prod.json.1700000000"]
    assert [n for n in owned if not files.own_file(n)] == []
    assert [n for n in foreign if files.own_file(n)] == []
    assert files.checkpoints[0] == Path("/s/.pulumi/stacks/gitops/prod.json")
    assert files.lock_dirs[0] == Path("/s/.pulumi/locks/organization/gitops/prod")
