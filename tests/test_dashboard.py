"""The dashboard over webtest: the gate on every route, the session cookie, the login
throttle, what the page and its data show, the exchange log (scrubbed, capped,
shared by processes), and the console line. The browser's view of the same page
is tests/test_dashboard_browser.py."""

import hashlib
import hmac
import http.client
import json
import re
import threading
import time
from urllib.parse import urlencode

import pytest
import webtest

import dashboard
import scim_server
import scimschema
import store
from conftest import TOKEN, USER_SCHEMA, ScimClient
from serverprocess import ServerProcess

PASSWORD = 'Correct-Horse-Battery-9'
GATED = [(method, path) for method, path, _, access in dashboard.DASHBOARD_ROUTES if access != dashboard.PUBLIC]


def concrete(path):
    return path.replace('<exchange_id>', '0' * 36)


@pytest.fixture
def browser(app):
    """A webtest client that keeps cookies, as a browser does (not logged in)."""
    return webtest.TestApp(app, extra_environ={'REMOTE_ADDR': '127.0.0.1'})


def log_in(browser, token=TOKEN, **kwargs):
    return browser.post('/dashboard/login', {'token': token}, **kwargs)


@pytest.fixture
def session(browser):
    """The same client, logged in."""
    log_in(browser, status=303)
    return browser


def data(app, session):
    app.recorder.exchanges.flush()
    return session.get('/dashboard/data', status=200).json


def assert_security_headers(response):
    policy = response.headers['Content-Security-Policy']
    assert "script-src 'self'" in policy and 'unsafe-inline' not in policy and "frame-ancestors 'none'" in policy
    assert response.headers['X-Frame-Options'] == 'DENY'
    assert response.headers['X-Content-Type-Options'] == 'nosniff'
    assert response.headers['Referrer-Policy'] == 'same-origin'
    assert response.headers['Cache-Control'] == 'no-store'


# ---------------------------------------------------------------------------
# The gate
# ---------------------------------------------------------------------------

def test_the_dashboard_routes_are_the_ones_tested():
    """A new dashboard route must be added to this file's gate tests: they enumerate these."""
    assert {(method, path) for method, path, _, access in dashboard.DASHBOARD_ROUTES
            if access == dashboard.PUBLIC} == {
        ('GET', '/'), ('POST', '/dashboard/login'), ('POST', '/dashboard/logout'), ('GET', '/dashboard/dashboard.css')}
    assert len(GATED) == 8   # the instructor's alone: tests/test_seat_board.py, test_a_seat_session_is_refused_*


@pytest.mark.parametrize('method,path', GATED)
def test_every_gated_route_answers_401_without_a_session(browser, client, method, path):
    client.create_user('secret.person@example.com', password=PASSWORD)
    response = browser.request(concrete(path), method=method, expect_errors=True)
    assert response.status_int == 401
    assert 'secret.person' not in response.text and 'function' not in response.text
    assert response.json == {'detail': 'Log in at / first.'}
    assert_security_headers(response)


@pytest.mark.parametrize('method,path', GATED)
@pytest.mark.parametrize('cookie', [
    'garbage', '', '1.2.3', '9999999999.nonce.' + '0' * 64, '.' * 100, 'é' * 10,
], ids=['garbage', 'empty', 'short', 'forged signature', 'dots', 'non-ASCII'])
def test_a_forged_cookie_opens_nothing(browser, method, path, cookie):
    browser.set_cookie(dashboard.SESSION_COOKIE, cookie)
    assert browser.request(concrete(path), method=method, expect_errors=True).status_int == 401


def test_a_cookie_signed_for_another_token_or_database_or_expired_opens_nothing(browser, monkeypatch):
    secret = store.secret('dashboard session')
    signed_for = {
        'this server': dashboard.session_key(secret, (TOKEN,)),
        'another token': dashboard.session_key(secret, ('another-token',)),
        'another database': dashboard.session_key('0' * 64, (TOKEN,)),
        # Anyone can compute a key from the token alone: with the public demo token, a forgery.
        'the token alone': hmac.new(b'scimlite dashboard session', TOKEN.encode(), hashlib.sha256).digest(),
    }
    for name, key in signed_for.items():
        browser.set_cookie(dashboard.SESSION_COOKIE, dashboard.new_session(key))
        expected = 200 if name == 'this server' else 401
        assert browser.get('/dashboard/data', expect_errors=True).status_int == expected, name
    monkeypatch.setattr(dashboard, 'SESSION_SECONDS', -1)
    browser.set_cookie(dashboard.SESSION_COOKIE, dashboard.new_session(signed_for['this server']))
    assert browser.get('/dashboard/data', expect_errors=True).status_int == 401


