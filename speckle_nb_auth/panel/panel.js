// Speckle login panel, browser half. It talks to the Jupyter server extension (speckle-auth/*) and hands tokens
// to the kernel as one-shot messages: a token never enters the synced state. With a mailbox (the kernel reads
// the extension's mailbox from a thread), messages go there, so they reach a kernel whose cell is running;
// else over the comm (model.send), which a busy kernel reads only after the cell.
const ENDED = {
  denied: "You chose not to give access: nothing changed.",
  expired: "The sign-in expired: try again.",
  failed: "The sign-in failed: try again.",
  superseded: "A newer sign-in started in this browser replaced this one.",
};
const STALE = "This panel's kernel restarted or stopped, so it no longer shows the sign-in: run its cell again.";

function baseUrl() {
  let base;
  try { // JupyterLab, Notebook 7, Voila
    base = JSON.parse(document.getElementById("jupyter-config-data").textContent).baseUrl;
  } catch {
    base = document.body?.dataset?.baseUrl; // nbclassic keeps it on <body data-base-url>
  }
  return typeof base === "string" ? base.replace(/\/?$/, "/") : null; // null: VS Code, Colab...
}

const xsrf = () => (document.cookie.match(/(?:^|;\s*)_xsrf=([^;]*)/) || [])[1] || "";

// GET speckle-auth/`path`; with `body` (null: empty) a POST. Jupyter's XSRF header goes on every call:
// JupyterHub's single-user servers refuse cookie-authenticated GETs without it.
async function api(path, body) {
  const init = { credentials: "same-origin", headers: { "X-XSRFToken": xsrf() } };
  if (body !== undefined) {
    init.method = "POST";
    if (body) (init.headers["Content-Type"] = "application/json"), (init.body = JSON.stringify(body));
  }
  const response = await fetch(baseUrl() + "speckle-auth/" + path, init);
  const data = await response.json().catch(() => null);
  return { ok: response.ok, status: response.status, data: data || {}, redirected: response.redirected };
}

let statusOnce; // the extension's status (kept once it answered); null where there is no extension
// an HTTP error other than 404 from the status route itself: the extension is there but said no. An answer
// from elsewhere (standalone Voila sends the call on to a page that refuses it) means no extension.
let refusedWith = 0;
const extension = () => (statusOnce ??= (baseUrl() === null ? Promise.resolve(null) : api("status"))
  .then((r) => ((refusedWith = r && !r.ok && r.status !== 404 && !r.redirected ? r.status : 0),
    r?.ok && Array.isArray(r.data.servers) ? r.data : null), () => null)
  .then((status) => status || ((statusOnce = undefined), null)));

