"""What a request costs inside the server: two checkouts of scimlite, taking turns.

    python bench/inprocess.py /tmp/before .            # 24b7f84 (say) against this checkout
    python bench/inprocess.py . .+seats                # the server's own data set against 50 seats'
    python bench/inprocess.py /tmp/before . --users 20000 --rounds 8 --calls 500
    python bench/inprocess.py /tmp/before . --quiet    # no console line, no exchange log

Each checkout runs in a process of its own (one app per process: the store's
handles belong to it), on a fresh SQLite file filled with `--users` users. The
requests go straight to the real WSGI app, no socket and no load generator: what
is left is scimlite's own work. The processes take turns, one round each in
the order A B B A A B ..., while the other waits, so the machine's drift falls
on both alike. Each round times `--calls` calls of each request and reports
the process's CPU time (all its threads: the exchange log and the board's writer
included) per call. A checkout followed by `+seats` is started with 50 workshop
seats, the users spread over them, and each request carries the token of the
seat it works in, the seats in turn.

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
            'PUT /Users/{id}', 'PUT, new email', 'PUT, no index', 'page of 100', 'group members')
PATCH_OP = 'urn:ietf:params:scim:api:messages:2.0:PatchOp'
GROUPS = 20
SEATS = 50


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
    """Calls the WSGI app as waitress would, with Okta's headers and the token given."""

    def __init__(self, app):
        self.app = app

    def __call__(self, method, path, body=None, token=TOKEN):
        path, _, query = path.partition('?')
        payload = json.dumps(body).encode() if body is not None else b''
        environ = {
            'REQUEST_METHOD': method, 'SCRIPT_NAME': '', 'PATH_INFO': BASE + path, 'QUERY_STRING': query,
            'SERVER_NAME': '127.0.0.1', 'SERVER_PORT': '5000', 'SERVER_PROTOCOL': 'HTTP/1.1',
            'REMOTE_ADDR': '127.0.0.1', 'HTTP_HOST': '127.0.0.1:5000',
            'HTTP_AUTHORIZATION': f'Bearer {token}', 'HTTP_ACCEPT': 'application/scim+json',
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


class Workload:
    """The requests timed, on `users` users spread over the data sets `tokens` open
    (user i in the data of tokens[i % len(tokens)]), each request in one data set."""

    def __init__(self, call, tokens, users):
        self.call, self.tokens, self.seats = call, tokens, len(tokens)
        self.per_seat = users // self.seats
        self.run, self.created = secrets.token_hex(3), 0
        self.names = [f'user{self.run}-{number:07d}@bench.example' for number in range(self.per_seat * self.seats)]
        self.ids = [call('POST', '/Users', user_body(name), tokens[number % self.seats])['id']
                    for number, name in enumerate(self.names)]
        self.groups = [call('POST', '/Groups', {'schemas': ['urn:ietf:params:scim:schemas:core:2.0:Group'],
                                                'displayName': f'Bench group {number}', 'members': []},
                            tokens[number % self.seats])['id'] for number in range(max(GROUPS, self.seats))]

    def timed(self):
        return dict(zip(REQUESTS, (self.post, self.get, self.patch, self.lookup_found, self.lookup_missing,
                                   self.put, self.put_email, self.put_unindexed, self.page, self.group_members),
                        strict=True))

    def user_in(self, seat):
        """A random user of `seat`: (its index, its seat's token)."""
        return seat + self.seats * secrets.randbelow(self.per_seat), self.tokens[seat]

    def any_user(self):
        return self.user_in(secrets.randbelow(self.seats))

    def post(self):
        self.created += 1
        self.call('POST', '/Users', user_body(f'new{self.run}-{self.created:07d}@bench.example'),
                  self.tokens[self.created % self.seats])

    def get(self):
        index, token = self.any_user()
        self.call('GET', f'/Users/{self.ids[index]}', token=token)

    def patch(self):
        index, token = self.any_user()
        self.call('PATCH', f'/Users/{self.ids[index]}', {'schemas': [PATCH_OP], 'Operations': [
            {'op': 'replace', 'value': {'active': secrets.randbelow(2) == 1}}]}, token)

    def lookup_found(self):
        index, token = self.any_user()
        self.call('GET', OKTA_LOOKUP.format(self.names[index]), token=token)

    def lookup_missing(self):
        self.call('GET', OKTA_LOOKUP.format(f'nobody{secrets.token_hex(4)}@bench.example'),
                  token=self.any_user()[1])

    def replace(self, **changed):
        """A PUT of a random user: its POST body again, with `changed` attributes."""
        index, token = self.any_user()
        self.call('PUT', f'/Users/{self.ids[index]}', user_body(self.names[index], id=self.ids[index], **changed),
                  token)

    def put(self):
        self.replace(title=f'Title {secrets.randbelow(1000)}')

    def put_unindexed(self):
        """A PUT as Okta sends one after a profile edit that no index holds (a nickName here):
        the same body, one attribute new."""
        self.replace(nickName=f'Nick {secrets.randbelow(1000)}')

    def put_email(self):
        """A PUT that changes what searches find: a new email, and a new displayName."""
        moved = f'moved{secrets.token_hex(4)}@bench.example'
        self.replace(displayName=f'Moved {moved}', emails=[{'primary': True, 'value': moved, 'type': 'work'}])

    def page(self):
        start = 1 + secrets.randbelow(max(1, self.per_seat - 99))
        self.call('GET', f'/Users?startIndex={start}&count=100', token=self.any_user()[1])

    def group_members(self):
        """Okta's membership PATCH (bench/scim.lua's group_members): one member out, one in."""
        group = secrets.randbelow(len(self.groups))
        (out, token), (into, _) = self.user_in(group % self.seats), self.user_in(group % self.seats)
        self.call('PATCH', f'/Groups/{self.groups[group]}', {'schemas': [PATCH_OP], 'Operations': [
            {'op': 'remove', 'path': f'members[value eq "{self.ids[out]}"]'},
            {'op': 'add', 'path': 'members', 'value': [{'value': self.ids[into], 'display': 'x'}]}]}, token)


def worker(checkout, users, as_seats, quiet, replies):
    """Fill a fresh database, then answer each `round CALLS` line on stdin with a
    JSON line {request: CPU µs per call} on `replies`."""
    sys.path.insert(0, str(checkout))
    sys.dont_write_bytecode = True
    import scim_server
    import store
    folder = Path(tempfile.mkdtemp(prefix='scimlite-inprocess-'))
    overrides = {'database': f'sqlite:///{(folder / "scim.db").as_posix()}', 'token': TOKEN}
    if as_seats:
        overrides['seats'] = SEATS
    if quiet:
        overrides.update(quiet=True, record_exchanges=False)
    app = scim_server.make_app(overrides)
    tokens = [seat['token'] for seat in store.seats()] if as_seats else [TOKEN]
    timed = Workload(Caller(app), tokens, users).timed()
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

def spawn(spec, users, quiet):
    checkout, _, mode = spec.partition('+')
    if mode not in ('', 'seats'):
        die(f'{spec}: a checkout, or a checkout followed by +seats')
    if not (Path(checkout) / 'scim_server.py').is_file():
        die(f'{checkout}: no scim_server.py there')
    command = [sys.executable, str(Path(__file__).resolve()), '--worker', str(Path(checkout).resolve()),
               '--users', str(users)] + (['--as-seats'] if mode else []) + (['--quiet'] if quiet else [])
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
                        help='a checkout of scimlite (a folder with scim_server.py); +seats: as seats')
    parser.add_argument('second', nargs='?', help='the checkout to compare with the first')
    parser.add_argument('--users', type=int, default=20_000)
    parser.add_argument('--rounds', type=int, default=8)
    parser.add_argument('--calls', type=int, default=400, help='calls of each request a round')
    parser.add_argument('--quiet', action='store_true',
                        help='both with quiet = on and record_exchanges = off (default: as a server starts)')
    parser.add_argument('--worker', help=argparse.SUPPRESS)
    parser.add_argument('--as-seats', action='store_true', help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        replies = os.fdopen(os.dup(1), 'w')
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 1)
        worker(args.worker, args.users, args.as_seats, args.quiet, replies)
        return
    if not (args.first and args.second):
        die('two checkouts to compare, e.g. /tmp/before .')
    specs = (args.first, args.second)
    print(f'filling two databases with {args.users:,} users each ...', flush=True)
    workers = [spawn(spec, args.users, args.quiet) for spec in specs]
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
          f'(taking turns){", quiet, no exchange log" if args.quiet else ""}')
    print(f'{"request":20} {specs[0][-14:]:>14} {specs[1][-14:]:>14} {"ratio":>7}')
    for name in REQUESTS:
        first = statistics.median(run[name] for run in costs[0])
        second = statistics.median(run[name] for run in costs[1])
        ratio = statistics.median(b[name] / a[name] for a, b in zip(*costs, strict=True))
        print(f'{name:20} {first:14.1f} {second:14.1f} {ratio:7.3f}')


if __name__ == '__main__':
    main()
