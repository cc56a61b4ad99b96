"""Configuration: mesh block, files, key=value parsing, merge, ENV{}, authentication, redaction."""
from __future__ import annotations

import itertools
import json
import string

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dripline.core import config
from dripline.assembly.config import (
    MASK, MESH_DEFAULTS, POSTGRES_AUTH_SPEC, Authentication, DriplineConfig, build_authentication,
    did_you_mean, load_config_file, merge, mesh_config, parse_cli_args, parse_value, redact,
    register_secret, substitute_env,
)
from dripline.protocol.errors import ConfigError


@pytest.fixture
def home(tmp_path, monkeypatch):
    """An empty home directory, so the developer's own ~/.dripline_mesh.yaml never leaks in."""
    path = tmp_path / "home"
    path.mkdir()
    monkeypatch.setenv("HOME", str(path))
    return path


# --- mesh block ------------------------------------------------------------------------------

def test_mesh_defaults_match_the_reference():
    assert MESH_DEFAULTS == {
        "broker": "localhost", "broker_port": 5672, "requests_exchange": "requests",
        "alerts_exchange": "alerts", "max_payload_size": 10000,
        "heartbeat_routing_key": "heartbeat", "max_connection_attempts": 10,
    }


def test_mesh_config_without_home_file_is_the_defaults(home):
    assert mesh_config() == MESH_DEFAULTS
    assert DriplineConfig() == MESH_DEFAULTS
    assert mesh_config() is not MESH_DEFAULTS  # callers may modify their copy


def test_home_file_is_read_from_HOME(home):
    (home / ".dripline_mesh.yaml").write_text("broker: rabbit-broker\nbroker_port: 5673\n")
    assert DriplineConfig()["broker"] == "rabbit-broker"
    mesh = mesh_config()
    assert (mesh["broker"], mesh["broker_port"], mesh["alerts_exchange"]) == \
        ("rabbit-broker", 5673, "alerts")


def test_overrides_beat_home_file_and_none_means_not_given(home):
    (home / ".dripline_mesh.yaml").write_text("broker: from-home\nmax_payload_size: 500\n")
    mesh = mesh_config({"broker": "from-cli", "max_payload_size": None})
    assert mesh["broker"] == "from-cli"
    assert mesh["max_payload_size"] == 500


def test_explicit_home_argument(tmp_path, home):
    other = tmp_path / "other"
    other.mkdir()
    (other / ".dripline_mesh.yaml").write_text("broker: elsewhere\n")
    assert mesh_config(home=other)["broker"] == "elsewhere"
    assert mesh_config()["broker"] == "localhost"


def test_empty_home_file_is_fine(home):
    (home / ".dripline_mesh.yaml").write_text("")
    assert mesh_config() == MESH_DEFAULTS


def test_empty_values_in_home_file_keep_defaults(home):
    (home / ".dripline_mesh.yaml").write_text("broker:\nbroker_port: 5680\n")
    mesh = mesh_config({})
    assert (mesh["broker"], mesh["broker_port"]) == ("localhost", 5680)


def test_misspelt_key_in_home_file_names_key_file_and_suggestion(home):
    path = home / ".dripline_mesh.yaml"
    path.write_text("brokr: x\n")
    with pytest.raises(ConfigError) as info:
        mesh_config()
    message = str(info.value)
    assert "'brokr'" in message and str(path) in message and "did you mean 'broker'" in message


def test_misspelt_override_key_names_source(home):
    with pytest.raises(ConfigError) as info:
        mesh_config({"requests_exchang": "r"}, source="/etc/service.yaml")
    message = str(info.value)
    assert "'requests_exchang'" in message and "/etc/service.yaml" in message
    assert "'requests_exchange'" in message


def test_unrelated_key_lists_valid_keys(home):
    with pytest.raises(ConfigError) as info:
        mesh_config({"zzz": 1})
    assert "valid keys are" in str(info.value) and "broker_port" in str(info.value)


def test_optional_and_tolerated_keys_are_accepted(home):
    mesh = mesh_config({"make_connection": False, "return_codes": "codes.yaml",
                        "loop_timeout_ms": 500, "message_wait_ms": 200,
                        "heartbeat_interval_s": 0})
    assert mesh["make_connection"] is False and mesh["return_codes"] == "codes.yaml"
    assert (mesh["loop_timeout_ms"], mesh["message_wait_ms"], mesh["heartbeat_interval_s"]) == \
        (500, 200, 0)


