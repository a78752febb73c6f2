"""The login core: everything "Log in with Speckle" needs on the server side, with no Tornado and no Jupyter in
it, so the server extension (`serverext`) and the hub's login service (`hub`) run the same rules and each keeps
only who is asking, whether they may, and its routes.

    _config    the configured Speckle servers and their apps, checked once at start-up
    _flows     the logins in progress and their single-use life
    _logins    the broker: start a login, finish it from Speckle's callback or a pasted address, renew a token
    _mailbox   the bounded mailboxes through which a panel reaches its busy kernel
    _pages     the result pages a sign-in tab shows
    _wire      the JSON shapes that cross between the routes, the relay and the kernel
    _requests  what each route answers, written once, with hooks for who owns a login or a refresh token
"""