def test_the_session_key_is_one_per_database(make_app, app):
    """Every process on a database signs with the same key, made once, and random."""
    first = store.secret('dashboard session')
    assert len(first) == 64 and first == store.secret('dashboard session')
    assert make_app().dashboard.session_key == app.dashboard.session_key


def test_the_home_page_without_a_session_is_the_login_form_and_shows_no_data(browser, client):
    client.create_user('secret.person@example.com')
    page = browser.get('/', status=200)
    assert page.content_type == 'text/html'
    form = page.forms[0]
    assert form.action == '/dashboard/login' and form.method.upper() == 'POST'
    assert form['token'].attrs['type'] == 'password'
    assert 'secret.person' not in page.text and 'dashboard.js' not in page.text
    assert_security_headers(page)
    assert browser.get('/dashboard/dashboard.css', status=200).content_type == 'text/css'


def test_the_right_token_gives_a_signed_httponly_strict_cookie(browser):
    response = log_in(browser, status=303)
    assert response.headers['Location'].endswith('/')
    cookie = response.headers['Set-Cookie']
    assert cookie.startswith(f'{dashboard.SESSION_COOKIE}=')
    assert 'HttpOnly' in cookie and re.search(r'SameSite=strict', cookie, re.I)
    assert 'Max-Age=43200' in cookie and 'Path=/' in cookie
    assert 'Secure' not in cookie   # plain http on localhost: a Secure cookie would never come back
    assert TOKEN not in cookie
    assert 'dashboard.js' in browser.get('/', status=200).text


def test_behind_https_the_cookie_is_secure(browser):
    response = browser.post('/dashboard/login', {'token': TOKEN}, headers={'X-Forwarded-Proto': 'https'}, status=303)
    assert 'Secure' in response.headers['Set-Cookie']


@pytest.mark.parametrize('token', ['wrong', TOKEN.upper(), TOKEN + ' x', f'Bearer {TOKEN}', TOKEN[:-1], 'é'])
def test_a_wrong_token_is_refused_with_the_form_again(browser, token):
    response = log_in(browser, token, expect_errors=True)
    assert response.status_int == 401
    assert 'not the server’s token' in response.text and response.forms[0]['token'].value in ('', None)
    assert 'Set-Cookie' not in response.headers
    assert browser.get('/dashboard/data', expect_errors=True).status_int == 401


def test_no_token_at_all_is_refused(browser):
    assert browser.post('/dashboard/login', {}, expect_errors=True).status_int == 401
    assert browser.post('/dashboard/login', {'token': ''}, expect_errors=True).status_int == 401


def test_the_demo_token_logs_in_from_this_machine_only(make_app):
    app = make_app(token=scim_server.DEMO_TOKEN)
    remote = webtest.TestApp(app, extra_environ={'REMOTE_ADDR': '192.0.2.7'})
    assert log_in(remote, scim_server.DEMO_TOKEN, expect_errors=True).status_int == 401
    local = webtest.TestApp(app, extra_environ={'REMOTE_ADDR': '127.0.0.1'})
    assert log_in(local, scim_server.DEMO_TOKEN).status_int == 303


def test_login_attempts_are_throttled_per_address(browser, app):
    for _ in range(dashboard.LOGIN_FAILURES_ALLOWED):
        assert log_in(browser, 'guess', expect_errors=True).status_int == 401
    throttled = log_in(browser, TOKEN, expect_errors=True)   # even the right token: it is not looked at
    assert throttled.status_int == 429
    assert 1 <= int(throttled.headers['Retry-After']) <= dashboard.LOGIN_FAILURE_WINDOW
    assert 'Set-Cookie' not in throttled.headers
    elsewhere = webtest.TestApp(app, extra_environ={'REMOTE_ADDR': '127.0.0.2'})
    assert log_in(elsewhere).status_int == 303


