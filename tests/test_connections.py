"""Connection abuse against the real server (README, Reliability: Connections and request bodies).

Each test starts `python scim_server.py` and attacks it the way bench/abuse.py does,
with the same code: connections held open idle, headers dribbled a line at a time,
bodies far past max_body_bytes. Each is bounded to a few seconds."""

import http.client
import json
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

import scim_server
from bench import abuse
from serverprocess import ROOT, ServerProcess, clean_environment

TOKEN = 'connections-token-abcdef'
LINUX_PROC = Path('/proc/self/fd').is_dir()
MAX_BODY = scim_server.DEFAULTS['max_body_bytes']
WAITRESS_BODY_LIMIT = MAX_BODY + scim_server.BODY_HEADROOM


@pytest.fixture(autouse=True)
def files_enough_for_800_connections():
    """This process opens 800 sockets: more than some systems' default soft limit of 1024 leaves."""
    try:
        import resource
    except ImportError:
        yield
        return
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = 4096 if hard == resource.RLIM_INFINITY else min(4096, hard)
    if soft != resource.RLIM_INFINITY and soft < wanted:
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
    yield
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


@pytest.fixture
def server(database_url, tmp_path):
    """A factory: the real server on this test's database, with `config.ini` lines if given."""
    started = []

    def start(**config):
        extra = ()
        if config:
            path = tmp_path / 'config.ini'
            path.write_text('[scimlite]\n' + ''.join(f'{key} = {value}\n' for key, value in config.items()))
            extra = ('--config', str(path))
        started.append(ServerProcess(*extra, '--quiet', database=database_url, token=TOKEN))
        return started[-1]

    yield start
    for process in started:
        process.stop()


def post(port, size, timeout=20):
    """(status, Content-Type, body) of a POST /Users of `size` bytes."""
    connection = http.client.HTTPConnection('127.0.0.1', port, timeout=timeout)
    try:
        connection.request('POST', '/scim/v2/Users', body=b' ' * size,
                           headers={'Authorization': f'Bearer {TOKEN}', 'Content-Type': 'application/scim+json'})
        answer = connection.getresponse()
        return answer.status, answer.getheader('Content-Type'), answer.read()
    finally:
        connection.close()


def deleted_files_still_open(pid, timeout=2):
    """The deleted files (spooled bodies) process `pid` holds, given up to `timeout`
    seconds to let them go: waitress may answer a moment before it closes the request's buffer."""
    deadline = time.monotonic() + timeout
    while abuse.open_deleted_files(pid) and time.monotonic() < deadline:
        time.sleep(0.02)
    return abuse.open_deleted_files(pid)


# ---------------------------------------------------------------------------
# Many connections held open
# ---------------------------------------------------------------------------

def test_a_request_answers_within_a_second_while_600_idle_and_200_slowloris_connections_are_open(server):
    scim = server()
    held_before = abuse.open_files(scim.process.pid)
    idle = abuse.open_idle(scim.port, 600)
    slow = abuse.Slowloris(scim.port, 200, interval=0.5)
    try:
        if held_before is not None:
            abuse.wait_for_open_files(scim.process.pid, held_before + 800)
            assert abuse.open_files(scim.process.pid) >= held_before + 800, 'the server accepted them all'
        time.sleep(1.2)
        answers = [abuse.timed_get(scim.port, '/scim/v2/Users?count=1', TOKEN, timeout=5) for _ in range(5)]
        assert slow.lines_sent >= 2, 'the slow connections were still dribbling'
    finally:
        slow.close()
        abuse.close_all(idle)
    assert [status for status, _ in answers] == [200] * 5
    assert max(seconds for _, seconds in answers) < 1.0, answers


def test_past_connection_limit_a_client_waits_which_is_why_the_default_is_high(server):
    """waitress's own default of 100: the lock-out the default of 2000 prevents."""
    scim = server(connection_limit=100)
    idle = abuse.open_idle(scim.port, 120)
    try:
        status, seconds = abuse.timed_get(scim.port, '/scim/v2/Users?count=1', TOKEN, timeout=2)
    finally:
        abuse.close_all(idle)
    assert status is None and seconds >= 2
    assert 'total open connections reached the connection limit' in scim.output, 'as Troubleshooting quotes'
    assert abuse.timed_get(scim.port, '/scim/v2/Users?count=1', TOKEN, timeout=5)[0] == 200, 'and it recovers'


