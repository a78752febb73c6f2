// Speckle login panel, browser half. It talks to the Jupyter server extension (speckle-auth/*) and hands tokens
// to the kernel as one-shot messages (model.send): a token never enters the synced state.
const ENDED = {
  denied: "You chose not to give access: nothing changed.",
  expired: "The sign-in expired: try again.",
  failed: "The sign-in failed: try again.",
  superseded: "A newer sign-in started in this browser replaced this one.",
};

function baseUrl() {
  try {
    const base = JSON.parse(document.getElementById("jupyter-config-data").textContent).baseUrl;
    return typeof base === "string" ? base.replace(/\/?$/, "/") : null;
  } catch {
    return null; // not a Jupyter page: VS Code, Colab...
  }
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
  return { ok: response.ok, status: response.status, data: data || {} };
}

let statusOnce; // the extension's status (kept once it answered); null where there is no extension
let refusedWith = 0; // an HTTP error other than 404 from the status route: the extension is there but said no
const extension = () => (statusOnce ??= (baseUrl() === null ? Promise.resolve(null) : api("status"))
  .then((r) => ((refusedWith = r && !r.ok && r.status !== 404 ? r.status : 0),
    r?.ok && Array.isArray(r.data.servers) ? r.data : null), () => null)
  .then((status) => status || ((statusOnce = undefined), null)));

