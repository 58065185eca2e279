"""Which registerTo targets and MLflow experiments a namespace may use (kubetune.operator.access_rules), and
decide() refusing a run that names another namespace's before anything is created."""

import pytest

from helpers.operator_factories import NOW, make_config, make_run, make_spec
from kubetune.api.errors import SpecError
from kubetune.api.spec import FineTuneRunSpec
from kubetune.operator import conditions as c
from kubetune.operator.access_rules import (
    check_access,
    expand_experiment_paths,
    expand_register_to,
    experiment_path_allowed,
    register_to_allowed,
)
from kubetune.operator.config import ConfigError, OperatorConfig
from kubetune.operator.reconcile import Observed, RegistrationRequest, decide
from kubetune.operator.registration import register

DEFAULT_ACCESS: dict = {}  # the configuration's own default, as shipped


def allowed_to_register(name: str, namespace: str = "team-a", patterns=("*.{namespace}",)) -> bool:
    return register_to_allowed(name, expand_register_to(patterns, namespace))


def allowed_to_log(path: str, namespace: str = "team-a", patterns=("{experimentRoot}/{namespace}/**",), root="/Users"):
    return experiment_path_allowed(path, expand_experiment_paths(patterns, namespace, root))


@pytest.mark.parametrize(
    ("name", "allowed"),
    [
        ("main.team_a.chat", True),  # its own schema, in any catalog
        ("dev.team_a.bot", True),
        ("MAIN.Team_A.chat", True),  # case is ignored, as Unity Catalog does
        ("main.team_b.chat", False),  # another namespace's schema
        ("main.team_ab.chat", False),  # a longer name is another team's
        ("main.team.chat", False),
        ("main.finetunes.chat", False),
        ("team_a.finetunes.chat", False),  # the namespace as catalog is not its schema
    ],
)
def test_default_register_to_is_the_namespaces_own_schema(name, allowed):
    assert allowed_to_register(name) is allowed


@pytest.mark.parametrize(
    ("path", "allowed"),
    [
        ("/Users/team-a/chat", True),
        ("/Users/team-a/projects/chat", True),  # ** crosses segments within its own prefix
        ("/Users/team-a", True),
        ("/users/TEAM-A/chat", True),
        ("/Users/team-b/chat", False),
        ("/Users/team-ab/chat", False),
        ("/Users/team-a-b/chat", False),
        ("/Users/team/a/chat", False),
        ("/Shared/team-a/chat", False),
        ("team-a/chat", False),
        ("/Users/team-a/../team-b/chat", False),  # not normalised: never matches
        ("/Users/team-a/./chat", False),
        ("/Users/team-a//chat", False),
        ("/Users/team-a/chat/", False),
    ],
)
def test_default_experiment_paths_are_under_the_namespaces_own_folder(path, allowed):
    assert allowed_to_log(path) is allowed


@pytest.mark.parametrize(
    ("pattern", "name", "allowed"),
    [
        ("main.team_*", "main.team_b.chat", True),  # what a pattern written with * allows: why the default is exact
        ("main.*", "main.x.y", True),
        ("main.*", "other.x.y", False),
        ("*.*", "a.b.c", True),
        ("main.shared.team_a_?", "main.shared.team_a_1", True),
        ("main.shared.team_a_?", "main.shared.team_a_12", False),
        ("main.shared.chat", "main.shared.chat_v2", False),  # a three-part pattern is the whole name
        ("main.[ab]*", "main.b1.m", True),
        ("main.[ab]*", "main.c1.m", False),
    ],
)
def test_wildcards_stay_within_one_dot_segment(pattern, name, allowed):
    assert allowed_to_register(name, patterns=(pattern,)) is allowed


@pytest.mark.parametrize(
    ("pattern", "path", "allowed"),
    [
        ("/Shared/*", "/Shared/chat", True),
        ("/Shared/*", "/Shared/team/chat", False),  # * never crosses a /
        ("/Shared/**/chat", "/Shared/a/b/chat", True),
        ("/Shared/**/chat", "/Shared/chat", True),
        ("/Shared/**/chat", "/Shared/a/b/other", False),
        ("**", "/anything/at/all", True),
        ("/Users/{namespace}-*/**", "/Users/team-a-dev/x", True),
        ("/Users/{namespace}-*/**", "/Users/team-b-dev/x", False),
    ],
)
def test_experiment_patterns(pattern, path, allowed):
    assert allowed_to_log(path, patterns=(pattern,)) is allowed


def test_placeholders():
    assert expand_register_to(["*.{namespace}", "main.{namespace}_shared.*"], "team-a") == ("*.team_a", "main.team_a_shared.*")
    assert expand_experiment_paths(["{experimentRoot}/{namespace}/**"], "team-a", "/Shared/kubetune/") == (
        "/Shared/kubetune/team-a/**",)
    assert expand_experiment_paths(["{experimentRoot}/**"], "x", "/odd[*]") == ("/odd[[][*]]/**",)
    assert allowed_to_log("/odd[*]/run", namespace="x", patterns=("{experimentRoot}/**",), root="/odd[*]")
    assert not allowed_to_log("/odd1/run", namespace="x", patterns=("{experimentRoot}/**",), root="/odd[*]")