def test_numeric_strings_from_env_substitution_become_numbers(home):
    mesh = mesh_config({"broker_port": "5673", "make_connection": "true",
                        "heartbeat_interval_s": "2.5"})
    assert mesh["broker_port"] == 5673 and mesh["make_connection"] is True
    assert mesh["heartbeat_interval_s"] == 2.5


@pytest.mark.parametrize("key,value,expected", [
    ("broker_port", "abc", "port number"),
    ("broker_port", 70000, "port number"),
    ("broker_port", True, "port number"),
    ("max_payload_size", 0, "positive integer"),
    ("broker", 5, "non-empty string"),
    ("make_connection", "yes", "true or false"),
    ("return_codes", 5, "list"),
    ("loop_timeout_ms", -1, "non-negative number"),
])
def test_mesh_value_types_are_checked(home, key, value, expected):
    with pytest.raises(ConfigError) as info:
        mesh_config({key: value}, source="svc.yaml")
    assert key in str(info.value) and expected in str(info.value) and "svc.yaml" in str(info.value)


def test_mesh_overrides_must_be_a_mapping(home):
    with pytest.raises(ConfigError):
        mesh_config(["broker"])  # type: ignore[arg-type]


def test_did_you_mean_helper():
    assert did_you_mean("max_paylod_size", config.MESH_KEYS).startswith(
        "; did you mean 'max_payload_size'")


# --- files -----------------------------------------------------------------------------------

def test_load_yaml_and_json_files(tmp_path):
    yaml_file = tmp_path / "svc.yaml"
    yaml_file.write_text("name: my_store\nendpoints:\n  - name: peaches\n")
    json_file = tmp_path / "svc.json"
    json_file.write_text(json.dumps({"name": "j", "n": 1}))
    assert load_config_file(yaml_file) == {"name": "my_store", "endpoints": [{"name": "peaches"}]}
    assert load_config_file(str(json_file)) == {"name": "j", "n": 1}


def test_empty_file_is_an_empty_config(tmp_path):
    path = tmp_path / "empty.yaml"
    path.write_text("")
    assert load_config_file(path) == {}


@pytest.mark.parametrize("content,fragment", [
    ("- a\n- b\n", "must be a mapping"),
    ("just a string", "must be a mapping"),
    ("a: [1, 2\n", "invalid YAML"),
])
def test_bad_files_name_the_file(tmp_path, content, fragment):
    path = tmp_path / "bad.yaml"
    path.write_text(content)
    with pytest.raises(ConfigError) as info:
        load_config_file(path)
    assert str(path) in str(info.value) and fragment in str(info.value)


def test_bad_json_gives_position(tmp_path):
    path = tmp_path / "bad.json"
    path.write_text('{"a": 1,\n "b": }')
    with pytest.raises(ConfigError) as info:
        load_config_file(path)
    assert "invalid JSON" in str(info.value) and "line 2" in str(info.value)


def test_missing_and_unreadable_files(tmp_path):
    with pytest.raises(ConfigError) as info:
        load_config_file(tmp_path / "missing.yaml")
    assert "missing.yaml" in str(info.value)
    with pytest.raises(ConfigError) as info:
        load_config_file(tmp_path)  # a directory
    assert str(tmp_path) in str(info.value)


def test_parse_errors_do_not_quote_file_content(tmp_path):
    path = tmp_path / "auth.yaml"
    path.write_text("dripline:\n  password: Sup3rS3cret: oops\n")
    with pytest.raises(ConfigError) as info:
        load_config_file(path)
    assert "Sup3rS3cret" not in str(info.value)
    assert "line 2" in str(info.value)


# --- key=value arguments ---------------------------------------------------------------------

