"""Workspace SSO: Speckle refuses a valid token for a workspace whose SSO session has lapsed (a week by default),
with `SSO_SESSION_MISSING_OR_EXPIRED_ERROR`. The emulator plays it as a fault; the client raises a typed error
naming the workspace and the address that renews the session, renews no token, and the panel shows the address
as a link."""

from __future__ import annotations

import httpx
import pytest
from support.panel import deliver
from support.speckle import oauth_pair

from speckle_nb_auth import Client, SsoSessionExpired
from speckle_nb_auth._protocol import Reply, parse_graphql

pytestmark = pytest.mark.usefixtures("_fresh_registry")

PROJECTS = "{ activeUser { projects(limit: 1) { totalCount } } }"


def test_a_lapsed_sso_session_is_a_typed_error_with_the_address_that_renews_it(emulator):
    pair = oauth_pair(emulator)  # renewable: and still it must not be renewed
    client = Client(emulator.url, pair.token, pair.refresh_token, app_id=emulator.credentials["app_id"])
    emulator.inject_fault("/graphql", "sso", workspace="acme-engineering")
    exchanges = emulator.requests_seen("/auth/token")
    with pytest.raises(SsoSessionExpired) as caught:
        client.graphql(PROJECTS)
    err = caught.value
    renew = f"{emulator.url}/api/v1/workspaces/acme-engineering/sso/auth"
    assert err.workspace == "acme-engineering" and err.renew_url == renew and err.code == "sso_session_expired"
    assert renew in err.message and "'acme-engineering'" in err.message and "still valid" in err.message
    assert pair.token not in err.message
    assert emulator.requests_seen("/auth/token") == exchanges  # renewing the token is pointless here
    assert client.graphql(PROJECTS)["activeUser"]["projects"]["totalCount"] >= 0  # the token still works
    client.close()


def test_an_sso_answer_with_http_200_and_a_slug_only_in_its_message_is_read_too(emulator):
    answer = httpx.Response(200, json={"data": None, "errors": [
        {"message": "studio-x", "extensions": {"code": "SSO_SESSION_MISSING_OR_EXPIRED_ERROR"}}]})
    with pytest.raises(SsoSessionExpired) as caught:
        parse_graphql(emulator.url, Reply(answer.status_code, answer.content))
    assert caught.value.renew_url == f"{emulator.url}/api/v1/workspaces/studio-x/sso/auth"


def test_the_panel_shows_the_renewal_address(emulator, panels, shell):
    panel = panels(server=emulator.url)
    deliver(panel, {"type": "pat", "server": emulator.url, "token": emulator.credentials["pat"]})
    speckle = shell.user_ns["speckle"]
    emulator.inject_fault("/graphql", "sso", workspace="acme")
    with pytest.raises(SsoSessionExpired):
        speckle.graphql(PROJECTS)
    assert f"{emulator.url}/api/v1/workspaces/acme/sso/auth" in panel.error
    assert panel.status == "signed_in"  # still signed in: only the workspace asks again
