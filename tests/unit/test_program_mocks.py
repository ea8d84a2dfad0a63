"""The Pulumi program under Pulumi's own mocks: what is registered, with which options."""
import pulumi
import pytest
from test_resources import example_state

from gitops.settings import settings_from_config


class Recorder(pulumi.runtime.Mocks):
    def __init__(self):
        self.resources = []

    def new_resource(self, args: pulumi.runtime.MockResourceArgs):
        self.resources.append(args)
        return f"{args.name}-id", dict(args.inputs)

    def call(self, args):
        return {}


@pytest.fixture
def mocks():
    recorder = Recorder()
    pulumi.runtime.set_mocks(recorder, preview=False)
    yield recorder


@pulumi.runtime.test
def test_one_resource_per_object_through_one_provider(mocks):
    from gitops.program import register

    state = example_state()
    objects = register(state, settings_from_config({"repo": ".", "namespace": "demo", "prune": False}))

    def check(_):
        by_type = {r.typ: r for r in mocks.resources}
        providers = [r for r in mocks.resources if r.typ == "pulumi:providers:kubernetes"]
        assert len(providers) == 1
        assert len(mocks.resources) == len(state.manifests) + 1
        assert set(by_type) >= {"kubernetes:apps/v1:Deployment", "kubernetes:demo.gitops.dev/v1:Backup",
                                "kubernetes:apiextensions.k8s.io/v1:CustomResourceDefinition"}
        assert by_type["kubernetes:apps/v1:Deployment"].name == "apps/Deployment:demo/web"
        assert by_type["kubernetes:core/v1:ConfigMap"].inputs["data"]["GREETING"] == "hello from git"

    return pulumi.Output.all(*[o.urn for o in objects]).apply(check)


@pulumi.runtime.test
def test_secret_data_is_a_pulumi_secret(mocks):
    from gitops.program import register

    objects = {o._name: o for o in register(example_state(), settings_from_config({"repo": ".", "namespace": "demo"}))}
    secret_data = objects["core/Secret:demo/web-credentials"].stringData
    plain_data = objects["core/ConfigMap:demo/web-settings"].data

    def check(flags):
        assert flags == [True, False]

    return pulumi.Output.all(pulumi.Output.from_input(secret_data.is_secret()),
                             pulumi.Output.from_input(plain_data.is_secret())).apply(check)


@pulumi.runtime.test
def test_the_intent_names_every_resource_by_the_urn_the_engine_gives_it(mocks, tmp_path):
    from gitops.intent import read_intent
    from gitops.program import register

    path = tmp_path / "intent.json"
    state = example_state()
    objects = register(state, settings_from_config({"repo": ".", "namespace": "demo"}), path)
    intent = read_intent(path)
    assert intent is not None and intent.commit == state.commit and len(intent.urns) == len(state.manifests)

    def check(urns):
        # The mocks qualify a child of the stack with the stack's type; the engine does not.
        assert sorted(intent.urns) == sorted(u.replace("pulumi:pulumi:Stack$", "") for u in urns)
        provider = next(r for r in mocks.resources if r.typ == "pulumi:providers:kubernetes")
        assert intent.provider.endswith(f"::pulumi:providers:kubernetes::{provider.name}")
        assert intent.provider.rsplit("::", 2)[0] == urns[0].rsplit("::", 2)[0]

    return pulumi.Output.all(*[o.urn for o in objects]).apply(check)
