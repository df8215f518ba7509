"""What a request costs inside the server: two checkouts of scimlite, taking turns.

    python bench/inprocess.py /tmp/before .            # 24b7f84 (say) against this checkout
    python bench/inprocess.py . .+seat                 # the server's own data set against a seat's
    python bench/inprocess.py /tmp/before . --users 20000 --rounds 8 --calls 500

Each checkout runs in a process of its own (one app per process: the store's
handles belong to it), on a fresh SQLite file filled with `--users` users. The
requests go straight to the real WSGI app, no socket and no load generator: what
is left is scimlite's own work. The processes take turns, one round each in
the order A B B A A B ..., while the other waits, so the machine's drift falls
on both alike. Each round times `--calls` calls of each request and reports
the process's CPU time (all its threads: the exchange log and the board's writer
included) per call. A checkout followed by `+seat` is started with one workshop
seat, and its requests carry that seat's token.

Prints, per request, the median over the rounds of each checkout's µs per call
and the median of the rounds' ratios (second / first): above 1, the second costs more.
"""

import argparse
import io
import json
import os
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
TOKEN = 'inprocess-' + 'x' * 24   # not the demo token: seats refuse it
BASE = '/scim/v2'
OKTA_LOOKUP = '/Users?filter=userName%20eq%20%22{}%22&startIndex=1&count=100'
REQUESTS = ('POST /Users', 'GET /Users/{id}', 'PATCH deactivate', 'lookup, found', 'lookup, not found',
            'PUT /Users/{id}')


def die(message):
    print(f'inprocess: {message}', file=sys.stderr)
    raise SystemExit(2)


# ---------------------------------------------------------------------------
# The worker: one checkout's app, called directly
# ---------------------------------------------------------------------------

def user_body(user_name, **extra):
    return {'schemas': ['urn:ietf:params:scim:schemas:core:2.0:User'], 'userName': user_name,
            'name': {'givenName': 'Bench', 'familyName': 'User'},
            'emails': [{'primary': True, 'value': user_name, 'type': 'work'}], 'displayName': 'Bench User',
            'locale': 'en-US', 'externalId': user_name, 'groups': [], 'password': 'Not-stored-1',
            'active': True, **extra}


class Caller:
    """Calls the WSGI app as waitress would, with Okta's headers and one token."""

    def __init__(self, app, token):
        self.app, self.token = app, token

    def __call__(self, method, path, body=None):
        path, _, query = path.partition('?')
        payload = json.dumps(body).encode() if body is not None else b''
        environ = {
            'REQUEST_METHOD': method, 'SCRIPT_NAME': '', 'PATH_INFO': BASE + path, 'QUERY_STRING': query,
            'SERVER_NAME': '127.0.0.1', 'SERVER_PORT': '5000', 'SERVER_PROTOCOL': 'HTTP/1.1',
            'REMOTE_ADDR': '127.0.0.1', 'HTTP_HOST': '127.0.0.1:5000',
            'HTTP_AUTHORIZATION': f'Bearer {self.token}', 'HTTP_ACCEPT': 'application/scim+json',
            'HTTP_USER_AGENT': 'Okta SCIM Client 1.0.0',
            'CONTENT_TYPE': 'application/scim+json; charset=utf-8', 'CONTENT_LENGTH': str(len(payload)),
            'wsgi.input': io.BytesIO(payload), 'wsgi.errors': sys.stderr, 'wsgi.url_scheme': 'http',
            'wsgi.version': (1, 0), 'wsgi.multithread': True, 'wsgi.multiprocess': False,
            'wsgi.run_once': False,
        }
        status = []
        chunks = self.app(environ, lambda line, headers, exc_info=None: status.append(line))
        answer = b''.join(chunks)
        if hasattr(chunks, 'close'):
            chunks.close()
        if not status[0].startswith('2'):
            raise RuntimeError(f'{method} {path}: {status[0]} {answer[:300]!r}')
        return json.loads(answer) if answer else None


