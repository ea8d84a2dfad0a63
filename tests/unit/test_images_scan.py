"""ImageScanner with a fake registry client and a fake clock: no network at all."""
import pytest

from gitops.errors import ManifestError, RegistryError, SettingsError
from gitops.images.scan import ImageScanner, ScanResult, describe
from gitops.settings import settings_from_config
from gitops.source.git import SourceFile

P = '{"$imagepolicy": "%s"}'
WHERE = "Pulumi.dev.yaml: gitops:imagePolicies"


class FakeClient:
    """The RegistryClient interface: begin_scan(), list_tags(image), requests_made, close()."""

    def __init__(self, tags=None):
        self.tags = dict(tags or {})
        self.fail: dict[str, RegistryError] = {}
        self.calls: list[str] = []
        self.scans = 0
        self.closed = False

    def begin_scan(self):
        self.scans += 1

    def list_tags(self, image):
        self.calls.append(image)
        if image in self.fail:
            raise self.fail[image]
        return list(self.tags[image])

    @property
    def requests_made(self):
        return {"ghcr.io": len(self.calls)}

    def close(self):
        self.closed = True


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


def values(name, image, policy):
    """An object with one marked field: the scanner reads only files that hold valid objects."""
    return SourceFile(f"deploy/{name}.yaml", (f"apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: {name}}}\n"
                                              f"data:\n  image: {image} # {P % policy}\n").encode())


def settings(**policies):
    return settings_from_config({"repo": "repo", "path": "deploy", "imagePolicies": policies or {
        "app": {"image": "ghcr.io/o/app", "semver": "^1.0"}, "web": {"image": "127.0.0.1:5000/demo/web"}}})


def scanner(client, clock=None):
    return ImageScanner({}, client=client, clock=clock or Clock())


def test_each_repository_is_listed_once_per_scan():
    files = [values("a", "ghcr.io/o/app:1.0.0", "flux-system:app"), values("b", "ghcr.io/o/app:1.0.0", "app"),
             SourceFile("deploy/c.yaml",
                        (f"apiVersion: example.com/v1\nkind: Release\nmetadata: {{name: c}}\nvalues:\n"
                         f"  repo: ghcr.io/o/app # {P % 'app:name'}\n  tag: 1.0.0 # {P % 'app:tag'}\n").encode()),
             values("d", "127.0.0.1:5000/demo/web:1.0.0", "web")]
    client = FakeClient({"ghcr.io/o/app": ["1.0.0", "1.1.0", "2.0.0"], "127.0.0.1:5000/demo/web": ["1.0.0"]})
    s = scanner(client)
    result = s.scan(files, "abc123", settings(), WHERE)
    assert sorted(client.calls) == ["127.0.0.1:5000/demo/web", "ghcr.io/o/app"] and client.scans == 1
    assert isinstance(result, ScanResult) and result.commit == "abc123" and result.errors == {}
    assert [(c.marker.path, c.marker.field, c.chosen, c.moves) for c in result.checks] == [
        ("deploy/a.yaml", "image", "1.1.0", True), ("deploy/b.yaml", "image", "1.1.0", True),
        ("deploy/c.yaml", "name", "1.1.0", False), ("deploy/c.yaml", "tag", "1.1.0", True),
        ("deploy/d.yaml", "image", "1.0.0", False)]
    assert [c.marker.path for c in result.moving] == ["deploy/a.yaml", "deploy/b.yaml", "deploy/c.yaml"]
    assert result.choices == {"flux-system:app": "1.1.0", "app": "1.1.0"}
    # a second scan lists again, once each
    s.scan(files, "abc123", settings(), WHERE)
    assert len(client.calls) == 4 and client.scans == 2
    assert s.requests_made == {"ghcr.io": 4}
    s.close()
    assert client.closed


