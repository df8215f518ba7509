"""The scimlite benchmark: one command, ratios against a ceiling measured in the same run.

    python bench/run.py                                   # 100,000 users, 10 s a scenario
    python bench/run.py --users 1000000                   # a million users (about 25 minutes, estimated)
    python bench/run.py --users 100000,1000000            # two sizes in one run: each rate's ratio to the smaller
    python bench/run.py --users 100000,1000000 --database postgresql://postgres@127.0.0.1:5432/postgres
    python bench/run.py --users 5000,20000 --duration 3   # a quick look (about 5 minutes)
    python bench/run.py --users 1M --duration 5 --import-seconds 120 --no-recording-cost \
        --scenarios get_by_id,filter_eq,patch_deactivate,put_replace,big_groups   # shorter
    python bench/run.py --other http://127.0.0.1:8000/scim/v2 --other-token T   # a peer, side by side
    python bench/run.py --before /tmp/before              # another checkout (an older commit), taking turns
    python bench/run.py --scenarios seats_provision --users 5000    # workshop seats against one data set

For each size in --users it makes a fresh SQLite file, and with --database a
throw-away PostgreSQL database named from that URL (dropped at the end), and
stores all but --provision-users of the users in it in-process, through the
checkout's own store, as a POST /Users stores them (bench/seed.py; a million
take a few minutes on SQLite, about twice that on PostgreSQL). Then it starts `python
scim_server.py` on each, checks that a seeded user and one created through the
API from the same body read back alike, and provisions the rest the way Okta does
(a userName lookup, then the create), the servers taking turns. It pages through
all the users the way Okta imports (100 a page, by startIndex; cut short after
--import-seconds, and its last page timed alone), times single
searches chosen to match a few seeded users each, and runs each scenario for a
fixed time with keep-alive connections, the servers taking turns (half the time
each, in order and back again) between runs of a ceiling, a bare Bottle+waitress
route (bench/ceiling.py). It prints requests per second, p50/p99 latency, errors,
each rate as a share of the ceiling's, of the smallest size's, and on PostgreSQL
of SQLite's at the same size, with PostgreSQL's settings.

Then, on each server: five groups of 100,000 members (at most every user) are
made and listed at once, every member in the answer, read at full speed and then
by a slow reader (--slow-read-kb a second for --slow-read-seconds, then the rest at
full speed), while the server's RSS is sampled every 10 ms and a GET
/Users/{id} is sent every 50 ms on another connection; pages of users with and
without their groups (excludedAttributes=groups); a PUT of a 10,000-member group
and a PATCH adding 1,000 members; adding one member to the first big group and
to a group of ten; users created by POST /Bulk against plain POST /Users; and the server's
peak RSS (VmHWM). Last, seats_provision, and what the console line and the
dashboard's exchange log cost: a few scenarios served by default and, taking
turns, by a second server on the same database with both switched off.

seats_provision is a workshop provisioning at once: --seats (50) seats of one
server, each user created in the next seat with that seat's token, over the same
connections as the single data set's `provision`, which a second fresh server
runs in turns with it: the median of the turns' ratios (issue 19: at least 90%).

--before runs a second checkout of scimlite (say `git worktree add /tmp/before
24b7f84`) beside this one, each size and database alike: its provisioning and
every scenario take turns with this one's between the same ceiling runs, and each
is printed as a share of the before's rate.

The load comes from wrk (Debian/Ubuntu: `apt-get install wrk`; macOS: `brew install
wrk`), which costs far less CPU than the server: its share is printed. Linux or
macOS: wrk does not run on Windows. A request of the benchmark's own waits up to
REQUEST_TIMEOUT; a measurement that fails is reported as failed and the run goes on.
"""

import argparse
import csv
import http.client
import io
import itertools
import json
import os
import random
import re
import resource
import secrets
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from urllib.parse import quote, urlsplit

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path[:0] = [str(ROOT), str(HERE)]
import scim_server  # noqa: E402  (for the settings the ceiling must share)
import seed  # noqa: E402  (bench/seed.py: the seeded users' bodies and searches)

LUA = HERE / 'scim.lua'
SCENARIOS = ('get_by_id', 'filter_eq', 'list_page', 'patch_deactivate', 'put_replace',
             'group_members', 'mixed', 'big_groups', 'excluded_groups', 'group_writes',
             'bulk_provision', 'seats_provision')
# Not wrk scenarios: measured on each server after them, in this order (big_groups:
# five groups of 100,000 listed, and a member added to one; excluded_groups: pages
# with and without groups; group_writes: PUT of 10,000 members, PATCH adding 1,000),
# then bulk_provision on each server and seats_provision on fresh ones.
MEASUREMENTS = ('big_groups', 'excluded_groups', 'group_writes', 'bulk_provision', 'seats_provision')
# What issue 18's 10% rule compares across sizes.
SIZE_RULE = ('get_by_id', 'filter_eq', 'patch_deactivate', 'put_replace', 'provision')
BULK_TARGET = 3.0   # bulk users/s as a multiple of plain POST's (README, Bulk)
SEATS_TARGET = 0.90   # seats' provisioning users/s as a share of one data set's (issue 19)
BEFORE_TARGET = 0.95   # each scenario's rate as a share of the checkout it is compared with (issue 19)
# The project's target for each scenario on SQLite, as a share of the ceiling's rate (README, Performance).
TARGETS = {'get_by_id': 0.50, 'filter_eq': 0.45, 'patch_deactivate': 0.30, 'put_replace': 0.30,
           'provision': 0.25, 'list_page': 0.08}
FIRST_STAGE_USERS = 1000   # the small server that filter_eq is compared with
PROVISION_USERS = 10_000   # users provisioned through the API at most, by default
REQUEST_TIMEOUT = 900   # seconds one request of the benchmark's own may take (today's slowest take seconds)
SERVER_START_SECONDS = 120
SAMPLE_IDS = 100_000   # users the wrk scenarios pick from: the same load of the data files at every size
BIG_GROUPS = 5
MEMBERS_A_PATCH = 5000   # bodies well below max_body_bytes
PING_INTERVAL = 0.05   # seconds between the GET /Users/{id} sent while a big answer is read
RSS_INTERVAL = 0.01   # seconds between samples of the server's VmRSS meanwhile
SLOW_RECEIVE_BUFFER = 64 * 1024   # the slow reader's socket buffer (Linux doubles it): no MBs in flight
SLOW_PIECE = 16 * 1024
GROUP_SCHEMA = 'urn:ietf:params:scim:schemas:core:2.0:Group'
PATCH_SCHEMA = 'urn:ietf:params:scim:api:messages:2.0:PatchOp'
BACKEND_NAMES = {'sqlite': 'sqlite', 'postgresql': 'pg'}
POSTGRESQL_SETTINGS = ('server_version', 'shared_buffers', 'work_mem', 'effective_cache_size', 'synchronous_commit',
                       'fsync', 'max_connections')


def die(message):
    print(f'bench: {message}', file=sys.stderr)
    raise SystemExit(2)


class BenchError(Exception):
    """A request the benchmark sent was refused, or a check failed."""


def short(number):
    """100000 -> '100k', 1000000 -> '1M'."""
    if number >= 1_000_000 and number % 100_000 == 0:
        return f'{number / 1_000_000:g}M'
    if number >= 1000 and number % 100 == 0:
        return f'{number / 1000:g}k'
    return f'{number:,}'


def user_count(text):
    """'100000', '100_000', '100k', '1M' -> the number."""
    text = text.strip().lower().replace('_', '')
    scale = {'k': 1000, 'm': 1_000_000}.get(text[-1:], 1)
    return round(float(text.rstrip('km')) * scale)


def median(values):
    return statistics.median(values) if values else float('nan')


def repeated(measurement, times, enough=10.0):
    """measurement() up to `times` times, fewer once they took `enough` seconds in all
    (a search through a million users may take many): the list of what each returned."""
    started, found = time.monotonic(), []
    while len(found) < times and (not found or time.monotonic() - started < enough):
        found.append(measurement())
    return found


# ---------------------------------------------------------------------------
# Processes: the servers, wrk, and what they cost
# ---------------------------------------------------------------------------

def start(args, pattern, env=None):
    """Start a server subprocess; wait for `pattern` (with the port as group 1) in its output."""
    process = subprocess.Popen(args, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               text=True, env=env)
    seen = []
    deadline = time.monotonic() + SERVER_START_SECONDS
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            break
        seen.append(line)
        match = re.search(pattern, line)
        if match:   # the rest (scimlite's line per request) is read and dropped, as a terminal would show it
            threading.Thread(target=drain, args=(process.stdout,), daemon=True).start()
            return process, int(match.group(1))
    process.kill()
    die('a server did not start:\n' + ''.join(seen))


def drain(stream):
    for _ in stream:
        pass


