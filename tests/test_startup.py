"""The command-line contract of DESIGN.md: `python scim_server.py` as a user runs it.

These start the real server as a subprocess and talk to it over a socket."""

import codecs
import http.client
import json
import platform
import socket
import subprocess
import sys
from pathlib import Path

import pytest

import scim_server
import scimschema
import store
from serverprocess import ServerProcess, clean_environment, run_server

TOKEN = 'startup-token-abcdef'


def one_line_failure(process, timeout=20):
    """The process exits non-zero with a single-line message and no traceback."""
    output, _ = process.communicate(timeout=timeout)
    assert process.returncode != 0
    lines = [line for line in output.splitlines() if line.strip()]
    assert len(lines) == 1, output
    assert 'Traceback' not in output
    assert lines[0].startswith('scimlite: ')
    return lines[0]


def get(port, path, token=TOKEN):
    connection = http.client.HTTPConnection('127.0.0.1', port, timeout=10)
    try:
        connection.request('GET', path, headers={'Authorization': f'Bearer {token}'})
        answer = connection.getresponse()
        return answer.status, answer.getheader('Content-Type'), answer.read()
    finally:
        connection.close()


def test_plain_start_creates_the_database_in_the_working_folder(tmp_path):
    """The README's `python scim_server.py`, no flags: config.ini's demo token, scim.db here."""
    env = {**clean_environment(), 'SCIM_PORT': '0'}   # any free port: 5000 may be taken here
    process = run_server(cwd=tmp_path, env=env)
    server = ServerProcess.attach(process)
    try:
        status, content_type, body = get(server.port, '/scim/v2/Users', token=scim_server.DEMO_TOKEN)
        assert status == 200
        assert content_type.startswith('application/scim+json')
        assert json.loads(body)['totalResults'] == 0
        assert (tmp_path / 'scim.db').is_file()
        assert 'WARNING: the demo token 123456789 is in use' in server.output
    finally:
        server.stop()


def test_banner_tells_what_to_paste_into_okta(tmp_path):
    server = ServerProcess(database=f'sqlite:///{(tmp_path / "x.db").as_posix()}', token=TOKEN)
    try:
        output = server.output
        assert f'SCIM base URL:   http://127.0.0.1:{server.port}/scim/v2' in output
        assert f'Dashboard:       http://127.0.0.1:{server.port}/' in output
        assert f'ngrok http {server.port}' in output
        assert 'Authorization:   Bearer st' in output
        assert TOKEN not in output, 'a real token is masked'
        assert 'WARNING' not in output
    finally:
        server.stop()


def test_the_token_never_appears_in_the_server_output(tmp_path):
    server = ServerProcess(database=f'sqlite:///{(tmp_path / "x.db").as_posix()}', token=TOKEN)
    try:
        assert get(server.port, '/scim/v2/Users')[0] == 200
        assert get(server.port, '/scim/v2/Users', token='wrong-token')[0] == 401
        assert get(server.port, '/scim/v2/Nowhere')[0] == 404
    finally:
        server.stop()
    assert TOKEN not in server.output


def test_demo_token_refuses_a_public_address(tmp_path):
    process = run_server('--host', '0.0.0.0', '--port', '0', '--token', scim_server.DEMO_TOKEN,
                         '--database', f'sqlite:///{(tmp_path / "x.db").as_posix()}')
    line = one_line_failure(process)
    assert 'demo token' in line and '0.0.0.0' in line


def test_port_in_use_is_a_one_line_error(tmp_path):
    with socket.socket() as taken:
        taken.bind(('127.0.0.1', 0))
        taken.listen()
        port = taken.getsockname()[1]
        process = run_server('--port', str(port), '--token', TOKEN,
                             '--database', f'sqlite:///{(tmp_path / "x.db").as_posix()}')
        line = one_line_failure(process)
    assert f'127.0.0.1:{port}' in line


@pytest.mark.parametrize('url, says', [
    ('mysql://root@localhost/scim', 'unsupported database URL'),
    ('sqlite://', 'names no database file'),
    ('not a url', 'unsupported database URL'),
    ('sqlite:////nonexistent-folder/deeper/scim.db', 'cannot open database'),
    ('postgresql://scim:s3cret-pw@127.0.0.1:1/scim', 'cannot open database postgresql://scim:***@127.0.0.1:1/scim'),
    ('postgresql://scim@127.0.0.1:5432', 'names no database'),
    ('postgresql://scim@127.0.0.1:5432/db?nonsense=1', 'malformed database URL'),
])
def test_bad_database_url_is_a_one_line_error(url, says):
    process = run_server('--port', '0', '--token', TOKEN, '--database', url)
    line = one_line_failure(process)
    assert says in line
    assert 's3cret-pw' not in line