@pytest.mark.parametrize("text,expected", [
    ("", None), ("true", True), ("false", False), ("True", "True"), ("FALSE", "FALSE"),
    ("5", 5), ("-5", -5), ("007", 7), ("1.5", 1.5), ("-0.25", -0.25), ("1e3", 1000.0),
    ("2.5E-2", 0.025), (".5", 0.5), ("12abc", "12abc"), ("1.2.3", "1.2.3"), ("nan", "nan"),
    ("inf", "inf"), ("1e999", "1e999"), ("0x10", "0x10"), ("1_000", "1_000"), (" 5", " 5"),
    ("hello world", "hello world"), ("+5", "+5"),
])
def test_value_typing(text, expected):
    result = parse_value(text)
    assert result == expected and type(result) is type(expected)


def test_keywords_and_ordered_arguments():
    keywords, ordered = parse_cli_args(
        ["broker=my-host", "dripline_mesh.broker_port=5673", "lockout_key=", "42", "-3", "-1.5",
         "peaches", "payload.values.0=1", "payload.values.1=two"])
    assert keywords == {"broker": "my-host", "dripline_mesh": {"broker_port": 5673},
                        "lockout_key": None, "payload": {"values": [1, "two"]}}
    assert ordered == [42, -3, -1.5, "peaches"]


def test_value_may_contain_equals_signs():
    assert parse_cli_args(["expr=a=b"])[0] == {"expr": "a=b"}


def test_list_index_leaves_holes_as_none():
    keywords, _ = parse_cli_args(["endpoints.2.name=third"])
    assert keywords == {"endpoints": [None, None, {"name": "third"}]}


def test_index_zero_on_fresh_list_works():  # the reference has an off-by-one here
    assert parse_cli_args(["values.0=9"])[0] == {"values": [9]}


def test_first_token_is_always_a_name():
    assert parse_cli_args(["0=x"])[0] == {"0": "x"}


def test_repeated_key_last_wins():
    assert parse_cli_args(["a=1", "a=2"])[0] == {"a": 2}


@pytest.mark.parametrize("args", [
    ["-x"], ["--broker=host"], ["-"], ["a..b=1"], [".a=1"], ["a.=1"], ["=1"],
    ["a=1", "a.b=2"], ["a.b=2", "a=1"], ["a.0=1", "a.b=2"], ["a.b=1", "a.0=2"],
    ["a.99999=1"],
])
def test_bad_arguments_raise_config_error(args):
    with pytest.raises(ConfigError):
        parse_cli_args(args)


def test_option_error_names_the_argument():
    with pytest.raises(ConfigError) as info:
        parse_cli_args(["get", "--verbose"])
    assert "'--verbose'" in str(info.value)


@settings(max_examples=300)
@given(st.lists(st.text(alphabet=string.printable + "é١", max_size=20), max_size=6))
def test_random_arguments_only_raise_config_error(args):
    try:
        keywords, ordered = parse_cli_args(args)
    except ConfigError:
        return
    assert isinstance(keywords, dict) and isinstance(ordered, list)
    assert len(ordered) == sum(1 for a in args if "=" not in a or a.startswith("-"))


@given(st.integers(min_value=-10**30, max_value=10**30))
def test_integers_round_trip(number):
    assert parse_value(str(number)) == number


@given(st.floats(allow_nan=False, allow_infinity=False))
def test_floats_round_trip(number):
    text = repr(number)
    assert parse_value(text if "e" in text or "." in text else text + ".0") == number


# --- merge -----------------------------------------------------------------------------------

def test_merge_is_recursive_for_mappings():
    base = {"a": 1, "mesh": {"broker": "x", "port": 1}}
    over = {"mesh": {"broker": "y"}, "b": 2}
    assert merge(base, over) == {"a": 1, "b": 2, "mesh": {"broker": "y", "port": 1}}


def test_merge_lists_index_wise_without_nulling():
    base = {"endpoints": [{"name": "a", "x": 1}, {"name": "b"}]}
    keywords, _ = parse_cli_args(["endpoints.1.x=5", "endpoints.2.name=c"])
    assert merge(base, keywords) == {
        "endpoints": [{"name": "a", "x": 1}, {"name": "b", "x": 5}, {"name": "c"}]}


def test_merge_scalars_and_types_replace():
    assert merge({"a": [1, 2]}, {"a": "s"}) == {"a": "s"}
    assert merge({"a": {"b": 1}}, {"a": None}) == {"a": None}
    assert merge([1, 2, 3], [9]) == [9, 2, 3]
    assert merge(1, 2) == 2


