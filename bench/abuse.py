"""Connection abuse against scimlite: does a real client still get through?

    python bench/abuse.py                         # starts its own server on a fresh SQLite file
    python bench/abuse.py --idle 600 --slowloris 200 --upload-mib 100
    python bench/abuse.py --url http://127.0.0.1:5000/scim/v2 --token T   # a server already running

It does what anyone on the same network could do with a short script, on 127.0.0.1:
opens `--idle` connections that send nothing, and `--slowloris` connections that
send a request's header one line at a time and never finish it. Then it times a
few normal GETs, each on a new connection, and prints their latencies; it exits 1
if one failed or took a second or more. Last, it uploads a `--upload-mib` MiB body,
with a Content-Length and then chunked, and counts how much of it the server took
before it answered: the socket sends through a small send buffer, so what `send()`
accepted is at most what the server read plus two small kernel buffers, never the
tens of MiB a loopback connection can otherwise hold in flight.

The tests (tests/test_connections.py) run the same attacks and hold the answers to
a bound. Linux and macOS (raise `ulimit -n` past the connections opened); on Windows,
where connection_limit is at most 500, open fewer (--idle 200 --slowloris 100).
"""

import argparse
import contextlib
import http.client
import os
import re
import secrets
import selectors
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SMALL_SEND_BUFFER = 16 * 1024   # Linux doubles it, and sends at most that ahead of the receiver


def die(message):
    print(f'abuse: {message}', file=sys.stderr)
    raise SystemExit(2)


# ---------------------------------------------------------------------------
# The attacks
# ---------------------------------------------------------------------------

def open_idle(port, count):
    """`count` connections that send nothing."""
    return [socket.create_connection(('127.0.0.1', port), timeout=10) for _ in range(count)]


class Slowloris:
    """`count` connections, each sending a request's header one line every
    `interval` seconds and never the blank line that ends it."""

    def __init__(self, port, count, interval=1.0):
        self.sockets = []
        for _ in range(count):
            connection = socket.create_connection(('127.0.0.1', port), timeout=10)
            connection.sendall(b'GET /scim/v2/Users HTTP/1.1\r\nHost: 127.0.0.1\r\n')
            self.sockets.append(connection)
        self.interval = interval
        self.lines_sent = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._dribble, daemon=True)
        self._thread.start()

    def _dribble(self):
        while not self._stop.wait(self.interval):
            for number, connection in enumerate(self.sockets):
                try:
                    connection.sendall(f'X-Slow-{number}: {self.lines_sent}\r\n'.encode())
                except OSError:
                    continue
            self.lines_sent += 1

    def close(self):
        self._stop.set()
        self._thread.join(timeout=10)
        close_all(self.sockets)


def close_all(sockets):
    for connection in sockets:
        connection.close()


def timed_get(port, path, token, timeout=10):
    """(status, seconds) of one GET on a new connection; status None if it timed out."""
    started = time.monotonic()
    connection = http.client.HTTPConnection('127.0.0.1', port, timeout=timeout)
    try:
        connection.request('GET', path, headers={'Authorization': f'Bearer {token}'})
        answer = connection.getresponse()
        answer.read()
        return answer.status, time.monotonic() - started
    except (TimeoutError, OSError):
        return None, time.monotonic() - started
    finally:
        connection.close()


def upload_until_refused(port, path, token, size, give_up_after, chunked=False, timeout=10):
    """POST a body of `size` bytes (`chunked`: in chunks, with no Content-Length) through
    a small send buffer until the server answers or closes. (status or None, bytes
    that send() accepted); sending stops once `give_up_after` bytes are accepted with
    no answer."""
    connection = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    connection.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SMALL_SEND_BUFFER)
    connection.connect(('127.0.0.1', port))
    connection.setblocking(False)
    length = 'Transfer-Encoding: chunked' if chunked else f'Content-Length: {size}'
    pending = (f'POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {token}\r\n'
               f'Content-Type: application/scim+json\r\n{length}\r\n\r\n').encode()
    piece = b'1000\r\n' + b'x' * 0x1000 + b'\r\n' if chunked else b'x' * 0x1000
    accepted, answer = 0, b''
    deadline = time.monotonic() + timeout
    with selectors.DefaultSelector() as selector:
        selector.register(connection, selectors.EVENT_READ | selectors.EVENT_WRITE)
        try:
            while time.monotonic() < deadline and accepted < min(size, give_up_after):
                events = selector.select(timeout=max(0.0, deadline - time.monotonic()))
                if any(mask & selectors.EVENT_READ for _, mask in events):
                    break
                if any(mask & selectors.EVENT_WRITE for _, mask in events):
                    with contextlib.suppress(BlockingIOError):
                        sent = connection.send(pending)
                        accepted += sent
                        pending = pending[sent:] or piece
            answer = read_answer(connection, deadline)
        except OSError:   # reset: the server closed with our bytes unread
            answer = answer or read_answer(connection, deadline, quietly=True)
        finally:
            connection.close()
    match = re.match(rb'HTTP/1\.[01] (\d{3})', answer)
    return (int(match.group(1)) if match else None), accepted