def test_unwritable_database_path_is_a_one_line_error(tmp_path):
    folder = tmp_path / 'a-file-not-a-folder'
    folder.write_text('x')
    process = run_server('--port', '0', '--token', TOKEN,
                         '--database', f'sqlite:///{(folder / "scim.db").as_posix()}')
    assert 'cannot open database' in one_line_failure(process)


@pytest.mark.parametrize('args', [
    ['--port', 'five-thousand'],
    ['--port', '70000'],
    ['--config', 'no-such-file.ini'],
])
def test_bad_settings_are_a_one_line_error(args, tmp_path):
    process = run_server('--token', TOKEN, *args, cwd=tmp_path)
    one_line_failure(process)


# ---------------------------------------------------------------------------
# Precedence: flag > environment > config.ini > default (load_settings itself)
# ---------------------------------------------------------------------------

@pytest.fixture
def config_file(tmp_path):
    path = tmp_path / 'custom.ini'
    path.write_text('[scimlite]\nport = 7001\nhost = 127.0.0.2\ntoken = from-file\n'
                    'database = sqlite:///file.db\nmax_page_size = 50\n')
    return str(path)


def test_defaults_apply_when_nothing_is_set(tmp_path):
    empty = tmp_path / 'empty.ini'
    empty.write_text('[scimlite]\n')
    settings = scim_server.load_settings(['--config', str(empty), '--token', 't'], environ={})
    assert (settings['host'], settings['port'], settings['database'], settings['base_path']) == \
        ('127.0.0.1', 5000, 'sqlite:///scim.db', '/scim/v2')


def test_config_file_beats_defaults(config_file):
    settings = scim_server.load_settings(['--config', config_file], environ={})
    assert (settings['port'], settings['host'], settings['tokens'], settings['max_page_size']) == \
        (7001, '127.0.0.2', ('from-file',), 50)


def test_environment_beats_config_file(config_file):
    environ = {'SCIM_PORT': '7002', 'SCIM_TOKEN': 'from-env', 'SCIM_DATABASE_URL': 'sqlite:///env.db',
               'SCIM_HOST': '127.0.0.3'}
    settings = scim_server.load_settings(['--config', config_file], environ=environ)
    assert (settings['port'], settings['tokens'], settings['database'], settings['host']) == \
        (7002, ('from-env',), 'sqlite:///env.db', '127.0.0.3')


def test_flags_beat_environment(config_file):
    environ = {'SCIM_PORT': '7002', 'SCIM_TOKEN': 'from-env', 'SCIM_CONFIG': config_file}
    settings = scim_server.load_settings(
        ['--port', '7003', '--token', 'a', '--token', 'b', '--database', 'sqlite:///flag.db'], environ=environ)
    assert (settings['port'], settings['tokens'], settings['database']) == (7003, ('a', 'b'), 'sqlite:///flag.db')
    assert settings['max_page_size'] == 50, 'SCIM_CONFIG chose the file'


@pytest.mark.parametrize('database, threads', [
    ('sqlite:///scim.db', 1),
    ('postgresql://scim@127.0.0.1:5432/scim', 4),
])
def test_threads_default_to_what_serves_the_database_fastest(database, threads):
    settings = scim_server.load_settings(['--token', 't', '--database', database], environ={})
    assert settings['threads'] == threads
    assert scim_server.DEFAULT_THREADS == {'sqlite': 1, 'postgresql': 4}


def test_threads_from_the_config_file(tmp_path):
    path = tmp_path / 'threads.ini'
    path.write_text('[scimlite]\nthreads = 8\n')
    assert scim_server.load_settings(['--config', str(path), '--token', 't'], environ={})['threads'] == 8


@pytest.mark.parametrize('value', ['0', '-2', 'many', '1.5'])
def test_threads_must_be_a_whole_number_from_one(value, tmp_path):
    path = tmp_path / 'threads.ini'
    path.write_text(f'[scimlite]\nthreads = {value}\n')
    with pytest.raises(scim_server.SettingsError, match='threads must be'):
        scim_server.load_settings(['--config', str(path), '--token', 't'], environ={})


def test_comma_list_of_tokens_in_the_config_file(tmp_path):
    path = tmp_path / 'rotate.ini'
    path.write_text('[scimlite]\ntoken = old-token, new-token\n')
    assert scim_server.load_settings(['--config', str(path)], environ={})['tokens'] == ('old-token', 'new-token')