def test_merge_does_not_modify_or_alias_inputs():
    base = {"a": {"b": [1, {"c": 2}]}}
    over = {"a": {"b": [None, {"d": 3}]}, "e": {"f": 1}}
    result = merge(base, over)
    result["a"]["b"][1]["c"] = 99
    result["e"]["f"] = 99
    assert base == {"a": {"b": [1, {"c": 2}]}}
    assert over == {"a": {"b": [None, {"d": 3}]}, "e": {"f": 1}}


json_scalars = st.none() | st.booleans() | st.integers() | st.text(max_size=5)
json_data = st.recursive(
    json_scalars,
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.text(max_size=3), children, max_size=4),
    max_leaves=15)
json_dicts = st.dictionaries(st.text(max_size=3), json_data, max_size=4)


@given(json_dicts)
def test_merge_with_empty_is_identity(data):
    assert merge(data, {}) == data
    assert merge({}, data) == data


@given(json_data)
def test_merge_with_itself_is_identity(data):
    assert merge(data, data) == data


@given(json_dicts, json_dicts)
def test_merge_keys_are_the_union_and_over_scalars_win(base, over):
    result = merge(base, over)
    assert set(result) == set(base) | set(over)
    for key, value in over.items():
        if not isinstance(value, (dict, list)):
            assert result[key] == value


@given(st.lists(json_data, max_size=5), st.lists(json_data, max_size=5))
def test_merge_lists_length_and_holes(base, over):
    result = merge(base, over)
    assert len(result) == max(len(base), len(over))
    for i, value in enumerate(over):
        if value is None and i < len(base):
            assert result[i] == base[i]  # a hole never wipes an element


# --- ENV{} -----------------------------------------------------------------------------------

def test_substitute_every_occurrence_at_every_depth():
    env = {"HOST": "rabbit", "USER_NAME": "ops"}
    data = {"broker": "ENV{HOST}", "list": ["a-ENV{HOST}-b-ENV{HOST}", 5, None],
            "nested": {"who": "ENV{USER_NAME}@ENV{HOST}"}, "n": 3}
    assert substitute_env(data, env) == {
        "broker": "rabbit", "list": ["a-rabbit-b-rabbit", 5, None],
        "nested": {"who": "ops@rabbit"}, "n": 3}
    assert data["broker"] == "ENV{HOST}"  # input untouched


def test_substitute_uses_os_environ_by_default(monkeypatch):
    monkeypatch.setenv("DL_TEST_BROKER", "from-env")
    assert substitute_env({"b": "ENV{DL_TEST_BROKER}"}) == {"b": "from-env"}


def test_substituted_text_is_not_expanded_again():
    assert substitute_env("ENV{A}", {"A": "ENV{A}"}) == "ENV{A}"


def test_non_matching_patterns_are_left_alone():
    assert substitute_env("ENV{} ENV{A-B} env{A} $A", {"A": "x"}) == "ENV{} ENV{A-B} env{A} $A"


def test_unset_variable_names_variable_and_key_not_value():
    with pytest.raises(ConfigError) as info:
        substitute_env({"db": {"url": "postgres://u:hunter2pw@ENV{DB_HOST_UNSET}"}}, env={})
    message = str(info.value)
    assert "DB_HOST_UNSET" in message and "db.url" in message
    assert "hunter2pw" not in message


@given(st.text(alphabet=string.ascii_letters + "{}$ ", max_size=30))
def test_strings_without_tokens_are_unchanged(text):
    if "ENV{" not in text:
        assert substitute_env(text, {}) == text


# --- authentication --------------------------------------------------------------------------

def test_default_credentials_are_guest(monkeypatch):
    monkeypatch.delenv("DRIPLINE_USER", raising=False)
    monkeypatch.delenv("DRIPLINE_PASSWORD", raising=False)
    auth = build_authentication()
    assert auth.get("dripline", "username") == "guest"
    assert auth.get("dripline", "password") == "guest"
    assert auth.groups() == ["dripline"]


def test_env_vars_are_read_from_os_environ(monkeypatch):
    monkeypatch.setenv("DRIPLINE_USER", "env_user")
    monkeypatch.setenv("DRIPLINE_PASSWORD", "env_pass")
    auth = build_authentication()
    assert (auth.get("dripline", "username"), auth.get("dripline", "password")) == \
        ("env_user", "env_pass")


