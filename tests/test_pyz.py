"""scimlite.pyz, as a workshop attendee gets it: one file, copied alone into an empty
folder, run by a Python that has none of scimlite's libraries and no pip.

The file is built by tools/build_pyz.py, as an instructor builds it, and these
tests start it as a real process (`python -I scimlite.pyz`: no user site, no
PYTHON* variables, no working folder on sys.path) and talk to it over a socket."""

import http.client
import json
import os
import re
import shutil
import subprocess
import sys
import zipfile

import pytest

from conftest import GROUP_SCHEMA, ON_POSTGRESQL, PATCH_SCHEMA, USER_SCHEMA
from serverprocess import ROOT, ServerProcess, clean_environment

TOKEN = 'pyz-token-0123456789'
MAX_BYTES = 2 * 1024 * 1024
EMBEDDED = ('bottle', 'peewee', 'waitress')


def build(output):
    subprocess.run([sys.executable, str(ROOT / 'tools' / 'build_pyz.py'), '--output', str(output)],
                   check=True, capture_output=True, timeout=120)
    return output


@pytest.fixture(scope='module')
def pyz(tmp_path_factory):
    """scimlite.pyz, built once for these tests."""
    return build(tmp_path_factory.mktemp('build') / 'scimlite.pyz')


@pytest.fixture(scope='module')
def bare_python(tmp_path_factory):
    """A fresh virtual environment's python, without pip and without scimlite's libraries:
    made from the Python running the tests, or from SCIMLITE_PYZ_PYTHON (to try the
    .pyz with the Python an audience has)."""
    venv = tmp_path_factory.mktemp('venv') / 'bare'
    base = os.environ.get('SCIMLITE_PYZ_PYTHON', sys.executable)
    subprocess.run([base, '-m', 'venv', '--without-pip', str(venv)], check=True, timeout=120)
    python = venv / ('Scripts/python.exe' if sys.platform == 'win32' else 'bin/python')
    for module in (*EMBEDDED, 'playhouse', 'pip'):
        found = subprocess.run([str(python), '-I', '-c', f'import {module}'], capture_output=True)
        assert found.returncode != 0, f'{module} is importable in the bare virtual environment'
    return python


@pytest.fixture
def folder(tmp_path, pyz):
    """An empty folder with scimlite.pyz alone in it, as copied from a USB stick."""
    shutil.copy(pyz, tmp_path / 'scimlite.pyz')
    return tmp_path


def start(python, folder, *flags):
    process = subprocess.Popen([str(python), '-I', 'scimlite.pyz', '--port', '0', '--token', TOKEN, *flags],
                               cwd=folder, env=clean_environment(),
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, encoding='utf-8')
    return ServerProcess.attach(process, timeout=60)


def call(server, method, path, body=None):
    """(status, JSON body or None) of a SCIM request to the server, sent as Okta sends it."""
    connection = http.client.HTTPConnection('127.0.0.1', server.port, timeout=20)
    try:
        connection.request(method, '/scim/v2' + path, body=json.dumps(body) if body is not None else None,
                           headers={'Authorization': f'Bearer {TOKEN}', 'Content-Type': 'application/scim+json',
                                    'Accept': 'application/scim+json', 'User-Agent': 'Okta SCIM Client 1.0.0'})
        answer = connection.getresponse()
        data = answer.read()
        return answer.status, json.loads(data) if data else None
    finally:
        connection.close()


def okta_lookup(server, user_name):
    status, found = call(server, 'GET', f'/Users?filter=userName%20eq%20%22{user_name}%22&startIndex=1&count=100')
    assert status == 200, found
    return found['Resources']