def test_an_idle_connection_is_closed_after_channel_timeout(server):
    scim = server(channel_timeout=1)
    with socket.create_connection(('127.0.0.1', scim.port), timeout=8) as idle:
        started = time.monotonic()
        assert idle.recv(1) == b'', 'the server closed it'
        # A second of timeout, a second between looks for idle ones, a second of waitress's loop.
        assert time.monotonic() - started < 4


def test_headers_past_64_kib_are_refused(server):
    scim = server()
    connection = http.client.HTTPConnection('127.0.0.1', scim.port, timeout=10)
    try:
        connection.request('GET', '/scim/v2/Users', headers={
            'Authorization': f'Bearer {TOKEN}', 'X-Padding': 'x' * scim_server.MAX_HEADER_BYTES})
        assert connection.getresponse().status == 431
    finally:
        connection.close()


# ---------------------------------------------------------------------------
# Bodies past max_body_bytes
# ---------------------------------------------------------------------------

@pytest.mark.parametrize('chunked', [False, True], ids=['content-length', 'chunked'])
def test_a_100_mib_upload_is_refused_before_4_mib_is_sent_and_leaves_no_temp_file(server, chunked):
    """What send() accepted through a 16 KiB send buffer bounds what the server read:
    the rest of 100 MiB never left this process. Chunked, with no length to refuse by,
    waitress reads up to its limit (max_body_bytes + 64 KiB), then refuses."""
    scim = server()
    status, accepted = abuse.upload_until_refused(scim.port, '/scim/v2/Users', TOKEN, 100 * 2**20,
                                                  give_up_after=8 * 2**20, chunked=chunked)
    assert status == 413
    assert accepted < 4 * 2**20, f'{accepted:,} bytes were taken before the refusal'
    if LINUX_PROC:
        assert deleted_files_still_open(scim.process.pid) == []
    assert abuse.timed_get(scim.port, '/scim/v2/Users?count=1', TOKEN)[0] == 200


@pytest.mark.parametrize('size', [MAX_BODY + 1, WAITRESS_BODY_LIMIT - 1])
def test_a_body_past_max_body_bytes_but_under_waitress_limit_gets_the_apps_scim_413(server, size):
    scim = server()
    status, content_type, body = post(scim.port, size)
    assert status == 413
    assert content_type.startswith('application/scim+json')
    assert json.loads(body)['detail'] == f'The body is larger than {MAX_BODY} bytes.'
    if LINUX_PROC:   # waitress spooled it to a temp file (past 512 KiB), and lets it go
        assert deleted_files_still_open(scim.process.pid) == []


def test_a_body_at_waitress_limit_is_refused_by_waitress_unread(server):
    scim = server()
    status, accepted = abuse.upload_until_refused(scim.port, '/scim/v2/Users', TOKEN, WAITRESS_BODY_LIMIT,
                                                  give_up_after=WAITRESS_BODY_LIMIT)
    assert status == 413
    assert accepted < WAITRESS_BODY_LIMIT


def test_waitress_limit_follows_max_body_bytes(server):
    scim = server(max_body_bytes=1000)
    assert post(scim.port, 1001)[1].startswith('application/scim+json')
    status, accepted = abuse.upload_until_refused(scim.port, '/scim/v2/Users', TOKEN, 10 * 2**20,
                                                  give_up_after=10 * 2**20)
    assert status == 413 and accepted < 4 * 2**20


# ---------------------------------------------------------------------------
# The open-file limit
# ---------------------------------------------------------------------------

# The server, started with its open-file soft limit (and hard limit) set first.
WITH_LIMITS = ('import resource, runpy, sys; '
               'resource.setrlimit(resource.RLIMIT_NOFILE, (int(sys.argv[1]), int(sys.argv[2]))); '
               'sys.argv = [sys.argv[3]] + sys.argv[4:]; runpy.run_path(sys.argv[0], run_name="__main__")')


