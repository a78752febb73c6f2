"""Bad input, property-based: whatever arrives, the answer is a value or a typed error with a clear message
that holds no secret. Each test reports how many cases it tried (`-s` shows the figures)."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from speckle_nb_auth import _protocol as protocol
from speckle_nb_auth._desktop import desktop_accounts
from speckle_nb_auth._errors import InvalidServerURL, SpeckleAuthError
from speckle_nb_auth._protocol import Reply

SECRET = "5ec7e7" * 7  # 42 hex characters, shaped like a Speckle token
SERVER = "https://speckle.example"
CASES = 300
tried: dict[str, int] = {}


def count(name: str) -> None:
    tried[name] = tried.get(name, 0) + 1


def assert_clear(err: SpeckleAuthError) -> None:
    text = str(err)
    assert len(text) >= 20 and "Traceback" not in text, text
    assert SECRET not in text and SECRET[-8:] not in text


urls = st.one_of(
    st.text(max_size=200),
    st.builds(lambda s, h, p, rest: f"{s}{h}{p}{rest}",
              st.sampled_from(["", "http://", "https://", "ftp://", "//", "HTTPS://"]),
              st.text(alphabet=st.characters(codec="utf-8"), max_size=40),
              st.sampled_from(["", ":80", ":443", ":99999", ":-1", ":abc"]),
              st.text(max_size=40)),
)


@settings(max_examples=CASES, deadline=None)
@given(urls)
def test_server_urls_never_crash(url: str) -> None:
    count("server URLs")
    try:
        normalized = protocol.normalize_server_url(url)
    except InvalidServerURL as err:
        assert_clear(err)
        return
    assert normalized.startswith(("http://", "https://")) and not normalized.endswith("/")
    assert protocol.normalize_server_url(normalized) == normalized  # idempotent


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=30) | st.just(SECRET),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4),
    max_leaves=20,
)
graphql_bodies = st.one_of(
    st.binary(max_size=200),
    json_values.map(lambda v: json.dumps(v).encode()),
    st.fixed_dictionaries({"data": json_values, "errors": json_values}).map(lambda v: json.dumps(v).encode()),
    st.fixed_dictionaries({"errors": st.lists(st.fixed_dictionaries(
        {"message": st.text(max_size=40), "extensions": st.fixed_dictionaries(
            {"code": st.sampled_from(["FORBIDDEN", "OTHER"]), "scope": json_values})}), max_size=3)}
    ).map(lambda v: json.dumps(v).encode()),
)
statuses = st.sampled_from([200, 200, 400, 401, 403, 404, 500, 502, 503])


@settings(max_examples=CASES, deadline=None)
@given(statuses, graphql_bodies)
def test_graphql_and_whoami_answers_never_crash(status: int, body: bytes) -> None:
    count("GraphQL answers")
    for parse in (lambda r: protocol.parse_graphql(SERVER, r), protocol.whoami(SERVER, SECRET).parse,
                  protocol.token_scopes(SERVER, SECRET).parse):
        try:
            parse(Reply(status, body))
        except SpeckleAuthError as err:
            assert_clear(err)


@settings(max_examples=CASES, deadline=None)
@given(statuses, graphql_bodies)
def test_token_endpoint_answers_never_crash(status: int, body: bytes) -> None:
    count("token endpoint answers")
    for call in (protocol.exchange_code(SERVER, "app", SECRET, SECRET, "v" * 43),
                 protocol.refresh(SERVER, "app", SECRET, SECRET), protocol.logout(SERVER, SECRET, SECRET)):
        try:
            call.parse(Reply(status, body))
        except SpeckleAuthError as err:
            assert_clear(err)


# the secret goes only where an account keeps secrets: a name or an email may be shown
plain_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=30),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4),
    max_leaves=20,
)
accounts = st.one_of(
    plain_values,
    st.fixed_dictionaries({
        "id": plain_values, "isDefault": plain_values, "token": st.one_of(st.just(SECRET), plain_values),
        "refreshToken": st.one_of(st.just(SECRET), plain_values),
        "serverInfo": st.one_of(plain_values, st.fixed_dictionaries({"url": urls, "name": plain_values})),
        "userInfo": st.one_of(plain_values, st.fixed_dictionaries({"id": plain_values, "name": plain_values,
                                                                   "email": plain_values})),
    }),
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(accounts, max_size=4), st.lists(st.binary(max_size=60), max_size=2))
def test_desktop_account_files_never_crash(tmp_path: Path, docs: list[object], junk: list[bytes]) -> None:
    count("desktop-account files")
    folder = tmp_path / f"case{tried['desktop-account files']}"
    (folder / "Accounts").mkdir(parents=True)
    with sqlite3.connect(folder / "Accounts.db") as db:
        db.execute("CREATE TABLE objects(hash TEXT PRIMARY KEY, content TEXT)")
        for i, doc in enumerate(docs):
            db.execute("INSERT INTO objects VALUES (?, ?)", (str(i), json.dumps(doc)))
    db.close()
    for i, raw in enumerate(junk):
        (folder / "Accounts" / f"junk{i}.json").write_bytes(raw)
    for account in desktop_accounts(data_dir=folder):
        assert account.server_url.startswith(("http://", "https://"))
        assert SECRET not in repr(account)


def test_report_cases_tried() -> None:
    print("\nbad-input cases tried:", ", ".join(f"{k}: {v}" for k, v in sorted(tried.items())))