def _auth_file(tmp_path, password="file_pass", name="auths.json"):
    path = tmp_path / name
    content = {"dripline": {"username": "file_user", "password": password},
               "postgres": {"username": "pg_file", "password": "pg_file_pw"}}
    path.write_text(json.dumps(content) if name.endswith(".json") else
                    "dripline:\n  username: file_user\n  password: " + password + "\n")
    return path


@pytest.mark.parametrize("sources", [
    combo for n in range(5) for combo in itertools.combinations(
        ["auth_file", "env", "password_file", "value"], n)])
def test_password_precedence(tmp_path, sources):
    """default < auth file < env < password file < explicit value, for every combination."""
    kwargs = {"env": {}}
    if "auth_file" in sources:
        kwargs["auth_file"] = _auth_file(tmp_path)
    if "env" in sources:
        kwargs["env"] = {"DRIPLINE_PASSWORD": "env_pass"}
    if "password_file" in sources:
        pw_file = tmp_path / "pw.txt"
        pw_file.write_text("pwfile_pass\n")
        kwargs["password_file"] = pw_file
    if "value" in sources:
        kwargs["password"] = "value_pass"
    expected = {"auth_file": "file_pass", "env": "env_pass", "password_file": "pwfile_pass",
                "value": "value_pass"}
    winner = expected[sources[-1]] if sources else "guest"
    assert build_authentication(**kwargs).get("dripline", "password") == winner


def test_username_precedence(tmp_path):
    path = _auth_file(tmp_path)
    assert build_authentication(auth_file=path, env={}).get("dripline", "username") == "file_user"
    assert build_authentication(auth_file=path, env={"DRIPLINE_USER": "e"}).get(
        "dripline", "username") == "e"
    assert build_authentication(auth_file=path, env={"DRIPLINE_USER": "e"}, username="u").get(
        "dripline", "username") == "u"


def test_yaml_auth_file_and_other_groups(tmp_path):
    auth = build_authentication(auth_file=_auth_file(tmp_path, name="auths.yaml"), env={})
    assert auth.get("dripline", "password") == "file_pass"
    json_auth = build_authentication(auth_file=_auth_file(tmp_path), env={})
    assert json_auth.get("postgres", "username") == "pg_file"  # file groups are kept


def test_password_file_strips_exactly_one_trailing_newline(tmp_path):
    cases = {"a": "pw", "b": "pw\n", "c": "pw\n\n", "d": "pw\r\n", "e": " pw \n", "f": ""}
    expected = {"a": "pw", "b": "pw", "c": "pw\n", "d": "pw", "e": " pw ", "f": ""}
    for key, content in cases.items():
        path = tmp_path / f"pw_{key}"
        path.write_bytes(content.encode())
        assert build_authentication(password_file=path, env={}).get(
            "dripline", "password") == expected[key]


def test_missing_auth_and_password_files_name_the_path(tmp_path):
    with pytest.raises(ConfigError) as info:
        build_authentication(auth_file=tmp_path / "nope.json")
    assert str(tmp_path / "nope.json") in str(info.value)
    with pytest.raises(ConfigError) as info:
        build_authentication(password_file=tmp_path / "nope.txt")
    assert str(tmp_path / "nope.txt") in str(info.value)


@pytest.mark.parametrize("content", ['["list"]', '{"dripline": "Pa55wordInside"}'])
def test_malformed_auth_files(tmp_path, content):
    path = tmp_path / "auths.json"
    path.write_text(content)
    with pytest.raises(ConfigError) as info:
        build_authentication(auth_file=path)
    assert str(path) in str(info.value)
    assert "Pa55wordInside" not in str(info.value)


def test_extra_groups_postgres(monkeypatch):
    auth = build_authentication(extra_groups=POSTGRES_AUTH_SPEC,
                                env={"POSTGRES_PASSWORD": "pg_env_pw"})
    assert auth.get("postgres", "username") == "postgres"
    assert auth.get("postgres", "password") == "pg_env_pw"
    assert auth.has("postgres") and auth.has("postgres", "password")
    assert not auth.has("postgres", "host") and not auth.has("slack")
    assert "postgres" in auth


