"""The scimlite benchmark: one command, ratios against a ceiling measured in the same run.

    python bench/run.py                      # 100,000 users, 10 s a scenario
    python bench/run.py --users 5000 --duration 5
    python bench/run.py --other http://127.0.0.1:8000/scim/v2 --other-token T   # a peer, side by side
    python bench/run.py --before /tmp/before       # another checkout (an older commit), taking turns
    python bench/run.py --scenarios seats_provision --users 5000    # workshop seats against one data set

It starts `python scim_server.py` as a subprocess on a fresh SQLite file,
provisions users the way Okta does (a userName lookup, then the create), pages
through all of them the way Okta imports, then runs each scenario for a fixed
time with keep-alive connections, and prints requests per second, p50/p99
latency, errors, the server's peak RSS, and each rate as a share of a bare
Bottle+waitress route (bench/ceiling.py) measured in the same run. Last, it times
adding one member to a group of every user and to a group of ten, and measures
what the console line and the dashboard's exchange log cost: a few scenarios
served by default and, taking turns, by a second server on the same database
with both switched off.

seats_provision is a workshop provisioning at once: --seats (50) seats of one
server, each user created in the next seat with that seat's token, over the same
connections as the single data set's `provision`, which a second fresh server
runs in turns with it: the median of the turns' ratios (issue 19: at least 90%).

--before runs a second checkout of scimlite (say `git worktree add /tmp/before
24b7f84`) beside this one: its provisioning and every scenario take turns with
this one's (this, before, before, this) between the same ceiling runs, and each
is printed as a share of the before's rate.

The load comes from wrk (Debian/Ubuntu: `apt-get install wrk`; macOS: `brew install
wrk`), which costs far less CPU than the server: its share is printed. Linux or
macOS: wrk does not run on Windows.
"""

import argparse
import csv
import http.client
import io
import json
import os
import re
import resource
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))
import scim_server  # noqa: E402  (for the settings the ceiling must share)
LUA = HERE / 'scim.lua'
SCENARIOS = ('get_by_id', 'filter_eq', 'list_page', 'patch_deactivate', 'put_replace',
             'group_members', 'mixed', 'bulk_provision', 'seats_provision')
# Not wrk scenarios of their own: users created by POST /Bulk against plain POST /Users
# (bulk_provision()), and by workshop seats against one data set (seats_provision()).
MEASUREMENTS = ('bulk_provision', 'seats_provision')
BULK_TARGET = 3.0   # bulk users/s as a multiple of plain POST's (README, Bulk)
SEATS_TARGET = 0.90   # seats' provisioning users/s as a share of one data set's (issue 19)
BEFORE_TARGET = 0.95   # each scenario's rate as a share of the checkout it is compared with (issue 19)
# The project's target for each scenario, as a share of the ceiling's rate (README, Performance).
TARGETS = {'get_by_id': 0.50, 'filter_eq': 0.45, 'patch_deactivate': 0.30, 'put_replace': 0.30,
           'provision': 0.25, 'list_page': 0.08}
FIRST_STAGE_USERS = 1000   # the small server that filter_eq is compared with


def die(message):
    print(f'bench: {message}', file=sys.stderr)
    raise SystemExit(2)


# ---------------------------------------------------------------------------
# Processes: the servers, wrk, and what they cost
# ---------------------------------------------------------------------------

def start(args, pattern, env=None):
    """Start a server subprocess; wait for `pattern` (with the port as group 1) in its output."""
    process = subprocess.Popen(args, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               text=True, env=env)
    seen = []
    deadline = time.monotonic() + 30
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