def read_answer(connection, deadline, quietly=False):
    """What arrives until the server closes, an answer's head is in, or the deadline."""
    received = b''
    while time.monotonic() < deadline and b'\r\n\r\n' not in received:
        try:
            data = connection.recv(65536)
        except BlockingIOError:
            time.sleep(0.005)
            continue
        except OSError:
            if quietly:
                break
            raise
        if not data:
            break
        received += data
    return received


def open_deleted_files(pid):
    """The files process `pid` holds open that were deleted (waitress's spooled bodies
    are such temp files); None where /proc does not tell."""
    folder = Path(f'/proc/{pid}/fd')
    if not folder.is_dir():
        return None
    found = []
    for entry in folder.iterdir():
        try:
            target = os.readlink(entry)
        except OSError:
            continue
        if target.endswith(' (deleted)'):
            found.append(target)
    return found


def open_files(pid):
    """How many files process `pid` holds open; None where /proc does not tell."""
    folder = Path(f'/proc/{pid}/fd')
    return len(os.listdir(folder)) if folder.is_dir() else None


def wait_for_open_files(pid, count, timeout=10):
    """Wait until process `pid` holds `count` files (it has accepted the connections)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        held = open_files(pid)
        if held is None:
            time.sleep(1)   # no /proc: give the server a second to accept them
            return
        if held >= count:
            return
        time.sleep(0.05)


# ---------------------------------------------------------------------------
# The command
# ---------------------------------------------------------------------------

def start_server(workdir, token):
    database = f'sqlite:///{(workdir / "abuse.db").as_posix()}'
    env = {k: v for k, v in os.environ.items() if not k.startswith('SCIM_')}
    process = subprocess.Popen([sys.executable, str(ROOT / 'scim_server.py'), '--port', '0', '--quiet',
                                f'--token={token}', '--database', database],
                               cwd=workdir, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    seen = []
    for line in process.stdout:
        seen.append(line)
        match = re.search(r'SCIM base URL:\s+http://127\.0\.0\.1:(\d+)/', line)
        if match:
            threading.Thread(target=lambda: [None for _ in process.stdout], daemon=True).start()
            return process, int(match.group(1))
    die('the server did not start:\n' + ''.join(seen))


def measure(port, base_path, token, pid, idle, slowloris, gets, upload_mib):
    held_before = open_files(pid) if pid else None
    quiet = open_idle(port, idle)
    slow = Slowloris(port, slowloris)
    try:
        if pid and held_before is not None:
            wait_for_open_files(pid, held_before + idle + slowloris)
        time.sleep(2 * slow.interval)   # a few lines dribbled on every slow connection
        latencies = [timed_get(port, f'{base_path}/Users?count=1', token) for _ in range(gets)]
    finally:
        slow.close()
        close_all(quiet)
    uploads = {how: upload_until_refused(port, f'{base_path}/Users', token, upload_mib * 2**20,
                                         give_up_after=upload_mib * 2**20, chunked=how == 'chunked')
               for how in ('with Content-Length', 'chunked')}
    return latencies, uploads


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--idle', type=int, default=600, help='connections that send nothing')
    parser.add_argument('--slowloris', type=int, default=200, help='connections that never finish their header')
    parser.add_argument('--gets', type=int, default=5, help='normal GETs timed meanwhile')
    parser.add_argument('--upload-mib', type=int, default=100, help='size of the oversized upload')
    parser.add_argument('--url', help='a running server\'s SCIM base URL (default: start one)')
    parser.add_argument('--token', help='its token')
    args = parser.parse_args(argv)

    process = None
    if args.url:
        match = re.match(r'http://127\.0\.0\.1:(\d+)(/.*)?$', args.url)
        if not match or not args.token:
            die('--url must be http://127.0.0.1:PORT/... and needs --token')
        port, base_path, token = int(match.group(1)), (match.group(2) or '').rstrip('/'), args.token
    else:
        token = secrets.token_urlsafe(16)
        process, port = start_server(Path(tempfile.mkdtemp(prefix='scimlite-abuse-')), token)
        base_path = '/scim/v2'
    try:
        latencies, uploads = measure(port, base_path, token, process.pid if process else None,
                                              args.idle, args.slowloris, args.gets, args.upload_mib)
    finally:
        if process:
            process.terminate()
            process.wait(timeout=10)
    print(f'{args.idle} idle and {args.slowloris} slowloris connections open:')
    for number, (answer, seconds) in enumerate(latencies, 1):
        print(f'  GET {number}: {answer or "no answer"} in {seconds * 1000:.0f} ms')
    for how, (status, accepted) in uploads.items():
        print(f'{args.upload_mib} MiB upload {how}: {status or "no answer"} after {accepted / 2**10:,.0f} KiB '
              'accepted by send() (an upper bound on what the server read)')
    worst = max(seconds for _, seconds in latencies)
    failed = [answer for answer, _ in latencies if answer != 200]
    return 1 if failed or worst >= 1 else 0


if __name__ == '__main__':
    raise SystemExit(main())