function randomId(n = 24) { // no crypto.randomUUID: it exists only in secure contexts
  const bytes = crypto.getRandomValues(new Uint8Array(n)); // 4n/3 base64url characters
  return btoa(String.fromCharCode(...bytes)).replace(/\+/g, "-").replace(/\//g, "_");
}

// To the kernel: through the mailbox when the panel has one (and it takes the message), else over the comm.
async function tell(model, message) {
  const box = model.get("mailbox");
  if (box && (await extension())) {
    try {
      if ((await api("mailbox/" + box, { ...message, panel: model.get("panel_id") })).ok) return;
    } catch {}
  }
  model.send(message);
}

// Server addresses as the kernel reads them: this machine by any of its names is one server, and a bare
// loopback host is plain http (anything else https)
const LOOPBACK = /^(localhost|127(?:\.\d{1,3}){3}|\[::1\])(?=:|\/|$)/;
const host = (url) => (url || "").trim().toLowerCase().replace(/^https?:\/\//, "").replace(/\/+$/, "")
  .replace(LOOPBACK, "loopback"); // another scheme ("htp://") stays in, and matches no server, as in the kernel
const origin = (url) => (/^https?:\/\//i.test(url) ? url
  : (LOOPBACK.test(url.trim().toLowerCase()) ? "http://" : "https://") + url).replace(/\/+$/, "");

const h = (tag, props, ...children) => {
  const node = Object.assign(document.createElement(tag), props);
  node.append(...children);
  return node;
};

// Text with its web addresses made into links (text nodes only: nothing from the model becomes markup).
function linked(text) {
  return String(text || "").split(/(https?:\/\/[^\s<>"]+[^\s<>".,:;!?)])/g).map((part, i) => (i % 2
    ? h("a", { href: part, target: "_blank", rel: "noopener noreferrer", textContent: part }) : part));
}

const left = (deadline) => {
  const s = Math.max(0, Math.round((deadline - Date.now()) / 1000));
  return `${Math.floor(s / 60)}:${String(s % 60).padStart(2, "0")}`;
};

const PASTE_AFTER = 8000; // ms before the paste-back box shows for a sign-in tab that has not come back
const SETTLE = 4000; // ms the notebook may go on scrolling after the panel starts waiting (Run All)

// Run All scrolls the notebook on to its last cell, past the panel that waits, and JupyterLab may go on scrolling
// after the panel first asks to be shown: keep it in view while the notebook settles, until the person scrolls,
// clicks or types themselves. Returns how to stop early.
function keepInView(el) {
  const events = ["wheel", "keydown", "pointerdown", "touchstart"];
  const observer = typeof IntersectionObserver === "function"
    ? new IntersectionObserver(([entry]) => entry && !entry.isIntersecting && el.scrollIntoView({ block: "nearest" }))
    : null;
  const stop = () => {
    observer?.disconnect();
    for (const name of events) window.removeEventListener(name, stop, true);
    clearTimeout(timer);
  };
  const timer = setTimeout(stop, SETTLE);
  for (const name of events) window.addEventListener(name, stop, true);
  el.scrollIntoView?.({ block: "nearest" });
  observer?.observe(el);
  return stop;
}

// This page's id: a renewal names the one page to ask, so two tabs of one notebook do not both renew.
const PAGE = randomId(12);

// Once per model and page: renewals the kernel asks of this page.
function initialize({ model }) {
  const onMessage = async (msg) => {
    if (msg?.type !== "refresh" || (msg.view && msg.view !== PAGE)) return;
    let reply = { type: "refresh_failed", id: msg.id, message: "No Jupyter server extension here to renew the sign-in: log in again." };
    try {
      const r = (await extension()) && (await api("refresh", { server_url: msg.server_url, refresh_token: msg.refresh_token }));
      if (r?.ok && r.data.token) reply = { type: "refreshed", id: msg.id, token: r.data.token, refresh_token: r.data.refresh_token || null };
      else if (r) reply.message = r.data.message || `Renewing the sign-in failed (HTTP ${r.status}): log in again.`;
    } catch (err) {
      reply.message = String(err?.message || err);
    }
    model.send(reply);
  };
  model.on("msg:custom", onMessage);
  return () => model.off("msg:custom", onMessage);
}

function render({ model, el }) {
  const id = "snb-" + randomId().slice(0, 8); // only [A-Za-z0-9_-]: safe in the markup below
  const get = (key) => model.get(key);
  let ext; // undefined while asking, null without the extension
  let flow = null; // the "Log in with Speckle" attempt being waited for
  let note = ["", false]; // the browser half's own [text, isError], until the kernel says something new
  let dismissed = null; // the kernel's error the person moved on from by editing the server: it was about another
  let shownAccounts = "";
  let stale = false;
  let wasSignedIn = get("status") === "signed_in";
  let focusOnSignIn = false; // a sign-in started here: once it lands, the keyboard goes to "Log out"
  const say = (text, isError = false) => ((note = [text, isError]), update());

  // Static markup only: everything that comes from the model is set with textContent below.
  el.innerHTML = `<div class="snb-panel">
  <div class="snb-out">
    <div class="snb-row"><label for="${id}-s">Speckle server</label>
      <input id="${id}-s" class="snb-server" list="${id}-l" placeholder="app.speckle.systems" autocomplete="off">
      <datalist id="${id}-l"></datalist><button type="button" class="snb-login">Log in with Speckle</button></div>
    <p class="snb-noext">No Speckle server extension runs here: this kernel signs you in through Speckle's
      connector app. A personal access token, a desktop account or SPECKLE_TOKEN work too.</p>
    <p class="snb-kept snb-row"><button type="button" class="snb-revoke-kept">Also revoke it on Speckle</button>
      <span>Ends the token everywhere: scripts and CI jobs that use it stop working.</span></p>
    <p class="snb-nooauth"></p>
    <p class="snb-appnote"></p>
    <div class="snb-waiting snb-row"><a class="snb-open-link" target="_blank" rel="noopener">Open the Speckle sign-in page</a>
      <span class="snb-left"></span><button type="button" class="snb-cancel">Cancel</button></div>
    <button type="button" class="snb-other-machine snb-linkish">Signing in on another machine?</button>
    <form class="snb-paste snb-row"><label for="${id}-a">Sign-in tab ended on a page that can't be reached at
      http://localhost…? Copy that page's address here:</label>
      <input id="${id}-a" class="snb-paste-input" autocomplete="off" spellcheck="false">
      <button type="submit" class="snb-paste-submit">Finish sign-in</button></form>
    <details class="snb-pat-box"><summary>Use a personal access token</summary>
      <form class="snb-pat snb-row"><label for="${id}-p">Token</label>
        <input id="${id}-p" class="snb-pat-input" type="password" autocomplete="off">
        <button type="submit" class="snb-pat-submit">Sign in with token</button>
        <a class="snb-make-token" target="_blank" rel="noopener noreferrer">Create a token</a></form></details>
    <details class="snb-switch"><summary>Use another account</summary>
      <p>Speckle's sign-in page signs in as whoever is signed in to Speckle in this browser, without asking. To
        use another account (on a shared machine: always), first <a class="snb-switch-link" target="_blank"
        rel="noopener noreferrer">open Speckle</a> and sign out there (your avatar, then Sign out), then click
        Log in with Speckle again.</p></details>
    <div class="snb-desktop">Desktop accounts:
      <ul class="snb-desktop-list" aria-label="Speckle desktop accounts"></ul></div>
    <p class="snb-requested"></p>
  </div>
  <div class="snb-in"><div class="snb-row"><img class="snb-avatar" alt="">
    <div class="snb-who"><div><strong class="snb-user-name"></strong> <span class="snb-user-email"></span></div>
      <div>on <span class="snb-server-name"></span>, in this notebook as <code class="snb-variable"></code></div>
      <ul class="snb-scopes" aria-label="What this token may do"></ul></div>
    <button type="button" class="snb-logout">Log out</button></div>
    <details class="snb-hint"><summary>Use this sign-in in a script</summary>
      <p>Scripts and CI sign in without this panel: set <code>SPECKLE_TOKEN</code> to a personal access token
        and <code class="snb-hint-server"></code>, then <code>speckle_nb_auth.login()</code> returns the client.</p></details></div>
  <div class="snb-row snb-remember-row"><input id="${id}-r" class="snb-remember" type="checkbox"><label for="${id}-r">Remember me</label>
    <button type="button" class="snb-remember-file">Remember me in a .env file instead</button></div>
  <p class="snb-status" role="status" aria-live="polite"></p>
  <p class="snb-error" role="alert"></p>
</div>`;
  const $ = (name) => el.querySelector(".snb-" + name);
  const [server, servers, login, noExt, noOAuth, appNote, waiting, timeLeft, link, pasteForm, pasted, patForm, pat,
    patSubmit, makeToken, desktop, accounts, requested, signedOut, signedIn, avatar, name, email, serverName, variable,
    scopes, logout, hintServer, rememberRow, remember, status, error, cancel] = ["server", "panel datalist", "login",
    "noext", "nooauth", "appnote", "waiting", "left", "open-link", "paste", "paste-input", "pat", "pat-input",
    "pat-submit", "make-token", "desktop", "desktop-list", "requested", "out", "in", "avatar", "user-name",
    "user-email", "server-name", "variable", "scopes", "logout", "hint-server", "remember-row", "remember", "status",
    "error", "cancel"].map($);
  const rememberFile = $("remember-file");
  const otherMachine = $("other-machine");
  const [switchBox, switchLink] = [$("switch"), $("switch-link")];
  otherMachine.onclick = () => flow && ((flow.pasteShown = true), update(), pasted.focus());
  const [kept, revokeKept] = [$("kept"), $("revoke-kept")];
  revokeKept.onclick = () => tell(model, { type: "revoke_kept" });
  const patBox = $("pat-box");
  // where no keyring works, an explicit choice: a .env file only its owner can read, which git ignores
  rememberFile.title = "Saves SPECKLE_TOKEN and SPECKLE_SERVER to a .env file readable only by you (mode 0600) and ignored by git";
  rememberFile.onclick = () => tell(model, { type: "remember_file" });
  login.onclick = startLogin;
  cancel.onclick = cancelLogin;
  patForm.onsubmit = submitPat;
  pasteForm.onsubmit = submitPaste;
  pasted.addEventListener("keydown", (event) => event.key === "Enter" && !event.isComposing
    && (event.stopPropagation(), submitPaste(event)));
  // JupyterLab keeps Enter in a widget's form from submitting it: handle the key on the field itself
  // (and keep the notebook's own Enter shortcut from taking the focus away)
  pat.addEventListener("keydown", (event) => event.key === "Enter" && !event.isComposing
    && (event.stopPropagation(), submitPat(event)));
  logout.onclick = () => tell(model, { type: "logout" });
  remember.onchange = () => (model.set("remember", remember.checked), model.save_changes());

  const typed = () => ext?.servers.find((s) => host(s.url) === host(server.value));
  // a server set up nowhere: the extension signs in to it with the public connector app, if anything answers there
  const otherScheme = (v) => /^(?!https?:)\w+:\/\//i.test(v); // "htp://...": no address the kernel would take
  const anywhere = () => (ext?.any_server && server.value.trim() && !typed() && !otherScheme(server.value.trim())
    ? { url: origin(server.value.trim()), name: host(server.value), oauth: true, app: "public" } : undefined);
  const chosen = () => (typed()?.oauth ? typed() : anywhere());
  // what the public connector app cannot give this notebook, known before any tab opens
  const lacking = () => { const c = chosen(); return c?.app === "public" && Array.isArray(c.scopes)
    ? get("requested_scopes").filter((s) => !c.scopes.includes(s)) : []; };
  // the server typed, else the kernel's own default (SPECKLE_SERVER, or app.speckle.systems)
  const kernelServer = () => (server.value.trim() ? origin(server.value.trim()) : null);
  const tokenPage = () => origin(server.value.trim() || get("server_url") || ext?.default_server || "app.speckle.systems") + "/settings";

  function update() {
    const busy = get("busy");
    const signed = get("status") === "signed_in";
    const until = get("waiting_until") * 1000;
    // login() waits in its cell for the kernel's own sign-in: this panel's messages would reach the kernel only
    // after the cell, so it offers just the address, and how to stop the wait
    const own = !signed && !stale && get("sign_in_url");
    signedOut.hidden = signed || stale;
    signedIn.hidden = !signed || stale;
    // the hub's sign-in is the hub's to keep: nothing for this machine's keyring
    rememberRow.hidden = stale || (signed && get("source") === "hub");
    kept.hidden = signed || stale || !get("kept_token");
    const missing = lacking();
    login.hidden = ext === undefined;
    noExt.hidden = ext !== null || !!own;
    server.readOnly = !!own; // the kernel's sign-in has started for its server
    login.disabled = own ? busy : busy || !!flow || (ext !== null && !chosen()) || missing.length > 0;
    const pick = typed();
    noOAuth.hidden = !(ext && server.value.trim() && !chosen()) && !missing.length;
    noOAuth.textContent = missing.length
      ? `Speckle's connector app cannot give the scope${missing.length === 1 ? "" : "s"} this notebook asks for (${missing.join(", ")}): use a personal access token that has ${missing.length === 1 ? "it" : "them"}.`
      : pick
      ? `This Jupyter server has no Speckle app for ${pick.name || pick.url}, so it takes personal access tokens only.`
      : ext?.servers.some((s) => s.app === "public")
      ? `This Jupyter server signs in with Speckle only to ${ext.servers.filter((s) => s.oauth).map((s) => s.name || s.url).join(", ")}: use a personal access token for another server.`
      : "Log in with Speckle is off here for servers without a registered app (the public connector app is turned off): use a personal access token.";
    appNote.hidden = !(chosen()?.app === "public") || !!missing.length || !!flow;
    appNote.textContent = "Signs in through Speckle's connector app: nothing to set up, and its tokens can also write your projects.";
    waiting.hidden = !flow && !own;
    // on this machine the tab comes back by itself: the box for its address only when it is needed, asked for,
    // or the tab has not come back after a few seconds
    const pasteWanted = flow?.pasteNeeded || flow?.pasteShown || Date.now() - (flow?.started || 0) > PASTE_AFTER;
    pasteForm.hidden = !flow?.public || !!own || !pasteWanted;
    otherMachine.hidden = !flow?.public || !!own || !pasteForm.hidden;
    cancel.hidden = !!own;
    patBox.hidden = !!own;
    if (own) link.href = get("sign_in_url"), link.textContent = "Open the Speckle sign-in page";
    // one countdown: the login's own, or login()'s wait when that ends first
    if (flow) timeLeft.textContent = `${left(until > Date.now() ? Math.min(flow.deadline, until) : flow.deadline)} left`;
    else timeLeft.textContent = "";
    makeToken.href = tokenPage();
    switchLink.href = origin(server.value.trim() || get("server_url") || ext?.default_server || "app.speckle.systems");
    switchBox.hidden = !!own || !!flow;
    name.textContent = get("user_name");
    email.textContent = get("user_email") && `<${get("user_email")}>`;
    serverName.textContent = get("server_name") || get("server_url");
    variable.textContent = get("variable");
    hintServer.textContent = `SPECKLE_SERVER=${get("server_url")}`;
    const src = get("user_avatar");
    avatar.hidden = !/^(data:image\/|https?:)/i.test(src);
    if (!avatar.hidden && avatar.getAttribute("src") !== src) avatar.src = src;
    scopes.replaceChildren(...get("scopes").map((s) => h("li", {
      className: "snb-scope" + (s.write ? " snb-scope-write" : "") + (s.unrequested ? " snb-scope-extra" : ""),
      title: s.unrequested ? "a write permission this notebook did not ask for" : "",
      textContent: s.name + (s.write ? " (write)" : ""),
    })));
    const listed = get("desktop_accounts");
    desktop.hidden = !listed.length || !!own;
    if (JSON.stringify(listed) !== shownAccounts) { // rebuilt only when it changes, so focus stays put
      shownAccounts = JSON.stringify(listed);
      accounts.replaceChildren(...listed.map((a, index) => h("li", {}, h("button", {
        type: "button", className: "snb-desktop-account", textContent: a.label, ariaLabel: "Sign in as " + a.label,
        onclick: () => ((focusOnSignIn = true), tell(model, { type: "desktop", index }), say("Checking the desktop account…")),
      }))));
    }
    const asked = get("requested_scopes");
    requested.hidden = !asked.length;
    requested.textContent = `This notebook asks for the scope${asked.length === 1 ? "" : "s"}: ${asked.join(", ")}`;
    for (const b of [logout, patSubmit, revokeKept, ...accounts.querySelectorAll("button")]) b.disabled = busy;
    remember.checked = get("remember");
    rememberFile.hidden = !(signed && get("no_keyring"));
    // one deadline on show: a login in progress counts down its own, so login()'s is named only before one starts
    const kernelWaits = signed || until <= Date.now() ? ""
      : flow ? " The next cells run once you have signed in."
      : ` The next cells run once you have signed in (login() waits until ${new Date(until).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" })}).`;
    const ownText = (get("sign_in_paste")
      ? "Log in with Speckle opens Speckle's sign-in page: sign in there, then paste the address the sign-in tab ended on at the prompt below this cell."
      : "Log in with Speckle opens Speckle's sign-in page: the next cells run once you have signed in there.")
      + " login() waits in this cell: to stop it, or to use a personal access token instead, interrupt the kernel (Kernel \u2192 Interrupt)."
      + (get("sign_in_paste") ? "" : " Sign-in tab ended on a page that can't be reached? Interrupt, then run login(paste=True).");
    status.textContent = stale ? "" : busy ? "Checking the sign-in…" : own ? [get("message"), ownText].filter(Boolean).join(" ")
      : flow ? (flow.tab ? "Waiting for you to sign in with Speckle in the new tab…" : "The browser blocked the sign-in tab: open it with the link.") + kernelWaits
      : ((!note[1] && note[0]) || get("message")) + kernelWaits;
    const kernelError = get("error") === dismissed ? "" : get("error");
    error.replaceChildren(...linked(stale ? STALE : (note[1] && note[0]) || kernelError));
    error.hidden = !error.textContent;
  }

  function startLogin() {
    if (get("sign_in_url") && get("status") !== "signed_in") return openOwn();
    if (ext === null) return startKernelLogin();
    const conf = chosen();
    if (!conf) return say("Log in with Speckle is not set up for this server: use a personal access token.", true);
    stopFlow();
    const f = { id: randomId(), started: Date.now(), deadline: Date.now() + 10 * 60e3, mailbox: !!get("mailbox"),
      public: conf.app === "public" };
    // on a hub with the Speckle login service, the tab signs in at the service (`login_base`), which holds the secret
    const url = (ext.login_base || baseUrl() + "speckle-auth/") + "login?server=" + encodeURIComponent(conf.url) + "&flow=" + f.id
      + "&_xsrf=" + encodeURIComponent(xsrf()); // the login route changes state: it refuses other sites
    try { // opened in the click itself, or popup blockers stop it
      f.tab = window.open(url, "_blank");
      if (f.tab) f.tab.opener = null; // Speckle's pages must never reach back into this tab
    } catch {}
    link.href = url;
    link.textContent = f.tab ? "Open the Speckle sign-in page again" : "Open the Speckle sign-in page";
    try { // the result page (same origin) tells us at once; polling is the fallback that always works
      f.channel = new BroadcastChannel("speckle-nb-auth");
      f.channel.onmessage = ({ data: m }) => m?.type !== "speckle-auth" || m.flow !== f.id ? null
        : m.status === "failed" && m.message ? (stopFlow(f), closeTab(f), say(String(m.message), true))
        : f.mailbox ? tell(model, { type: "flow_done", flow: f.id }) : poll(f);
    } catch {}
    // with a mailbox the kernel follows and claims the login itself; this view only counts down
    if (f.mailbox) tell(model, { type: "flow", flow: f.id, server: conf.url });
    f.timer = setInterval(() => (f.mailbox ? tick(f) : poll(f)), 1000);
    flow = f;
    focusOnSignIn = true;
    say("");
    cancel.focus();
  }

  function openOwn() {
    try {
      const tab = window.open(get("sign_in_url"), "_blank");
      if (tab) tab.opener = null;
    } catch {}
    focusOnSignIn = true;
  }

  // No extension: the kernel makes the login (its verifier stays there) and listens for the answer. The tab is
  // opened in the click (popup blockers), blank, and sent to Speckle once the kernel names the address.
  function startKernelLogin() {
    stopFlow();
    const f = { id: randomId(), started: Date.now(), deadline: Date.now() + 10 * 60e3, kernel: true, public: true };
    try {
      f.tab = window.open("about:blank", "_blank");
      if (f.tab) f.tab.opener = null;
    } catch {}
    link.removeAttribute("href");
    link.textContent = "Open the Speckle sign-in page";
    tell(model, { type: "kernel_login", flow: f.id, server: kernelServer() });
    f.timer = setInterval(() => tick(f), 1000);
    flow = f;
    focusOnSignIn = true;
    say("");
    cancel.focus();
  }

  function submitPaste(event) {
    event.preventDefault();
    const f = flow;
    const text = pasted.value; // holds the code: cleared at once
    pasted.value = "";
    if (!f) return;
    if (!text.trim()) return say("Paste the address of the page the sign-in tab ended on first.", true);
    if (f.kernel) return tell(model, { type: "paste", flow: f.id, pasted: text }), say("Checking the sign-in…");
    say("Checking the sign-in…");
    api("flows/" + f.id + "/code", { pasted: text }).then((r) => {
      if (!r.ok) return say(r.data.message || `The sign-in could not be finished (HTTP ${r.status}): log in again.`, true);
      if (!f.mailbox) poll(f); // with a mailbox the kernel is following this login and claims it
    }, () => say("Jupyter could not be reached to finish the sign-in: try again.", true));
  }

  function tick(f) {
    if (Date.now() > f.deadline) return stopFlow(f), say(ENDED.expired, true);
    // the kernel follows this login: ask once whether its answer can come back by itself (else: paste-back)
    if (f.public && !f.kernel && f.asked === undefined && Date.now() - f.started > 1500) {
      f.asked = true;
      api("flows/" + f.id).then((r) => r.data.paste && ((f.pasteNeeded = true), update())).catch(() => {});
    }
    update();
  }

  function stopFlow(f = flow) {
    if (!f) return;
    f.stopped = true;
    clearInterval(f.timer);
    f.channel?.close();
    if (flow === f) flow = null;
  }

  // The tab ended on this server's page saying why the sign-in failed, which this panel now says too: close
  // it, so the person is back in the notebook rather than on a page with nothing left to do.
  function closeTab(f) {
    try { if (f.tab && !f.tab.closed) f.tab.close(); } catch {}
  }

  function cancelLogin() {
    // the extension listens on the connector's port for a public-app login: it closes now, not in 10 minutes
    if (flow?.public && !ext?.login_base) api("flows/" + flow.id + "/cancel", null).catch(() => {});
    stopFlow();
    tell(model, { type: "cancel" });
    say("Sign-in cancelled.");
    login.focus();
  }

  async function poll(f) {
    if (f.stopped || f.busy) return;
    if (Date.now() > f.deadline) return stopFlow(f), say(ENDED.expired, true);
    f.busy = true;
    update();
    try {
      const r = await api("flows/" + f.id);
      const state = r.ok ? r.data.status : r.status === 404 ? "pending" : "failed"; // 404: the tab has not started it yet
      if (r.data.paste) f.pasteNeeded = true; // the answer cannot come back by itself: the box is needed
      if (f.stopped || state === "pending") return;
      stopFlow(f);
      if (state !== "done") return closeTab(f), say(r.data.message || ENDED[state] || ENDED.failed, true);
      let claim = await api("flows/" + f.id + "/claim", null);
      if (!claim.ok || !claim.data.token) return say(claim.data.message || "The token could not be collected: log in again.", true);
      const { server_url, token, refresh_token, app_id } = claim.data;
      model.send({ type: "oauth", server_url, token, refresh_token: refresh_token || null, app_id: app_id || null });
      claim = null; // from here on the token lives only in the kernel
      say("Signed in with Speckle: checking the token in the kernel…");
    } catch {
      // a network hiccup: the next tick asks again, unless it broke the claim itself
      if (f.stopped && flow === null) say("Jupyter could not be reached to finish the sign-in: log in again.", true);
    } finally {
      f.busy = false;
    }
  }

  function submitPat(event) {
    event.preventDefault();
    const token = pat.value; // read on submit, cleared at once
    pat.value = "";
    if (!token.trim()) return say("Paste a personal access token first.", true);
    tell(model, { type: "pat", server: server.value.trim(), token });
    focusOnSignIn = true;
    say("Checking the token…");
  }

  const onKernelMessage = (msg) => {
    if (!flow || msg?.flow !== flow.id) return;
    if (msg.type === "flow_ended") {
      if (flow.kernel && flow.tab && !flow.tab.closed && !flow.url) flow.tab.close(); // still blank: nothing to see
      stopFlow(), update(), login.focus();
    } else if (msg.type === "authorize" && typeof msg.url === "string" && /^https?:\/\//.test(msg.url)) {
      flow.url = link.href = msg.url;
      flow.pasteNeeded = !!msg.paste;
      link.textContent = flow.tab ? "Open the Speckle sign-in page again" : "Open the Speckle sign-in page";
      if (flow.tab && !flow.tab.closed) flow.tab.location.href = msg.url;
      update();
    }
  };
  const onStale = () => ((stale = true), stopFlow(), update());
  const keys = "status busy message error server_url server_name user_name user_email user_avatar variable remember desktop_accounts requested_scopes scopes waiting_until no_keyring kept_token sign_in_url sign_in_paste".split(" ");
  let wasWaiting = false;
  let stopKeeping = () => {};
  // login() may be waiting already when this view is made (it is, in a Run All with the extension)
  const followWaiting = () => {
    const waitingNow = get("status") !== "signed_in" && get("waiting_until") * 1000 > Date.now();
    if (waitingNow && !wasWaiting) stopKeeping = keepInView(el);
    if (!waitingNow) stopKeeping();
    wasWaiting = waitingNow;
  };
  const onChange = (key) => {
    const signed = get("status") === "signed_in";
    followWaiting();
    if (signed) stopFlow(); // signed in, here or some other way meanwhile
    // the kernel's news replaces this view's own note; a field it merely clears (its old error, as it starts
    // following a login) must not wipe what this view just learnt (the tab's "Nothing answers at …")
    if (key === "status" || ((key === "message" || key === "error") && get(key))) note = ["", false];
    if (key === "error" || key === "busy" || key === "status") dismissed = null;
    update();
    // keep the keyboard in the panel: on "Log out" once it can take the focus (it is disabled while the kernel
    // checks, and the end of that check may come in a later message than the sign-in), and again after the
    // frontend's own focus handling of the field that just hid
    if (signed && !get("busy") && focusOnSignIn) {
      focusOnSignIn = false;
      logout.focus();
      setTimeout(() => document.activeElement !== logout && logout.focus(), 0);
    }
    if (get("error") || (!signed && wasSignedIn)) focusOnSignIn = false;
    wasSignedIn = signed;
  };
  const handlers = keys.map((key) => [key, () => onChange(key)]);
  for (const [key, handler] of handlers) model.on("change:" + key, handler);
  model.on("msg:custom", onKernelMessage);
  model.on("comm_live_update", onStale); // the widget manager lost the kernel: restarted or gone
  model.on("comm:close", onStale);
  server.addEventListener("input", () => {
    // an error about the server before ("This token was not accepted by …") is not about the one being typed
    if (note[1]) note = ["", false];
    if (get("error")) dismissed = get("error");
    update();
  });
  server.value = get("server_url");
  server.placeholder = get("default_server") || "app.speckle.systems";
  extension().then((status) => {
    ext = status;
    servers.replaceChildren(...(ext?.servers || []).map((s) => h("option", { value: s.url, label: s.name || s.url })));
    if (!server.value) server.value = ext ? ext.default_server || ext.servers[0]?.url || "" : get("default_server");
    if (!ext && refusedWith) noExt.textContent = `Jupyter refused the Speckle login extension here (HTTP ${refusedWith}), `
      + "so this kernel signs you in through Speckle's connector app; a personal access token, a desktop account or "
      + "SPECKLE_TOKEN work too. Reloading the page may bring the extension back.";
    update();
  });
  update();
  followWaiting();
  const ready = { type: "ready", view: PAGE };
  model.send(ready);
  if (get("mailbox")) tell(model, ready); // a kernel waiting in login() hears only the mailbox
  return () => {
    stopFlow();
    stopKeeping();
    for (const [key, handler] of handlers) model.off("change:" + key, handler);
    model.off("msg:custom", onKernelMessage);
    model.off("comm_live_update", onStale);
    model.off("comm:close", onStale);
  };
}

export default { initialize, render };