SPEC = FineTuneRunSpec.parse(make_spec(registerTo="main.team_b"))
OWN = FineTuneRunSpec.parse(make_spec(registerTo="main.team_a"))


def check(spec: FineTuneRunSpec, config, namespace: str = "team-a") -> None:
    check_access(spec, namespace, "chat", config.access, config.defaults.experiment_root)


def test_the_default_experiment_path_satisfies_the_default_rule():
    for root in ("/Users", "/Shared/kubetune/"):
        check(OWN, make_config(access=DEFAULT_ACCESS, defaults={"pool": "h100", "experimentRoot": root}))


def test_a_refusal_names_the_field_the_value_and_the_rule():
    spec = FineTuneRunSpec.parse(make_spec(registerTo="main.team_b", experimentPath="/Users/team-b/chat"))
    with pytest.raises(SpecError) as refused:
        check(spec, make_config(access=DEFAULT_ACCESS))
    register_to, experiment = refused.value.problems
    assert str(register_to) == (
        "spec.registerTo: namespace team-a may register models only to *.team_a "
        "(operator configuration access.default.registerTo) (got 'main.team_b')"
    )
    assert experiment.field == "spec.experimentPath" and experiment.value == "/Users/team-b/chat"
    assert "namespace team-a may log only to MLflow experiments matching /Users/team-a/**" in experiment.rule
    assert "access.default.experimentPaths" in experiment.rule


def test_explicit_namespace_lists_replace_the_default_field_by_field():
    config = make_config(access={"namespaces": {"team-a": {"registerTo": ["main.shared", "main.{namespace}"]}}})
    check(FineTuneRunSpec.parse(make_spec(registerTo="main.shared.bot")), config)
    check(OWN, config)
    with pytest.raises(SpecError, match=r"only to main.shared, main.team_a \(operator configuration "
                                        r"access.namespaces.team-a.registerTo\)"):
        check(FineTuneRunSpec.parse(make_spec(registerTo="dev.team_a")), config)
    with pytest.raises(SpecError, match="access.default.registerTo"):  # team-b is not listed: the default
        check(FineTuneRunSpec.parse(make_spec(registerTo="main.shared")), config, "team-b")
    # experimentPaths was left out for team-a: the default's
    with pytest.raises(SpecError, match="access.default.experimentPaths"):
        check(FineTuneRunSpec.parse(make_spec(registerTo="main.shared", experimentPath="/x")), config)


def test_a_default_experiment_outside_the_rule_says_to_set_one():
    config = make_config(access={"namespaces": {"team-a": {"experimentPaths": ["/Shared/team-a/**"]}}})
    with pytest.raises(SpecError) as refused:
        check(OWN, config)
    [problem] = refused.value.problems
    assert problem.field == "spec.experimentPath" and problem.value is None
    assert problem.rule.endswith("the default experiment /Users/team-a/chat is outside it: set spec.experimentPath")


def test_an_empty_list_allows_nothing():
    config = make_config(access={"namespaces": {"team-a": {"registerTo": []}}})
    with pytest.raises(SpecError, match="may register models only to nothing"):
        check(OWN, config)


@pytest.mark.parametrize(
    ("access", "message"),
    [
        ({"default": {"registerTo": ["main"]}}, "config.access.default.registerTo: 'main' must be <catalog>.<schema>"),
        ({"default": {"registerTo": ["main.team/a"]}}, "config.access.default.registerTo"),
        ({"namespaces": {"team-a": {"experimentPaths": ["/Users/{user}/**"]}}}, "only placeholders are {namespace}"),
        ({"namespaces": {"team-a": {"experimentPaths": ["/Users/team-a**"]}}}, "** must be a whole path segment"),
        ({"namespaces": {"Team_A": {}}}, "are not namespace names"),
    ],
)
def test_bad_patterns_are_refused_when_the_operator_starts(tmp_path, access, message):
    import yaml

    data = make_config().model_dump(by_alias=True, exclude_none=True, mode="json")
    data["access"] = access
    path = tmp_path / "operator.yaml"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(ConfigError) as refused:
        OperatorConfig.load(path)
    assert message in str(refused.value)


def test_decide_refuses_another_namespaces_target_before_creating_anything():
    config = make_config(access=DEFAULT_ACCESS)
    plan = decide(make_run(make_spec(registerTo="main.team_b")), Observed(), config, NOW)
    assert plan.status.phase == "Failed" and plan.create == [] and plan.register is None
    failed = c.find(plan.status.conditions, c.FAILED)
    assert failed.reason == c.INVALID_SPEC and "spec.registerTo: namespace team-a may register" in failed.message

    plan = decide(make_run(make_spec(registerTo="main.team_a")), Observed(), config, NOW)
    assert plan.status.phase == "Validating" and plan.create


def test_registration_checks_the_name_again():
    request = RegistrationRequest("http://127.0.0.1:1", "main.team_b.chat", "runs:/x/model", "x", {},
                                  allowed_names=("*.team_a",))
    outcome = register(request)  # refused before MLflow is called (nothing listens on port 1)
    assert outcome.name is None and outcome.transient_error is None
    assert outcome.permanent_error == "not registering main.team_b.chat: its namespace may use only *.team_a"