def test_extra_group_spec_errors():
    with pytest.raises(ConfigError) as info:
        build_authentication(extra_groups={"slack": {"token": {"enviro": "SLACK"}}})
    assert "'enviro'" in str(info.value) and "did you mean 'env'" in str(info.value)
    with pytest.raises(ConfigError):
        build_authentication(extra_groups={"slack": "token"})


def test_add_group_plain_values_and_specs():
    auth = Authentication()
    auth.add_group("slack", {"dripline": {"env": "DRIPLINE_SLACK_TOKEN", "default": "none"}},
                   env={"DRIPLINE_SLACK_TOKEN": "xoxb-123"})
    auth.add_group("db", {"username": "me", "password": "mydbpass"})
    auth.add_groups({"other": {"key": {"default": "k"}}}, env={})
    assert auth.get("slack", "dripline") == "xoxb-123"
    assert auth.get("db", "password") == "mydbpass"
    assert auth.get("other", "key") == "k"
    assert auth == Authentication({"slack": {"dripline": "xoxb-123"},
                                   "db": {"username": "me", "password": "mydbpass"},
                                   "other": {"key": "k"}})


def test_get_missing_item_is_config_error_without_values():
    auth = Authentication({"dripline": {"username": "u", "password": "Secr3tValue"}})
    with pytest.raises(ConfigError) as info:
        auth.get("dripline", "token")
    assert "token" in str(info.value) and "Secr3tValue" not in str(info.value)
    with pytest.raises(ConfigError):
        auth.get("postgres", "username")


def test_repr_and_str_never_show_secrets():
    auth = build_authentication(username="alice", password="Tr0ub4dor&3", env={},
                                extra_groups={"slack": {"dripline": {"default": "xoxb-tok"}}})
    for text in (repr(auth), str(auth), f"{auth}", repr([auth])):
        assert "Tr0ub4dor&3" not in text and "xoxb-tok" not in text
        assert "alice" in text and MASK in text
    assert auth.to_dict(redacted=False)["dripline"]["password"] == "Tr0ub4dor&3"


# --- redaction -------------------------------------------------------------------------------

def test_redact_masks_secret_keys_at_any_depth():
    data = {"user": "bob", "Password": "p1", "nested": [{"api_token": "t1"}, {"SECRET_KEY": 5}],
            "db": {"db_password": None, "host": "h"}}
    assert redact(data) == {"user": "bob", "Password": MASK,
                            "nested": [{"api_token": MASK}, {"SECRET_KEY": MASK}],
                            "db": {"db_password": None, "host": "h"}}
    assert data["Password"] == "p1"  # input untouched


def test_redact_masks_known_secrets_and_url_passwords_in_text():
    auth = build_authentication(password="K33pItHidden", env={})
    text = "login failed with K33pItHidden; url amqp://guest:urlpass@broker:5672/"
    redacted = redact(text)
    assert "K33pItHidden" not in redacted and "urlpass" not in redacted
    assert "amqp://guest:***@broker:5672/" in redacted
    assert redact(auth)["dripline"]["password"] == MASK
    assert redact(("K33pItHidden", 3)) == (MASK, 3)


def test_published_defaults_are_not_masked_in_text(monkeypatch):
    from dripline.settings import secrets
    monkeypatch.setattr(secrets, "_known_secrets", set())
    build_authentication(env={})
    assert redact("connecting as guest to postgres") == "connecting as guest to postgres"


def test_register_secret_ignores_very_short_values():
    register_secret("ab")
    register_secret("LongEnoughSecret")
    assert redact("ab LongEnoughSecret") == f"ab {MASK}"


def test_redact_passes_other_objects_through():
    obj = object()
    assert redact(obj) is obj and redact(5) == 5 and redact(None) is None


@given(secret=st.text(alphabet=string.digits + string.punctuation.replace("*", ""),
                      min_size=6, max_size=20),
       key=st.sampled_from(["password", "db_password", "Secret", "auth_token", "TOKEN"]))
def test_redacted_output_never_contains_the_secret(secret, key):
    data = {"config": [{key: secret, "name": "n"}], "text": f"pw={secret}"}
    register_secret(secret)
    assert secret not in str(redact(data))
    auth = Authentication({"g": {"username": "u", key: secret}})
    assert secret not in repr(auth) and secret not in str(redact(auth))