def peak_rss_mb(pid):
    try:
        status = Path(f'/proc/{pid}/status').read_text()
        return int(re.search(r'VmHWM:\s+(\d+) kB', status).group(1)) / 1024
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
    """A SCIM server under load: where it is, its token, its process (if we started it)."""

    def __init__(self, name, url, token, process=None):
        parts = urlsplit(url)
        self.name = name
        self.origin = f'{parts.scheme}://{parts.netloc}'
        self.host, self.port = parts.hostname, parts.port or 80
        self.base_path = parts.path.rstrip('/')
        self.token = token
        self.process = process
        self.data = Path(tempfile.mkdtemp(prefix=f'scimlite-bench-{name}-'))
        self.run = secrets.token_hex(3)   # userNames of this run: u<run>c<chunk>-<n>@bench.example

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

    def request(self, connection, method, path, body=None, token=None):
        headers = {'Authorization': f'Bearer {token or self.token}', 'Accept': 'application/scim+json',
                   'Content-Type': 'application/scim+json'}
        connection.request(method, self.base_path + path, body=json.dumps(body) if body else None,
                           headers=headers)
        answer = connection.getresponse()
        payload = answer.read()
        if answer.status >= 400:
            die(f'{self.name}: {method} {path} -> {answer.status} {payload[:300]!r}')
        return json.loads(payload) if payload else None

    def connection(self):
        return http.client.HTTPConnection(self.host, self.port, timeout=120)

    def page_through(self, page_size=100):
        """GET every user, `page_size` at a time, as Okta's import does; writes the data files."""
        connection = self.connection()
        ids, names, start_index, total = [], [], 1, None
        started = time.monotonic()
        while total is None or start_index <= total:
            page = self.request(connection, 'GET', f'/Users?startIndex={start_index}&count={page_size}')
            total = page['totalResults']
            resources = page.get('Resources', [])
            if not resources:
                break
            ids += [user['id'] for user in resources]
            names += [user['userName'] for user in resources]
            start_index += len(resources)
        elapsed = time.monotonic() - started
        connection.close()
        (self.data / 'ids.txt').write_text('\n'.join(ids) + '\n')
        (self.data / 'names.txt').write_text('\n'.join(names) + '\n')
        return len(ids), total, elapsed

    def create_groups(self, count):
        connection = self.connection()
        ids = [self.request(connection, 'POST', '/Groups', {
            'schemas': ['urn:ietf:params:scim:schemas:core:2.0:Group'],
            'displayName': f'Bench group {number}', 'members': []})['id'] for number in range(count)]
        connection.close()
        (self.data / 'groups.txt').write_text('\n'.join(ids) + '\n')

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

    def stop(self):
        if self.process and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)
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
# The run
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