def test_guesses_sent_at_once_get_no_more_tries_than_one_after_another(app):
    guesser = webtest.TestApp(app, extra_environ={'REMOTE_ADDR': '198.51.100.4'})
    statuses, start = [], threading.Barrier(20)

    def guess():
        start.wait()
        statuses.append(log_in(guesser, 'guess', expect_errors=True).status_int)
    threads = [threading.Thread(target=guess) for _ in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    allowed = dashboard.LOGIN_FAILURES_ALLOWED
    assert sorted(statuses) == [401] * allowed + [429] * (20 - allowed)


@pytest.mark.parametrize('headers', [
    {'Origin': 'https://evil.example'},
    {'Origin': 'null'},
    {'Sec-Fetch-Site': 'cross-site', 'Origin': 'https://evil.example'},
    {'Sec-Fetch-Site': 'same-site', 'Origin': 'http://localhost:80'},
])
def test_a_login_posted_from_another_site_is_refused(browser, headers):
    """Sec-Fetch-Site (a browser's word), else Origin, must name this server's page."""
    response = log_in(browser, headers=headers, expect_errors=True)
    assert response.status_int == 400 and 'Set-Cookie' not in response.headers


@pytest.mark.parametrize('headers', [
    {'Origin': 'http://localhost:80'},
    {'Sec-Fetch-Site': 'same-origin', 'Origin': 'null'},   # what Chromium sends under some referrer policies
    {},   # no browser: curl, a script
])
def test_a_login_from_this_page_or_no_browser_is_taken(browser, headers):
    assert log_in(browser, headers=headers).status_int == 303


def test_a_logout_posted_from_another_site_keeps_the_session(session):
    session.post('/dashboard/logout', headers={'Sec-Fetch-Site': 'cross-site'}, status=303)
    assert session.get('/dashboard/data').status_int == 200


def test_logout_ends_the_session(session):
    response = session.post('/dashboard/logout', status=303)
    assert re.search(r'scimlite_session=("")?;.*expires=Thu, 01 Jan 1970', response.headers['Set-Cookie'], re.I)
    assert session.get('/dashboard/data', expect_errors=True).status_int == 401
    assert 'name="token"' in session.get('/').text


def test_every_dashboard_answer_carries_the_security_headers(session):
    for method, path, _, _ in dashboard.DASHBOARD_ROUTES:
        if method == 'GET':
            assert_security_headers(session.get(concrete(path), expect_errors=True))


# ---------------------------------------------------------------------------
# What the page shows
# ---------------------------------------------------------------------------

def test_data_shows_users_with_names_and_groups_and_groups_with_member_counts(app, session, client):
    ada = client.create_user('ada@example.com', name={'givenName': 'Ada', 'familyName': 'Lovelace'})
    bob = client.create_user('bob@example.com', name={'formatted': 'Bob B. Bobson'}, active=False)
    client.create_group('Engineering', [ada['id'], bob['id']])
    client.create_group('Admins', [ada['id']])
    client.create_group('Empty')
    shown = data(app, session)
    assert shown['users']['total'] == 2
    assert [(u['userName'], u['name'], u['active'], u['groups']) for u in shown['users']['shown']] == [
        ('bob@example.com', 'Bob B. Bobson', False, ['Engineering']),
        ('ada@example.com', 'Ada Lovelace', True, ['Admins', 'Engineering']),
    ]
    assert shown['groups']['total'] == 3
    assert [(g['displayName'], g['members']) for g in shown['groups']['shown']] == [
        ('Empty', 0), ('Admins', 1), ('Engineering', 2)]


def test_data_shows_the_newest_hundred_of_many(app, session, client):
    for n in range(dashboard.SHOWN + 5):
        store.User.insert(id=f'u{n:04d}', user_name=f'user{n}', user_name_key=f'user{n}', resource='{}',
                          created=f'2026-01-01T00:00:00.{n:06d}Z', last_modified='x').execute()
    users = data(app, session)['users']
    assert users['total'] == dashboard.SHOWN + 5
    assert len(users['shown']) == dashboard.SHOWN
    assert users['shown'][0]['id'] == f'u{dashboard.SHOWN + 4:04d}'


def test_the_page_escapes_what_it_shows(session, database_url):
    """The SCIM base URL comes from X-Forwarded-Host: it is text on the page, not markup."""
    page = session.get('/', headers={'X-Forwarded-Host': 'x"><script>alert(1)</script>'}, status=200)
    assert '<script>alert(1)' not in page.text
    assert '&lt;script&gt;' in page.text


# ---------------------------------------------------------------------------
# The exchange log
# ---------------------------------------------------------------------------

def exchange_details(app, session, method, path_start):
    shown = data(app, session)['exchanges']['shown']
    matching = [e for e in shown if e['method'] == method and e['path'].startswith(path_start)]
    assert matching, shown
    return session.get(f'/dashboard/exchanges/{matching[0]["id"]}', status=200).json


def test_an_exchange_is_recorded_with_status_duration_agent_and_bodies(app, session, client):
    user = client.create_user('ada@example.com', name={'givenName': 'Ada'})
    summary = data(app, session)['exchanges']['shown'][0]
    assert (summary['method'], summary['path'], summary['status']) == ('POST', '/scim/v2/Users', 201)
    assert summary['user_agent'] == 'Okta SCIM Client 1.0.0' and summary['duration_ms'] > 0
    whole = session.get(f'/dashboard/exchanges/{summary["id"]}', status=200).json
    assert json.loads(whole['request_body'])['name'] == {'givenName': 'Ada'}
    assert json.loads(whole['response_body'])['id'] == user['id']
    assert whole['response_headers']['Location'].endswith(user['id'])
    assert whole['request_headers']['User-Agent'] == 'Okta SCIM Client 1.0.0'


def test_exchanges_are_newest_first_and_hold_refusals_too(app, session, client):
    client.get('/Users?filter=userName%20eq%20%22nobody%22', status=200)
    client.get('/Users/does-not-exist', status=404)
    client.request('GET', '/Users', headers={'Authorization': 'Bearer wrong'}, status=401)
    shown = data(app, session)['exchanges']['shown']
    assert [(e['path'], e['status']) for e in shown] == [
        ('/scim/v2/Users', 401), ('/scim/v2/Users/does-not-exist', 404),
        ('/scim/v2/Users?filter=userName eq "nobody"', 200)]


def test_the_dashboard_itself_is_not_recorded(app, session, client):
    session.get('/')
    session.get('/dashboard/data')
    session.get('/favicon.ico', expect_errors=True)
    client.get('/Users', status=200)
    assert [e['path'] for e in data(app, session)['exchanges']['shown']] == ['/scim/v2/Users']


PASSWORD_CARRIERS = [
    ('POST', '/Users', {'schemas': [USER_SCHEMA], 'userName': 'p1', 'password': PASSWORD}),
    ('POST', '/Users', {'schemas': [USER_SCHEMA], 'userName': 'p2', 'PassWord': PASSWORD}),
    ('PATCH', '/Users/{id}', {'Operations': [{'op': 'replace', 'path': 'password', 'value': PASSWORD}]}),
    ('PATCH', '/Users/{id}', {'Operations': [{'op': 'replace', 'value': {'password': PASSWORD}}]}),
    ('PATCH', '/Users/{id}', {'Operations': [
        {'op': 'Replace', 'path': 'urn:ietf:params:scim:schemas:core:2.0:User:password', 'value': PASSWORD}]}),
    ('PUT', '/Users/{id}', {'schemas': [USER_SCHEMA], 'userName': 'p3', 'password': PASSWORD}),
    ('PATCH', '/Users/{id}', {'Operations': [   # Entra names attributes by URN in a path-less value
        {'op': 'add', 'value': {'urn:ietf:params:scim:schemas:core:2.0:User:password': PASSWORD}}]}),
    ('PATCH', '/Users/{id}', {'Operations': [{'op': 'replace', 'path': 'title', 'value': 'x'},
                                             {'op': 'replace', 'path': 'Password', 'value': PASSWORD}]}),
]


@pytest.mark.parametrize('method,path,body', PASSWORD_CARRIERS)
def test_passwords_are_scrubbed_before_they_are_stored(app, session, client, method, path, body):
    user = client.create_user('someone@example.com')
    if method == 'PATCH':
        body = {'schemas': [scimschema.PATCH_SCHEMA], **body}
    client.request(method, path.format(id=user['id']), body)
    app.recorder.exchanges.flush()
    rows = [json.dumps(row) for row in store.Exchange.select().dicts()]
    assert rows and not any(PASSWORD in row for row in rows)
    whole = exchange_details(app, session, method, scim_server.DEFAULTS['base_path'] + path.split('/{')[0])
    assert dashboard.SCRUBBED in whole['request_body']


def test_a_password_behind_a_json_escape_is_scrubbed(app, session, client):
    """"pass\u0077ord" is "password" to every JSON reader, the page's included."""
    raw = f'{{"schemas": ["{USER_SCHEMA}"], "userName": "esc", "pass\\u0077ord": "{PASSWORD}"}}'.encode()
    client.request('POST', '/Users', raw=raw, status=201)
    app.recorder.exchanges.flush()
    assert PASSWORD not in json.dumps(list(store.Exchange.select().dicts()))


def test_an_odd_body_loses_no_other_exchange(app, session, client):
    """A lone surrogate in a body that is scrubbed (it mentions a password) is kept as
    its escape: the batch it is in is written whole, on either database."""
    client.get('/Users', status=200)
    client.request('POST', '/Users', raw=b'{"userName": "\\ud800", "password": "x"}', status=400)
    shown = data(app, session)['exchanges']['shown']
    assert [(e['method'], e['status']) for e in shown] == [('POST', 400), ('GET', 200)]


def test_a_body_that_is_not_json_but_mentions_a_password_is_withheld(app, session, client):
    client.request('POST', '/Users', raw=f'{{"userName": "x", "password": "{PASSWORD}", oops'.encode())
    whole = exchange_details(app, session, 'POST', '/scim/v2/Users')
    assert PASSWORD not in whole['request_body'] and whole['request_body'].startswith('[not shown')
    client.request('POST', '/Users', raw=b'not json at all')
    assert exchange_details(app, session, 'POST', '/scim/v2/Users')['request_body'] == 'not json at all'


def test_tokens_are_scrubbed_wherever_a_client_puts_them(app, session, client):
    client.get(f'/Users?access_token={TOKEN}', status=200)
    client.request('GET', '/Groups', headers={'Authorization': f'Basic {TOKEN}', 'X-Api-Key': TOKEN,
                                               'X-Note': f'token {TOKEN}', f'X-{TOKEN}': 'name'}, status=401)
    client.request('GET', '/Users', headers={'Authorization': f'{TOKEN} x'}, status=401)
    client.get(f'/Users/{TOKEN}', status=404)
    client.post('/Users', {'schemas': [USER_SCHEMA], 'userName': 'u', 'title': TOKEN}, status=201)
    app.recorder.exchanges.flush()
    everything = json.dumps(list(store.Exchange.select().dicts()))
    assert TOKEN not in everything
    whole = exchange_details(app, session, 'GET', '/scim/v2/Groups')
    assert whole['request_headers']['Authorization'] == (   # the scheme, and why it was refused
        'Basic [scrubbed] (refused: Basic credentials that are not base64 of "user name:password")')
    odd_scheme = [e for e in data(app, session)['exchanges']['shown'] if e['status'] == 401][0]
    shown = session.get(f'/dashboard/exchanges/{odd_scheme["id"]}').json
    assert shown['request_headers']['Authorization'].startswith('[scrubbed] (refused: several words')
    for path in ('/', '/dashboard/data', '/dashboard/dashboard.js'):
        assert TOKEN not in session.get(path).text


def test_a_large_body_is_kept_in_part_and_a_nul_in_full(app, session, client):
    big = 'x' * (dashboard.MAX_LOGGED_BODY + 500)
    client.post('/Users', {'schemas': [USER_SCHEMA], 'userName': 'big', 'title': big}, status=201)
    whole = exchange_details(app, session, 'POST', '/scim/v2/Users')
    assert whole['request_body'].endswith('more bytes not kept]')
    assert len(whole['request_body']) < dashboard.MAX_LOGGED_BODY + 100
    client.request('POST', '/Users', raw=b'{"userName": "a\x00b"}', status=400)
    whole = exchange_details(app, session, 'POST', '/scim/v2/Users')
    assert whole['status'] == 400 and '\ufffd' in whole['request_body']


def test_only_the_newest_exchanges_are_kept(make_app):
    app = make_app(exchanges_kept=5)
    client = ScimClient(app)
    for n in range(8):
        client.get(f'/Users?count={n}', status=200)
        app.recorder.exchanges.flush()   # one batch each: the table, not only the queue, is trimmed
    kept = [row[0] for row in store.Exchange.select(store.Exchange.path).order_by(store.Exchange.id).tuples()]
    assert kept == [f'/scim/v2/Users?count={n}' for n in range(3, 8)]
    for n in range(8):   # a burst between two writes: the queue keeps the newest too
        client.get(f'/Groups?count={n}', status=200)
    app.recorder.exchanges.flush()
    assert store.Exchange.select().count() == 5


def test_a_flood_is_recorded_as_a_sample_of_the_newest(app, client):
    """More than BATCH_MAX between two writes: the newest BATCH_MAX are written."""
    for n in range(dashboard.BATCH_MAX + 10):
        client.get(f'/Users?count={n}', status=200)
    app.recorder.exchanges.flush()
    kept = [row[0] for row in store.Exchange.select(store.Exchange.path).order_by(store.Exchange.id).tuples()]
    assert kept == [f'/scim/v2/Users?count={n}' for n in range(10, dashboard.BATCH_MAX + 10)]


def counted(monkeypatch, name):
    """The instances of dashboard.<name> (ExchangeLog, ConsoleLines) made from now on,
    in a list the test reads: a worker that was never made can do nothing later."""
    made = []

    class Counted(getattr(dashboard, name)):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            made.append(self)
    monkeypatch.setattr(dashboard, name, Counted)
    return made


def new_threads_named(before, name):
    return [thread for thread in threading.enumerate() if thread not in before and thread.name == name]


def test_recording_can_be_switched_off(make_app, monkeypatch):
    logs = counted(monkeypatch, 'ExchangeLog')
    assert make_app().recorder.exchanges is logs[0]   # recording on: the count sees its log
    threads_before = set(threading.enumerate())
    app = make_app(record_exchanges='off')
    ScimClient(app).create_user('ada@example.com')
    # Off, there is no exchange log at all: no queue, no writer thread, nothing to write later.
    assert app.recorder.exchanges is None and len(logs) == 1
    assert new_threads_named(threads_before, dashboard.ExchangeLog.thread_name) == []
    assert store.Exchange.select().count() == 0
    session = webtest.TestApp(app, extra_environ={'REMOTE_ADDR': '127.0.0.1'})
    log_in(session, status=303)
    shown = session.get('/dashboard/data').json
    assert shown['exchanges'] == {'recording': False, 'kept': 500, 'shown': []}
    assert shown['users']['total'] == 1
    assert 'Recording is off' in session.get('/').text
    app.recorder.close(finish=True)   # what a log would have queued is written now: nothing
    assert store.Exchange.select().count() == 0


def test_recording_does_not_wait_for_the_database(app, client, monkeypatch):
    """The request thread only queues: a slow or failing write is the writer thread's."""
    def refuse(*args):
        raise AssertionError('written on the request thread')
    monkeypatch.setattr(store, 'add_exchanges', refuse)
    app.recorder.exchanges.stop()   # no writer thread: nothing may write
    client.create_user('ada@example.com')
    assert len(app.recorder.exchanges.queue) == 1


def test_a_failed_batch_is_logged_once_and_scim_goes_on(app, client, monkeypatch, caplog):
    def unavailable(*args):
        raise store.OperationalError('database is locked')
    monkeypatch.setattr(store, 'add_exchanges', unavailable)
    for n in range(3):
        client.create_user(f'user{n}@example.com')
        app.recorder.exchanges.flush()
    assert [r.message for r in caplog.records].count(
        'could not record 1 exchange(s) for the dashboard: database is locked') == 1


def test_exchanges_are_shared_by_every_process_on_the_database(database_url, tmp_path):
    """An exchange served by one process is on the dashboard of the other."""
    token = 'shared-token-0123456789'
    first = ServerProcess(database=database_url, token=token)
    second = ServerProcess(database=database_url, token=token)
    try:
        connection = http.client.HTTPConnection('127.0.0.1', first.port, timeout=10)
        connection.request('GET', '/scim/v2/Users?filter=userName%20eq%20%22via-first%22',
                            headers={'Authorization': f'Bearer {token}'})
        assert connection.getresponse().status == 200
        page_connection = http.client.HTTPConnection('127.0.0.1', second.port, timeout=10)
        page_connection.request('POST', '/dashboard/login', urlencode({'token': token}),
                          {'Content-Type': 'application/x-www-form-urlencoded'})
        answer = page_connection.getresponse()
        answer.read()
        cookie = answer.getheader('Set-Cookie').split(';')[0]
        deadline = time.monotonic() + 10
        while True:
            page_connection.request('GET', '/dashboard/data', headers={'Cookie': cookie})
            paths = [e['path'] for e in json.loads(page_connection.getresponse().read())['exchanges']['shown']]
            if paths or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        assert paths == ['/scim/v2/Users?filter=userName eq "via-first"']
    finally:
        first.stop()
        second.stop()
    assert re.search(r'\d\d:\d\d:\d\d  GET    /scim/v2/Users\?filter=userName eq "via-first"  200  [\d.]+ ms',
                     first.output), first.output


# ---------------------------------------------------------------------------
# The console line
# ---------------------------------------------------------------------------

def test_each_scim_request_prints_one_line(make_app, capsys):
    app = make_app()
    client = ScimClient(app)
    client.create_user('ada@example.com')
    client.get('/Users/missing', status=404)
    webtest.TestApp(app).get('/')
    app.recorder.console.print_waiting()
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2, lines
    assert re.fullmatch(r'\d\d:\d\d:\d\d  POST   /scim/v2/Users  201  \d+\.\d ms', lines[0])
    assert re.fullmatch(r'\d\d:\d\d:\d\d  GET    /scim/v2/Users/missing  404  \d+\.\d ms', lines[1])


def test_the_console_never_shows_the_token(make_app, capsys):
    app = make_app()
    ScimClient(app).get(f'/Users/{TOKEN}', status=404)
    app.recorder.console.print_waiting()
    out = capsys.readouterr().out
    assert TOKEN not in out and '/scim/v2/Users/[scrubbed]  404' in out


class BlockedConsole:
    """A terminal that stopped reading (Ctrl-S, a pipe nobody drains) until `reading`
    is set; `blocked` is set once a writer waits in it."""
    encoding = 'utf-8'

    def __init__(self):
        self.reading = threading.Event()
        self.blocked = threading.Event()
        self.written = []
        self.changed = threading.Condition()

    def write(self, text):
        self.blocked.set()
        self.reading.wait()
        with self.changed:
            self.written.append(text)
            self.changed.notify_all()

    def flush(self):
        pass

    def lines(self):
        return sum(text.count('\n') for text in self.written)

    def wait_for_lines(self, count, timeout=10):
        with self.changed:
            self.changed.wait_for(lambda: self.lines() >= count, timeout)
        return self.lines()


def test_a_console_that_blocks_holds_no_request(make_app):
    app = make_app()
    app.recorder.console.stream = console = BlockedConsole()
    client = ScimClient(app)

    def statuses(counts):
        """GET /Users?count=n for each n, on a thread of its own: the statuses answered."""
        answered = []
        sender = threading.Thread(target=lambda: answered.extend(
            client.get(f'/Users?count={n}').status_int for n in counts), daemon=True)
        sender.start()
        sender.join(30)   # a bound for a hang, not a measure of speed
        return answered
    try:
        assert statuses([0]) == [200]
        assert console.blocked.wait(10), 'the console thread never wrote the first line'
        # The console thread is stuck in write(): every request is answered all the same,
        # while it stays stuck, and their lines wait for it.
        assert statuses(range(1, 30)) == [200] * 29
        assert not console.reading.is_set() and console.written == []
        assert len(app.recorder.console.waiting) == 29
    finally:
        console.reading.set()   # the console thread goes on with the line it holds, then the rest
    assert console.wait_for_lines(30) == 30


def test_a_console_that_cannot_show_a_character_goes_on(make_app):
    app = make_app()
    app.recorder.console.stream = console = BlockedConsole()
    console.encoding = 'ascii'
    console.reading.set()
    client = ScimClient(app)
    client.get('/Users?filter=userName%20eq%20%22jos%C3%A9%22', status=200)
    client.get('/Users/next', status=404)
    app.recorder.console.print_waiting()
    printed = ''.join(console.written)
    assert 'userName eq "jos\\xe9"' in printed and '/scim/v2/Users/next  404' in printed


def test_the_queue_holds_no_more_of_a_body_than_it_keeps(app, client):
    user = client.create_user('big@example.com')
    client.put(f'/Users/{user["id"]}', {'schemas': [USER_SCHEMA], 'userName': 'big@example.com',
                                         'title': 'x' * 500_000}, status=200)
    app.recorder.exchanges.stop()
    queued = app.recorder.exchanges.queue[-1]
    assert all(len(part) <= dashboard.MAX_LOGGED_BODY for part in queued if isinstance(part, bytes))
    assert all(len(value) <= dashboard.MAX_LOGGED_BODY for part in queued if isinstance(part, dict)
               for value in part.values() if isinstance(value, (bytes, str)))


def test_a_flood_is_counted_in_one_line_and_the_newest_are_printed(make_app):
    app = make_app()
    app.recorder.console.stream = console = BlockedConsole()
    console.reading.set()
    app.recorder.console.stop()   # no console thread: all of it waits for one print
    client = ScimClient(app)
    for n in range(70):
        client.get(f'/Users?count={n}', status=200)
    for n in range(10):
        client.get(f'/Users/missing-{n}', status=404)
    app.recorder.console.print_waiting()
    lines = ''.join(console.written).splitlines()
    assert dashboard.ConsoleLines.FLOOD_LINES // 5 == 10   # the newest ten are printed whole
    assert len(lines) == 11
    assert re.fullmatch(r'\d\d:\d\d:\d\d  … 70 more requests, not shown one by one: 200 ×70', lines[0]), lines[0]
    assert [line.split()[2] for line in lines[1:]] == [f'/scim/v2/Users/missing-{n}' for n in range(10)]


def test_quiet_prints_nothing(make_app, capsys, monkeypatch):
    consoles = counted(monkeypatch, 'ConsoleLines')
    assert make_app().recorder.console is consoles[0]   # not quiet: the count sees its console
    threads_before = set(threading.enumerate())
    app = make_app(quiet=True)
    client = ScimClient(app)
    client.create_user('ada@example.com')
    client.get('/Users/missing', status=404)
    # Quiet, there is no console at all: no lines queued, no thread to print them later.
    assert app.recorder.console is None and len(consoles) == 1
    assert new_threads_named(threads_before, dashboard.ConsoleLines.thread_name) == []
    app.recorder.close(finish=True)   # what a console would have queued is printed now: nothing
    assert capsys.readouterr().out == ''


def test_a_path_cannot_write_escape_sequences_to_the_terminal(make_app, capsys):
    app = make_app()
    ScimClient(app).get('/Users/%1b%5b2J%1b%5d0;owned%07', status=404)
    app.recorder.console.print_waiting()
    out = capsys.readouterr().out
    assert '\x1b' not in out and '\x07' not in out and '\\x1b[2J' in out


@pytest.mark.parametrize('given,expected', [('on', True), ('OFF', False), ('yes', True), ('0', False)])
def test_switches_read_on_and_off(given, expected, tmp_path):
    settings = scim_server.normalise_settings({'token': TOKEN, 'quiet': given, 'record_exchanges': given})
    assert settings['quiet'] is settings['record_exchanges'] is expected


def test_a_bad_switch_or_keep_count_is_a_one_line_error():
    with pytest.raises(scim_server.SettingsError, match='record_exchanges must be on or off'):
        scim_server.normalise_settings({'token': TOKEN, 'record_exchanges': 'maybe'})
    with pytest.raises(scim_server.SettingsError, match='exchanges_kept must be at least 1'):
        scim_server.normalise_settings({'token': TOKEN, 'exchanges_kept': '0'})


def test_quiet_is_a_command_line_flag():
    assert scim_server.load_settings(['--token', 't', '--quiet'], environ={})['quiet'] is True
    assert scim_server.load_settings(['--token', 't'], environ={})['quiet'] is False



def test_closing_at_the_end_writes_and_prints_what_is_queued(make_app, database_url, capsys):
    """Ctrl+C (main() then calls close(finish=True)): the last exchanges are kept and printed."""
    app = make_app()
    ScimClient(app).get('/Users/last-words', status=404)
    app.close(finish=True)
    assert '/scim/v2/Users/last-words  404' in capsys.readouterr().out
    store.open_database(database_url)
    try:
        assert [row.path for row in store.Exchange.select()] == ['/scim/v2/Users/last-words']
    finally:
        store.close_database()


def test_the_scim_api_may_live_at_the_root_beside_the_dashboard(make_app):
    """base_path = / : /Users is SCIM (printed and recorded), / is still the dashboard."""
    app = make_app(base_path='/')
    client = webtest.TestApp(app, extra_environ={'REMOTE_ADDR': '127.0.0.1'})
    headers = {'Authorization': f'Bearer {TOKEN}'}
    created = client.post('/Users', json.dumps({'schemas': [USER_SCHEMA], 'userName': 'root@example.com'}),
                          headers={**headers, 'Content-Type': 'application/scim+json'}, status=201)
    assert created.headers['Location'] == f'http://localhost:80/Users/{created.json["id"]}'
    assert client.get('/Users', headers=headers, status=200).json['totalResults'] == 1
    assert 'name="token"' in client.get('/', status=200).text
    log_in(client, status=303)
    app.recorder.exchanges.flush()
    assert [e['path'] for e in client.get('/dashboard/data').json['exchanges']['shown']] == ['/Users', '/Users']