def worker(checkout, users, as_seat, replies):
    """Fill a fresh database, then answer each `round CALLS` line on stdin with a
    JSON line {request: CPU µs per call} on `replies`."""
    sys.path.insert(0, str(checkout))
    sys.dont_write_bytecode = True
    import scim_server
    import store
    folder = Path(tempfile.mkdtemp(prefix='scimlite-inprocess-'))
    overrides = {'database': f'sqlite:///{(folder / "scim.db").as_posix()}', 'token': TOKEN}
    if as_seat:
        overrides['seats'] = 1
    app = scim_server.make_app(overrides)
    token = store.seats()[0]['token'] if as_seat else TOKEN
    call = Caller(app, token)
    run = secrets.token_hex(3)
    ids, names = [], []
    for number in range(users):
        name = f'user{run}-{number:07d}@bench.example'
        ids.append(call('POST', '/Users', user_body(name))['id'])
        names.append(name)
    created = 0

    def post():
        nonlocal created
        created += 1
        call('POST', '/Users', user_body(f'new{run}-{created:07d}@bench.example'))

    def get():
        call('GET', f'/Users/{ids[secrets.randbelow(users)]}')

    def patch():
        call('PATCH', f'/Users/{ids[secrets.randbelow(users)]}', {
            'schemas': ['urn:ietf:params:scim:api:messages:2.0:PatchOp'],
            'Operations': [{'op': 'replace', 'value': {'active': secrets.randbelow(2) == 1}}]})

    def lookup_found():
        call('GET', OKTA_LOOKUP.format(names[secrets.randbelow(users)]))

    def lookup_missing():
        call('GET', OKTA_LOOKUP.format(f'nobody{secrets.token_hex(4)}@bench.example'))

    def put():
        index = secrets.randbelow(users)
        call('PUT', f'/Users/{ids[index]}', user_body(names[index], id=ids[index],
                                                      title=f'Title {secrets.randbelow(1000)}'))

    timed = dict(zip(REQUESTS, (post, get, patch, lookup_found, lookup_missing, put), strict=True))
    replies.write('ready\n')
    replies.flush()
    for line in sys.stdin:
        calls = int(line.split()[1])
        costs = {}
        for name, one in timed.items():
            one()   # warm: the first call after the other process's turn pays for the caches it cooled
            started = time.process_time()
            for _ in range(calls):
                one()
            costs[name] = (time.process_time() - started) / calls * 1e6
        replies.write(json.dumps(costs) + '\n')
        replies.flush()
    app.close()


# ---------------------------------------------------------------------------
# The coordinator: the two workers take turns
# ---------------------------------------------------------------------------

def spawn(spec, users):
    checkout, _, mode = spec.partition('+')
    if mode not in ('', 'seat'):
        die(f'{spec}: a checkout, or a checkout followed by +seat')
    if not (Path(checkout) / 'scim_server.py').is_file():
        die(f'{checkout}: no scim_server.py there')
    command = [sys.executable, str(Path(__file__).resolve()), '--worker', str(Path(checkout).resolve()),
               '--users', str(users)] + (['--as-seat'] if mode else [])
    # The worker answers on its stdout, and the console line of every request it serves goes to /dev/null.
    process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                               env={k: v for k, v in os.environ.items() if not k.startswith('SCIM_')})
    return process


def ask(process, line):
    process.stdin.write(line + '\n')
    process.stdin.flush()
    answer = process.stdout.readline()
    if not answer:
        die('a worker stopped (its error is above)')
    return answer


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('first', nargs='?',
                        help='a checkout of scimlite (a folder with scim_server.py); +seat: as a seat')
    parser.add_argument('second', nargs='?', help='the checkout to compare with the first')
    parser.add_argument('--users', type=int, default=20_000)
    parser.add_argument('--rounds', type=int, default=8)
    parser.add_argument('--calls', type=int, default=400, help='calls of each request a round')
    parser.add_argument('--worker', help=argparse.SUPPRESS)
    parser.add_argument('--as-seat', action='store_true', help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        replies = os.fdopen(os.dup(1), 'w')
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 1)
        worker(args.worker, args.users, args.as_seat, replies)
        return
    if not (args.first and args.second):
        die('two checkouts to compare, e.g. /tmp/before .')
    specs = (args.first, args.second)
    print(f'filling two databases with {args.users:,} users each ...', flush=True)
    workers = [spawn(spec, args.users) for spec in specs]
    for process in workers:
        if process.stdout.readline() != 'ready\n':
            die('a worker did not start (its error is above)')
    costs = ([], [])
    try:
        for round_number in range(args.rounds):
            order = (0, 1) if round_number % 2 == 0 else (1, 0)
            for which in order:
                costs[which].append(json.loads(ask(workers[which], f'round {args.calls}')))
            print(f'  round {round_number + 1}: ' + ', '.join(
                f'{name} {costs[0][-1][name]:.0f}/{costs[1][-1][name]:.0f}' for name in REQUESTS), flush=True)
    finally:
        for process in workers:
            process.stdin.close()
            process.wait(timeout=30)
    print()
    print(f'CPU µs per call, {args.users:,} users, {args.calls} calls a round, median of {args.rounds} rounds '
          f'(taking turns)')
    print(f'{"request":20} {specs[0][-14:]:>14} {specs[1][-14:]:>14} {"ratio":>7}')
    for name in REQUESTS:
        first = statistics.median(run[name] for run in costs[0])
        second = statistics.median(run[name] for run in costs[1])
        ratio = statistics.median(b[name] / a[name] for a, b in zip(*costs, strict=True))
        print(f'{name:20} {first:14.1f} {second:14.1f} {ratio:7.3f}')


if __name__ == '__main__':
    main()