def cpu_seconds(pid):
    """User + system CPU time of a running process (Linux /proc; 0 elsewhere)."""
    try:
        fields = Path(f'/proc/{pid}/stat').read_text().rsplit(')', 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf('SC_CLK_TCK')
    except (OSError, IndexError, ValueError):
        return 0.0


def memory_mb(pid, field='VmHWM'):
    """A process's memory figure from /proc/PID/status (VmHWM: its peak RSS; VmRSS: now), in MB."""
    try:
        status = Path(f'/proc/{pid}/status').read_text()
        return int(re.search(rf'{field}:\s+(\d+) kB', status).group(1)) / 1024
    except (OSError, AttributeError):
        return float('nan')


def children_cpu():
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


LATENCY_UNITS = {'us': 1e-3, 'ms': 1.0, 's': 1000.0}


def parse_wrk(output):
    def number(pattern, default=0.0):
        match = re.search(pattern, output)
        return float(match.group(1)) if match else default

    def latency(percent):
        match = re.search(rf'^\s+{percent}%\s+([\d.]+)(us|ms|s)\s*$', output, re.MULTILINE)
        return float(match.group(1)) * LATENCY_UNITS[match.group(2)] if match else float('nan')

    socket_errors = sum(int(n) for n in re.findall(r'(?:connect|read|write|timeout) (\d+)', output))
    return {
        'requests': int(number(r'(\d+) requests in')),
        'rps': number(r'Requests/sec:\s+([\d.]+)'),
        'p50_ms': latency(50),
        'p99_ms': latency(99),
        'errors': int(number(r'Non-2xx or 3xx responses: (\d+)')) + socket_errors,
    }


class Target:
    """A SCIM server under load: where it is, its token, its process (if we started it),
    and for the servers this run starts, its database, size and results."""

    def __init__(self, name, url, token, process=None, backend=None, size=None, checkout=None, database=None):
        parts = urlsplit(url)
        self.name = name
        self.origin = f'{parts.scheme}://{parts.netloc}'
        self.host, self.port = parts.hostname, parts.port or 80
        self.base_path = parts.path.rstrip('/')
        self.token = token
        self.process = process
        self.backend, self.size, self.checkout, self.database = backend, size, checkout, database
        self.data = Path(tempfile.mkdtemp(prefix=f'scimlite-bench-{name.replace(" ", "-")}-'))
        self.run = secrets.token_hex(3)   # userNames of this run: u<run>c<chunk>-<n>@bench.example
        self.results = {}
        self.seeded, self.to_provision = 0, size or 0
        self.all_ids, self.all_names = [], []
        self.big_groups = []

    def wrk(self, scenario, duration, connections, *extra, timeout='10s'):
        """Run one scenario; the result, with the CPU shares of wrk and of the server."""
        command = ['wrk', '-t1', f'-c{connections}', f'-d{duration}s', f'--timeout={timeout}', '--latency',
                   '-s', str(LUA), self.origin, '--', scenario, str(self.data), self.token,
                   self.base_path, *map(str, extra)]
        server_before = cpu_seconds(self.process.pid) if self.process else 0.0
        wrk_before = children_cpu()
        started = time.monotonic()
        output = subprocess.run(command, capture_output=True, text=True, check=True).stdout
        elapsed = time.monotonic() - started
        result = parse_wrk(output)
        result['seconds'] = elapsed
        result['wrk_cpu'] = children_cpu() - wrk_before
        result['server_cpu'] = (cpu_seconds(self.process.pid) - server_before) if self.process else float('nan')
        return result

    def exchange(self, connection, method, path, body=None, token=None):
        """One request: (status, the answer's bytes)."""
        headers = {'Authorization': f'Bearer {token or self.token}', 'Accept': 'application/scim+json',
                   'Content-Type': 'application/scim+json'}
        connection.request(method, self.base_path + path, body=json.dumps(body) if body else None,
                           headers=headers)
        answer = connection.getresponse()
        return answer.status, answer.read()

    def request(self, connection, method, path, body=None, token=None):
        status, payload = self.exchange(connection, method, path, body, token)
        if status >= 400:
            raise BenchError(f'{self.name}: {method} {path[:200]} -> {status} {payload[:300]!r}')
        return json.loads(payload) if payload else None

    def timed(self, connection, method, path, body=None):
        """One request, refused or not: (ms, the parsed answer)."""
        started = time.perf_counter()
        answer = self.request(connection, method, path, body)
        return (time.perf_counter() - started) * 1000, answer

    def connection(self):
        return http.client.HTTPConnection(self.host, self.port, timeout=REQUEST_TIMEOUT)

    def page_through(self, page_size=100, budget=float('inf')):
        """GET every user, `page_size` at a time, as Okta's import does, for at most
        `budget` seconds: (ids, userNames, totalResults, seconds, the last page's startIndex)."""
        connection = self.connection()
        ids, names, start_index, total, last = [], [], 1, None, 1
        started = time.monotonic()
        while (total is None or start_index <= total) and time.monotonic() - started < budget:
            page = self.request(connection, 'GET', f'/Users?startIndex={start_index}&count={page_size}')
            total = page['totalResults']
            resources = page.get('Resources', [])
            if not resources:
                break
            ids += [user['id'] for user in resources]
            names += [user['userName'] for user in resources]
            last, start_index = start_index, start_index + len(resources)
        elapsed = time.monotonic() - started
        connection.close()
        return ids, names, total, elapsed, last

    def use_ids(self, ids, names, users):
        """The users the wrk scenarios pick from: a random sample of at most SAMPLE_IDS, and how many there are."""
        self.all_ids, self.all_names = ids, names
        chosen = sorted(random.sample(range(len(ids)), min(SAMPLE_IDS, len(ids))))
        (self.data / 'ids.txt').write_text(''.join(ids[i] + '\n' for i in chosen))
        (self.data / 'names.txt').write_text(''.join(names[i] + '\n' for i in chosen))
        (self.data / 'users.txt').write_text(f'{users}\n')

    def sample_ids(self):
        return (self.data / 'ids.txt').read_text().split()

    def create_groups(self, count, name='Bench group'):
        connection = self.connection()
        ids = [self.request(connection, 'POST', '/Groups', {
            'schemas': [GROUP_SCHEMA], 'displayName': f'{name} {number} ({self.run})', 'members': []})['id']
            for number in range(count)]
        connection.close()
        return ids

    def user_count(self):
        """How many users there are once the creates still in flight have landed."""
        connection = self.connection()
        previous, total = None, self.users_now(connection)
        while total != previous:
            time.sleep(0.3)
            previous, total = total, self.users_now(connection)
        connection.close()
        return total

    def users_now(self, connection):
        return self.request(connection, 'GET', '/Users?count=0')['totalResults']

    def provision(self, count, connections, longest_chunk=10, scenario='provision'):
        """Okta's create flow (or another `scenario` of creates: bench/scim.lua's create,
        bulk_create) until `count` more users exist: the rate of the full chunks.

        wrk runs for a fixed time and cannot stop early, so the users are created
        in chunks, each sized from the rate so far to end before the goal; a chunk
        that reached the goal (and then idled) is left out of the rate, unless it
        is the only one."""
        have = self.user_count()
        goal = have + count
        full = {'seconds': 0.0, 'users': 0, 'requests': 0, 'errors': 0, 'wrk_cpu': 0.0, 'server_cpu': 0.0}
        # The first chunk short: a fast scenario (POST /Bulk) could otherwise reach the
        # goal within it and idle out its end, the only chunk, counted with its idling.
        chunk, seconds, last = 0, 1, None
        while have < goal:
            chunk += 1
            last = self.wrk(scenario, seconds, connections, goal - have, have, f'{self.run}{scenario[0]}{chunk}-')
            created = self.user_count() - have
            have += created
            full['errors'] += last['errors']
            if have < goal or not full['seconds']:
                full['seconds'] += last['seconds']
                full['users'] += created
                full['requests'] += last['requests']
                full['wrk_cpu'] += last['wrk_cpu']
                full['server_cpu'] += last['server_cpu']
            rate = max(1.0, full['users'] / full['seconds'])
            seconds = int(max(1, min(longest_chunk, 0.9 * (goal - have) / rate)))
        full.update(p50_ms=last['p50_ms'], p99_ms=last['p99_ms'])
        full['users_per_second'] = full['users'] / full['seconds']
        full['rps'] = full['requests'] / full['seconds']
        return full

    def peak_rss_mb(self):
        return memory_mb(self.process.pid) if self.process else float('nan')

    def stop(self, keep_data=False):
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if not keep_data:
            shutil.rmtree(self.data, ignore_errors=True)


class Seats(Target):
    """A server with workshop seats: bench/scim.lua's seats_provision creates users
    in all of them, and their users are counted across them."""

    def __init__(self, name, url, token, process, seat_tokens):
        super().__init__(name, url, token, process)
        self.seat_tokens = seat_tokens
        (self.data / 'tokens.txt').write_text('\n'.join(seat_tokens) + '\n')

    def users_now(self, connection):
        return sum(self.request(connection, 'GET', '/Users?count=0', token=seat)['totalResults']
                   for seat in self.seat_tokens)


# ---------------------------------------------------------------------------
# Databases: a SQLite file each, or a throw-away PostgreSQL database each
# ---------------------------------------------------------------------------

class Databases:
    """The servers' databases: SQLite files in `folder`; PostgreSQL databases made on
    the server `postgresql` names (its database is only connected to, to make and
    drop them: scimlite_bench_<random>), dropped by drop_all."""

    def __init__(self, folder, postgresql=None):
        self.folder, self.postgresql, self.made = folder, postgresql, []

    def admin(self, sql):
        import psycopg2   # requirements.txt's driver, only needed with --database
        connection = psycopg2.connect(self.postgresql)
        try:
            connection.autocommit = True
            with connection.cursor() as cursor:
                cursor.execute(sql)
                return cursor.fetchall() if cursor.description else None
        finally:
            connection.close()

    def new(self, backend, name):
        """A fresh, empty database's URL."""
        if backend == 'sqlite':
            path = self.folder / f'{name.replace(" ", "-")}-{secrets.token_hex(2)}.db'
            return f'sqlite:///{path.as_posix()}'
        database = f'scimlite_bench_{secrets.token_hex(4)}'
        self.admin(f'CREATE DATABASE {database}')
        self.made.append(database)
        return urlsplit(self.postgresql)._replace(path='/' + database).geturl()

    def settings(self):
        """What the PostgreSQL server ran with: {setting: its SHOW value}."""
        return {name: self.admin(f'SHOW {name}')[0][0] for name in POSTGRESQL_SETTINGS}

    def drop_all(self):
        for database in self.made:
            try:
                self.admin(f'DROP DATABASE IF EXISTS {database} WITH (FORCE)')
            except Exception as error:   # the others are still dropped; this one is named
                print(f'bench: could not drop database {database}: {error}', file=sys.stderr)
        self.made = []


def threads_setting(url):
    """scimlite's `threads` for a database URL, as a server of this checkout starts with it (config.ini and all)."""
    return scim_server.load_settings(['--database', url, '--token', 'bench'], environ={})['threads']


# ---------------------------------------------------------------------------
# Filling the servers: seeded in-process, provisioned through the API
# ---------------------------------------------------------------------------

def seed_all(targets):
    """Each target's seeded users stored, one bench/seed.py process after another
    (before its server starts; at once, they took twice as long on two cores, the
    PostgreSQL server's work included); the seconds each took go in its results."""
    for target in targets:
        if not target.seeded:
            continue
        print(f'  {target.name:18} seeding {target.seeded:,} users in-process ...', flush=True)
        command = [sys.executable, str(HERE / 'seed.py'), str(target.checkout), target.database,
                   '--users', str(target.seeded), '--run', target.run, '--out', str(target.data / 'seeded.txt')]
        started = time.monotonic()
        process = subprocess.Popen(command, cwd=ROOT, stderr=subprocess.PIPE, text=True)
        echo(process.stderr, target.name)
        if process.wait():
            die(f'{target.name}: seeding failed (its error is above)')
        target.results['seed_seconds'] = time.monotonic() - started


def echo(stream, name):
    for line in stream:
        print(f'  {name:18}{line.rstrip()}', flush=True)


def seeded_users(target):
    """The seeded users' ids and userNames, in the order of their numbers."""
    ids, names = [], []
    if target.seeded:
        for line in (target.data / 'seeded.txt').read_text().splitlines():
            user_id, name = line.split(' ', 1)
            ids.append(user_id)
            names.append(name)
    return ids, names


def check_shape(target):
    """Seeded user 0, and a user created through the API from the same body under
    another userName, read back alike: the same keys in the same order, the same
    values but for id, meta's times and location, and userName. The API's user is
    one of the target's users."""
    connection = target.connection()
    with open(target.data / 'seeded.txt') as lines:
        seeded_id = lines.readline().split()[0]
    twin = target.request(connection, 'POST', '/Users', seed.user_body(target.run, 0, f'u{target.run}twin@b.example'))
    seeded_user = target.request(connection, 'GET', f'/Users/{seeded_id}')
    api_user = target.request(connection, 'GET', f'/Users/{twin["id"]}')
    connection.close()

    def shape(user):
        meta = user.get('meta', {})
        rest = {key: value for key, value in user.items() if key not in ('id', 'meta', 'userName')}
        return list(user), list(meta), meta.get('resourceType'), meta.get('version'), json.dumps(rest)

    if shape(seeded_user) != shape(api_user):
        raise BenchError(f'{target.name}: a seeded user reads back unlike one created through the API:\n'
                         f'  seeded: {json.dumps(seeded_user)}\n  API:    {json.dumps(api_user)}')


def plan(targets, sizes, provision_users):
    """How many users each target gets through the API (the same number at every
    size, so that provision's rates compare) and in-process."""
    to_provision = provision_users if provision_users is not None else min(PROVISION_USERS, min(sizes) // 10)
    for target in targets:
        target.to_provision = min(to_provision, target.size - 1)
        target.seeded = target.size - target.to_provision - 1   # and one more: check_shape's
        if target.seeded <= 0:
            target.seeded, target.to_provision = 0, target.size


def provision_in_turns(targets, connections):
    """Each target's users to provision, created the way Okta does, the targets
    taking turns (half each, in order, then the other half, back) so that the
    machine's drift falls on all alike."""
    turns = {target: [] for target in targets}
    for first_half, order in ((True, targets), (False, targets[::-1])):
        for target in order:
            half = target.to_provision // 2
            count = half if first_half else target.to_provision - half
            if count:
                print(f'  {target.name:18} provisioning {count:,} users through the API ...', flush=True)
                turns[target].append(target.provision(count, connections))
    for target, runs in turns.items():
        if runs:
            target.results['provision'] = combined(runs)
            print(f'  {target.name:18} provision          {target.results["provision"]["users_per_second"]:9.1f} '
                  f'users/s', flush=True)


def import_all(target, budget):
    """Okta's import of every user, 100 a page by startIndex (at most `budget`
    seconds), then its last page three times: what the scenarios' data files hold."""
    ids, names, total, elapsed, last = target.page_through(budget=budget)
    complete = len(ids) >= total
    last = 1 + (total - 1) // 100 * 100   # the import's last page, had it been cut short
    connection = target.connection()
    last_page_ms = median(repeated(lambda: target.timed(connection, 'GET', f'/Users?startIndex={last}&count=100')[0],
                                   3))
    connection.close()
    target.results['import_all'] = {'seconds': elapsed, 'users': len(ids), 'total': total, 'complete': complete,
                                    'pages_per_second': len(ids) / 100 / elapsed, 'last_page_ms': last_page_ms,
                                    'last_start_index': last}
    if complete and total != target.size:
        raise BenchError(f'{target.name}: paging found {len(ids)} users, totalResults {total}, '
                         f'expected {target.size}')
    if not complete:   # the users the scenarios pick from: the seeded ones, and those the import read
        seeded_ids, seeded_names = seeded_users(target)
        known = set(seeded_ids)
        extra = [(i, n) for i, n in zip(ids, names, strict=True) if i not in known]
        ids, names = seeded_ids + [i for i, _ in extra], seeded_names + [n for _, n in extra]
    target.use_ids(ids, names, total)
    print(f'  {target.name:18} import of all       {elapsed:8.1f} s'
          + ('' if complete else f' (cut short at {target.results["import_all"]["users"]:,} of {total:,} users)')
          + f', last page {last_page_ms:.1f} ms', flush=True)


def prepare_by_api(target, users, connections):
    """A server filled through the API alone (the small one, --other): provision
    `users` the way Okta does, 20 groups, then page through all."""
    print(f'  {target.name:18} provisioning {users:,} users ...', flush=True)
    target.results['provision'] = target.provision(users, connections)
    print(f'  {target.name:18} provision          {target.results["provision"]["users_per_second"]:9.1f} users/s',
          flush=True)
    (target.data / 'groups.txt').write_text('\n'.join(target.create_groups(20)) + '\n')
    target.size = target.user_count()   # a peer may have had users before
    import_all(target, float('inf'))


# ---------------------------------------------------------------------------
# The wrk scenarios, the servers taking turns
# ---------------------------------------------------------------------------

def combined(runs):
    """One result from several runs of a scenario: counts and CPU added up, rates and
    latencies averaged (users per second over the time all the runs took)."""
    result = {key: sum(run[key] for run in runs) for key in ('requests', 'errors', 'wrk_cpu', 'server_cpu', 'seconds')}
    result.update({key: sum(run[key] for run in runs) / len(runs) for key in ('rps', 'p50_ms', 'p99_ms')})
    if all('users' in run for run in runs):
        result['users'] = sum(run['users'] for run in runs)
        result['users_per_second'] = result['users'] / result['seconds']
        result['rps'] = result['requests'] / result['seconds']
    return result


def measure(targets, scenarios, duration, connections, ceiling=None, small=None):
    """Each scenario for `duration` seconds on each target, results in its results.
    Several targets take turns, half the duration each, in order and back (A B B A),
    so that the machine's drift falls on all alike. With a ceiling, a ceiling run
    comes before each scenario and after the last, and each scenario is compared
    with the two around it: the machine's speed drifts, a ratio taken minutes
    apart would measure the drift. filter_eq also runs against `small` (1,000
    users) right before and after, for the same reason. The ceiling's rates."""
    half = max(3, duration // 2)
    ceiling_rates = [ceiling.wrk('ceiling', half, connections)['rps']] if ceiling else []
    for scenario in scenarios:
        if small and scenario == 'filter_eq':
            small_runs = [small.wrk('filter_eq', duration, connections)]
        turns = {target: [] for target in targets}
        order = targets + targets[::-1] if len(targets) > 1 else targets
        for target in order:
            turns[target].append(target.wrk(scenario, half if len(targets) > 1 else duration, connections))
        if small and scenario == 'filter_eq':
            small_runs.append(small.wrk('filter_eq', duration, connections))
            small.results['filter_eq'] = dict(small_runs[0], rps=sum(r['rps'] for r in small_runs) / 2)
        if ceiling:
            ceiling_rates.append(ceiling.wrk('ceiling', half, connections)['rps'])
        for target in targets:
            target.results[scenario] = combined(turns[target])
            if ceiling:
                target.results[scenario]['ceiling_rps'] = sum(ceiling_rates[-2:]) / 2
        print(f'  {scenario:17} ' + ', '.join(f'{t.name} {t.results[scenario]["rps"]:.1f}' for t in targets)
              + ' req/s' + (f'  (ceiling {sum(ceiling_rates[-2:]) / 2:.0f})' if ceiling else ''), flush=True)
    return ceiling_rates


# ---------------------------------------------------------------------------
# Single requests, timed
# ---------------------------------------------------------------------------

# Single requests an IdP, the dashboard or a person sends: how long each takes at
# this size, and how many users it matched. The searches select a few seeded users
# each (seed.search_terms).
QUERIES = (
    ('userName co', '/Users?filter=userName co "{name_co}"'),
    ('userName sw', '/Users?filter=userName sw "u{run}{name_co}"&count=100'),
    ('value-path search', '/Users?filter=emails[type eq "work" and value co "{email_co}"]'),
    ('sorted page (title, ascending)', '/Users?sortBy=title&count=100'),
    ('sorted page (title, descending)', '/Users?sortBy=title&sortOrder=descending&count=100'),
    ('sorted page (userName, middle)', '/Users?sortBy=userName&startIndex={middle}&count=100'),
    ('count=0', '/Users?count=0'),
    ('count=0 filtered', '/Users?count=0&filter=active eq true'),
    ('last page', '/Users?startIndex={last}&count=100'),
)


def time_queries(target):
    """Each query three times (once if that took 10 s) over one connection: the
    median ms, and totalResults; or what failed (a statement_timeout, say)."""
    terms = seed.search_terms(target.seeded)
    connection = target.connection()
    timings = {}
    for name, path in QUERIES:
        path = quote(path.format(middle=max(1, target.size // 2), last=max(1, target.size - 99), run=target.run,
                                 name_co=terms['userName co'], email_co=terms['work email co']), safe='/?=&')
        try:
            samples = repeated(lambda path=path, connection=connection: target.timed(connection, 'GET', path), 3)
        except (BenchError, OSError, http.client.HTTPException) as error:
            timings[name] = {'error': str(error)[:300], 'path': path}
            connection.close()
            connection = target.connection()
            continue
        timings[name] = {'ms': median([ms for ms, _ in samples]), 'total': samples[0][1]['totalResults'],
                         'path': path, 'samples': len(samples)}
    connection.close()
    print(f'  {target.name:18} queries            ' + ', '.join(
        f'{name} {t["ms"]:.0f} ms ({t["total"]})' if 'ms' in t else f'{name} FAILED'
        for name, t in timings.items()), flush=True)
    return timings


def add_members(target, connection, group_id, user_ids):
    for start in range(0, len(user_ids), MEMBERS_A_PATCH):
        value = [{'value': user_id} for user_id in user_ids[start:start + MEMBERS_A_PATCH]]
        target.request(connection, 'PATCH', f'/Groups/{group_id}', {
            'schemas': [PATCH_SCHEMA], 'Operations': [{'op': 'add', 'path': 'members', 'value': value}]})


def time_member_adds(target, big_group, big_size, samples=7):
    """Okta's member add (a PATCH adding one user) to `big_group` (of `big_size`
    members) and to a group of 10: the median time of each, in ms. Each added
    user is removed again."""
    ids = target.sample_ids()
    connection = target.connection()
    small_group = target.create_groups(1, 'Bench ten')[0]
    add_members(target, connection, small_group, ids[:10])
    extra = [target.request(connection, 'POST', '/Users', {
        'schemas': [seed.USER_SCHEMA],
        'userName': f'member-add-{n}-{secrets.token_hex(4)}@bench.example'})['id'] for n in range(samples)]
    timings = {}
    for size, group_id in ((big_size, big_group), (10, small_group)):
        durations = []
        for user_id in extra:
            started = time.perf_counter()
            target.request(connection, 'PATCH', f'/Groups/{group_id}', {'schemas': [PATCH_SCHEMA], 'Operations': [
                {'op': 'add', 'path': 'members', 'value': [{'value': user_id}]}]})
            durations.append((time.perf_counter() - started) * 1000)
            target.request(connection, 'PATCH', f'/Groups/{group_id}', {'schemas': [PATCH_SCHEMA], 'Operations': [
                {'op': 'remove', 'path': f'members[value eq "{user_id}"]'}]})
        timings[size] = median(durations)
    connection.close()
    return timings


# ---------------------------------------------------------------------------
# Big groups: listed at full speed and by a slow reader, with a small request meanwhile
# ---------------------------------------------------------------------------

class Pinger(threading.Thread):
    """GET /Users/{id} every PING_INTERVAL (or as soon as the last answered, if it
    took longer) on a connection of its own: (sent, ms) of each."""

    def __init__(self, target):
        super().__init__(daemon=True)
        self.target, self.ids = target, target.sample_ids()
        self.samples, self.failures, self.stopping = [], [], threading.Event()

    def run(self):
        connection = self.target.connection()
        while not self.stopping.is_set():
            sent = time.monotonic()
            try:
                self.target.request(connection, 'GET', f'/Users/{random.choice(self.ids)}')
                self.samples.append((sent, (time.monotonic() - sent) * 1000))
            except (BenchError, OSError, http.client.HTTPException) as error:
                self.failures.append(str(error)[:200])
                connection.close()
                connection = self.target.connection()
            self.stopping.wait(max(0.0, sent + PING_INTERVAL - time.monotonic()))
        connection.close()

    def during(self, started, ended):
        """The latencies of the requests that were under way between `started` and `ended`."""
        return [ms for sent, ms in self.samples if sent < ended and sent + ms / 1000 > started]


class RssWatch(threading.Thread):
    """The largest VmRSS of a process, sampled every RSS_INTERVAL, and its VmRSS before."""

    def __init__(self, pid):
        super().__init__(daemon=True)
        self.pid, self.stopping = pid, threading.Event()
        self.before = self.peak = memory_mb(pid, 'VmRSS')

    def run(self):
        while not self.stopping.wait(RSS_INTERVAL):
            self.peak = max(self.peak, memory_mb(self.pid, 'VmRSS'))


def watched(target, read):
    """`read()` (a dict of what it read), with the server's RSS sampled and a GET
    /Users/{id} sent every PING_INTERVAL meanwhile: what it read, the seconds, the
    RSS growth (largest VmRSS during it less VmRSS before), VmHWM after, and the
    GETs' latencies."""
    watch, pinger = RssWatch(target.process.pid), Pinger(target)
    watch.start()
    pinger.start()
    time.sleep(0.3)
    started = time.monotonic()
    try:
        outcome = read()
    finally:
        ended = time.monotonic()
        pinger.stopping.set()
        watch.stopping.set()
        pinger.join(REQUEST_TIMEOUT)
        watch.join()
    pings = pinger.during(started, ended)
    if 'payload' in outcome:   # parsed once the pings are in: 90 MB of JSON holds this process's GIL for a second
        outcome = dict(outcome, **parsed_groups(outcome.pop('payload')))
    return dict(outcome, seconds=ended - started, rss_before_mb=watch.before,
                rss_growth_mb=watch.peak - watch.before, vm_hwm_mb=target.peak_rss_mb(),
                pings=len(pings), ping_p50_ms=median(pings), ping_max_ms=max(pings, default=float('nan')),
                ping_failures=pinger.failures[:3])


def read_whole(target, path):
    """GET `path` at full speed: the answer's bytes, and the groups and members in it."""
    connection = target.connection()
    status, payload = target.exchange(connection, 'GET', path)
    connection.close()
    if status != 200:
        raise BenchError(f'{target.name}: GET {path} -> {status} {payload[:300]!r}')
    return {'payload': payload}


def parsed_groups(payload):
    """The answer's bytes, and the groups and members in it."""
    groups = json.loads(payload).get('Resources', [])
    return {'bytes': len(payload), 'groups': len(groups), 'members': sum(len(g.get('members', [])) for g in groups),
            'names': [g['displayName'] for g in groups]}


def read_slowly(target, path, rate, slow_seconds):
    """GET `path` on a raw socket with a small receive buffer, reading `rate` bytes
    a second for `slow_seconds` at most, then the rest at full speed: the bytes
    after the head (chunk sizes too, if chunked), and the seconds read slowly."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, SLOW_RECEIVE_BUFFER)
    sock.settimeout(REQUEST_TIMEOUT)
    with sock:
        sock.connect((target.host, target.port))
        sock.sendall(f'GET {target.base_path}{path} HTTP/1.1\r\nHost: {target.host}:{target.port}\r\n'
                     f'Authorization: Bearer {target.token}\r\nAccept: application/scim+json\r\n'
                     'Connection: close\r\n\r\n'.encode())
        head, received = b'', 0
        started = time.monotonic()
        slow_until = started + slow_seconds
        while True:
            slow = time.monotonic() < slow_until
            data = sock.recv(SLOW_PIECE if slow else 1 << 20)
            if not data:
                break
            if len(head) < 8192:
                head += data[:8192]
            received += len(data)
            if slow:
                time.sleep(max(0.0, min(started + received / rate, slow_until) - time.monotonic()))
    status = int(head.split(b' ', 2)[1]) if head.startswith(b'HTTP/') else 0
    if status != 200:
        raise BenchError(f'{target.name}: GET {path} (read slowly) -> {status} {head[:300]!r}')
    return {'bytes': received - (head.find(b'\r\n\r\n') + 4),
            'read_slowly_seconds': min(slow_seconds, time.monotonic() - started), 'rate': rate}


def big_groups(target, members, args):
    """Fill the target's big groups (made empty at its start, so that they come
    first) with `members` users each, by PATCHes of MEMBERS_A_PATCH; list them all
    (GET /Groups?count=5, every member in the answer), at full speed and slowly;
    then time adding one member to the first and to a group of ten."""
    rng = random.Random(target.run)
    ids = target.all_ids
    chosen = [ids if len(ids) <= members else rng.sample(ids, members) for _ in target.big_groups]
    failures = []

    def fill(group_id, user_ids):
        connection = target.connection()
        try:
            add_members(target, connection, group_id, user_ids)
        except (BenchError, OSError, http.client.HTTPException) as error:
            failures.append(error)
        connection.close()

    # The groups at once, a connection each: PostgreSQL's threads overlap their round trips.
    fillers = [threading.Thread(target=fill, args=pair) for pair in zip(target.big_groups, chosen, strict=True)]
    started = time.monotonic()
    for filler in fillers:
        filler.start()
    for filler in fillers:
        filler.join()
    if failures:
        raise BenchError(f'{target.name}: making the big groups: {failures[0]}')
    result = {'members': members, 'groups': len(target.big_groups), 'fill_seconds': time.monotonic() - started}
    print(f'  {target.name:18} big groups         {len(target.big_groups)} of {members:,} members made in '
          f'{result["fill_seconds"]:.1f} s', flush=True)
    path = f'/Groups?count={len(target.big_groups)}'
    result['list'] = watched(target, lambda: read_whole(target, path))
    expected = [f'Bench big group {n} ({target.run})' for n in range(len(target.big_groups))]
    if result['list']['names'] != expected or result['list']['members'] != members * len(target.big_groups):
        raise BenchError(f'{target.name}: GET {path} answered {result["list"]["names"]} with '
                         f'{result["list"]["members"]} members, not the {len(expected)} big groups')
    result['slow_list'] = watched(target, lambda: read_slowly(target, path, args.slow_read_kb * 1024,
                                                              args.slow_read_seconds))
    for name in ('list', 'slow_list'):
        found = result[name]
        print(f'  {target.name:18} GET {path}{" (slow)" if name == "slow_list" else "":7} '
              f'{found["seconds"]:6.1f} s, {found["bytes"] / 1e6:.1f} MB, RSS +{found["rss_growth_mb"]:.0f} MB '
              f'(VmHWM {found["vm_hwm_mb"]:.0f} MB); GET /Users/{{id}} meanwhile p50 {found["ping_p50_ms"]:.1f} ms, '
              f'max {found["ping_max_ms"]:.1f} ms ({found["pings"]})', flush=True)
    result['member_add_ms'] = time_member_adds(target, target.big_groups[0], members)
    return result


def excluded_groups(target, repeats=5):
    """A page of users with their groups and the same page with excludedAttributes=groups,
    100 and 1,000 a page, at the first page and the last: the median ms of each, taking turns."""
    connection = target.connection()
    total = target.users_now(connection)
    result = {}
    for count in (100, 1000):
        for where, start_index in (('first', 1), ('last', max(1, total - count + 1))):
            path = f'/Users?startIndex={start_index}&count={count}'
            pairs = repeated(lambda path=path: (
                target.timed(connection, 'GET', path)[0],
                target.timed(connection, 'GET', path + '&excludedAttributes=groups')[0]), repeats)
            result[f'{count}@{where}'] = {'start_index': start_index, 'count': count, 'samples': len(pairs),
                                          'groups': median([g for g, _ in pairs]),
                                          'excluded': median([e for _, e in pairs])}
    connection.close()
    print(f'  {target.name:18} excludedAttributes=groups ' + ', '.join(
        f'{key} {r["groups"]:.1f}/{r["excluded"]:.1f} ms' for key, r in result.items()), flush=True)
    return result


def group_writes(target, rounds=3, put_members=10_000, patch_members=1000):
    """A PUT of a group with `put_members` members (the whole body) and a PATCH adding
    `patch_members` to it: each `rounds` times with members it did not have, the median ms."""
    pool = random.Random(target.run + 'w').sample(target.all_ids, min(len(target.all_ids),
                                                                      rounds * (put_members + patch_members)))
    members = itertools.cycle(pool)
    connection = target.connection()
    group_id = target.create_groups(1, 'Bench PUT group')[0]
    put, patch = [], []
    for _ in range(rounds):
        body = {'schemas': [GROUP_SCHEMA], 'displayName': f'Bench PUT group 0 ({target.run})',
                'members': [{'value': next(members)} for _ in range(min(put_members, len(pool)))]}
        put.append(target.timed(connection, 'PUT', f'/Groups/{group_id}', body)[0])
    for _ in range(rounds):
        added = list(dict.fromkeys(next(members) for _ in range(min(patch_members, len(pool)))))
        patch.append(target.timed(connection, 'PATCH', f'/Groups/{group_id}', {
            'schemas': [PATCH_SCHEMA], 'Operations': [{'op': 'add', 'path': 'members',
                                                         'value': [{'value': i} for i in added]}]})[0])
    connection.close()
    result = {'put_members': min(put_members, len(pool)), 'put_ms': put, 'put_median_ms': median(put),
              'patch_members': min(patch_members, len(pool)), 'patch_ms': patch, 'patch_median_ms': median(patch)}
    print(f'  {target.name:18} group writes       PUT of {result["put_members"]:,} members {median(put):.0f} ms, '
          f'PATCH adding {result["patch_members"]:,} {median(patch):.0f} ms', flush=True)
    return result


def attempt(target, name, measurement, *args):
    """target.results[name] = measurement(*args), or what failed: one measurement
    failing (a refusal, a timeout) leaves the others to run."""
    try:
        target.results[name] = measurement(*args)
    except (BenchError, OSError, http.client.HTTPException, ValueError, KeyError) as error:
        target.results[name] = {'error': f'{type(error).__name__}: {str(error)[:500]}'}
        print(f'  {target.name:18} {name} FAILED: {target.results[name]["error"]}', flush=True)


# ---------------------------------------------------------------------------
# Creates: POST /Bulk against POST /Users, and workshop seats
# ---------------------------------------------------------------------------

def bulk_provision(target, users, connections):
    """`users` created by plain POST /Users (no lookup first) and `users` by POST /Bulk
    of 100 POSTs, over the same connections, taking turns (plain, bulk, bulk, plain,
    each half of them) so that the machine's drift cancels out: users/s of each."""
    created = {'create': [], 'bulk_create': []}
    for scenario in ('create', 'bulk_create', 'bulk_create', 'create'):
        created[scenario].append(target.provision(users // 2, connections, scenario=scenario))
    result = {'users': users}
    for scenario, runs in created.items():
        seconds = sum(run['seconds'] for run in runs)
        result[scenario] = {'users_per_second': sum(run['users'] for run in runs) / seconds,
                            'requests_per_second': sum(run['requests'] for run in runs) / seconds,
                            'errors': sum(run['errors'] for run in runs),
                            'server_cpu_ms_per_user': 1000 * sum(run['server_cpu'] for run in runs)
                            / max(1, sum(run['users'] for run in runs))}
    result['ratio'] = result['bulk_create']['users_per_second'] / result['create']['users_per_second']
    print(f'  {target.name:18} bulk_provision     plain {result["create"]["users_per_second"]:8.1f} users/s, '
          f'bulk {result["bulk_create"]["users_per_second"]:8.1f} users/s, {result["ratio"]:.2f}x', flush=True)
    return result


def seats_provision(single, seated, users, connections, rounds):
    """Okta's create flow, `users` users a turn, on `single` (a server without seats)
    and across all the seats of `seated` at once, over the same connections, taking
    turns (single, seats, seats, single, ...) `rounds` times each, so that the
    machine's drift falls on both alike: users/s of each, and the median of the
    rounds' ratios (seats / single). Both servers are stopped at the end."""
    runs = {'single': [], 'seats': []}
    try:
        for round_number in range(rounds):
            turns = (('single', single, 'provision'), ('seats', seated, 'seats_provision'))
            for name, server, scenario in (turns if round_number % 2 == 0 else turns[::-1]):
                runs[name].append(server.provision(users, connections, scenario=scenario))
            print(f'  seats_provision    round {round_number + 1}: single '
                  f'{runs["single"][-1]["users_per_second"]:8.1f} users/s, {len(seated.seat_tokens)} seats '
                  f'{runs["seats"][-1]["users_per_second"]:8.1f} users/s', flush=True)
    finally:
        single.stop()
        seated.stop()
    ratios = [seats['users_per_second'] / single['users_per_second']
              for single, seats in zip(runs['single'], runs['seats'], strict=True)]
    return {'single': combined(runs['single']), 'seats': combined(runs['seats']), 'ratios': ratios,
            'ratio': statistics.median(ratios), 'seat_count': len(seated.seat_tokens),
            'users': users, 'rounds': rounds}


COST_SCENARIOS = ('get_by_id', 'patch_deactivate', 'mixed')


def recording_cost(target, quiet, duration, connections, users=2000):
    """What the console line and the dashboard's exchange log cost: some scenarios, and
    `users` more creates, served by `target` (the default settings) and by `quiet`
    (a second server on the same database with `quiet = on`, `record_exchanges =
    off`), taking turns (on, off, off, on) so that the machine's drift cancels out.
    Each result: the two rates, and the server CPU each spent per request."""
    cost = {}
    for scenario in COST_SCENARIOS + ('provision',):
        runs = {'on': [], 'off': []}
        for name, server in (('on', target), ('off', quiet), ('off', quiet), ('on', target)):
            if scenario == 'provision':
                result = server.provision(users // 2, connections)
                rate = result['users_per_second']
            else:
                result = server.wrk(scenario, max(3, duration // 2), connections)
                rate = result['rps']
            runs[name].append((rate, result['server_cpu'] / max(1, result['requests'])))
        cost[scenario] = {name: {'rate': sum(r for r, _ in pair) / 2, 'cpu_ms': 1000 * sum(c for _, c in pair) / 2}
                          for name, pair in runs.items()}
        on, off = cost[scenario]['on']['rate'], cost[scenario]['off']['rate']
        print(f'  recording on/off {scenario:17} {on:8.1f} / {off:8.1f}',
              flush=True)
    return cost


# ---------------------------------------------------------------------------
# The report
# ---------------------------------------------------------------------------

def rate_of(result, scenario):
    if not result or scenario not in result or 'rps' not in result[scenario]:
        return None
    return result[scenario]['users_per_second' if scenario == 'provision' else 'rps']


def share(numerator, denominator):
    return f'{numerator / denominator:.1%}' if numerator is not None and denominator else ''


def cpu_per_request(result):
    return 1000 * result['server_cpu'] / max(1, result['requests'])


class Report:
    """The tables and lines printed at the end, from the targets' results."""

    def __init__(self, lab, args):
        self.lab, self.args = lab, args
        self.scenarios = ['provision'] + [s for s in lab.scenarios if s not in MEASUREMENTS]

    def group(self, checkout, backend):
        return sorted((t for t in self.lab.targets if t.checkout_label == checkout and t.backend == backend),
                      key=lambda t: t.size)

    def print(self):
        args = self.args
        print()
        print(f'scimlite benchmark: {", ".join(f"{n:,}" for n in self.lab.sizes)} users, {args.duration} s a '
              f'scenario, {args.connections} keep-alive connections, wrk -t1; servers of one scenario take turns')
        print('ceiling: a bare Bottle+waitress route, run before and after each scenario; '
              'each /ceiling is against the mean of those two runs')
        for checkout in self.lab.checkouts:
            for backend in self.lab.backends:
                self.scenario_table(checkout, backend)
        self.footnotes()
        self.measurement_table()
        self.lines()

    def scenario_table(self, checkout, backend):
        group = self.group(checkout, backend)
        comparisons = []   # (title, function(scenario, target) -> text)
        if backend == 'postgresql' and 'sqlite' in self.lab.backends:
            sqlite = {t.size: t for t in self.group(checkout, 'sqlite')}
            comparisons += [(f'pg/sq {short(t.size)}', lambda s, t=t: share(
                rate_of(t.results, s), rate_of(sqlite[t.size].results, s))) for t in group]
        if checkout == 'this' and 'before' in self.lab.checkouts:
            before = {t.size: t for t in self.group('before', backend)}
            comparisons += [(f'/bef {short(t.size)}', lambda s, t=t: share(
                rate_of(t.results, s), rate_of(before[t.size].results, s))) for t in group]
        if self.lab.other and checkout == 'this' and backend == 'sqlite':
            comparisons.append(('/other', lambda s: share(rate_of(group[-1].results, s),
                                                          rate_of(self.lab.other.results, s))))
        print()
        print(f'{BACKEND_NAMES[backend]}{" (before: " + self.args.before + ")" if checkout == "before" else ""}: '
              'req/s (provision: users/s), p50 and p99 ms, errors, share of the ceiling; '
              'each larger size\'s rate as a share of the smallest\'s')
        header = f'{"scenario":17}' + ''.join(
            f' | {short(t.size) + " req/s":>12} {"p50":>7} {"p99":>8} {"err":>5} {"/ceil":>6}' for t in group)
        header += ''.join(f' {short(t.size) + "/" + short(group[0].size):>9}' for t in group[1:])
        header += ''.join(f' {title:>10}' for title, _ in comparisons)
        header += f' {"target":>6}' if backend == 'sqlite' else ''
        print(header)
        for scenario in self.scenarios:
            line = f'{scenario:17}'
            for target in group:
                result, rate = target.results.get(scenario), rate_of(target.results, scenario)
                if rate is None:
                    line += f' | {"":>12} {"":>7} {"":>8} {"":>5} {"":>6}'
                    continue
                line += (f' | {rate:12.1f} {result["p50_ms"]:7.2f} {result["p99_ms"]:8.2f} {result["errors"]:5d} '
                         f'{share(rate, result.get("ceiling_rps")):>6}')
            smallest = rate_of(group[0].results, scenario)
            line += ''.join(f' {share(rate_of(t.results, scenario), smallest):>9}' for t in group[1:])
            line += ''.join(f' {compare(scenario):>10}' for _, compare in comparisons)
            if backend == 'sqlite':
                line += f' {(f"{TARGETS[scenario]:.0%}" if scenario in TARGETS else ""):>6}'
            print(line)

    def footnotes(self):
        if len(self.lab.sizes) > 1:
            print(f'(issue 18: {", ".join(SIZE_RULE)} each within 10% of the smallest size\'s rate on SQLite; '
                  'pg/sq: PostgreSQL\'s rate as a share of SQLite\'s at that size, at least 50%)')
        if 'before' in self.lab.checkouts:
            print(f'(/bef: this checkout\'s rate as a share of the before\'s, taking turns with it: target '
                  f'{BEFORE_TARGET:.0%} or more)')
        print('(provision: users created per second through the API, each a lookup and a create, the same number '
              'at every size, after the rest were seeded in-process; its ceiling is the mean of all ceiling runs)')
        small = self.lab.small
        if small and 'filter_eq' in small.results:
            print(f'filter_eq at {FIRST_STAGE_USERS:,} users (another server, just before and after the others): '
                  f'{small.results["filter_eq"]["rps"]:.0f} req/s')
        measured = [r for t in self.lab.targets for r in t.results.values() if isinstance(r, dict) and 'wrk_cpu' in r]
        wrk_cpu = sum(r['wrk_cpu'] for r in measured)
        server_cpu = sum(r['server_cpu'] for r in measured)
        if server_cpu:
            print(f'load generator CPU: {wrk_cpu:.1f} s, server CPU: {server_cpu:.1f} s '
                  f'(wrk share {wrk_cpu / (wrk_cpu + server_cpu):.1%})')

    def measurement_table(self):
        targets = self.lab.targets
        rows = measurement_rows(targets)
        print()
        print('on each server (ms a request unless said; the median of 3 unless said)')
        width = max(len(label) for label, _, _ in rows) + 1
        print(f'{"":{width}}' + ''.join(f' {t.name:>22}' for t in targets))
        for label, key, cell in rows:
            cells = []
            for target in targets:
                found = target.results.get(key)
                if isinstance(found, dict) and 'error' in found:
                    cells.append('failed')
                    continue
                try:
                    cells.append(cell(target.results))
                except (KeyError, TypeError, ValueError, ZeroDivisionError):
                    cells.append('')
            if any(cells):
                print(f'{label:{width}}' + ''.join(f' {c:>22}' for c in cells))
        for target in targets:
            for name, result in target.results.items():
                if isinstance(result, dict) and 'error' in result:
                    print(f'  {target.name}: {name} failed: {result["error"]}')

    def lines(self):
        lab, args = self.lab, self.args
        for backend, seats in lab.results.get('seats_provision', {}).items():
            single_rate, seats_rate = seats['single']['users_per_second'], seats['seats']['users_per_second']
            print(f'seats_provision ({BACKEND_NAMES[backend]}): {seats["seat_count"]} seats provisioning at once '
                  f'(Okta\'s lookup, then the create, each user in the next seat) against one data set, '
                  f'{args.connections} connections each, {seats["users"]:,} users a turn, {seats["rounds"]} turns '
                  f'each, taking turns: {seats_rate:.1f} / {single_rate:.1f} users/s; ratio of each turn '
                  + ', '.join(f'{ratio:.1%}' for ratio in seats['ratios'])
                  + f'; median {seats["ratio"]:.1%} (target {SEATS_TARGET:.0%}); server CPU a request '
                  f'{cpu_per_request(seats["seats"]):.3f} / {cpu_per_request(seats["single"]):.3f} ms; errors '
                  f'{seats["seats"]["errors"]} / {seats["single"]["errors"]}')
        if 'recording' in lab.results:
            print(f'the console line and the exchange log on {lab.primary.name} (on, the default, against off: a '
                  'second server on the same database, taking turns): rate on/off, and server CPU per request on/off')
            for name, cost in lab.results['recording'].items():
                on, off = cost['on'], cost['off']
                print(f'  {name:17} {on["rate"]:8.1f} / {off["rate"]:8.1f} = {on["rate"] / off["rate"]:6.1%}   '
                      f'cpu {on["cpu_ms"]:.3f} / {off["cpu_ms"]:.3f} ms = {on["cpu_ms"] / off["cpu_ms"]:6.1%}')
        if 'postgresql' in lab.results:
            print('PostgreSQL: ' + ', '.join(f'{k} {v}' for k, v in lab.results['postgresql'].items()))
        print('scimlite threads: ' + ', '.join(f'{BACKEND_NAMES[k]} {v}' for k, v in lab.results['threads'].items()))
        print(f'wall clock: {lab.results["wall_seconds"] / 60:.1f} minutes')


def measurement_rows(targets):
    """(label, the result it reads, function(results) -> text) for each line of the table of single measurements."""
    def query(name):
        return lambda r: ('failed' if 'error' in r['queries'][name]
                          else f'{r["queries"][name]["ms"]:.1f} ({r["queries"][name]["total"]:,})')

    def big(key, text):
        return lambda r: text(r['big_groups'][key])

    def page(key):
        return lambda r: f'{r["excluded_groups"][key]["groups"]:.1f} / {r["excluded_groups"][key]["excluded"]:.1f}'

    def writes(r, which):
        found = r['group_writes']
        fewer = found[f'{which}_members'] < {'put': 10_000, 'patch': 1000}[which]
        return f'{found[f"{which}_median_ms"]:.0f}' + (f' ({found[f"{which}_members"]:,})' if fewer else '')

    first = next((t for t in targets if 'members' in t.results.get('big_groups', {})), None)
    members = f'{first.results["big_groups"]["members"]:,}' if first else 'N'
    rows = [
        ('users: seeded + through the API (+1: the check)', 'seeded',
         lambda r: f'{r["seeded"]:,} + {r["provisioned"]:,}'),
        ('seeding, in-process (s)', 'seed_seconds', lambda r: f'{r["seed_seconds"]:.0f}'),
        ('import of all users, 100 a page (s)', 'import_all', lambda r: f'{r["import_all"]["seconds"]:.1f}' + (
            '' if r['import_all']['complete'] else f' (cut: {r["import_all"]["users"]:,})')),
        ('import: its last page (ms)', 'import_all', lambda r: f'{r["import_all"]["last_page_ms"]:.1f}'),
        ('peak RSS after the import (MB)', 'peak_rss_after_import_mb',
         lambda r: f'{r["peak_rss_after_import_mb"]:.0f}'),
        ('peak RSS before the big groups (MB)', 'peak_rss_before_big_groups_mb',
         lambda r: f'{r["peak_rss_before_big_groups_mb"]:.0f}'),
        ('peak RSS through the whole run (MB)', 'peak_rss_mb', lambda r: f'{r["peak_rss_mb"]:.0f}'),
    ]
    rows += [(f'{name} (ms, and totalResults)', 'queries', query(name)) for name, _ in QUERIES]
    rows += [(f'making {BIG_GROUPS} groups of {members} members (s)', 'big_groups',
              big('fill_seconds', lambda v: f'{v:.1f}'))]
    for key, how in (('list', 'at full speed'), ('slow_list', 'by a slow reader')):
        rows += [
            (f'GET /Groups?count={BIG_GROUPS} read {how} (s, MB)', 'big_groups',
             big(key, lambda v: f'{v["seconds"]:.1f} s, {v["bytes"] / 1e6:.1f} MB')),
            ('  server RSS growth meanwhile, VmHWM (MB)', 'big_groups',
             big(key, lambda v: f'+{v["rss_growth_mb"]:.0f}, {v["vm_hwm_mb"]:.0f}')),
            ('  GET /Users/{id} meanwhile, p50 / max (ms)', 'big_groups',
             big(key, lambda v: f'{v["ping_p50_ms"]:.1f} / {v["ping_max_ms"]:.0f}')),
        ]
    rows += [(f'add 1 member to a group of {members} / of 10 (median of 7)', 'big_groups',
              big('member_add_ms', lambda v: ' / '.join(f'{ms:.1f}' for _, ms in sorted(v.items(), reverse=True))))]
    rows += [(f'page of {count} at the {where}: with groups / excluded (median of 5)',
              'excluded_groups', page(f'{count}@{where}')) for count in (100, 1000) for where in ('first', 'last')]
    rows += [
        ('PUT of a 10,000-member group (members, if fewer)', 'group_writes', lambda r: writes(r, 'put')),
        ('PATCH adding 1,000 members (members, if fewer)', 'group_writes', lambda r: writes(r, 'patch')),
        ('bulk_provision: plain / bulk users/s', 'bulk_provision', lambda r: (
            f'{r["bulk_provision"]["create"]["users_per_second"]:.0f} / '
            f'{r["bulk_provision"]["bulk_create"]["users_per_second"]:.0f} = {r["bulk_provision"]["ratio"]:.2f}x')),
    ]
    return rows


# ---------------------------------------------------------------------------
# The run
# ---------------------------------------------------------------------------

class Lab:
    """The servers of one run: their databases, the ceiling, and the order of work."""

    def __init__(self, args, workdir):
        self.args, self.workdir = args, workdir
        self.sizes = args.users
        self.scenarios = [s for s in args.scenarios.split(',') if s and s != 'provision']
        self.backends = ['sqlite'] + (['postgresql'] if args.database else [])
        self.checkouts = ['this'] + (['before'] if args.before else [])
        self.databases = Databases(workdir, args.database)
        self.token = secrets.token_urlsafe(24)
        self.env = {k: v for k, v in os.environ.items() if not k.startswith('SCIM_')}
        self.targets, self.servers, self.results = [], [], {}
        self.small = self.other = self.ceiling = None

    def server(self, name, backend='sqlite', *extra, checkout=ROOT, database=None, size=None):
        """A scimlite server on a fresh database of `backend` (or on `database`)."""
        database = database or self.databases.new(backend, name)
        process, port = start([sys.executable, str(Path(checkout) / 'scim_server.py'), '--port', '0',
                               f'--token={self.token}', '--database', database, *extra],
                              r'SCIM base URL:\s+http://127\.0\.0\.1:(\d+)/', self.env)
        target = Target(name, f'http://127.0.0.1:{port}/scim/v2', self.token, process, backend, size,
                        Path(checkout).resolve(), database)
        self.servers.append(target)
        return target

    def seated_server(self, backend):
        """A server with `--seats` workshop seats, their tokens read as the instructor would (--seat-cards)."""
        plain = self.server('seats', backend, '--seats', str(self.args.seats))
        cards = subprocess.run([sys.executable, str(ROOT / 'scim_server.py'), f'--token={self.token}',
                                '--database', plain.database, '--seat-cards'],
                               cwd=ROOT, env=self.env, capture_output=True, text=True, check=True).stdout
        shutil.rmtree(plain.data, ignore_errors=True)
        seated = Seats('seats', plain.origin + plain.base_path, self.token, plain.process,
                       [card['token'] for card in csv.DictReader(io.StringIO(cards))])
        self.servers.append(seated)
        return seated

    def quiet_twin(self, target):
        """A second server on `target`'s database, without the console line or the exchange log."""
        quiet_ini = self.workdir / 'quiet.ini'
        quiet_ini.write_text('[scimlite]\nquiet = on\nrecord_exchanges = off\n')
        twin = self.server('quiet', target.backend, '--config', str(quiet_ini), database=target.database)
        shutil.rmtree(twin.data, ignore_errors=True)
        twin.data, twin.run = target.data, target.run + 'q'
        return twin

    @property
    def primary(self):
        """The largest SQLite server of this checkout: the one --other and the recording's cost compare with."""
        return max((t for t in self.targets if t.checkout_label == 'this' and t.backend == 'sqlite'),
                   key=lambda t: t.size)

    def make_targets(self):
        """A database and a name for each checkout, database and size; seeded, then started."""
        planned = []
        for label, checkout in zip(self.checkouts, (ROOT, self.args.before), strict=False):
            for backend in self.backends:
                for size in self.sizes:
                    name = ('before ' if label == 'before' else '') + f'{BACKEND_NAMES[backend]} {short(size)}'
                    planned.append((label, checkout, backend, size, name, self.databases.new(backend, name)))
        stubs = []
        for label, checkout, backend, size, name, database in planned:
            stub = Target(name, 'http://127.0.0.1:0/', self.token, None, backend, size, Path(checkout).resolve(),
                          database)
            stub.checkout_label = label
            stubs.append(stub)
        plan(stubs, self.sizes, self.args.provision_users)
        seed_all(stubs)
        for stub in stubs:
            target = self.server(stub.name, stub.backend, checkout=stub.checkout, database=stub.database,
                                 size=stub.size)
            shutil.rmtree(target.data, ignore_errors=True)
            target.data, target.run, target.results = stub.data, stub.run, stub.results
            target.seeded, target.to_provision = stub.seeded, stub.to_provision
            target.checkout_label = stub.checkout_label
            target.results.update(seeded=target.seeded, provisioned=target.to_provision)
            self.targets.append(target)
        return self.targets

    def fill(self):
        """Every server's data: shapes checked, five empty big groups (first, so that
        GET /Groups?count=5 lists them), the provisioning in turns, 20 groups, the import."""
        for target in self.targets:
            if target.seeded:
                check_shape(target)
            target.big_groups = target.create_groups(BIG_GROUPS, 'Bench big group')
        provision_in_turns(self.targets, self.args.connections)
        for target in self.targets:
            (target.data / 'groups.txt').write_text('\n'.join(target.create_groups(20)) + '\n')
            import_all(target, self.args.import_seconds)
            target.results['peak_rss_after_import_mb'] = target.peak_rss_mb()
            attempt(target, 'queries', time_queries, target)

    def measure_all(self):
        args = self.args
        wrk_scenarios = [s for s in self.scenarios if s not in MEASUREMENTS]
        self.results['ceiling_rates'] = measure(self.targets, wrk_scenarios, args.duration, args.connections,
                                                self.ceiling, self.small if 'sqlite' in self.backends else None)
        for target in self.targets:
            if 'provision' in target.results and self.results['ceiling_rates']:
                rates = self.results['ceiling_rates']
                target.results['provision']['ceiling_rps'] = sum(rates) / len(rates)
            target.results['peak_rss_before_big_groups_mb'] = target.peak_rss_mb()
        for target in self.targets:
            members = min(args.big_group_members, len(target.all_ids))
            if 'big_groups' in self.scenarios:
                attempt(target, 'big_groups', big_groups, target, members, args)
            if 'excluded_groups' in self.scenarios:
                attempt(target, 'excluded_groups', excluded_groups, target)
            if 'group_writes' in self.scenarios:
                attempt(target, 'group_writes', group_writes, target)
        if 'bulk_provision' in self.scenarios:
            for target in self.targets:
                attempt(target, 'bulk_provision', bulk_provision, target, args.bulk_users, args.connections)
        if 'seats_provision' in self.scenarios:
            self.results['seats_provision'] = {
                backend: seats_provision(self.server('single', backend), self.seated_server(backend),
                                         args.seats_users, args.connections, args.seats_rounds)
                for backend in self.backends}
        if not args.no_recording_cost:
            quiet = self.quiet_twin(self.primary)
            try:
                self.results['recording'] = recording_cost(self.primary, quiet, args.duration, args.connections)
            finally:
                quiet.stop(keep_data=True)   # its data folder is the primary's
                self.servers.remove(quiet)
        for target in self.targets:
            target.results['peak_rss_mb'] = target.peak_rss_mb()

    def measure_other(self):
        args = self.args
        prepare_by_api(self.other, args.other_users or max(self.sizes), args.connections)
        measure([self.other], [s for s in self.scenarios if s not in MEASUREMENTS], args.duration, args.connections)

    def stop(self):
        for server in self.servers + [self.ceiling, self.other]:
            if server:
                server.stop()
        self.databases.drop_all()


def parse_arguments(argv):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--users', type=lambda text: sorted({user_count(p) for p in text.split(',') if p.strip()}),
                        default=[100_000], help='users on each server; several sizes, comma-separated, each a '
                        'server of its own, side by side (100000,1000000 or 100k,1M)')
    parser.add_argument('--provision-users', type=int,
                        help=f'users created through the API at each size, the rest seeded in-process '
                        f'(default: {PROVISION_USERS:,}, at most a tenth of the smallest size)')
    parser.add_argument('--database', help='a PostgreSQL URL: every scenario runs on PostgreSQL too, each server '
                        'on a throw-away database made there, e.g. postgresql://postgres@127.0.0.1:5432/postgres')
    parser.add_argument('--duration', type=int, default=10, help='seconds a scenario')
    parser.add_argument('--connections', type=int, default=8)
    parser.add_argument('--scenarios', default=','.join(SCENARIOS))
    parser.add_argument('--import-seconds', type=float, default=600,
                        help='the longest the import of all users may take on one server, then it is cut short')
    parser.add_argument('--big-group-members', type=int, default=100_000,
                        help=f'members of each of the {BIG_GROUPS} big groups (at most every user)')
    parser.add_argument('--slow-read-kb', type=float, default=256, help="the slow reader's KB a second")
    parser.add_argument('--slow-read-seconds', type=float, default=30,
                        help='the longest the slow reader reads slowly, then it reads the rest at full speed')
    parser.add_argument('--other', help='another SCIM base URL to measure side by side')
    parser.add_argument('--other-token', default='123456789')
    parser.add_argument('--other-users', type=int, help='users for the other server (default: the largest --users)')
    parser.add_argument('--bulk-users', type=int, default=10_000,
                        help='users bulk_provision creates each way (plain POST /Users, POST /Bulk)')
    parser.add_argument('--before', help='another checkout of scimlite (a folder) to measure taking turns with this '
                        'one, e.g. an older commit: git worktree add /tmp/before 24b7f84')
    parser.add_argument('--seats', type=int, default=50, help='seats that seats_provision provisions at once')
    parser.add_argument('--seats-users', type=int, default=4000,
                        help='users each turn of seats_provision creates (seats, and one data set)')
    parser.add_argument('--seats-rounds', type=int, default=5, help='turns of seats_provision, each way')
    parser.add_argument('--json', help='also write the results to this file')
    parser.add_argument('--no-recording-cost', action='store_true',
                        help='skip measuring the console line and exchange log against a quiet server')
    args = parser.parse_args(argv)
    if args.before and not (Path(args.before) / 'scim_server.py').is_file():
        die(f'--before {args.before}: no scim_server.py there')
    if args.database and not args.database.startswith(('postgresql://', 'postgres://')):
        die(f'--database {args.database}: a postgresql:// URL (SQLite always runs)')
    if not args.users or min(args.users) < 20:
        die('--users: at least 20 users a server')
    unknown = set(args.scenarios.split(',')) - set(SCENARIOS) - {'provision', ''}
    if unknown:
        die(f'--scenarios: unknown {", ".join(sorted(unknown))}; known: {", ".join(SCENARIOS)}')
    return args


def main(argv=None):
    args = parse_arguments(argv)
    if not shutil.which('wrk'):
        die('wrk is needed: apt-get install wrk (Debian/Ubuntu) or brew install wrk (macOS)')
    began = time.monotonic()
    workdir = Path(tempfile.mkdtemp(prefix='scimlite-bench-'))
    lab = Lab(args, workdir)
    try:
        lab.make_targets()
        ceiling_process, ceiling_port = start(
            [sys.executable, str(HERE / 'ceiling.py'), str(scim_server.DEFAULT_THREADS['sqlite']),
             str(scim_server.SWITCH_INTERVAL)], r'port (\d+)')
        lab.ceiling = Target('ceiling', f'http://127.0.0.1:{ceiling_port}', lab.token, ceiling_process)
        lab.small = lab.server('small 1k')
        prepare_by_api(lab.small, min(min(args.users), FIRST_STAGE_USERS), args.connections)
        lab.fill()
        lab.measure_all()
        if args.other:
            lab.other = Target('other', args.other, args.other_token)
            lab.measure_other()
        if args.database:
            lab.results['postgresql'] = lab.databases.settings()
        lab.results['threads'] = {backend: threads_setting(next(t.database for t in lab.targets
                                                                if t.backend == backend))
                                  for backend in lab.backends}
        lab.results['wall_seconds'] = time.monotonic() - began
        Report(lab, args).print()
        if args.json:
            Path(args.json).write_text(json.dumps({
                'targets': {t.name: t.results for t in lab.targets}, 'small': lab.small.results,
                'other': lab.other.results if lab.other else {}, 'run': lab.results,
                'args': vars(args)}, indent=1, default=str))
    except BenchError as error:
        die(str(error))
    finally:
        lab.stop()
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == '__main__':
    main()
