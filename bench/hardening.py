"""Hostile clients against one collector (loopback): gzip bombs, stalled uploads, SIGTERM with a
stalled upload, heads that announce bodies and send none, health while the database is gone,
erasure of a long chain and of a large visitor with ingest meanwhile. Prints one line of figures
per scenario. The scenarios that need a database use MAIDIAN_TEST_MONGODB_URI (FerretDB).

Usage: python3 bench/hardening.py <collector binary> <label>
"""

import asyncio
import gzip
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time

WRITE = "bench-write"
READ = "bench-read"
ADMIN = "bench-admin-key-0123456789"
FERRET = os.environ.get("MAIDIAN_TEST_MONGODB_URI")


def start(binary, extra):
    data = tempfile.mkdtemp(prefix="maidian-hardening-")
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAIDIAN_")}
    env.update({"MAIDIAN_API_KEY": WRITE, "MAIDIAN_READ_KEY": READ, "MAIDIAN_ADMIN_KEY": ADMIN,
                "RUST_LOG": "error", "MAIDIAN_ROLLUP_POLL_MS": "50",
                "MAIDIAN_WRITER_INSERT_TIMEOUT_MS": "1000", "MAIDIAN_ROLLUP_SAFETY_LAG_MS": "1500"})
    env.update(extra)
    p = subprocess.Popen([binary, "--listen", "127.0.0.1:0", "--data-dir", data], env=env,
                         stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    line = p.stdout.readline()
    host, port = line.rsplit("http://", 1)[1].strip().rsplit(":", 1)
    return p, (host, int(port))


def proc(pid, field):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field):
                return int(line.split()[1]) // 1024
    return 0


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        parts = f.read().rsplit(")", 1)[1].split()
    return (int(parts[11]) + int(parts[12])) / os.sysconf("SC_CLK_TCK")


async def request(addr, raw, timeout=60):
    r, w = await asyncio.open_connection(*addr)
    w.write(raw)
    await w.drain()
    try:
        head = await asyncio.wait_for(r.read(64), timeout)
    except asyncio.TimeoutError:
        head = b""
    w.close()
    return head[9:12].decode() if head.startswith(b"HTTP/1.1") else "closed"


def post(path, body, headers):
    h = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    return (f"POST {path} HTTP/1.1\r\nhost: x\r\ncontent-length: {len(body)}\r\n{h}"
            "connection: close\r\n\r\n").encode() + body


async def health_probe(addr, stop, worst):
    while not stop.is_set():
        t = time.perf_counter()
        await request(addr, b"GET /api/health HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
        worst[0] = max(worst[0], time.perf_counter() - t)
        await asyncio.sleep(0.02)


async def bombs(binary, label):
    p, addr = start(binary, {})
    await asyncio.sleep(0.5)
    idle = proc(p.pid, "VmRSS:")
    cpu0 = cpu_seconds(p.pid)
    array = gzip.compress(b"[" + b"0," * (2 * 1024 * 1024 - 2) + b"0]", 9)
    events = gzip.compress(b'{"events":[' + b"0," * (2 * 1024 * 1024 - 8) + b"0]}", 9)
    stop, worst = asyncio.Event(), [0.0]
    probe = asyncio.create_task(health_probe(addr, stop, worst))
    statuses = {}
    started = time.perf_counter()
    for name, body, key in [("array", array, WRITE), ("array-nokey", array, None),
                            ("events", events, WRITE)]:
        headers = {"content-type": "application/json", "content-encoding": "gzip"}
        if key:
            headers["x-api-key"] = key
        got = await asyncio.gather(*[request(addr, post("/api/track/batch", body, headers))
                                     for _ in range(100)])
        statuses[name] = sorted(set(got))
    elapsed = time.perf_counter() - started
    stop.set()
    await probe
    peak = proc(p.pid, "VmHWM:")
    cpu = cpu_seconds(p.pid) - cpu0
    p.terminate()
    p.wait()
    print(f"{label}: 3 x 100 parallel gzip bombs ({len(array)} B -> 4 MiB): RSS idle {idle} MB, "
          f"peak {peak} MB (+{peak - idle} MB); CPU {cpu:.1f} s; wall {elapsed:.1f} s; "
          f"slowest health {worst[0] * 1000:.0f} ms; answers {json.dumps(statuses)}")


async def stalled(binary, label):
    p, addr = start(binary, {})
    await asyncio.sleep(0.3)
    head = (f"POST /api/track/batch HTTP/1.1\r\nhost: x\r\nx-api-key: {WRITE}\r\n"
            "content-type: application/json\r\ncontent-length: 100000\r\n\r\n{\"events\":[").encode()
    conns = []
    for _ in range(300):
        r, w = await asyncio.open_connection(*addr)
        w.write(head)
        await w.drain()
        conns.append((r, w))
    t0 = time.perf_counter()

    async def closed(r):
        try:
            await asyncio.wait_for(r.read(), 40)
            return time.perf_counter() - t0
        except asyncio.TimeoutError:
            return None

    times = await asyncio.gather(*[closed(r) for r, _ in conns])
    done = [t for t in times if t is not None]
    open_left = len(times) - len(done)
    # SIGTERM while one upload stalls: how long until the process exits.
    r, w = await asyncio.open_connection(*addr)
    w.write(head)
    await w.drain()
    t1 = time.perf_counter()
    p.send_signal(signal.SIGTERM)
    try:
        p.wait(timeout=40)
        exit_s = f"{time.perf_counter() - t1:.1f} s"
    except subprocess.TimeoutExpired:
        exit_s = "not within 40 s"
        p.kill()
        p.wait()
    for _, cw in conns:
        cw.close()
    w.close()
    last = f"{max(done):.1f} s" if done else "-"
    print(f"{label}: 300 stalled uploads: {len(done)} closed, last after {last}; "
          f"{open_left} still open after 40 s; SIGTERM with a stalled upload: exit after {exit_s}")


def pct(xs, q):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * len(xs)))] if xs else float("nan")


