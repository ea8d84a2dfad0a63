import pytest

from gitops.errors import SettingsError
from gitops.images.reference import ImageRef, is_tag, parse_image

DIGEST = "sha256:" + "0123456789abcdef" * 4


@pytest.mark.parametrize("text,registry,repository,tag,digest,api_host", [
    ("nginx", "docker.io", "library/nginx", None, None, "registry-1.docker.io"),
    ("nginx:1.2", "docker.io", "library/nginx", "1.2", None, "registry-1.docker.io"),
    ("library/nginx:1.2", "docker.io", "library/nginx", "1.2", None, "registry-1.docker.io"),
    ("docker.io/nginx:1.2", "docker.io", "library/nginx", "1.2", None, "registry-1.docker.io"),
    ("index.docker.io/library/nginx", "docker.io", "library/nginx", None, None, "registry-1.docker.io"),
    ("bitnami/redis:7.2.4-debian-12-r9", "docker.io", "bitnami/redis", "7.2.4-debian-12-r9", None,
     "registry-1.docker.io"),
    ("ghcr.io/org/app:1.2.3", "ghcr.io", "org/app", "1.2.3", None, "ghcr.io"),
    ("127.0.0.1:5000/demo/web:1.0", "127.0.0.1:5000", "demo/web", "1.0", None, "127.0.0.1:5000"),
    ("localhost:5000/x", "localhost:5000", "x", None, None, "localhost:5000"),
    ("localhost/x:1", "localhost", "x", "1", None, "localhost"),
    ("[::1]:5000/team/x:v2", "[::1]:5000", "team/x", "v2", None, "[::1]:5000"),
    ("registry.example.com:443/a/b/c@" + DIGEST, "registry.example.com:443", "a/b/c", None, DIGEST,
     "registry.example.com:443"),
    ("ghcr.io/org/app:1.2.3@" + DIGEST, "ghcr.io", "org/app", "1.2.3", DIGEST, "ghcr.io"),
    ("quay.io/a/b__c.d-e:latest", "quay.io", "a/b__c.d-e", "latest", None, "quay.io"),
])
def test_parse_normalises_docker_hub_and_keeps_registries_as_written(text, registry, repository, tag, digest, api_host):
    ref = parse_image(text)
    assert (ref.registry, ref.repository, ref.tag, ref.digest) == (registry, repository, tag, digest)
    assert ref.api_host == api_host
    assert str(ref) == text  # formatting gives back exactly what was written


@pytest.mark.parametrize("text", [
    "", " nginx", "nginx ", "Nginx", "nginx:", "nginx:-x", "nginx:.x", "nginx@sha256:abc", "nginx@" + DIGEST[7:],
    "ghcr.io/", "a//b", "ghcr.io/org/app:1:2", "bad_host.io:x/app", "ghcr.io/org/App", "x:" + "a" * 129,
    "/nginx", "nginx/",
])
def test_invalid_references_name_the_text(text):
    with pytest.raises(SettingsError) as info:
        parse_image(text)
    assert repr(text) in str(info.value)


@pytest.mark.parametrize("text,new_tag,expected", [
    ("nginx:1.2", "1.3", "nginx:1.3"),
    ("nginx", "1.3", "nginx:1.3"),
    ("docker.io/library/nginx:1.2", "1.3", "docker.io/library/nginx:1.3"),
    ("127.0.0.1:5000/demo/web:1.0", "1.1", "127.0.0.1:5000/demo/web:1.1"),
    ("ghcr.io/org/app:1.2.3@" + DIGEST, "1.2.4", "ghcr.io/org/app:1.2.4"),  # the digest pinned the old tag
])
def test_with_tag_keeps_the_spelling_and_drops_a_digest(text, new_tag, expected):
    assert str(parse_image(text).with_tag(new_tag)) == expected


def test_with_tag_rejects_an_invalid_tag():
    with pytest.raises(SettingsError, match="invalid image tag"):
        parse_image("nginx:1").with_tag("a b")


@pytest.mark.parametrize("a,b,same_image,same_repository", [
    ("nginx:1", "docker.io/library/nginx:1", True, True),
    ("nginx:1", "index.docker.io/nginx:1", True, True),
    ("nginx:1", "nginx:2", False, True),
    ("ghcr.io/org/app", "ghcr.io/org/app", True, True),
    ("ghcr.io/org/app", "ghcr.io/org/other", False, False),
    ("localhost:5000/x", "localhost:5001/x", False, False),
    ("myuser/app", "docker.io/myuser/app", True, True),
])
def test_equality_ignores_spelling_but_not_identity(a, b, same_image, same_repository):
    assert (parse_image(a) == parse_image(b)) is same_image
    assert (parse_image(a).canonical_name == parse_image(b).canonical_name) is same_repository


def test_name_is_the_written_name_and_canonical_without_one():
    assert parse_image("nginx:1").name == "nginx"
    assert parse_image("nginx:1").canonical_name == "docker.io/library/nginx"
    assert ImageRef("ghcr.io", "org/app", "1").name == "ghcr.io/org/app"
    assert str(ImageRef("ghcr.io", "org/app", "1")) == "ghcr.io/org/app:1"


@pytest.mark.parametrize("text,expected", [
    ("1.2.3", True), ("v1.2.3-rc.1", True), ("latest", True), ("_x", True),
    ("", False), ("-x", False), (".x", False), ("a:b", False), ("a/b", False), ("a" * 129, False), ("é", False),
])
def test_is_tag(text, expected):
    assert is_tag(text) is expected