def okta_provisions(server):
    """What Okta does for one assigned user and one pushed group: look the user up,
    create them, update them by PATCH, push a group with them in it, then add a
    second member by PATCH. Returns (user ids, group id)."""
    assert okta_lookup(server, 'ada@example.com') == []
    user = {'schemas': [USER_SCHEMA], 'userName': 'ada@example.com', 'active': True,
            'name': {'givenName': 'Ada', 'familyName': 'Lovelace'},
            'emails': [{'primary': True, 'value': 'ada@example.com', 'type': 'work'}], 'password': 'x-Secret-1'}
    status, ada = call(server, 'POST', '/Users', user)
    assert status == 201, ada
    assert [found['id'] for found in okta_lookup(server, 'ada@example.com')] == [ada['id']]
    status, patched = call(server, 'PATCH', f'/Users/{ada["id"]}', {'schemas': [PATCH_SCHEMA], 'Operations': [
        {'op': 'replace', 'value': {'name': {'givenName': 'Augusta', 'familyName': 'Lovelace'}}}]})
    assert status == 200 and patched['name']['givenName'] == 'Augusta', patched
    status, grace = call(server, 'POST', '/Users', {**user, 'userName': 'grace@example.com', 'emails': []})
    assert status == 201, grace
    status, group = call(server, 'POST', '/Groups', {'schemas': [GROUP_SCHEMA], 'displayName': 'Engineering',
                                                     'members': [{'value': ada['id']}]})
    assert status == 201, group
    status, _ = call(server, 'PATCH', f'/Groups/{group["id"]}', {'schemas': [PATCH_SCHEMA], 'Operations': [
        {'op': 'add', 'path': 'members', 'value': [{'value': grace['id'], 'display': 'grace@example.com'}]}]})
    assert status in (200, 204)
    return [ada['id'], grace['id']], group['id']


def assert_provisioned(server, user_ids, group_id):
    status, ada = call(server, 'GET', f'/Users/{user_ids[0]}')
    assert status == 200 and ada['name']['givenName'] == 'Augusta' and ada['active'] is True, ada
    assert 'password' not in ada
    status, group = call(server, 'GET', f'/Groups/{group_id}')
    assert status == 200, group
    assert sorted(member['value'] for member in group['members']) == sorted(user_ids)


def assert_dashboard_and_health_answer(server):
    """The files read from inside the zip: views/ for the dashboard's login page and
    stylesheet (schema.sql made the tables)."""
    connection = http.client.HTTPConnection('127.0.0.1', server.port, timeout=20)
    try:
        for path, expected in (('/', b'name="token"'), ('/dashboard/dashboard.css', b'{'),
                               ('/healthz', b'{"status": "ok"}')):
            connection.request('GET', path)
            answer = connection.getresponse()
            assert answer.status == 200 and expected in answer.read(), path
    finally:
        connection.close()


def test_the_pyz_serves_okta_from_an_empty_folder_and_keeps_its_data_across_a_restart(bare_python, folder):
    """The README's workshop steps: copy scimlite.pyz alone, `python scimlite.pyz`. It
    writes its commented config.ini and its scim.db beside itself, in the working folder."""
    server = start(bare_python, folder)
    try:
        assert 'SCIM base URL:   http://127.0.0.1:' in server.output
        user_ids, group_id = okta_provisions(server)
        assert_provisioned(server, user_ids, group_id)
        assert_dashboard_and_health_answer(server)
    finally:
        server.stop()
    assert 'Traceback' not in server.output
    assert (folder / 'config.ini').read_bytes() == (ROOT / 'config.ini').read_bytes()
    assert (folder / 'scim.db').is_file()

    server = start(bare_python, folder)
    try:
        assert_provisioned(server, user_ids, group_id)
        assert [found['id'] for found in okta_lookup(server, 'ADA@example.com')] == [user_ids[0]]
    finally:
        server.stop()