@pytest.mark.parametrize('key', ['tokens', 'extension_schemas'])
def test_what_the_server_derives_is_no_setting(key, tmp_path):
    """`tokens` and `extension_schemas` are made from `token` and `extensions`; given in
    config.ini they are unknown settings. (Before, `tokens = secret` was taken as the
    already-read list, so that every letter of it opened the API.)"""
    path = tmp_path / 'derived.ini'
    path.write_text(f'[scimlite]\ntoken = real-token\n{key} = secret\n')
    with pytest.raises(scim_server.SettingsError, match=f'unknown setting.*{key}'):
        scim_server.load_settings(['--config', str(path)], environ={})


def test_shipped_config_keeps_the_demo_token():
    settings = scim_server.load_settings([], environ={})
    assert settings['tokens'] == (scim_server.DEMO_TOKEN,)
    assert (settings['host'], settings['port'], settings['threads']) == ('127.0.0.1', 5000, 1)


def test_every_token_of_a_rotation_is_accepted(tmp_path):
    server = ServerProcess('--token', 'second-token', database=f'sqlite:///{(tmp_path / "x.db").as_posix()}',
                           token=TOKEN)
    try:
        assert get(server.port, '/scim/v2/Users', token=TOKEN)[0] == 200
        assert get(server.port, '/scim/v2/Users', token='second-token')[0] == 200
        assert get(server.port, '/scim/v2/Users', token='third-token')[0] == 401
    finally:
        server.stop()


@pytest.mark.parametrize('given', ['https://abcd.ngrok-free.app', 'https://abcd.ngrok-free.app/',
                                   'https://abcd.ngrok-free.app/scim/v2'])
def test_base_url_is_used_in_locations(given, make_app):
    import webtest
    client = webtest.TestApp(make_app(token=TOKEN, base_url=given))
    created = client.post_json('/scim/v2/Users', {'schemas': [scimschema.USER_SCHEMA], 'userName': 'b'},
                               headers={'Authorization': f'Bearer {TOKEN}'})
    location = f'https://abcd.ngrok-free.app/scim/v2/Users/{created.json["id"]}'
    assert created.headers['Location'] == location
    assert created.json['meta']['location'] == location


def test_forwarded_headers_make_the_location_public(make_app):
    """Behind ngrok, with no base_url: the https address comes from X-Forwarded-Proto/-Host."""
    import webtest
    client = webtest.TestApp(make_app(token=TOKEN))
    created = client.post_json('/scim/v2/Users', {'schemas': [scimschema.USER_SCHEMA], 'userName': 'b'},
                               headers={'Authorization': f'Bearer {TOKEN}', 'X-Forwarded-Proto': 'https',
                                        'X-Forwarded-Host': 'abcd.ngrok-free.app'})
    assert created.headers['Location'] == f'https://abcd.ngrok-free.app/scim/v2/Users/{created.json["id"]}'


# ---------------------------------------------------------------------------
# config.ini as Windows editors save it
# ---------------------------------------------------------------------------

CONFIG_TEXT = '[scimlite]\n# a comment with an accent: café\nport = 7005\ntoken = é-token\n'


@pytest.mark.parametrize('saved_as, data', [
    ('UTF-8 (Notepad, the default)', CONFIG_TEXT.encode('utf-8')),
    ('UTF-8 with a byte-order mark (Notepad "UTF-8 with BOM", PowerShell 5.1 Out-File -Encoding utf8)',
     codecs.BOM_UTF8 + CONFIG_TEXT.encode('utf-8')),
    ('UTF-16 LE with a byte-order mark (Notepad "UTF-16 LE", PowerShell 5.1 ">")',
     codecs.BOM_UTF16_LE + CONFIG_TEXT.encode('utf-16-le')),
    ('UTF-16 BE with a byte-order mark (Notepad "UTF-16 BE")', codecs.BOM_UTF16_BE + CONFIG_TEXT.encode('utf-16-be')),
    ('Windows line ends', CONFIG_TEXT.replace('\n', '\r\n').encode('utf-8')),
])
def test_config_file_is_read_as_windows_editors_save_it(saved_as, data, tmp_path):
    path = tmp_path / 'config.ini'
    path.write_bytes(data)
    settings = scim_server.load_settings(['--config', str(path)], environ={})
    assert (settings['port'], settings['tokens']) == (7005, ('é-token',)), saved_as