def measure(target, scenarios, duration, connections, ceiling=None, small=None, twin=None, twin_results=None):
    """Each scenario for `duration` seconds. With a ceiling, a ceiling run comes
    before each scenario and after the last, and each scenario is compared with
    the two around it: the machine's speed drifts, a ratio taken minutes apart
    would measure the drift. filter_eq also runs against `small` (1,000 users)
    right before and after, for the same reason. With a `twin` (another checkout),
    the two take turns, half the duration each (target, twin, twin, target), and
    the twin's results go to `twin_results`."""
    results = {}
    half = max(3, duration // 2)
    before = ceiling.wrk('ceiling', half, connections)['rps'] if ceiling else None
    for scenario in scenarios:
        if small and scenario == 'filter_eq':
            small_runs = [small.wrk('filter_eq', duration, connections)]
        if twin:
            turns = {target: [], twin: []}
            for server in (target, twin, twin, target):
                turns[server].append(server.wrk(scenario, half, connections))
            results[scenario], twin_results[scenario] = combined(turns[target]), combined(turns[twin])
        else:
            results[scenario] = target.wrk(scenario, duration, connections)
        if small and scenario == 'filter_eq':
            small_runs.append(small.wrk('filter_eq', duration, connections))
            results['filter_eq@1k'] = dict(small_runs[0], rps=sum(r['rps'] for r in small_runs) / 2)
        if ceiling:
            after = ceiling.wrk('ceiling', half, connections)['rps']
            results[scenario]['ceiling_rps'] = (before + after) / 2
            if twin:
                twin_results[scenario]['ceiling_rps'] = results[scenario]['ceiling_rps']
            before = after
        print(f'  {target.name:9} {scenario:17} {results[scenario]["rps"]:9.1f} req/s'
              + (f'  (ceiling {results[scenario]["ceiling_rps"]:.0f})' if ceiling else '')
              + (f'  {twin.name} {twin_results[scenario]["rps"]:.1f} req/s' if twin else ''), flush=True)
    return results


def prepare(target, users, connections, results):
    """Provision `users` the way Okta does, create 20 groups, then page through all."""
    print(f'  {target.name:9} provisioning {users} users ...', flush=True)
    results['provision'] = target.provision(users, connections)
    print(f'  {target.name:9} provision          {results["provision"]["users_per_second"]:9.1f} users/s',
          flush=True)
    fill(target, users, results)


def prepare_alternately(target, twin, users, connections, results, twin_results):
    """prepare() both, their provisioning taking turns (target, twin, twin, target,
    half the users a turn), so that the machine's drift falls on both alike."""
    half = users // 2
    turns = {target: [], twin: []}
    for server, count in ((target, half), (twin, half), (twin, users - half), (target, users - half)):
        print(f'  {server.name:9} provisioning {count} users ...', flush=True)
        turns[server].append(server.provision(count, connections))
    for server, server_results in ((target, results), (twin, twin_results)):
        server_results['provision'] = combined(turns[server])
        print(f'  {server.name:9} provision          {server_results["provision"]["users_per_second"]:9.1f} '
              f'users/s', flush=True)
        fill(server, users, server_results)


def fill(target, users, results):
    """After provisioning: 20 groups, then page through all the users as Okta's import does."""
    target.create_groups(20)
    count, total, elapsed = target.page_through()
    if count != users or total != users:
        die(f'{target.name}: paging found {count} users, totalResults {total}, expected {users}')
    results['import_all'] = {'seconds': elapsed, 'pages_per_second': (users / 100) / elapsed}


# Single requests a person or a conformance tester sends: how long each takes at this size.
QUERIES = (
    ('co search', '/Users?filter=userName%20co%20%2200999%22'),
    ('sw search', '/Users?filter=userName%20sw%20%22user%22&count=100'),
    ('value-path search', '/Users?filter=emails%5Btype%20eq%20%22work%22%20and%20value%20co%20%220099%22%5D'),
    ('sorted page (userName)', '/Users?sortBy=userName&startIndex={middle}&count=100'),
    ('sorted page (title)', '/Users?sortBy=title&sortOrder=descending&count=100'),
    ('count=0', '/Users?count=0'),
    ('count=0 filtered', '/Users?count=0&filter=active%20eq%20true'),
    ('last page', '/Users?startIndex={last}&count=100'),
)


def time_queries(target, users):
    """Each query three times over one connection: the median, in ms."""
    connection = target.connection()
    timings = {}
    for name, path in QUERIES:
        path = path.format(middle=max(1, users // 2), last=max(1, users - 99))
        samples = []
        for _ in range(3):
            started = time.perf_counter()
            target.request(connection, 'GET', path)
            samples.append((time.perf_counter() - started) * 1000)
        timings[name] = sorted(samples)[1]
    connection.close()
    return timings


def time_member_adds(target, samples=7):
    """Okta's member add (a PATCH adding one user) to a group of every user and to a
    group of 10: the median time of each, in ms. Each added user is removed again."""
    ids = (target.data / 'ids.txt').read_text().split()
    connection = target.connection()
    patch = 'urn:ietf:params:scim:api:messages:2.0:PatchOp'

    def group_of(name, members):
        group_id = target.request(connection, 'POST', '/Groups', {
            'schemas': ['urn:ietf:params:scim:schemas:core:2.0:Group'], 'displayName': name, 'members': []})['id']
        for start in range(0, len(members), 5000):   # bodies well below max_body_bytes
            target.request(connection, 'PATCH', f'/Groups/{group_id}', {'schemas': [patch], 'Operations': [
                {'op': 'add', 'path': 'members', 'value': [{'value': i} for i in members[start:start + 5000]]}]})
        return group_id
    groups = {len(ids): group_of('Bench everyone', ids), 10: group_of('Bench ten', ids[:10])}
    extra = [target.request(connection, 'POST', '/Users', {
        'schemas': ['urn:ietf:params:scim:schemas:core:2.0:User'],
        'userName': f'member-add-{n}-{secrets.token_hex(4)}@bench.example'})['id'] for n in range(samples)]
    timings = {}
    for size, group_id in groups.items():
        durations = []
        for user_id in extra:
            started = time.perf_counter()
            target.request(connection, 'PATCH', f'/Groups/{group_id}', {'schemas': [patch], 'Operations': [
                {'op': 'add', 'path': 'members', 'value': [{'value': user_id}]}]})
            durations.append((time.perf_counter() - started) * 1000)
            target.request(connection, 'PATCH', f'/Groups/{group_id}', {'schemas': [patch], 'Operations': [
                {'op': 'remove', 'path': f'members[value eq "{user_id}"]'}]})
        timings[size] = sorted(durations)[len(durations) // 2]
    connection.close()
    return timings


def bulk_provision(target, users, connections):
    """`users` created by plain POST /Users (no lookup first) and `users` by POST /Bulk
    of 100 POSTs, over the same connections, taking turns (plain, bulk, bulk, plain,
    each half of them) so that the machine's drift cancels out: users/s of each."""
    created = {'create': [], 'bulk_create': []}
    for scenario in ('create', 'bulk_create', 'bulk_create', 'create'):
        created[scenario].append(target.provision(users // 2, connections, scenario=scenario))
    result = {}
    for scenario, runs in created.items():
        seconds = sum(run['seconds'] for run in runs)
        result[scenario] = {'users_per_second': sum(run['users'] for run in runs) / seconds,
                            'requests_per_second': sum(run['requests'] for run in runs) / seconds,
                            'errors': sum(run['errors'] for run in runs),
                            'server_cpu_ms_per_user': 1000 * sum(run['server_cpu'] for run in runs)
                            / max(1, sum(run['users'] for run in runs))}
    result['ratio'] = result['bulk_create']['users_per_second'] / result['create']['users_per_second']
    print(f'  {target.name:9} bulk_provision     plain {result["create"]["users_per_second"]:8.1f} users/s, '
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


def provision_ceiling(ceiling, results, before_results, args):
    """provision's ceiling: the mean of all the ceiling runs (the provisioning ran before them)."""
    ceiling_rates = [r['ceiling_rps'] for r in results.values() if isinstance(r, dict) and 'ceiling_rps' in r]
    if not ceiling_rates:   # only bulk_provision or seats_provision was asked for
        ceiling_rates = [ceiling.wrk('ceiling', max(3, args.duration // 2), args.connections)['rps']]
    for server_results in (results, before_results):
        if 'provision' in server_results:
            server_results['provision']['ceiling_rps'] = sum(ceiling_rates) / len(ceiling_rates)


def cpu_per_request(result):
    return 1000 * result['server_cpu'] / max(1, result['requests'])


def report(results, other, args, before=None):
    print()
    print(f'scimlite benchmark: {args.users} users, {args.duration} s a scenario, '
          f'{args.connections} keep-alive connections, wrk -t1')
    print('ceiling: a bare Bottle+waitress route, run before and after each scenario; '
          'each ratio is against the mean of those two runs')
    header = (f'{"scenario":17} {"req/s":>9} {"p50 ms":>8} {"p99 ms":>8} {"errors":>6} {"ceiling":>8} '
              f'{"/ceiling":>9} {"target":>7}')
    if other:
        header += f' {"other":>9} {"/other":>7}'
    if before:
        header += f' {"before":>9} {"/ceiling":>9} {"/before":>8} {"cpu/req":>8} {"before":>7}'
    print(header)
    for scenario, result in results.items():
        if not isinstance(result, dict) or 'ceiling_rps' not in result:
            continue
        target = TARGETS.get(scenario)
        rate = result['users_per_second'] if scenario == 'provision' else result['rps']
        share = rate / result['ceiling_rps']
        line = (f'{scenario:17} {rate:9.1f} {result["p50_ms"]:8.2f} {result["p99_ms"]:8.2f} '
                f'{result["errors"]:6d} {result["ceiling_rps"]:8.0f} {share:9.1%} '
                f'{(f"{target:.0%}" if target else ""):>7}')
        if other and scenario in other:
            other_rate = other[scenario].get('users_per_second') if scenario == 'provision' else other[scenario]['rps']
            line += f' {other_rate:9.1f} {(rate / other_rate if other_rate else float("inf")):6.1f}x'
        if before and scenario in before:
            before_rate = before[scenario]['users_per_second' if scenario == 'provision' else 'rps']
            line += (f' {before_rate:9.1f} {before_rate / before[scenario]["ceiling_rps"]:9.1%} '
                     f'{rate / before_rate:8.1%} {cpu_per_request(result):8.3f} '
                     f'{cpu_per_request(before[scenario]):7.3f}')
        print(line)
    if before:
        print(f'(before: {args.before}, taking turns with this checkout; /before is the rate as a share of its '
              f'rate, the same as the /ceiling shares\' ratio: target {BEFORE_TARGET:.0%} or more; cpu/req: the '
              f'server\'s CPU ms per request, this checkout\'s and the before\'s, steadier on a busy machine)')
    print(f'(provision is users created per second, each a lookup and a create: '
          f'{results["provision"]["rps"]:.0f} req/s; its ceiling is the mean of all ceiling runs)')
    if 'filter_eq@1k' in results and 'filter_eq' in results:
        print(f'filter_eq at {args.users} users: {results["filter_eq"]["rps"]:.0f} req/s; at 1,000 users '
              f'(another server, just before and after): {results["filter_eq@1k"]["rps"]:.0f} req/s; '
              f'ratio {results["filter_eq"]["rps"] / results["filter_eq@1k"]["rps"]:.1%}')
    print(f'import of all users, 100 a page, one connection: {results["import_all"]["seconds"]:.1f} s '
          f'({results["import_all"]["pages_per_second"]:.1f} pages/s)')
    measured = [r for r in results.values() if isinstance(r, dict) and 'wrk_cpu' in r]
    wrk_cpu = sum(r['wrk_cpu'] for r in measured)
    server_cpu = sum(r['server_cpu'] for r in measured)
    if server_cpu:
        print(f'load generator CPU: {wrk_cpu:.1f} s, server CPU: {server_cpu:.1f} s '
              f'(wrk share {wrk_cpu / (wrk_cpu + server_cpu):.1%})')
    print(f'server peak RSS (after provisioning, paging through all and every scenario): '
          f'{results["peak_rss_mb"]:.1f} MB')
    print('single requests at this size (median of 3, ms): ' +
          ', '.join(f'{name} {ms:.0f}' for name, ms in results['queries'].items()))
    if 'member_add_ms' in results:
        (big, big_ms), (_, small_ms) = sorted(results['member_add_ms'].items(), reverse=True)
        print(f'adding one member (median of 7, ms): to a group of {big:,} members {big_ms:.1f}, '
              f'to a group of 10 {small_ms:.1f}; ratio {big_ms / small_ms:.2f}')
    if 'bulk_provision' in results:
        plain, bulk = results['bulk_provision']['create'], results['bulk_provision']['bulk_create']
        print(f'bulk_provision ({results["bulk_provision"]["users"]:,} users each way, no lookup first, '
              f'{args.connections} connections): plain POST /Users {plain["users_per_second"]:.1f} users/s '
              f'({plain["server_cpu_ms_per_user"]:.2f} ms server CPU a user, {plain["errors"]} errors), '
              f'POST /Bulk of 100 {bulk["users_per_second"]:.1f} users/s '
              f'({bulk["server_cpu_ms_per_user"]:.2f} ms, {bulk["errors"]} errors); '
              f'ratio {results["bulk_provision"]["ratio"]:.2f}x (target {BULK_TARGET:.0f}x)')
    report_comparisons(results, args, before)


def report_comparisons(results, args, before):
    """The lines of bulk_provision's before, seats_provision, and the recording's cost."""
    if before and 'bulk_provision' in before:
        print(f'bulk_provision before: plain {before["bulk_provision"]["create"]["users_per_second"]:.1f} users/s, '
              f'bulk {before["bulk_provision"]["bulk_create"]["users_per_second"]:.1f} users/s, ratio '
              f'{before["bulk_provision"]["ratio"]:.2f}x (after: {results["bulk_provision"]["ratio"]:.2f}x)')
    if 'seats_provision' in results:
        seats = results['seats_provision']
        single_rate, seats_rate = seats['single']['users_per_second'], seats['seats']['users_per_second']
        print(f'seats_provision: {seats["seat_count"]} seats provisioning at once (Okta\'s lookup, then the create, '
              f'each user in the next seat) against one data set, {args.connections} connections each, '
              f'{seats["users"]:,} users a turn, {seats["rounds"]} turns each, taking turns: '
              f'{seats_rate:.1f} / {single_rate:.1f} users/s; ratio of each turn '
              + ', '.join(f'{ratio:.1%}' for ratio in seats['ratios'])
              + f'; median {seats["ratio"]:.1%} (target {SEATS_TARGET:.0%}); server CPU a request '
              f'{cpu_per_request(seats["seats"]):.3f} / {cpu_per_request(seats["single"]):.3f} ms; errors '
              f'{seats["seats"]["errors"]} / {seats["single"]["errors"]}')
    if 'recording' in results:
        print('the console line and the exchange log (on, the default, against off: a second server on the same '
              'database, taking turns): rate on/off, and server CPU per request on/off')
        for name, cost in results['recording'].items():
            on, off = cost['on'], cost['off']
            print(f'  {name:17} {on["rate"]:8.1f} / {off["rate"]:8.1f} = {on["rate"] / off["rate"]:6.1%}   '
                  f'cpu {on["cpu_ms"]:.3f} / {off["cpu_ms"]:.3f} ms = {on["cpu_ms"] / off["cpu_ms"]:6.1%}')


def parse_arguments(argv):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--users', type=int, default=100_000)
    parser.add_argument('--duration', type=int, default=10, help='seconds a scenario')
    parser.add_argument('--connections', type=int, default=8)
    parser.add_argument('--scenarios', default=','.join(SCENARIOS))
    parser.add_argument('--other', help='another SCIM base URL to measure side by side')
    parser.add_argument('--other-token', default='123456789')
    parser.add_argument('--other-users', type=int, help='users for the other server (default: --users)')
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
    return args


def main(argv=None):
    args = parse_arguments(argv)
    if not shutil.which('wrk'):
        die('wrk is needed: apt-get install wrk (Debian/Ubuntu) or brew install wrk (macOS)')
    # provision always runs first (it fills the database): named again, it is not a wrk scenario
    scenarios = [s for s in args.scenarios.split(',') if s and s != 'provision']

    token = secrets.token_urlsafe(24)
    workdir = Path(tempfile.mkdtemp(prefix='scimlite-bench-'))
    env = {k: v for k, v in os.environ.items() if not k.startswith('SCIM_')}

    def database(name):
        return f'sqlite:///{(workdir / f"{name}.db").as_posix()}'

    def scimlite(name, *extra, checkout=ROOT):
        process, port = start([sys.executable, str(Path(checkout) / 'scim_server.py'), '--port', '0',
                               '--token', token, '--database', database(name), *extra],
                              r'SCIM base URL:\s+http://127\.0\.0\.1:(\d+)/', env)
        return Target(name, f'http://127.0.0.1:{port}/scim/v2', token, process)

    def seated_server():
        """A server with `--seats` workshop seats, their tokens read as the instructor would (--seat-cards)."""
        plain = scimlite('seats', '--seats', str(args.seats))
        cards = subprocess.run([sys.executable, str(ROOT / 'scim_server.py'), '--token', token,
                                '--database', database('seats'), '--seat-cards'],
                               cwd=ROOT, env=env, capture_output=True, text=True, check=True).stdout
        shutil.rmtree(plain.data, ignore_errors=True)
        return Seats('seats', plain.origin + plain.base_path, token, plain.process,
                     [card['token'] for card in csv.DictReader(io.StringIO(cards))])

    def quiet_twin():
        """A second server on the main server's database, without the console line or the exchange log."""
        quiet_ini = workdir / 'quiet.ini'
        quiet_ini.write_text('[scimlite]\nquiet = on\nrecord_exchanges = off\n')
        twin = scimlite('scimlite', '--config', str(quiet_ini))
        shutil.rmtree(twin.data, ignore_errors=True)
        twin.name, twin.data, twin.run = 'quiet', scim.data, scim.run + 'q'
        return twin

    scim, small = scimlite('scimlite'), scimlite('small')
    ceiling_process, ceiling_port = start(
        [sys.executable, str(HERE / 'ceiling.py'), str(scim_server.DEFAULT_THREADS['sqlite']),
         str(scim_server.SWITCH_INTERVAL)], r'port (\d+)')
    ceiling = Target('ceiling', f'http://127.0.0.1:{ceiling_port}', token, ceiling_process)
    other = Target('other', args.other, args.other_token) if args.other else None
    before = scimlite('before', checkout=args.before) if args.before else None
    results, other_results, small_results, before_results = {}, {}, {}, {}
    try:
        prepare(small, min(args.users, FIRST_STAGE_USERS), args.connections, small_results)
        if before:
            prepare_alternately(scim, before, args.users, args.connections, results, before_results)
        else:
            prepare(scim, args.users, args.connections, results)
        results['peak_rss_mb'] = peak_rss_mb(scim.process.pid)
        results['queries'] = time_queries(scim, args.users)
        results.update(measure(scim, [s for s in scenarios if s not in MEASUREMENTS], args.duration,
                               args.connections, ceiling, small, before, before_results))
        if 'bulk_provision' in scenarios:
            results['bulk_provision'] = dict(bulk_provision(scim, args.bulk_users, args.connections),
                                             users=args.bulk_users)
        if 'bulk_provision' in scenarios and before:
            before_results['bulk_provision'] = bulk_provision(before, args.bulk_users, args.connections)
        if 'seats_provision' in scenarios:
            results['seats_provision'] = seats_provision(scimlite('single'), seated_server(), args.seats_users,
                                                         args.connections, args.seats_rounds)
        results['peak_rss_mb'] = max(results['peak_rss_mb'], peak_rss_mb(scim.process.pid))
        provision_ceiling(ceiling, results, before_results, args)
        results['member_add_ms'] = time_member_adds(scim)
        if not args.no_recording_cost:
            quiet = quiet_twin()
            try:
                results['recording'] = recording_cost(scim, quiet, args.duration, args.connections)
            finally:
                quiet.process.terminate()
                quiet.process.wait(timeout=10)
        if other:
            prepare(other, args.other_users or args.users, args.connections, other_results)
            other_results.update(measure(other, [s for s in scenarios if s not in MEASUREMENTS], args.duration,
                                         args.connections))
        report(results, other_results, args, before_results)
        if args.json:
            Path(args.json).write_text(json.dumps({'scimlite': results, 'other': other_results,
                                                   'before': before_results, 'args': vars(args)}, indent=1))
    finally:
        for server in (scim, small, ceiling, other, before):
            if server:
                server.stop()
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == '__main__':
    main()