def test_a_registry_that_asks_to_wait_is_skipped_until_then():
    clock = Clock()
    client = FakeClient({"ghcr.io/o/app": ["1.0.0", "1.2.0"], "ghcr.io/o/other": ["1.0.0"],
                         "127.0.0.1:5000/demo/web": ["1.0.0"]})
    client.fail["ghcr.io/o/app"] = RegistryError("rate limited by the registry (HTTP 429); retry after 30 s",
                                                 host="ghcr.io", repository="o/app", retry_after=30)
    files = [values("a", "ghcr.io/o/app:1.0.0", "app"), values("b", "ghcr.io/o/other:1.0.0", "other"),
             values("c", "127.0.0.1:5000/demo/web:1.0.0", "web")]
    st = settings(app={"image": "ghcr.io/o/app"}, other={"image": "ghcr.io/o/other"},
                  web={"image": "127.0.0.1:5000/demo/web"})
    s = scanner(client, clock)

    first = s.scan(files, "c1", st, WHERE)
    # the 429 is reported as is; the same host's next repository waits too, others go on
    assert client.calls == ["ghcr.io/o/app", "127.0.0.1:5000/demo/web"]
    assert first.errors["ghcr.io/o/app"].startswith("rate limited by the registry (HTTP 429)")
    assert "asked to wait" in first.errors["ghcr.io/o/other"]
    assert "127.0.0.1:5000/demo/web" not in first.errors
    assert first.checks[0].problem == first.errors["ghcr.io/o/app"] and not first.checks[0].moves

    client.calls.clear()
    clock.now += 20
    second = s.scan(files, "c1", st, WHERE)
    assert client.calls == ["127.0.0.1:5000/demo/web"]  # ghcr.io not asked at all
    assert set(second.errors) == {"ghcr.io/o/app", "ghcr.io/o/other"}
    assert all(e == "registry ghcr.io asked to wait; next try in 10 s" for e in second.errors.values())
    assert [c.problem for c in second.checks][:2] == [second.errors["ghcr.io/o/app"]] * 2

    client.calls.clear()
    client.fail.clear()
    clock.now += 10.5
    third = s.scan(files, "c1", st, WHERE)
    assert client.calls == ["ghcr.io/o/app", "ghcr.io/o/other", "127.0.0.1:5000/demo/web"]
    assert third.errors == {} and third.choices == {"app": "1.2.0"}


def test_an_error_without_retry_after_does_not_back_off():
    clock = Clock()
    client = FakeClient({"ghcr.io/o/app": ["1.0.0"]})
    client.fail["ghcr.io/o/app"] = RegistryError("repository not found", host="ghcr.io", repository="o/app")
    s = scanner(client, clock)
    files = [values("a", "ghcr.io/o/app:1.0.0", "app")]
    assert s.scan(files, "c", settings(), WHERE).errors == {
        "ghcr.io/o/app": "repository not found (registry ghcr.io, repository o/app)"}
    s.scan(files, "c", settings(), WHERE)
    assert client.calls == ["ghcr.io/o/app", "ghcr.io/o/app"]


def test_a_bad_marker_fails_before_any_registry_request():
    client = FakeClient({"ghcr.io/o/app": ["1.0.0"]})
    files = [values("a", "ghcr.io/o/app:1.0.0", "app"),
             SourceFile("deploy/b.yaml", values("b", "x", "x").data.replace(b'"x"}', b'broken}')),
             values("c", "nginx:1", "a:b:c")]
    with pytest.raises(ManifestError) as info:
        scanner(client).scan(files, "c", settings(), WHERE)
    assert [(p.path, p.line) for p in info.value.problems] == [("deploy/b.yaml", 5), ("deploy/c.yaml", 5)]
    assert client.calls == [] and client.scans == 0


@pytest.mark.parametrize("hostile", [b"[" * 100_000 + b"]" * 100_000, b"a: &a [x, x]\nb: [*a, *a, *a\n",
                                     b"image: nginx:1 # " + (P % "app").encode() + b"\n"])
def test_a_commit_that_up_would_refuse_is_not_scanned_in_this_process(hostile):
    client = FakeClient({"ghcr.io/o/app": ["1.0.0"]})
    files = [values("a", "ghcr.io/o/app:1.0.0", "app"), SourceFile("deploy/h.yaml", hostile)]
    with pytest.raises(ManifestError) as info:
        scanner(client).scan(files, "c", settings(), WHERE)
    assert {p.path for p in info.value.problems} == {"deploy/h.yaml"}
    assert client.calls == [] and client.scans == 0