function randomId() { // no crypto.randomUUID: it exists only in secure contexts
  const bytes = crypto.getRandomValues(new Uint8Array(24)); // 32 base64url characters
  return btoa(String.fromCharCode(...bytes)).replace(/\+/g, "-").replace(/\//g, "_");
}

const host = (url) => (url || "").trim().replace(/^\w+:\/\//, "").replace(/\/+$/, "").toLowerCase();

const h = (tag, props, ...children) => {
  const node = Object.assign(document.createElement(tag), props);
  node.append(...children);
  return node;
};

// Once per model: renew a sign-in through the extension when the kernel asks.
function initialize({ model }) {
  const onMessage = async (msg) => {
    if (msg?.type !== "refresh") return;
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
  let shownAccounts = "";
  const say = (text, isError = false) => ((note = [text, isError]), update());

  // Static markup only: everything that comes from the model is set with textContent below.
  el.innerHTML = `<div class="snb-panel">
  <div class="snb-out">
    <div class="snb-row"><label for="${id}-s">Speckle server</label>
      <input id="${id}-s" class="snb-server" list="${id}-l" placeholder="app.speckle.systems" autocomplete="off">
      <datalist id="${id}-l"></datalist><button type="button" class="snb-login">Log in with Speckle</button></div>
    <p class="snb-noext">Log in with Speckle needs this package's Jupyter server extension, which does not run
      here: use a personal access token, a desktop account or SPECKLE_TOKEN.</p>
    <div class="snb-waiting snb-row"><span class="snb-progress"></span>
      <a class="snb-open-link" target="_blank" rel="noopener">Open the Speckle sign-in page</a>
      <button type="button" class="snb-cancel">Cancel</button></div>
    <details class="snb-pat-box"><summary>Use a personal access token</summary>
      <form class="snb-pat snb-row"><label for="${id}-p">Token</label>
        <input id="${id}-p" class="snb-pat-input" type="password" autocomplete="off">
        <button type="submit" class="snb-pat-submit">Sign in with token</button></form></details>
    <div class="snb-desktop">Desktop accounts:
      <ul class="snb-desktop-list" aria-label="Speckle desktop accounts"></ul></div>
    <p class="snb-requested"></p>
  </div>
  <div class="snb-in snb-row"><img class="snb-avatar" alt="">
    <div class="snb-who"><div><strong class="snb-user-name"></strong> <span class="snb-user-email"></span></div>
      <div>on <span class="snb-server-name"></span>, in this notebook as <code class="snb-variable"></code></div>
      <ul class="snb-scopes" aria-label="What this token may do"></ul></div>
    <button type="button" class="snb-logout">Log out</button></div>
  <div class="snb-row"><input id="${id}-r" class="snb-remember" type="checkbox"><label for="${id}-r">Remember me</label></div>
  <p class="snb-status" role="status" aria-live="polite"></p>
  <p class="snb-error" role="alert"></p>
</div>`;
  const $ = (name) => el.querySelector(".snb-" + name);
  const [server, servers, login, noExt, waiting, progress, link, pat, patSubmit, desktop, accounts, requested, signedOut,
    signedIn, avatar, name, email, serverName, variable, scopes, logout, remember, status, error] = ["server", "panel datalist",
    "login", "noext", "waiting", "progress", "open-link", "pat-input", "pat-submit", "desktop", "desktop-list", "requested",
    "out", "in", "avatar", "user-name", "user-email", "server-name", "variable", "scopes", "logout", "remember", "status",
    "error"].map($);
  login.onclick = startLogin;
  $("cancel").onclick = cancelLogin;
  $("pat").onsubmit = submitPat;
  logout.onclick = () => model.send({ type: "logout" });
  remember.onchange = () => (model.set("remember", remember.checked), model.save_changes());

  const chosen = () => ext?.servers.find((s) => s.oauth && host(s.url) === host(server.value));

  function update() {
    const busy = get("busy");
    signedOut.hidden = get("status") === "signed_in";
    signedIn.hidden = !signedOut.hidden;
    login.hidden = ext === null;
    noExt.hidden = ext !== null;
    login.disabled = busy || !!flow || !chosen();
    waiting.hidden = !flow;
    name.textContent = get("user_name");
    email.textContent = get("user_email") && `<${get("user_email")}>`;
    serverName.textContent = get("server_name") || get("server_url");
    variable.textContent = get("variable");
    const src = get("user_avatar");
    avatar.hidden = !/^(data:image\/|https?:)/i.test(src);
    if (!avatar.hidden && avatar.getAttribute("src") !== src) avatar.src = src;
    scopes.replaceChildren(...get("scopes").map((s) => h("li", {
      className: "snb-scope" + (s.write ? " snb-scope-write" : "") + (s.unrequested ? " snb-scope-extra" : ""),
      title: s.unrequested ? "a write permission this notebook did not ask for" : "",
      textContent: s.name + (s.write ? " (write)" : ""),
    })));
    const listed = get("desktop_accounts");
    desktop.hidden = !listed.length;
    if (JSON.stringify(listed) !== shownAccounts) { // rebuilt only when it changes, so focus stays put
      shownAccounts = JSON.stringify(listed);
      accounts.replaceChildren(...listed.map((a, index) => h("li", {}, h("button", {
        type: "button", className: "snb-desktop-account", textContent: a.label, ariaLabel: "Sign in as " + a.label,
        onclick: () => (model.send({ type: "desktop", index }), say("Checking the desktop account…")),
      }))));
    }
    requested.hidden = !get("requested_scopes").length;
    requested.textContent = "This notebook asks for: " + get("requested_scopes").join(", ");
    for (const b of [logout, patSubmit, ...accounts.querySelectorAll("button")]) b.disabled = busy;
    remember.checked = get("remember");
    status.textContent = busy ? "Checking the sign-in…" : flow ? progress.textContent : (!note[1] && note[0]) || get("message");
    error.textContent = (note[1] && note[0]) || get("error");
    error.hidden = !error.textContent;
  }

  function startLogin() {
    const conf = chosen();
    if (!conf) return say("Log in with Speckle is not set up for this server: use a personal access token.", true);
    stopFlow();
    const f = { id: randomId(), deadline: Date.now() + 11 * 60e3 };
    const url = baseUrl() + "speckle-auth/login?server=" + encodeURIComponent(conf.url) + "&flow=" + f.id
      + "&_xsrf=" + encodeURIComponent(xsrf()); // the login route changes state: it refuses other sites
    let tab = null;
    try { // opened in the click itself, or popup blockers stop it
      tab = window.open(url, "_blank");
      if (tab) tab.opener = null; // Speckle's pages must never reach back into this tab
    } catch {}
    link.href = url;
    link.hidden = !!tab;
    progress.textContent = tab ? "Waiting for you to sign in with Speckle in the new tab…" : "The browser blocked the sign-in tab: open it with the link.";
    try { // the result page (same origin) tells us at once; polling is the fallback that always works
      f.channel = new BroadcastChannel("speckle-nb-auth");
      f.channel.onmessage = ({ data: m }) => m?.type !== "speckle-auth" || m.flow !== f.id ? null
        : m.status === "failed" && m.message ? (stopFlow(f), say(String(m.message), true)) : poll(f);
    } catch {}
    f.timer = setInterval(() => poll(f), 1000);
    flow = f;
    say("");
  }

  function stopFlow(f = flow) {
    if (!f) return;
    f.stopped = true;
    clearInterval(f.timer);
    f.channel?.close();
    if (flow === f) flow = null;
  }

  function cancelLogin() {
    stopFlow();
    model.send({ type: "cancel" });
    say("Sign-in cancelled.");
    login.focus();
  }

  async function poll(f) {
    if (f.stopped || f.busy) return;
    if (Date.now() > f.deadline) return stopFlow(f), say(ENDED.expired, true);
    f.busy = true;
    try {
      const r = await api("flows/" + f.id);
      const state = r.ok ? r.data.status : r.status === 404 ? "pending" : "failed"; // 404: the tab has not started it yet
      if (f.stopped || state === "pending") return;
      stopFlow(f);
      if (state !== "done") return say(r.data.message || ENDED[state] || ENDED.failed, true);
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
    model.send({ type: "pat", server: server.value.trim(), token });
    say("Checking the token…");
  }

  const keys = "status busy message error server_url server_name user_name user_email user_avatar variable remember desktop_accounts requested_scopes scopes".split(" ");
  const onChange = () => {
    if (get("status") === "signed_in") stopFlow(); // signed in some other way meanwhile
    note = ["", false];
    update();
  };
  for (const key of keys) model.on("change:" + key, onChange);
  server.addEventListener("input", update);
  server.value = get("server_url");
  extension().then((status) => {
    ext = status;
    servers.replaceChildren(...(ext?.servers || []).map((s) => h("option", { value: s.url, label: s.name || s.url })));
    if (ext && !server.value) server.value = ext.default_server || ext.servers[0]?.url || "";
    if (!ext && refusedWith) noExt.textContent = `Jupyter refused the Speckle login (HTTP ${refusedWith}): reload this `
      + "page to try again; meanwhile use a personal access token, a desktop account or SPECKLE_TOKEN.";
    update();
  });
  update();
  model.send({ type: "ready" });
  return () => {
    stopFlow();
    for (const key of keys) model.off("change:" + key, onChange);
  };
}

export default { initialize, render };