def soft_open_file_limit(pid):
    limits = Path(f'/proc/{pid}/limits').read_text()
    return int(next(line for line in limits.splitlines() if line.startswith('Max open files')).split()[3])


@pytest.mark.skipif(not LINUX_PROC, reason='reads /proc/<pid>/limits')
@pytest.mark.parametrize('hard, serves', [(8192, 2000), (1024, (1024 - scim_server.OTHER_FILES) // 3)])
def test_the_open_file_limit_is_raised_toward_the_hard_limit(database_url, hard, serves):
    import resource
    if resource.getrlimit(resource.RLIMIT_NOFILE)[1] < hard:
        pytest.skip(f'the hard open-file limit here is below {hard}')
    process = subprocess.Popen(
        [sys.executable, '-c', WITH_LIMITS, '256', str(hard), str(ROOT / 'scim_server.py'),
         '--port', '0', '--database', database_url, '--token', TOKEN],
        cwd=ROOT, env=clean_environment(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    scim = ServerProcess.attach(process)
    try:
        wanted = 2000 * scim_server.FILES_PER_CONNECTION + scim_server.OTHER_FILES
        assert soft_open_file_limit(process.pid) == min(wanted, hard)
        if serves < 2000:
            assert f'leaves room for {serves} connections, not connection_limit = 2000' in scim.output
        else:
            assert 'open-file limit' not in scim.output
        assert abuse.timed_get(scim.port, '/scim/v2/Users?count=1', TOKEN)[0] == 200
    finally:
        scim.stop()


# ---------------------------------------------------------------------------
# The settings
# ---------------------------------------------------------------------------

def test_defaults_are_2000_connections_and_30_seconds():
    settings = scim_server.normalise_settings({'token': 't'})
    options = scim_server.waitress_options(settings)
    assert (settings['connection_limit'], settings['channel_timeout']) == (2000, 30)
    assert options['max_request_body_size'] == MAX_BODY + 64 * 1024
    assert options['asyncore_use_poll'] is True
    assert options['cleanup_interval'] == 5


def test_without_poll_the_default_is_400_and_more_than_500_is_refused(monkeypatch):
    monkeypatch.setattr(scim_server, 'POLL', False)
    assert scim_server.normalise_settings({'token': 't'})['connection_limit'] == 400
    assert scim_server.normalise_settings({'token': 't', 'connection_limit': '500'})['connection_limit'] == 500
    with pytest.raises(scim_server.SettingsError, match='at most 500 here'):
        scim_server.normalise_settings({'token': 't', 'connection_limit': '501'})


@pytest.mark.parametrize('key, value, says', [
    ('connection_limit', '0', 'connection_limit must be at least 1, not 0'),
    ('connection_limit', 'many', "connection_limit must be a whole number, not 'many'"),
    ('channel_timeout', '0', 'channel_timeout must be at least 1, not 0'),
    ('channel_timeout', '30s', "channel_timeout must be a whole number, not '30s'"),
])
def test_bad_connection_settings_are_one_line_errors(key, value, says):
    with pytest.raises(scim_server.SettingsError) as raised:
        scim_server.normalise_settings({'token': 't', key: value})
    assert str(raised.value) == says
    assert '\n' not in str(raised.value)


def test_the_readmes_waitress_serve_line_gives_the_same_limits():
    """README, Connections and request bodies: what `waitress-serve` users are told to pass
    is what `python scim_server.py` gives waitress on SQLite."""
    import shlex

    from waitress.adjustments import Adjustments
    readme = (ROOT / 'README.md').read_text(encoding='utf-8')
    start = readme.index('    waitress-serve --listen=*:8080 --threads=1 --connection-limit')
    line = readme[start:readme.index('scim_server:app', start)].replace('\\\n', ' ')
    flags, _ = Adjustments.parse_args(shlex.split(line)[1:])
    flags.pop('help'), flags.pop('call')
    served = Adjustments(**flags)
    options = scim_server.waitress_options(scim_server.normalise_settings({'token': 't'}))
    options.pop('ident')
    assert {key: getattr(served, key) for key in options} == options
