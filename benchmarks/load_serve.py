"""Load on `faceattr serve`, over loopback only: N clients post edits for a fixed time.

Starts the server itself on 127.0.0.1 at a free port (nothing else is contacted), waits until it is
up, sends one edit to warm it, then runs `--clients` threads that each post the photo to /v1/edit
again and again for `--seconds`. A client told 429 waits as long as Retry-After says (as a polite
client would) and counts it. Prints the server's layout (workers x threads, its edit-time estimate),
the load average of the machine before and after, the counts of each status, p50/p95 latency of the
finished edits and of the 429s (which should come back at once), and the server's memory: the
resident set of the server and its worker processes, sampled every 0.2 s, after the warm-up, at its
peak and at the end.

    python benchmarks/load_serve.py --clients 12 --seconds 60 -- --enet /work/runs/enet/checkpoint.pt

Arguments after `--` go to `faceattr serve` (not --host or --port). The run is bounded: at most
600 s of load, 300 s for the server to start, and the server's own time limit per request.
"""

import argparse
import http.client
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

HOST = "127.0.0.1"
MAX_SECONDS = 600
START_TIMEOUT = 300


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def multipart(photo: Path, attributes: list[str], strength: float) -> tuple[bytes, str]:
    boundary = uuid.uuid4().hex
    parts = [(f'Content-Disposition: form-data; name="photo"; filename="{photo.name}"\r\n'
              "Content-Type: application/octet-stream\r\n\r\n").encode() + photo.read_bytes()]
    parts += [f'Content-Disposition: form-data; name="attributes"\r\n\r\n{a}'.encode() for a in attributes]
    parts.append(f'Content-Disposition: form-data; name="strength"\r\n\r\n{strength}'.encode())
    body = b"".join(f"--{boundary}\r\n".encode() + p + b"\r\n" for p in parts) + f"--{boundary}--\r\n".encode()
    return body, f"multipart/form-data; boundary={boundary}"


def request(port, method, path, body=None, content_type=None, timeout=120.0):
    """-> (status, headers, body bytes)."""
    conn = http.client.HTTPConnection(HOST, port, timeout=timeout)
    try:
        conn.request(method, path, body=body, headers={"Content-Type": content_type} if content_type else {})
        r = conn.getresponse()
        return r.status, dict(r.getheaders()), r.read()
    finally:
        conn.close()


def tree_rss(root: int) -> int:
    """Resident bytes of process `root` and all its descendants (from /proc)."""
    parent, rss = {}, {}
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            stat = (d / "stat").read_text()
            fields = stat[stat.rindex(")") + 2:].split()
            parent[int(d.name)], rss[int(d.name)] = int(fields[1]), int(fields[21]) * os.sysconf("SC_PAGE_SIZE")
        except (OSError, ValueError, IndexError):  # a process that ended meanwhile
            continue
    tree, grew = {root}, True
    while grew:
        new = {p for p, pp in parent.items() if pp in tree} - tree
        tree |= new
        grew = bool(new)
    return sum(rss.get(p, 0) for p in tree)


class Memory(threading.Thread):
    """Samples the server's memory until stopped."""

    def __init__(self, pid: int):
        super().__init__(daemon=True)
        self.pid, self.samples, self.stop = pid, [], threading.Event()

    def run(self):
        while not self.stop.wait(0.2):
            self.samples.append((time.monotonic(), tree_rss(self.pid)))


