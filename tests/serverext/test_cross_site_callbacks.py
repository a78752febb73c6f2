"""Cross-site callbacks, the limit Speckle's protocol leaves (it sends no `state`): the callback arrives from
another site by design, bound to the login only by this browser's flow cookie, which a top-level navigation from
any site carries. So another site can cancel a pending login, and, knowing its challenge, complete it with a code
of its own account. What this package can do is tested here: a cancelled login is followed by a new one that
works, and a login completed with someone else's code says whose account it signed in, by name and email.
"""


from __future__ import annotations

from support.routes import (
    FLOW,
    FLOW2,
    Browser,
    callback,
    consent,
    start_login,
)
from support.speckle import access_code

from speckle_nb_auth.emulator import Emulator


async def test_another_site_can_cancel_a_pending_login_and_the_next_login_works(
    browser: Browser, emulator: Emulator, callback_url: str
) -> None:
    await start_login(browser, emulator, FLOW)
    page = await callback(browser, f"{callback_url}?denied=true")  # a link on another site, followed
    assert page.status_code == 403 and "declined" in page.text
    assert (await browser.get(f"speckle-auth/flows/{FLOW}")).json()["status"] == "denied"

    app_id, challenge = await start_login(browser, emulator, FLOW2)  # one click on "Log in with Speckle"
    done = await callback(browser, await consent(emulator, app_id, challenge))
    ada = emulator.credentials["users"][0]
    assert done.status_code == 200 and f"as {ada['name']} ({ada['email']})" in done.text


async def test_a_login_completed_with_another_accounts_code_names_that_account(
    browser: Browser, emulator: Emulator, callback_url: str
) -> None:
    """Speckle compares the challenge as plain text and returns no `state`: whoever knows a pending login's
    challenge can make a code for it as themselves. The login then completes as their account, and says so."""
    _, challenge = await start_login(browser, emulator, FLOW)
    users = emulator.credentials["users"]
    theirs = access_code(emulator, challenge, user=1)  # someone else, signed in to Speckle as themselves
    page = await callback(browser, f"{callback_url}?access_code={theirs}")
    someone, ada = users[1], users[0]
    assert page.status_code == 200
    assert f"as {someone['name']} ({someone['email']})" in page.text and "Not your account?" in page.text
    assert ada["name"] not in page.text
    status = (await browser.get(f"speckle-auth/flows/{FLOW}")).json()
    assert status["message"] == f"Signed in to Speckle as {someone['name']} ({someone['email']})."
