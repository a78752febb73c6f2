"""No secret in a verbose traceback: every failure path of the kernel-side modules (sign-in check, graphql,
refresh, logout, scopes, specklepy, code exchange, keyring) against the emulator, formatted with every frame's
locals (`traceback.TracebackException(capture_locals=True)`) and under IPython's `%xmode Verbose` in a real
kernel, whose saved notebook is checked too. A secret shows at most as its last four characters."""

from __future__ import annotations

import functools
import json
import stat
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import nbformat
import pytest
from nbclient import NotebookClient
from support.memory_keyring import MemoryKeyring
from support.speckle import access_code, oauth_pair
from support.tracebacks import ANSI, Seen, assert_no_secret, verbose_text

from speckle_nb_auth import Client
from speckle_nb_auth import _protocol as protocol
from speckle_nb_auth._client import direct_refresher
from speckle_nb_auth._credentials import KeyringUnavailable, remember
from speckle_nb_auth._errors import (
    AccessCodeRejected,
    GraphQLError,
    InvalidToken,
    MissingScope,
    RefreshRejected,
    SpeckleAuthError,
    SpeckleServerError,
    SpeckleUnreachable,
)
from speckle_nb_auth._protocol import Secret, TokenPair
from speckle_nb_auth._transport import call
from speckle_nb_auth.emulator import Emulator

WHO = "{ activeUser { name } }"


def kill_token(emu: Emulator, token: str) -> None:
    """Make a token invalid while its refresh token stays valid: an expired token, as the client sees it."""
    assert httpx.post(f"{emu.url}/auth/logout", json={"token": token}).status_code == 200


# --- the scenarios: each sets up a failure and returns the call that meets it ----------------------------------

Scenario = Callable[[Emulator, Seen, pytest.MonkeyPatch], tuple[Callable[[], Any], type[BaseException]]]


def app_in_environment(emu: Emulator, monkeypatch: pytest.MonkeyPatch) -> None:
    creds = emu.credentials
    monkeypatch.setenv("SPECKLE_SERVER", emu.url)
    monkeypatch.setenv("SPECKLE_APP_ID", creds["app_id"])
    monkeypatch.setenv("SPECKLE_APP_SECRET", creds["app_secret"])


def signed_in(emu: Emulator, seen: Seen, **kwargs: Any) -> tuple[Client, TokenPair]:
    pair = oauth_pair(emu)
    seen.add(pair.token, pair.refresh_token)
    return Client(emu.url, pair.token, pair.refresh_token, **kwargs), pair


def logout_dropped(emu: Emulator, seen: Seen, mp: pytest.MonkeyPatch) -> Any:
    client, _ = signed_in(emu, seen)
    emu.inject_fault("/auth/logout", "drop")
    return client.logout, SpeckleUnreachable


def revoke_a_dotenv_text_dropped(emu: Emulator, seen: Seen, mp: pytest.MonkeyPatch) -> Any:
    """`revoke()` given a whole .env file's text, as `%xmode Verbose` once printed it, token included."""
    from speckle_nb_auth import revoke

    text = f"SPECKLE_SERVER={emu.url}\nSPECKLE_TOKEN={emu.credentials['users'][1]['pat']}\n"
    emu.inject_fault("/auth/logout", "drop")
    # The test's own frame holds it masked (what the caller holds is the caller's): the package's frames, which
    # strip and parse it into plain strings, are what is checked.
    return functools.partial(revoke, Secret(text)), SpeckleUnreachable


def logout_502(emu: Emulator, seen: Seen, mp: pytest.MonkeyPatch) -> Any:
    client, _ = signed_in(emu, seen)
    emu.inject_fault("/auth/logout", "error", status=502)
    return client.logout, SpeckleServerError


def refresh_502_with_the_environments_app(emu: Emulator, seen: Seen, mp: pytest.MonkeyPatch) -> Any:
    app_in_environment(emu, mp)
    client, pair = signed_in(emu, seen)
    kill_token(emu, pair.token)
    emu.inject_fault("/auth/token", "error", status=502)
    return lambda: client.graphql(WHO), SpeckleServerError