def test_a_bad_policy_file_fails_before_any_registry_request():
    client = FakeClient({"ghcr.io/o/app": ["1.0.0"]})
    files = [values("a", "ghcr.io/o/app:1.0.0", "app"),
             SourceFile("deploy/.gitops/images.yaml", b"policies:\n  app:\n    image: ghcr.io/o/app\n")]
    with pytest.raises(SettingsError, match="deploy/.gitops/images.yaml: policies.app is also declared in " + WHERE):
        scanner(client).scan(files, "c", settings(), WHERE)
    assert client.calls == []


def test_the_policy_file_is_read_relative_to_the_stack_path_and_markers_outside_it_are_ignored():
    client = FakeClient({"ghcr.io/o/db": ["15.0.0", "16.1.0"]})
    files = [values("a", "ghcr.io/o/db:15.0.0", "ns:db"),
             SourceFile("deploy/.gitops/images.yaml", b"policies:\n  db:\n    image: ghcr.io/o/db\n"),
             SourceFile(".gitops/images.yaml", b"policies:\n  db:\n    image: ghcr.io/o/wrong\n"),
             SourceFile("elsewhere/x.yaml", f"image: ghcr.io/o/x:1 # {P % 'x'}\n".encode()),
             SourceFile("deploy/chart/values.yaml", f"image: ghcr.io/o/x:1 # {P % 'x'}\n".encode()),
             SourceFile("deploy/.gitopsignore", b"chart/\n")]
    result = scanner(client).scan(files, "c", settings_from_config({"repo": "repo", "path": "deploy/"}), WHERE)
    assert client.calls == ["ghcr.io/o/db"]
    assert [c.marker.path for c in result.checks] == ["deploy/a.yaml"]
    assert result.choices == {"ns:db": "16.1.0"}


def test_describe():
    client = FakeClient({"ghcr.io/o/app": ["1.0.0", "1.2.0"]})
    files = [SourceFile("deploy/d.yaml", (
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\n  namespace: apps\n"
        "spec:\n  template:\n    spec:\n      containers:\n"
        f"      - name: main\n        image: ghcr.io/o/app:1.0.0 # {P % 'flux-system:app'}\n"
        f"      - name: side\n        image: ghcr.io/o/gone:1 # {P % 'gone'}\n").encode())]
    result = scanner(client).scan(files, "c", settings(), WHERE)
    moving, unknown = (describe(c) for c in result.checks)
    assert moving == {
        "location": "deploy/d.yaml:11", "subject": "Deployment/apps/web", "container": "main", "field": "image",
        "policy": "app", "image": "ghcr.io/o/app", "current": "1.0.0", "chosen": "1.2.0", "locked": False,
        "moves": True, "reason": result.checks[0].selection.reason}
    assert moving["reason"].startswith("1.2.0 is the highest")
    assert unknown["policy"] == "gone" and unknown["chosen"] is None and unknown["moves"] is False
    assert unknown["reason"] == "no image policy named 'gone' (known: app, web)"


def test_kustomize_files_and_bases_outside_the_path_are_scanned_and_a_remote_base_reads_nothing():
    from gitops.images.scan import _kustomized

    class Source:
        def __init__(self):
            self.reads: list[str] = []

        def read(self, commit, path="."):
            self.reads.append(path)
            return [SourceFile("base/web.yaml", b"kind: Deployment\n"), SourceFile("base/other.yaml", b"")]

    marked = b'images:\n- name: web\n  newTag: "1" # {"$imagepolicy": "w:tag"}\n'
    files = [SourceFile("overlay/kustomization.yaml", marked), SourceFile("overlay/env.properties", b"A=1\n")]
    settings = settings_from_config({"repo": "r", "path": "overlay"})
    source = Source()
    holding = {"base/web.yaml", "kustomize output of overlay"}
    outside = _kustomized(files, holding, "c0ffee", settings, source)
    assert [f.path for f in outside] == ["base/web.yaml"]
    assert source.reads == ["base"]  # the remote base's stream name is no folder to read
    assert "overlay/kustomization.yaml" in holding and "overlay/env.properties" not in holding