async def exchange(addr, raw, timeout=60):
    """One request on a new connection; (status, body, seconds)."""
    t = time.perf_counter()
    r, w = await asyncio.open_connection(*addr)
    w.write(raw)
    await w.drain()
    try:
        data = await asyncio.wait_for(r.read(), timeout)
    except asyncio.TimeoutError:
        data = b""
    w.close()
    took = time.perf_counter() - t
    status = data[9:12].decode() if data.startswith(b"HTTP/1.1") else "closed"
    body = data.split(b"\r\n\r\n", 1)[1] if b"\r\n\r\n" in data else b""
    return status, body, took


def batch(events, key=WRITE):
    body = json.dumps({"events": events}).encode()
    return post("/api/track/batch", body, {"content-type": "application/json", "x-api-key": key})


def click(user, anon=None, session=None):
    return {"event_id": str(__import__("uuid").uuid4()), "event_type": "click", "user_id": user,
            "anonymous_id": anon, "session_id": session, "page_url": "https://a.example/p",
            "timestamp": int(time.time() * 1000)}


async def empty_heads(binary, label, n):
    # Every head comes from this one host: lift the per-client cap so the budget is measured.
    p, addr = start(binary, {"MAIDIAN_MAX_CONNECTIONS_PER_CLIENT": "4096"})
    await asyncio.sleep(0.3)
    head = ("POST /api/track/batch HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
            "content-length: 1048576\r\n\r\n").encode()
    conns = []
    for _ in range(n):
        r, w = await asyncio.open_connection(*addr)
        w.write(head)
        await w.drain()
        conns.append(w)
    times, statuses = [], set()
    for i in range(20):
        status, _, took = await exchange(addr, batch([click(f"real-{i}")]))
        times.append(took)
        statuses.add(status)
        await asyncio.sleep(0.05)
    for w in conns:
        w.close()
    p.terminate()
    p.wait()
    print(f"{label}: real batches while {n} empty 1 MiB heads are held: p50 "
          f"{pct(times, 0.5) * 1000:.0f} ms, max {max(times) * 1000:.0f} ms; answers {sorted(statuses)}")


class CutProxy:
    """A TCP proxy to the database that can cut every connection and refuse new ones."""

    def __init__(self, upstream):
        self.upstream, self.down, self.conns = upstream, False, []

    async def handle(self, r, w):
        if self.down:
            w.close()
            return
        ur, uw = await asyncio.open_connection(*self.upstream)
        self.conns += [w, uw]

        async def pipe(a, b):
            try:
                while data := await a.read(65536):
                    b.write(data)
                    await b.drain()
            except (ConnectionError, OSError):
                pass
            b.close()

        await asyncio.gather(pipe(r, uw), pipe(ur, w))

    def cut(self):
        self.down = True
        for c in self.conns:
            c.close()
        self.conns = []


async def outage(binary, label):
    host, port = FERRET.split("//", 1)[1].strip("/").rsplit(":", 1)
    proxy = CutProxy((host, int(port)))
    server = await asyncio.start_server(proxy.handle, "127.0.0.1", 0)
    pport = server.sockets[0].getsockname()[1]
    db = f"hardening_outage_{int(time.time())}"
    p, addr = start(binary, {"MAIDIAN_MONGODB_URI": f"mongodb://127.0.0.1:{pport}/",
                             "MAIDIAN_DATABASE": db})
    await asyncio.sleep(1.0)
    health = b"GET /api/health HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n"
    up = await exchange(addr, health)
    proxy.cut()
    answers = [await exchange(addr, health, timeout=60) for _ in range(5)]
    worst = max(t for _, _, t in answers)
    leaks = any(str(pport).encode() in b for _, b, _ in answers)
    p.terminate()
    p.wait()
    server.close()
    print(f"{label}: health before the outage {up[0]} in {up[2] * 1000:.0f} ms; during it "
          f"{sorted({s for s, _, _ in answers})}, slowest of 5 {worst * 1000:.0f} ms; "
          f"names the database's port: {leaks}")