def refresh_dropped_with_a_refresher(emu: Emulator, seen: Seen, mp: pytest.MonkeyPatch) -> Any:
    creds = emu.credentials
    plain = httpx.Client()
    refresher = direct_refresher(plain, emu.url, creds["app_id"], Secret(creds["app_secret"]))
    client, pair = signed_in(emu, seen, refresher=refresher)
    kill_token(emu, pair.token)
    emu.inject_fault("/auth/token", "drop")
    return lambda: client.graphql(WHO), SpeckleUnreachable


def refresh_rejected(emu: Emulator, seen: Seen, mp: pytest.MonkeyPatch) -> Any:
    app_in_environment(emu, mp)
    client, pair = signed_in(emu, seen)
    assert httpx.post(f"{emu.url}/auth/logout",
                      json={"token": pair.token, "refreshToken": pair.refresh_token}).status_code == 200
    return lambda: client.graphql(WHO), RefreshRejected


def graphql_dropped(emu: Emulator, seen: Seen, mp: pytest.MonkeyPatch) -> Any:
    client, _ = signed_in(emu, seen)
    emu.inject_fault("/graphql", "drop")
    return lambda: client.graphql(WHO), SpeckleUnreachable


def graphql_invalid_token(emu: Emulator, seen: Seen, mp: pytest.MonkeyPatch) -> Any:
    client, pair = signed_in(emu, seen)  # no refresher: nothing can renew it
    kill_token(emu, pair.token)
    return lambda: client.graphql(WHO), InvalidToken


def graphql_error(emu: Emulator, seen: Seen, mp: pytest.MonkeyPatch) -> Any:
    client, _ = signed_in(emu, seen)
    return lambda: client.graphql('{ app(id: "x") { nope } }'), GraphQLError


def graphql_missing_scope(emu: Emulator, seen: Seen, mp: pytest.MonkeyPatch) -> Any:
    client, _ = signed_in(emu, seen)
    return lambda: client.graphql("{ activeUser { apiTokens { id } } }"), MissingScope


def sign_in_refused(emu: Emulator, seen: Seen, mp: pytest.MonkeyPatch) -> Any:
    pair = oauth_pair(emu)
    seen.add(pair.token, pair.refresh_token)
    kill_token(emu, pair.token)
    return lambda: Client(emu.url, pair.token, pair.refresh_token), InvalidToken


def sign_in_unreachable(emu: Emulator, seen: Seen, mp: pytest.MonkeyPatch) -> Any:
    pat = Secret(emu.credentials["pat"])
    emu.inject_fault("/graphql", "drop")
    return lambda: Client(emu.url, pat), SpeckleUnreachable


def scopes_502(emu: Emulator, seen: Seen, mp: pytest.MonkeyPatch) -> Any:
    client, _ = signed_in(emu, seen, app_id=emu.credentials["app_id"])
    emu.inject_fault("/graphql", "error", status=502)
    return client.scopes, SpeckleServerError


def scopes_app_dropped(emu: Emulator, seen: Seen, mp: pytest.MonkeyPatch) -> Any:
    client, _ = signed_in(emu, seen, app_id=emu.credentials["app_id"])
    emu.inject_fault("/graphql", "drop", after=1)  # the token list answers; the app query does not
    return client.scopes, SpeckleUnreachable


def specklepy_502(emu: Emulator, seen: Seen, mp: pytest.MonkeyPatch) -> Any:
    client, _ = signed_in(emu, seen)
    emu.inject_fault("/graphql", "error", status=502, count=None)
    return client.specklepy, SpeckleServerError


def specklepy_fails_inside(emu: Emulator, seen: Seen, mp: pytest.MonkeyPatch) -> Any:
    client, _ = signed_in(emu, seen)
    emu.inject_fault("/graphql", "error", status=502, count=None, after=1)  # this client's check passes
    return client.specklepy, SpeckleServerError


