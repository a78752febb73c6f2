"""`make bench`: every figure of the README's performance section, each as a ratio to a baseline measured in the
same run. Prints a Markdown table and writes test-output/bench.json.

    python -m benchmarks            # all
    python -m benchmarks import     # one group: import, startup, login, flows, client, restore, hub, browser
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx

from ._harness import ROOT, emulator_process, free_port, jupyter_server, median, percentile

Row = dict[str, Any]


def time_import(module: str, runs: int) -> float:
    """Median seconds of `import module` in a fresh interpreter (the interpreter's own start subtracted)."""
    def run(code: str) -> float:
        out = subprocess.run(
            [sys.executable, "-c", f"import time; t = time.perf_counter(); {code}; print(time.perf_counter() - t)"],
            capture_output=True, text=True, check=True,
        ).stdout
        return float(out.strip().splitlines()[-1])

    return median([run(f"import {module}") for _ in range(runs)])


def bench_import() -> list[Row]:
    runs = 15
    ours, base, sdk = (time_import(m, runs) for m in ("speckle_nb_auth", "httpx", "specklepy"))
    # `import specklepy` loads almost nothing; what a user needs before any call is its client class.
    ours_client = time_import("speckle_nb_auth; speckle_nb_auth.Client", runs)
    sdk_client = time_import("specklepy.api.client", runs)
    return [
        {"figure": "import speckle_nb_auth vs import httpx", "ours_ms": ours * 1e3, "baseline_ms": base * 1e3,
         "ratio": ours / base, "target": "<= 1.5", "ok": ours / base <= 1.5},
        {"figure": "import speckle_nb_auth vs import specklepy (ratio: how many times faster)",
         "ours_ms": ours * 1e3, "baseline_ms": sdk * 1e3, "ratio": sdk / ours, "target": ">= 3",
         "ok": sdk / ours >= 3},
        {"figure": "speckle_nb_auth.Client ready to use vs specklepy.api.client (ratio: how many times faster)",
         "ours_ms": ours_client * 1e3, "baseline_ms": sdk_client * 1e3, "ratio": sdk_client / ours_client,
         "target": ">= 3", "ok": sdk_client / ours_client >= 3},
    ]


def bench_first_login_call() -> list[Row]:
    """`login()`'s first call in a real kernel (widget modules load then), against its second call."""
    from jupyter_client.manager import start_new_kernel

    with tempfile.TemporaryDirectory() as tmp, emulator_process("http://127.0.0.1:1/cb", Path(tmp)) as emu:
        env = {**os.environ, "SPECKLE_SERVER": emu.url, "SPECKLE_TOKEN": emu.credentials["pat"],
               "PYTHONPATH": str(ROOT / "tests"), "PYTHON_KEYRING_BACKEND": "support.memory_keyring.MemoryKeyring"}
        km, kc = start_new_kernel(kernel_name="python3", env=env)
        try:
            first = kernel_seconds(kc, "from speckle_nb_auth import login\nlogin()")
            again = kernel_seconds(kc, "login()")
        finally:
            kc.stop_channels()
            km.shutdown_kernel(now=True)
    return [{"figure": "login() first call in a kernel (signs in from SPECKLE_TOKEN) vs a second call",
             "ours_ms": first * 1e3, "baseline_ms": again * 1e3, "ratio": first / again, "target": "-", "ok": True}]


def kernel_seconds(kc: Any, code: str) -> float:
    wrapped = (f"import time as _t\n_t0 = _t.perf_counter()\n{code}\n"
               "print('BENCH', _t.perf_counter() - _t0)")
    seconds: list[float] = []

    def output(msg: dict[str, Any]) -> None:
        text = msg.get("content", {}).get("text", "")
        for line in text.splitlines():
            if line.startswith("BENCH "):
                seconds.append(float(line.split()[1]))

    reply = kc.execute_interactive(wrapped, timeout=120, output_hook=output)
    if reply["content"]["status"] != "ok" or not seconds:
        raise RuntimeError(f"kernel code failed: {reply['content']}")
    return seconds[0]


def bench_startup() -> list[Row]:
    on, off = [], []
    for _ in range(5):
        for extension, bucket in ((True, on), (False, off)):
            with jupyter_server(free_port(), {}, extension=extension) as server:
                bucket.append(server.seconds_to_ready)
    cost = median(on) / median(off) - 1
    return [{"figure": "Jupyter server start-up, extension enabled vs disabled", "ours_ms": median(on) * 1e3,
             "baseline_ms": median(off) * 1e3, "ratio": median(on) / median(off), "target": "cost < 5%",
             "ok": cost < 0.05}]


def one_login(jupyter: str, jupyter_token: str, emu: Any) -> float:
    """One whole login at HTTP level: start -> consent -> callback -> claim -> validated client."""
    from speckle_nb_auth import Client

    flow = os.urandom(18).hex()
    creds = emu.credentials
    start = time.perf_counter()
    with httpx.Client(headers={"Authorization": f"token {jupyter_token}"}) as browser:
        started = browser.get(f"{jupyter}/speckle-auth/login", params={"server": emu.url, "flow": flow})
        challenge = started.headers["location"].rstrip("/").rsplit("/", 1)[1]
        consent = httpx.get(f"{emu.url}/auth/accesscode", params={
            "appId": creds["app_id"], "challenge": challenge, "token": creds["session_token"],
            "preventRedirect": "true"})
        callback = consent.json()["redirectUrl"]
        assert "access_code" in parse_qs(urlsplit(callback).query)
        assert browser.get(callback).status_code in (200, 302)
        claimed = browser.post(f"{jupyter}/speckle-auth/flows/{flow}/claim").json()
    with Client(claimed["server_url"], claimed["token"], claimed["refresh_token"]) as client:
        assert client.user.id
    return time.perf_counter() - start


def bench_login() -> list[Row]:
    port = free_port()
    with tempfile.TemporaryDirectory() as tmp, \
            emulator_process(f"http://127.0.0.1:{port}/speckle-auth/callback", Path(tmp)) as emu:
        env = {"SPECKLE_SERVER": emu.url, "SPECKLE_APP_ID": emu.credentials["app_id"],
               "SPECKLE_APP_SECRET": emu.credentials["app_secret"]}
        with jupyter_server(port, env) as server:
            for _ in range(5):
                one_login(server.url, server.token, emu)  # warm up connections and caches
            sequential = [one_login(server.url, server.token, emu) for _ in range(100)]
            with ThreadPoolExecutor(50) as pool:
                started = time.perf_counter()
                concurrent = list(pool.map(lambda _: one_login(server.url, server.token, emu), range(50)))
                wall = time.perf_counter() - started
            with httpx.Client() as http:
                status = [_timed(lambda: http.get(f"{server.url}/api/status",
                                                  headers={"Authorization": f"token {server.token}"}))
                          for _ in range(100)]
    return [
        {"figure": "login at HTTP level, sequential (p50 / p99) vs a plain Jupyter API call",
         "ours_ms": median(sequential) * 1e3, "p99_ms": percentile(sequential, 99) * 1e3,
         "baseline_ms": median(status) * 1e3, "ratio": median(sequential) / median(status), "target": "-",
         "ok": True},
        {"figure": "login at HTTP level, 50 concurrent flows (p50 / p99) vs sequential p50",
         "ours_ms": median(concurrent) * 1e3, "p99_ms": percentile(concurrent, 99) * 1e3,
         "baseline_ms": median(sequential) * 1e3, "ratio": median(concurrent) / median(sequential),
         "wall_s": wall, "target": "all 50 complete", "ok": len(concurrent) == 50},
    ]


def _timed(fn: Callable[[], object]) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def bench_flows() -> list[Row]:
    """10,000 abandoned flows into a store bounded at its default size, against one holding all 10,000."""
    from speckle_nb_auth._protocol import make_verifier
    from speckle_nb_auth.core._flows import FlowStore

    def fill(store: FlowStore, n: int) -> tuple[float, int, list[float]]:
        tracemalloc.start()
        costs = []
        for i in range(n):
            verifier = make_verifier()
            t = time.perf_counter()
            store.start(f"flow-{i:012d}-abandoned", "https://speckle.example", verifier, verifier)
            costs.append(time.perf_counter() - t)
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        return peak, len(store), costs

    bounded_peak, bounded_len, bounded_costs = fill(FlowStore(), 10_000)
    full_peak, full_len, _ = fill(FlowStore(max_flows=10_000), 10_000)
    evicting = bounded_costs[FlowStore().max_flows:]
    return [
        {"figure": "memory after 10,000 abandoned flows: bounded store vs unbounded", "ours_kib": bounded_peak / 1024,
         "baseline_kib": full_peak / 1024, "ratio": bounded_peak / full_peak, "flows_held": bounded_len,
         "target": "held <= max_flows", "ok": bounded_len <= FlowStore().max_flows and full_len == 10_000},
        {"figure": "cost of a login start when the store is full (eviction) vs when it has room",
         "ours_us": median(evicting) * 1e6, "baseline_us": median(bounded_costs[:1000]) * 1e6,
         "ratio": median(evicting) / median(bounded_costs[:1000]), "target": "O(1)", "ok": True},
    ]


def bench_client() -> list[Row]:
    from speckle_nb_auth import Client

    query = "query { activeUser { id name } }"
    runs = 300
    with tempfile.TemporaryDirectory() as tmp, emulator_process("http://127.0.0.1:1/cb", Path(tmp)) as emu:
        token = emu.credentials["pat"]
        with httpx.Client(base_url=emu.url, headers={"Authorization": f"Bearer {token}"}) as raw, \
                Client(emu.url, token) as ours:
            sdk = ours.specklepy()
            from gql import gql

            parsed = gql(query)
            calls = {
                "raw": lambda: raw.post("/graphql", json={"query": query}).json(),
                "ours": lambda: ours.graphql(query),
                "specklepy": lambda: sdk.httpclient.execute(parsed),
            }
            for fn in calls.values():
                for _ in range(20):
                    fn()
            times: dict[str, list[float]] = {k: [] for k in calls}
            for _ in range(runs):  # interleaved, so drift hits all three alike
                for name, fn in calls.items():
                    times[name].append(_timed(fn))
    raw_m, ours_m, sdk_m = (median(times[k]) for k in ("raw", "ours", "specklepy"))
    return [
        {"figure": "Client.graphql() vs raw httpx.Client (same connection reuse), same query",
         "ours_ms": ours_m * 1e3, "baseline_ms": raw_m * 1e3, "ratio": ours_m / raw_m, "target": "<= 1.10",
         "ok": ours_m / raw_m <= 1.10},
        {"figure": "Client.graphql() vs specklepy's own transport (gql + requests), same query",
         "ours_ms": ours_m * 1e3, "baseline_ms": sdk_m * 1e3, "ratio": ours_m / sdk_m, "target": "-", "ok": True},
    ]


def bench_restore() -> list[Row]:
    """Sign in with Remember me, restart the kernel, and time `login()` until the client is ready."""
    from jupyter_client.manager import start_new_kernel

    with tempfile.TemporaryDirectory() as tmp, emulator_process("http://127.0.0.1:1/cb", Path(tmp)) as emu:
        env = {**os.environ, "SPECKLE_SERVER": emu.url, "PYTHONPATH": str(ROOT / "tests"),
               "PYTHON_KEYRING_BACKEND": "support.memory_keyring.MemoryKeyring",
               "MEMORY_KEYRING_FILE": str(Path(tmp) / "keyring.json")}
        km, kc = start_new_kernel(kernel_name="python3", env=env)
        try:
            kernel_seconds(kc, "from speckle_nb_auth import Client\nfrom speckle_nb_auth import _credentials\n"
                               f"c = Client({emu.url!r}, {emu.credentials['pat']!r})\n"
                               "_credentials.remember(c.url, c.user.id, c.token_pair)")
            restarted = time.perf_counter()
            km.restart_kernel(now=True)
            kc.wait_for_ready(timeout=60)
            in_kernel = kernel_seconds(kc, "from speckle_nb_auth import login\nlogin()\nassert speckle.user.id")
            wall = time.perf_counter() - restarted
            validate = kernel_seconds(kc, "speckle.graphql('{ activeUser { id } }')")
        finally:
            kc.stop_channels()
            km.shutdown_kernel(now=True)
    return [{"figure": "restore from the keyring after a kernel restart: login() in the kernel vs one GraphQL call",
             "ours_ms": in_kernel * 1e3, "baseline_ms": validate * 1e3, "ratio": in_kernel / validate,
             "restart_to_ready_s": wall, "target": "-", "ok": True}]


def bench_browser() -> list[Row]:
    from ._browser import bench_browser as run  # Playwright and the browser tests' driver: only for this group

    return run()


def bench_hub() -> list[Row]:
    from ._hub import bench_hub as run  # the fake hub API lives with the tests

    return run()


GROUPS: dict[str, Callable[[], list[Row]]] = {
    "import": lambda: bench_import() + bench_first_login_call(),
    "startup": bench_startup,
    "login": bench_login,
    "flows": bench_flows,
    "client": bench_client,
    "restore": bench_restore,
    "hub": bench_hub,
    "browser": bench_browser,
}


def main() -> None:
    chosen = sys.argv[1:] or list(GROUPS)
    rows: list[Row] = []
    for name in chosen:
        print(f"running {name}...", file=sys.stderr, flush=True)
        rows += GROUPS[name]()
    print("| figure | ours | baseline | ratio | target | met |\n| --- | --- | --- | --- | --- | --- |")
    for row in rows:
        unit = next(k for k in row if k.startswith("ours_")).removeprefix("ours_")
        extra = "".join(f" ({p} {row[p + '_ms']:.1f} ms)" for p in ("p90", "p99") if p + "_ms" in row)
        print(f"| {row['figure']} | {row['ours_' + unit]:.2f} {unit}{extra} | {row['baseline_' + unit]:.2f} {unit} "
              f"| {row['ratio']:.2f} | {row['target']} | {'yes' if row['ok'] else 'NO'} |")
    out = ROOT / "test-output" / "bench.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(rows, indent=2))
    print(f"\nwritten to {out.relative_to(ROOT)}", file=sys.stderr)


if __name__ == "__main__":
    main()