def test_the_pyz_keeps_an_edited_config_ini(bare_python, folder):
    """config.ini is written only when there is none: an attendee's edits stay, and count."""
    (folder / 'config.ini').write_text('[scimlite]\ndatabase = sqlite:///edited.db\n')
    server = start(bare_python, folder)
    try:
        assert 'Database:        sqlite:///edited.db' in server.output
        assert okta_lookup(server, 'nobody@example.com') == []
    finally:
        server.stop()
    assert (folder / 'config.ini').read_text() == '[scimlite]\ndatabase = sqlite:///edited.db\n'
    assert (folder / 'edited.db').is_file() and not (folder / 'scim.db').exists()


def test_a_postgresql_url_without_the_driver_is_one_line_saying_how_to_get_it(bare_python, folder):
    process = subprocess.run([str(bare_python), '-I', 'scimlite.pyz', '--port', '0', '--token', TOKEN,
                              '--database', 'postgresql://scim@127.0.0.1:1/scim'],
                             cwd=folder, env=clean_environment(), capture_output=True, text=True, timeout=60)
    assert process.returncode == 2
    assert process.stdout == ''
    # On a first start the note that config.ini was written comes first.
    lines = [line for line in process.stderr.strip().splitlines() if 'INFO wrote' not in line]
    assert len(lines) == 1, process.stderr
    assert lines[0].startswith('scimlite: PostgreSQL needs the psycopg2 driver')
    assert '-m pip install psycopg2-binary' in lines[0]


@pytest.mark.skipif(not ON_POSTGRESQL, reason='PostgreSQL: set SCIMLITE_TEST_DATABASE_URL')
def test_the_pyz_serves_postgresql_with_the_driver_of_the_python_that_runs_it(database_url, folder):
    """The test suite's Python has psycopg2: the .pyz uses it, and its own copies of the rest."""
    server = start(sys.executable, folder, '--database', database_url)
    try:
        user_ids, group_id = okta_provisions(server)
        assert_provisioned(server, user_ids, group_id)
    finally:
        server.stop()


def test_a_python_older_than_scimlite_needs_is_told_so_in_one_line(folder):
    main = zipfile.ZipFile(folder / 'scimlite.pyz').read('__main__.py').decode()
    oldest = tuple(map(int, re.search(r'sys\.version_info < \((\d+), (\d+)\)', main).groups()))
    assert oldest == (3, 10)
    assert sys.version_info >= oldest


# ---------------------------------------------------------------------------
# What the file holds
# ---------------------------------------------------------------------------

def requirements_pins():
    return dict(re.findall(r'^([A-Za-z0-9_.-]+)==(\S+)', (ROOT / 'requirements.txt').read_text(), re.MULTILINE))


def test_two_builds_are_byte_identical(pyz, tmp_path):
    assert build(tmp_path / 'again.pyz').read_bytes() == pyz.read_bytes()


def test_the_pyz_is_small_and_holds_no_tests_benchmark_or_compiled_code(pyz):
    assert pyz.stat().st_size < MAX_BYTES
    names = zipfile.ZipFile(pyz).namelist()
    assert '__main__.py' in names and 'scim_server.py' in names and 'views/dashboard.tpl' in names
    for name in names:
        assert not re.search(r'(^|/)(tests?|bench|__pycache__)/|(^|/)(test_|conftest)|\.(pyc|so|pyd)$', name), name
        assert not name.startswith(('psycopg2', 'tools/', 'docs/')), name


def test_the_embedded_libraries_are_requirements_txt_pins(pyz):
    pins = requirements_pins()
    archive = zipfile.ZipFile(pyz)
    for name in EMBEDDED:
        [metadata] = [entry for entry in archive.namelist()
                      if re.fullmatch(rf'{name}-[^/]+\.dist-info/METADATA', entry)]
        version = re.search(r'^Version: (\S+)$', archive.read(metadata).decode(), re.MULTILINE).group(1)
        assert version == pins[name], name
    assert re.search(rf"^__version__ = '{re.escape(pins['bottle'])}'$", archive.read('bottle.py').decode(), re.M)
    assert re.search(rf"^__version__ = '{re.escape(pins['peewee'])}'$", archive.read('peewee.py').decode(), re.M)
