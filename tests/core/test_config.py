"""The extension's configuration checks (`core._config`): pure, no server."""

from __future__ import annotations

import pytest

from speckle_nb_auth.core._config import SpeckleServer, find_server, read_servers, redirect_uri_problem

LOCAL = "http://127.0.0.1:3000"
APP = {"app_id": "abcdef1234", "app_secret": "s3cr3t5ecr"}


@pytest.mark.parametrize(
    ("uri", "says"),
    [
        ("https://hub.example.org/hub/user-redirect/speckle-auth/callback", None),
        ("http://127.0.0.1:8888/a%40b/speckle-auth/callback", None),
        ("https://example.org/callback?x=1", "contains '?'"),
        ("https://example.org/callback#top", "contains '?' or '#'"),
        ("https://example.org/" + "c" * 100, "at most 100"),
        ("/speckle-auth/callback", "not an absolute http(s) URL"),
        ("ftp://example.org/callback", "not an absolute http(s) URL"),
        ("", "no redirect URI"),
    ],
)
def test_redirect_uri_problems_say_what_is_wrong(uri: str, says: str | None) -> None:
    problem = redirect_uri_problem(uri)
    if says is None:
        assert problem is None
    else:
        assert problem is not None and says in problem


def test_a_good_configuration_reads_without_problems() -> None:
    servers, problems = read_servers(
        [{"url": f"{LOCAL}/", "name": "Local", **APP}, {"url": "app.speckle.systems"}]
    )
    assert problems == []
    assert servers == [
        SpeckleServer(LOCAL, "Local", APP["app_id"], APP["app_secret"]),
        SpeckleServer("https://app.speckle.systems", "app.speckle.systems"),
    ]
    assert [s.oauth for s in servers] == [True, False]


def test_a_server_never_shows_its_secret() -> None:
    server = SpeckleServer(LOCAL, "Local", APP["app_id"], APP["app_secret"])
    assert APP["app_secret"] not in repr(server)
    assert server.public() == {"url": LOCAL, "name": "Local", "oauth": True, "app": "registered"}


def test_the_secret_can_come_from_a_named_environment_variable() -> None:
    entry = {"url": LOCAL, "app_id": APP["app_id"], "app_secret_env": "MY_SECRET"}
    # When it is set
    servers, problems = read_servers([entry], environ={"MY_SECRET": APP["app_secret"]})
    # Then
    assert problems == [] and servers[0].app_secret == APP["app_secret"] and servers[0].oauth
    # When it is not
    servers, problems = read_servers([entry], environ={})
    # Then
    assert not servers[0].oauth and "MY_SECRET" in problems[0] and "not set" in problems[0]


@pytest.mark.parametrize(
    ("entry", "says"),
    [
        ({"url": LOCAL, "app_id": "abcdef1234"}, "no app_secret"),
        ({"url": LOCAL, "app_secret": "s3cr3t5ecr"}, "no app_id"),
        ({"url": LOCAL, "app_id": " ", "app_secret": "s3cr3t5ecr"}, "no app_id"),
    ],
)
def test_an_incomplete_app_leaves_the_server_for_tokens_only(entry: dict[str, str], says: str) -> None:
    servers, problems = read_servers([entry])
    assert [s.url for s in servers] == [LOCAL] and not servers[0].oauth
    assert servers[0].problem is not None and says in servers[0].problem
    assert len(problems) == 1 and LOCAL in problems[0] and "s3cr3t5ecr" not in problems[0]


@pytest.mark.parametrize(
    ("entry", "says"),
    [
        ("https://app.speckle.systems", "not a dict"),
        ({"name": "no url"}, "No Speckle server address"),
        ({"url": "ftp://example.org"}, "not a web address"),
        ({"url": "http://speckle.example.org"}, "allow_http"),
        ({"url": "https://user:pw@example.org"}, "credentials"),
    ],
)
def test_an_unusable_entry_is_left_out_with_a_reason(entry: object, says: str) -> None:
    servers, problems = read_servers([entry, {"url": LOCAL}])
    assert [s.url for s in servers] == [LOCAL]
    assert len(problems) == 1 and says in problems[0] and "servers[0]" in problems[0]


def test_plain_http_elsewhere_needs_allow_http() -> None:
    servers, problems = read_servers([{"url": "http://speckle.example.org"}], allow_http=True)
    assert problems == [] and servers[0].url == "http://speckle.example.org"


def test_repeats_and_unknown_keys_are_reported() -> None:
    entries = [{"url": LOCAL}, {"url": "127.0.0.1:3000"}, {"url": "x.org", "secret": 1}]
    servers, problems = read_servers(entries)
    assert [s.url for s in servers] == [LOCAL, "https://x.org"]
    assert "repeats" in problems[0] and "unknown keys ['secret']" in problems[1]


def test_a_bad_redirect_uri_turns_oauth_off_for_every_app() -> None:
    servers, problems = read_servers(
        [{"url": LOCAL, **APP}, {"url": "https://x.org"}], redirect_problem="the redirect URI is bad"
    )
    assert [s.oauth for s in servers] == [False, False]
    assert servers[0].problem == "the redirect URI is bad" and servers[1].problem is None
    assert len(problems) == 1


def test_servers_are_found_after_normalisation_only_among_the_configured() -> None:
    servers, _ = read_servers([{"url": LOCAL}, {"url": "https://app.speckle.systems"}])
    assert find_server(servers, "127.0.0.1:3000/") is servers[0]
    assert find_server(servers, "HTTPS://APP.SPECKLE.SYSTEMS") is servers[1]
    assert find_server(servers, "https://app.speckle.systems.evil.org") is None
    assert find_server(servers, "javascript:alert(1)") is None
    assert find_server(servers, "") is None


def test_the_start_up_line_says_how_each_server_signs_in() -> None:
    """It once said "OAuth login for none" while the public app signed everyone in."""
    assert SpeckleServer(LOCAL, "Local", "a" * 10, "s" * 10).describe_login() == f"{LOCAL} (a registered app)"
    public = SpeckleServer(LOCAL, "Local", public_app=True).describe_login()
    assert public == f"{LOCAL} (Speckle's public connector app)"
    assert SpeckleServer(LOCAL, "Local").describe_login() == f"{LOCAL} (tokens only)"


def test_this_machine_by_any_of_its_names_finds_the_configured_server() -> None:
    local = SpeckleServer("http://127.0.0.1:3000", "Local", public_app=True)
    for typed in ("localhost:3000", "http://localhost:3000/", "[::1]:3000", "http://127.0.0.1:3000"):
        assert find_server([local], typed) is local, typed
    for other in ("localhost:3001", "https://localhost.example.org:3000", "127.0.0.2.example.org:3000"):
        assert find_server([local], other) is None, other