def exchange(emu: Emulator, seen: Seen, fault: str | None, challenge_ok: bool) -> Any:
    creds = emu.credentials
    verifier = protocol.make_verifier()
    code = Secret(access_code(emu, protocol.challenge_for(verifier)))
    sent = verifier if challenge_ok else protocol.make_verifier()
    seen.add(verifier, sent, code)
    app_id, app_secret = creds["app_id"], Secret(creds["app_secret"])
    if fault:
        emu.inject_fault("/auth/token", fault)
    http = httpx.Client()
    return lambda: call(http, protocol.exchange_code(emu.url, app_id, app_secret, code, sent))


def exchange_wrong_challenge(emu: Emulator, seen: Seen, mp: pytest.MonkeyPatch) -> Any:
    return exchange(emu, seen, None, False), AccessCodeRejected


def exchange_502(emu: Emulator, seen: Seen, mp: pytest.MonkeyPatch) -> Any:
    return exchange(emu, seen, "error", True), SpeckleServerError


def exchange_dropped(emu: Emulator, seen: Seen, mp: pytest.MonkeyPatch) -> Any:
    return exchange(emu, seen, "drop", True), SpeckleUnreachable


class BrokenKeyring(MemoryKeyring):
    def set_password(self, service: str, username: str, password: str) -> None:
        raise RuntimeError(f"the keyring refused {password}")  # as a badly written backend might


def keyring_refuses(emu: Emulator, seen: Seen, mp: pytest.MonkeyPatch) -> Any:
    import keyring

    pair = oauth_pair(emu)
    seen.add(pair.token, pair.refresh_token)
    previous = keyring.get_keyring()
    keyring.set_keyring(BrokenKeyring())

    def store() -> None:
        try:
            remember(emu.url, "user", pair)
        finally:
            keyring.set_keyring(previous)

    return store, KeyringUnavailable


SCENARIOS: list[Scenario] = [
    logout_dropped, revoke_a_dotenv_text_dropped, logout_502, refresh_502_with_the_environments_app,
    refresh_dropped_with_a_refresher,
    refresh_rejected, graphql_dropped, graphql_invalid_token, graphql_error, graphql_missing_scope,
    sign_in_refused, sign_in_unreachable, scopes_502, scopes_app_dropped, specklepy_502, specklepy_fails_inside,
    exchange_wrong_challenge, exchange_502, exchange_dropped, keyring_refuses,
]


@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda s: s.__name__)
def test_a_traceback_with_every_frames_locals_shows_no_secret(
    emulator: Emulator, monkeypatch: pytest.MonkeyPatch, scenario: Scenario
) -> None:
    seen = Seen(emulator)
    failing, expected = scenario(emulator, seen, monkeypatch)
    with pytest.raises(expected) as caught:
        failing()
    text = verbose_text(caught.value)
    assert isinstance(caught.value, SpeckleAuthError)
    assert "'…" in text or scenario in (graphql_error, graphql_missing_scope), text  # masked values were shown
    assert_no_secret(text, seen.all())


def test_the_check_sees_a_secret_held_as_a_plain_string(emulator: Emulator) -> None:
    token = str(emulator.credentials["pat"])  # a local of the failing frame, as the fixed lines once held
    try:
        raise SpeckleUnreachable(f"a {len(token)}-character token was at hand")
    except SpeckleUnreachable as err:
        text = verbose_text(err)
    with pytest.raises(AssertionError, match="a secret"):
        assert_no_secret(text, Seen(emulator).all())


# --- the same under %xmode Verbose in a real kernel ------------------------------------------------------------


