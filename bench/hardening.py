"""Hostile clients against one collector (embedded store, loopback): gzip bombs, stalled uploads,
SIGTERM with a stalled upload. Prints one line of figures per scenario.

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


def start(binary, extra):
    data = tempfile.mkdtemp(prefix="maidian-hardening-")
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAIDIAN_")}
    env.update({"MAIDIAN_API_KEY": WRITE, "MAIDIAN_READ_KEY": "bench-read", "RUST_LOG": "error"})
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


async def main():
    binary, label = sys.argv[1], sys.argv[2]
    await bombs(binary, label)
    await stalled(binary, label)


asyncio.run(main())