def client(port, body, content_type, deadline, timeout, results, lock):
    while time.monotonic() < deadline:
        t = time.monotonic()
        try:
            status, headers, _ = request(port, "POST", "/v1/edit", body, content_type, timeout)
        except OSError as e:  # refused, reset or timed out: counted apart from HTTP statuses
            status, headers = f"error: {type(e).__name__}", {}
        with lock:
            results.append((status, time.monotonic() - t))
        if status == 429:
            time.sleep(max(0.0, min(float(headers.get("retry-after", 1)), deadline - time.monotonic())))


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--clients", type=int, default=12)
    p.add_argument("--seconds", type=float, default=60.0)
    p.add_argument("--photo", type=Path, help="default: the bundled demo photo")
    p.add_argument("--attr", action="append", default=None, help="NAME=0|1, repeatable (default Male=1)")
    p.add_argument("--strength", type=float, default=1.0)
    p.add_argument("serve_args", nargs="*", help="after --: options of `faceattr serve`")
    args = p.parse_args()
    if not 0 < args.seconds <= MAX_SECONDS or args.clients < 1:
        sys.exit(f"--seconds must be in (0, {MAX_SECONDS}] and --clients at least 1")
    if {"--host", "--port"} & {a.split("=")[0] for a in args.serve_args}:
        sys.exit("the script chooses the host (loopback) and the port itself")
    if args.photo is None:
        from faceattr.data.images import demo_photo

        args.photo = demo_photo()
    body, content_type = multipart(args.photo, args.attr or ["Male=1"], args.strength)

    load_before = os.getloadavg()
    port = free_port()
    log = Path(tempfile.mkstemp(prefix="faceattr-serve-", suffix=".log")[1])
    with log.open("wb") as out:
        server = subprocess.Popen([sys.executable, "-m", "faceattr", "serve", "--host", HOST, "--port", str(port),
                                   *args.serve_args], stdout=out, stderr=subprocess.STDOUT)
    try:
        start = time.monotonic()
        while True:
            if server.poll() is not None:
                sys.exit(f"the server exited with code {server.returncode} before it was up:\n"
                         + "\n".join(log.read_text().splitlines()[-5:]))
            try:
                if request(port, "GET", "/healthz", timeout=5)[0] == 200:
                    break
            except OSError:
                pass
            if time.monotonic() - start > START_TIMEOUT:
                sys.exit(f"the server was not up after {START_TIMEOUT} s")
            time.sleep(0.5)
        health = json.loads(request(port, "GET", "/healthz")[2])
        time_limit = health["time_limit_s"]
        status, _, warm = request(port, "POST", "/v1/edit", body, content_type, time_limit + 30)
        if status != 200:
            sys.exit(f"the warm-up edit failed with {status}: {warm[:300]!r}")

        memory = Memory(server.pid)
        memory.start()
        results, lock = [], threading.Lock()
        deadline = time.monotonic() + args.seconds
        clients = [threading.Thread(target=client, args=(port, body, content_type, deadline, time_limit + 30,
                                                         results, lock)) for _ in range(args.clients)]
        for c in clients:
            c.start()
        for c in clients:
            c.join()
        memory.stop.set()
        memory.join()
        elapsed = time.monotonic() - (deadline - args.seconds)
        try:
            health_end = json.loads(request(port, "GET", "/healthz", timeout=10)[2])
        except (OSError, ValueError):
            health_end = {}
    finally:
        server.terminate()
        try:
            server.wait(30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()

    ok = sorted(t for s, t in results if s == 200)
    busy = sorted(t for s, t in results if s == 429)
    count = lambda pred: sum(1 for s, _ in results if pred(s))  # noqa: E731
    mb = [m / 2**20 for _, m in memory.samples]
    load_after = os.getloadavg()
    print(f"faceattr serve under load: {args.clients} clients for {args.seconds:g} s "
          f"({elapsed:.1f} s with the last answers), {health['workers']} worker(s) x "
          f"{health.get('threads_per_worker', '?')} thread(s) on {os.cpu_count()} CPU(s), queue {health['queue_size']}, "
          f"time limit {time_limit:g} s, photo {args.photo.name}; server log {log}")
    print(f"machine load average (1/5/15 min): before {'/'.join(f'{x:.2f}' for x in load_before)}, "
          f"after {'/'.join(f'{x:.2f}' for x in load_after)}")
    print(f"edit-time estimate: after the warm-ups {health.get('edit_seconds')} s, at the end "
          f"{health_end.get('edit_seconds')} s")
    print(f"requests {len(results)}: 200 {len(ok)} ({len(ok) / elapsed:.2f}/s), 429 {len(busy)}, "
          f"504 {count(lambda s: s == 504)}, other 5xx {count(lambda s: isinstance(s, int) and s >= 500 and s != 504)}, "
          f"other 4xx {count(lambda s: isinstance(s, int) and 400 <= s < 500 and s != 429)}, "
          f"connection errors {count(lambda s: isinstance(s, str))}")
    for label, times in (("the edits (queueing included)", ok), ("the 429s", busy)):
        if len(times) >= 2:
            q = statistics.quantiles(times, n=100, method="inclusive")
            print(f"latency of {label}: p50 {q[49]:.2f} s, p95 {q[94]:.2f} s, max {times[-1]:.2f} s")
    if mb:
        third = max(1, len(mb) // 3)
        print(f"server memory (server + workers, RSS): after warm-up {mb[0]:.0f} MB, peak {max(mb):.0f} MB, "
              f"at the end {mb[-1]:.0f} MB; mean of the first third {statistics.mean(mb[:third]):.0f} MB, "
              f"of the last third {statistics.mean(mb[-third:]):.0f} MB")


if __name__ == "__main__":
    main()