async def wait_rolled(addr, events, limit=600):
    t = time.perf_counter()
    while time.perf_counter() - t < limit:
        _, body, _ = await exchange(addr, (
            "GET /api/analytics/summary?days=1 HTTP/1.1\r\nhost: x\r\n"
            f"x-api-key: {READ}\r\nconnection: close\r\n\r\n").encode())
        _, hb, _ = await exchange(addr, b"GET /api/health HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
        try:
            total = json.loads(body)["overview"]["total_events"]
            lag = json.loads(hb).get("rollup_lag_seconds")
        except (ValueError, KeyError):
            total, lag = None, None
        if total == events and lag == 0:
            return True
        await asyncio.sleep(0.2)
    return False


async def forget(addr, visitor, timeout=600):
    body = json.dumps({"visitor": visitor}).encode()
    return await exchange(addr, post("/api/privacy/forget", body,
                                     {"content-type": "application/json", "x-api-key": ADMIN}),
                          timeout)


async def erasure(binary, label, store):
    extra = {}
    if store == "FerretDB":
        extra = {"MAIDIAN_MONGODB_URI": FERRET, "MAIDIAN_DATABASE": f"hardening_erasure_{int(time.time())}"}
    p, addr = start(binary, extra)
    await asyncio.sleep(0.5)
    chain = [click(None, f"a{i}", f"a{i + 1}") for i in range(20)]
    await exchange(addr, batch(chain))
    await wait_rolled(addr, 20)
    status, body, took = await forget(addr, "a0", 60)
    print(f"{label}: {store}: erasure of a 20-link chain: {status} in {took * 1000:.0f} ms "
          f"{body[:120].decode(errors='replace')}")
    big = 50_000
    for _ in range(big // 500):
        await exchange(addr, batch([click("big-visitor", "big-anon", "big-session") for _ in range(500)]))
    failed = not status.startswith("2")
    left = 20 if failed else 0
    # A failed chain erasure may have frozen the rollups (the bug this measures): do not wait
    # for them long then.
    rolled = await wait_rolled(addr, big + left, limit=60 if failed else 900)
    stop, times = asyncio.Event(), []

    async def load():
        i = 0
        while not stop.is_set():
            _, _, t = await exchange(addr, batch([click(f"other-{i}-{j}") for j in range(20)]))
            times.append(t)
            i += 1
            await asyncio.sleep(0.05)

    task = asyncio.create_task(load())
    t0 = time.perf_counter()
    status, body, took = await forget(addr, "big-visitor", 900)
    done_after = None
    if status.startswith("2"):
        done_after = took
    else:
        # Queued (503 busy): it completes in the background; wait until nothing is left.
        while time.perf_counter() - t0 < 900:
            _, csv, _ = await exchange(addr, (
                "GET /api/export/events.csv?visitor=big-visitor HTTP/1.1\r\nhost: x\r\n"
                f"x-api-key: {READ}\r\nconnection: close\r\n\r\n").encode())
            if csv.count(b"\n") <= 1:
                done_after = time.perf_counter() - t0
                break
            await asyncio.sleep(1)
    stop.set()
    await task
    p.terminate()
    p.wait()
    print(f"{label}: {store}: erasure of a visitor with {big} events (rolled up: {rolled}): "
          f"{status} in {took:.1f} s {body[:100].decode(errors='replace')}; erased after "
          f"{'-' if done_after is None else f'{done_after:.1f} s'}; "
          f"ingest meanwhile: {len(times)} batches, p50 {pct(times, 0.5) * 1000:.0f} ms, "
          f"max {max(times, default=0) * 1000:.0f} ms")


async def main():
    binary, label = sys.argv[1], sys.argv[2]
    stores = ["embedded"] + (["FerretDB"] if FERRET else [])
    if os.environ.get("HARDENING_STORES"):
        stores = [s for s in stores if s in os.environ["HARDENING_STORES"].split(",")]
    if os.environ.get("HARDENING_ONLY") == "erasure":
        for store in stores:
            await erasure(binary, label, store)
        return
    await bombs(binary, label)
    await stalled(binary, label)
    for n in (0, 80, 500):
        await empty_heads(binary, label, n)
    if FERRET:
        await outage(binary, label)
    for store in stores:
        await erasure(binary, label, store)


asyncio.run(main())