def kernel_steps(
    emu: Emulator, given: dict[str, Any]
) -> Iterator[tuple[str, Callable[[], None] | None, str | None]]:
    """(cell source, what the emulator does before the cell runs, the error the cell must show)."""

    def expire_second_and_fail_its_refresh() -> None:
        kill_token(emu, given["second"]["token"])
        emu.inject_fault("/auth/token", "error", status=502)

    yield "%xmode Verbose", None, None
    yield (
        "import json, os\n"
        "import httpx\n"
        "from speckle_nb_auth import Client, _protocol, _transport\n"
        "with open(os.environ['SPECKLE_NB_TEST_GIVEN']) as _f:\n"
        "    _given = json.load(_f)\n"
        "def _client(name):\n"
        "    pair = _protocol.TokenPair(**_given[name])\n"
        "    return Client(os.environ['SPECKLE_SERVER'], pair.token, pair.refresh_token)\n"
        "_code = _protocol.Secret(_given['code'])\n"
        "_verifier = _protocol.Secret(_given['verifier'])\n"
        "_app_secret = _protocol.Secret(os.environ['SPECKLE_APP_SECRET'])\n"
        # no failing line names os.environ: IPython 8's verbose traceback shows a dotted name's whole value, and
        # that is this test's environment (app secret included), not anything the package holds
        "_server, _app_id = os.environ['SPECKLE_SERVER'], os.environ['SPECKLE_APP_ID']\n"
        "speckle, other, third, fourth = _client('first'), _client('second'), _client('third'), _client('fourth')\n"
        "del _given",
        None, None,
    )
    yield "speckle.logout()", lambda: emu.inject_fault("/auth/logout", "drop"), "SpeckleUnreachable"
    yield "other.graphql('{ activeUser { name } }')", expire_second_and_fail_its_refresh, "SpeckleServerError"
    yield "third.scopes()", lambda: emu.inject_fault("/graphql", "error", status=502), "SpeckleServerError"
    yield ("fourth.specklepy()", lambda: emu.inject_fault("/graphql", "error", status=502, count=None, after=1),
           "SpeckleServerError")
    yield "fourth.graphql('{ activeUser { name } }')", lambda: emu.inject_fault("/graphql", "drop"), \
        "SpeckleUnreachable"
    yield ("_transport.call(httpx.Client(), _protocol.exchange_code(_server, _app_id, _app_secret, _code, _verifier))",
           lambda: emu.inject_fault("/auth/token", "error", status=502), "SpeckleServerError")


def test_verbose_tracebacks_in_a_kernel_and_the_saved_notebook_show_no_secret(
    emulator: Emulator, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    seen = Seen(emulator)
    given: dict[str, Any] = {}
    for name in ("first", "second", "third", "fourth"):
        pair = oauth_pair(emulator)
        seen.add(pair.token, pair.refresh_token)
        given[name] = {"token": pair.token, "refresh_token": pair.refresh_token}
    verifier = protocol.make_verifier()
    given["code"], given["verifier"] = access_code(emulator, verifier), verifier
    seen.add(given["code"], verifier)
    secrets_file = tmp_path / "given.json"
    secrets_file.write_text(json.dumps(given))
    secrets_file.chmod(stat.S_IRUSR | stat.S_IWUSR)
    app_in_environment(emulator, monkeypatch)
    monkeypatch.setenv("SPECKLE_NB_TEST_GIVEN", str(secrets_file))

    nb = nbformat.v4.new_notebook()
    client = NotebookClient(nb, kernel_name="python3", timeout=60, allow_errors=True,
                            resources={"metadata": {"path": str(tmp_path)}})
    errors: list[str] = []
    with client.setup_kernel():
        for source, before, error in kernel_steps(emulator, given):
            if before is not None:
                before()
            cell = nbformat.v4.new_code_cell(source)
            nb.cells.append(cell)
            client.execute_cell(cell, len(nb.cells) - 1)
            emulator.clear_faults()
            shown = [out for out in cell.outputs if out.output_type == "error"]
            if error is None:
                assert not shown, ANSI.sub("", "\n".join(shown[0].traceback)) if shown else ""
                continue
            assert [out.ename for out in shown] == [error], cell.outputs
            errors.append(ANSI.sub("", "\n".join(shown[0].traceback)))
    saved = tmp_path / "saved.ipynb"
    nbformat.write(nb, saved)

    # Verbose mode printed the values on each failing line of the package: masked ones.
    assert all("'…" in text for text in errors[:4]), errors
    assert "pair.token = '…" in errors[0] and "pair.refresh_token = '…" in errors[1], errors[:2]
    assert_no_secret(saved.read_text(), seen.all())
    assert_no_secret("\n".join(errors), seen.all())