@pytest.mark.parametrize('saved_as, data', [
    ('Windows-1252 (Notepad "ANSI", PowerShell 5.1 Set-Content)', CONFIG_TEXT.encode('cp1252')),
    ('UTF-16 LE without a byte-order mark', CONFIG_TEXT.encode('utf-16-le')),
    ('UTF-16 LE cut short after its byte-order mark', codecs.BOM_UTF16_LE + CONFIG_TEXT.encode('utf-16-le')[:-1]),
])
def test_a_config_file_in_any_other_encoding_is_one_line_naming_utf8(saved_as, data, tmp_path):
    path = tmp_path / 'config.ini'
    path.write_bytes(data)
    with pytest.raises(scim_server.SettingsError) as refused:
        scim_server.load_settings(['--config', str(path)], environ={})
    message = str(refused.value)
    assert '\n' not in message, saved_as
    assert str(path) in message and 'save it as UTF-8' in message, message


def test_a_config_file_in_another_encoding_stops_the_server_with_one_line(tmp_path):
    (tmp_path / 'config.ini').write_bytes(CONFIG_TEXT.encode('cp1252'))
    process = run_server('--config', 'config.ini', '--port', '0', cwd=tmp_path)
    line = one_line_failure(process)
    assert 'is not UTF-8' in line and 'save it as UTF-8' in line


def test_a_config_file_without_a_section_header_is_one_line(tmp_path):
    (tmp_path / 'config.ini').write_text('port = 7005\n')
    process = run_server('--config', 'config.ini', '--port', '0', cwd=tmp_path)
    assert 'no section headers' in one_line_failure(process)


# ---------------------------------------------------------------------------
# sqlite:/// URLs: the path after the third slash, a Windows drive included
# ---------------------------------------------------------------------------

@pytest.mark.parametrize('url, path_on_windows, path_elsewhere', [
    ('sqlite:///scim.db', 'scim.db', 'scim.db'),
    ('sqlite:///data/scim.db', 'data/scim.db', 'data/scim.db'),
    ('sqlite:////var/lib/scimlite/scim.db', '/var/lib/scimlite/scim.db', '/var/lib/scimlite/scim.db'),
    ('sqlite:///C:/data/scim.db', 'C:/data/scim.db', 'C:/data/scim.db'),
    ('sqlite:///c:\\data\\scim.db', 'c:\\data\\scim.db', 'c:\\data\\scim.db'),
    ('sqlite:////C:/data/scim.db', 'C:/data/scim.db', '/C:/data/scim.db'),
    ('sqlite:////C:', '/C:', '/C:'),
    ('sqlite://', '', ''),
])
@pytest.mark.parametrize('windows', [True, False])
def test_a_sqlite_url_names_the_file_after_its_third_slash(url, path_on_windows, path_elsewhere, windows,
                                                          monkeypatch):
    monkeypatch.setattr(store, 'WINDOWS', windows)
    path = path_on_windows if windows else path_elsewhere
    assert store.sqlite_path(url) == path
    if path:
        assert store._sqlite(url, store.LOCK_WAIT).database == path, 'the path SQLite is given'


# A process that starts threads, each allocating, then has glibc print its heaps:
# one "Arena N:" paragraph each.
ARENA_PROBE = '''
import ctypes, sys, threading
import scim_server
told = scim_server.cap_malloc_arenas()
libc = ctypes.CDLL(None)
libc.malloc.restype = ctypes.c_void_p
libc.malloc.argtypes = [ctypes.c_size_t]
held = []
def allocate():
    held.extend(libc.malloc(2000) for _ in range(200))
barrier = threading.Barrier(8)
def together():
    barrier.wait()
    allocate()
threads = [threading.Thread(target=together) for _ in range(8)]
for thread in threads:
    thread.start()
for thread in threads:
    thread.join()
print(told, flush=True)
libc.malloc_stats()
'''


@pytest.mark.parametrize('environ', [{}, {'MALLOC_ARENA_MAX': '8'}])
def test_glibc_keeps_two_heaps_for_the_server_threads(tmp_path, environ):
    """The server caps glibc's heaps (cap_malloc_arenas) before its threads start;
    MALLOC_ARENA_MAX in the environment wins."""
    if not sys.platform.startswith('linux') or platform.libc_ver()[0] != 'glibc':
        pytest.skip("glibc's malloc")
    process = subprocess.run([sys.executable, '-c', ARENA_PROBE], capture_output=True, text=True, timeout=60,
                             cwd=Path(scim_server.__file__).parent, env={
                                 **{key: value for key, value in clean_environment().items()
                                    if key != 'MALLOC_ARENA_MAX'}, **environ})
    assert process.returncode == 0, process.stderr
    heaps = process.stderr.count('Arena ')
    if environ:
        assert process.stdout.split() == ['False'] and heaps > scim_server.MALLOC_ARENAS, process.stderr
    else:
        assert process.stdout.split() == ['True'] and heaps == scim_server.MALLOC_ARENAS, process.stderr
