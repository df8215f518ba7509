"""The dashboard (GET /) in a real browser: headless Chromium driven by Playwright.

Each test starts the real server (`python scim_server.py`, see serverprocess.py) on a
fresh SQLite file of its own, talks SCIM to it over HTTP as Okta does, and looks at the
page as a person would: the login form, the users, groups and exchanges filled in by
views/dashboard.js, the scrubbed details of an exchange, logging out.

These tests always use SQLite: SCIMLITE_TEST_DATABASE_URL is ignored here. What they
test is the page, which reads the same /dashboard/data whatever the backend; the other
suites cover PostgreSQL.

Environment:
- Playwright for Python and a Chromium are needed. Playwright's own browser download
  is not used: Chromium is /usr/bin/chromium, or SCIMLITE_CHROMIUM. Without either,
  the module is skipped, unless SCIMLITE_BROWSER_TESTS=required, which makes that a
  failure (for CI, where a skipped suite would go unnoticed).
- SCIMLITE_SCREENSHOT=path also saves the screenshot of an Okta push there, and
  SCIMLITE_BOARD_SCREENSHOT=path that of the workshop board; the README's are made with
  `SCIMLITE_SCREENSHOT=docs/dashboard.png SCIMLITE_BOARD_SCREENSHOT=docs/seat-board.png
  python -m pytest tests/test_dashboard_browser.py`.
- Every test fails on a console error or an uncaught exception in the page (a
  Content-Security-Policy violation is a console error), except the failed loads it
  expects (a 401 it asked for).
"""

import http.client
import json
import os
import re
import shutil
from pathlib import Path
from urllib.parse import quote, urlsplit

import pytest

from serverprocess import ServerProcess

REQUIRED = os.environ.get('SCIMLITE_BROWSER_TESTS', '').strip().lower() == 'required'
CHROMIUM = os.environ.get('SCIMLITE_CHROMIUM') or '/usr/bin/chromium'

try:
    from playwright.sync_api import expect, sync_playwright
    MISSING = None
except ImportError as error:
    MISSING = f'Playwright for Python is not installed ({error}): pip install playwright'
else:
    if not Path(CHROMIUM).is_file():
        MISSING = f'no Chromium at {CHROMIUM} (set SCIMLITE_CHROMIUM to its path)'

if MISSING and not REQUIRED:
    pytest.skip(f'browser tests skipped: {MISSING}; SCIMLITE_BROWSER_TESTS=required makes this a failure',
                allow_module_level=True)

TOKEN = 'browser-test-token-7f3a9c'
PASSWORD = 'S3cret-pass-word!'
SCIM_JSON = 'application/scim+json'
USER_AGENT = 'Okta SCIM Client 1.0.0'
USER_SCHEMA = 'urn:ietf:params:scim:schemas:core:2.0:User'
GROUP_SCHEMA = 'urn:ietf:params:scim:schemas:core:2.0:Group'
PATCH_SCHEMA = 'urn:ietf:params:scim:api:messages:2.0:PatchOp'
VIEWPORT = {'width': 1280, 'height': 900}
SEATS = 4
WITH_SEATS = pytest.mark.parametrize('server', [SEATS], indirect=True, ids=[f'{SEATS} seats'])
WAIT_MS = 10_000   # for what the page shows after its next poll (every 2 s) or a flush (0.5 s)

if not MISSING:
    expect.set_options(timeout=WAIT_MS)


# ---------------------------------------------------------------------------
# The server, and SCIM as Okta speaks it
# ---------------------------------------------------------------------------

class Scim:
    """SCIM over HTTP with Okta's headers (and the server's token, or a seat's);
    counts the requests it sent."""

    def __init__(self, server, token=TOKEN):
        self.server, self.token = server, token
        self.sent = 0

    def request(self, method, path, body=None, status=None):
        headers = {'Authorization': f'Bearer {self.token}', 'Accept': SCIM_JSON, 'User-Agent': USER_AGENT}
        payload = None
        if body is not None:
            payload = json.dumps(body).encode('utf-8')
            headers['Content-Type'] = SCIM_JSON
        connection = http.client.HTTPConnection('127.0.0.1', self.server.port, timeout=10)
        try:
            connection.request(method, '/scim/v2' + path, body=payload, headers=headers)
            answer = connection.getresponse()
            data = answer.read()
        finally:
            connection.close()
        self.sent += 1
        if status is not None:
            assert answer.status in (status if isinstance(status, tuple) else (status,)), \
                (method, path, answer.status, data[:500])
        return json.loads(data) if data else None

    def create_user(self, user_name, **attributes):
        body = {'schemas': [USER_SCHEMA], 'userName': user_name, 'active': True, **attributes}
        return self.request('POST', '/Users', body, status=201)

    def create_group(self, display_name, members=()):
        body = {'schemas': [GROUP_SCHEMA], 'displayName': display_name,
                'members': [{'value': member['id']} for member in members]}
        return self.request('POST', '/Groups', body, status=201)

    def find_user(self, user_name):
        query = quote(f'userName eq "{user_name}"')
        return self.request('GET', f'/Users?filter={query}&startIndex=1&count=100', status=200)

    def patch(self, path, operations):
        """PATCH; the answer is the resource (200) or nothing (204), as RFC 7644 allows."""
        return self.request('PATCH', path, {'schemas': [PATCH_SCHEMA], 'Operations': operations}, status=(200, 204))


@pytest.fixture
def server(request, tmp_path):
    """The real server on a fresh SQLite file, with a token that is not the demo one;
    with workshop seats where a test says how many (WITH_SEATS)."""
    seats = getattr(request, 'param', 0)
    extra = ('--seats', str(seats)) if seats else ()
    running = ServerProcess(*extra, database=f'sqlite:///{(tmp_path / "scim.db").as_posix()}', token=TOKEN)
    yield running
    running.stop()
    assert 'Traceback' not in running.output, running.output


@pytest.fixture
def scim(server):
    return Scim(server)


# ---------------------------------------------------------------------------
# The browser: one Chromium for the module, a fresh context (no cookies) per test
# ---------------------------------------------------------------------------

@pytest.fixture(scope='module')
def browser():
    if MISSING:   # only when SCIMLITE_BROWSER_TESTS=required: otherwise the module was skipped
        pytest.fail(f'SCIMLITE_BROWSER_TESTS=required, but {MISSING}', pytrace=False)
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, headless=True)
        yield chromium
        chromium.close()


class PageProblems:
    """Console errors and uncaught exceptions of a page, but for the failed loads a
    test said it expects (Chromium logs every 4xx answer as a console error)."""

    def __init__(self):
        self.seen = []
        self.expected = set()   # (path, status)

    def watch(self, page):
        page.on('console', self._console)
        page.on('pageerror', lambda error: self.seen.append(f'uncaught: {error}'))

    def expect_failed_load(self, path, status):
        self.expected.add((path, status))

    def _console(self, message):
        if message.type != 'error':
            return
        path = urlsplit(message.location.get('url') or '').path
        if any(path == expected_path and f'status of {status} ' in message.text
               for expected_path, status in self.expected):
            return
        self.seen.append(f'console error: {message.text} ({message.location})')


@pytest.fixture
def problems():
    return PageProblems()


@pytest.fixture
def page(browser, server, problems):
    """A page on the server in a context of its own; it must end with no console
    error and no uncaught exception."""
    context = browser.new_context(base_url=server.url, viewport=VIEWPORT, locale='en-US', timezone_id='UTC')
    context.set_default_timeout(WAIT_MS)
    opened = context.new_page()
    problems.watch(opened)
    yield opened
    context.close()
    assert not problems.seen, '\n'.join(problems.seen)


# ---------------------------------------------------------------------------
# What a person does and sees
# ---------------------------------------------------------------------------

def log_in(page, token=TOKEN):
    """Open the dashboard and log in; return once its first data is shown."""
    page.goto('/')
    page.fill('#token', token)
    page.click('form[action="/dashboard/login"] button[type=submit]')
    expect(page.locator('#users, p.error')).to_be_visible()   # whichever comes: no waiting out a refusal
    assert page.locator('p.error').count() == 0, f'login refused: {page.locator("p.error").text_content()}'
    expect(page.locator('#status')).to_have_text(re.compile(r'^Updated'))


def status_of(page, path):
    """The HTTP status the page's own fetch of `path` gets (with its cookies)."""
    return page.evaluate('async (path) => (await fetch(path, {cache: "no-store"})).status', path)


def exactly(text):
    return re.compile(f'^{re.escape(text)}$')


def user_row(page, user_name):
    return page.locator('#users tbody tr', has=page.locator('td.user-name', has_text=exactly(user_name)))


def group_row(page, display_name):
    return page.locator('#groups tbody tr', has=page.locator('td.group-name', has_text=exactly(display_name)))


def exchange_rows(page, method, path):
    return page.locator('#exchanges tr.exchange',
                        has=page.locator('td.method', has_text=exactly(method))).filter(
        has=page.locator('td.path', has_text=exactly(path)))


def the_detail(page):
    """The one open exchange's detail row."""
    return page.locator('#exchanges tr.exchange-detail')


def session_cookies(context):
    return [cookie for cookie in context.cookies() if cookie['name'] == 'scimlite_session']


def assert_login_form(page):
    expect(page.locator('form[action="/dashboard/login"] input#token[name="token"][type="password"]')).to_be_visible()
    expect(page.locator('#users')).to_have_count(0)


# ---------------------------------------------------------------------------
# Tests
# ---------------------------------------------------------------------------

def test_the_dashboard_asks_for_the_token_first(page, problems):
    """Without a session, / is the login form and the data behind the page is refused."""
    answer = page.goto('/')
    assert answer.status == 200
    assert_login_form(page)
    expect(page.locator('#exchanges')).to_have_count(0)

    problems.expect_failed_load('/dashboard/data', 401)
    problems.expect_failed_load('/dashboard/exchanges/any', 401)
    assert status_of(page, '/dashboard/data') == 401
    assert status_of(page, '/dashboard/exchanges/any') == 401


def test_a_wrong_token_is_refused(page, problems):
    """A wrong token gets the login form again, with an error, a 401 and no session."""
    problems.expect_failed_load('/dashboard/login', 401)
    page.goto('/')
    page.fill('#token', 'not-the-token-at-all')
    with page.expect_response(lambda answer: urlsplit(answer.url).path == '/dashboard/login') as login:
        page.click('form[action="/dashboard/login"] button[type=submit]')
    assert login.value.status == 401

    assert_login_form(page)
    expect(page.locator('p.error')).to_have_text(re.compile(r'not the server.s token'))
    assert 'not-the-token-at-all' not in page.content()
    assert session_cookies(page.context) == []


def test_users_and_groups_are_shown(page, scim):
    """Users (userName, full name, active, groups) and groups (member count) as stored."""
    ada = scim.create_user('ada.lovelace@example.com', name={'givenName': 'Ada', 'familyName': 'Lovelace'})
    scim.create_user('charles.babbage@example.com', active=False)
    scim.create_group('Analytical Engine', members=[ada])

    log_in(page)

    expect(user_row(page, 'ada.lovelace@example.com').locator('td')).to_have_text(
        ['ada.lovelace@example.com', 'Ada Lovelace', 'yes', 'Analytical Engine'])
    expect(user_row(page, 'charles.babbage@example.com').locator('td')).to_have_text(
        ['charles.babbage@example.com', '', 'no', ''])
    expect(page.locator('#users tbody tr')).to_have_count(2)
    expect(page.locator('#users-count')).to_have_text('(2)')
    expect(group_row(page, 'Analytical Engine').locator('td')).to_have_text(['Analytical Engine', '1'])
    expect(page.locator('#groups-count')).to_have_text('(1)')


def test_a_user_created_through_scim_appears_without_reload(page, scim):
    """A user Okta creates shows up by itself, and so does the exchange, password scrubbed."""
    log_in(page)
    expect(page.locator('#users tbody tr')).to_have_count(0)
    page.evaluate('window.__marker = 1')

    scim.create_user('grace.hopper@example.com', password=PASSWORD,
                     name={'givenName': 'Grace', 'familyName': 'Hopper'})

    expect(user_row(page, 'grace.hopper@example.com')).to_be_visible()
    assert page.evaluate('window.__marker') == 1, 'the page was reloaded'

    exchange = exchange_rows(page, 'POST', '/scim/v2/Users')
    expect(exchange).to_have_count(1)
    expect(exchange.locator('td.status')).to_have_text('201')
    expect(exchange.locator('td.agent')).to_have_text(USER_AGENT)
    exchange.locator('button.expand').click()

    bodies, headers = the_detail(page).locator('pre.body'), the_detail(page).locator('pre.headers')
    expect(bodies).to_have_count(2)   # the request's, then the response's, once fetched
    expect(bodies.nth(0)).to_contain_text('"password": "[scrubbed]"')
    expect(bodies.nth(0)).to_contain_text('"userName": "grace.hopper@example.com"')
    expect(headers.nth(0)).to_contain_text('Authorization: Bearer [scrubbed]')
    expect(bodies.nth(1)).to_contain_text('"userName": "grace.hopper@example.com"')
    assert page.evaluate('window.__marker') == 1, 'the page was reloaded'


def test_an_open_exchange_stays_open_across_refreshes(page, scim):
    """The page redraws when new data comes; an exchange opened stays open until clicked again."""
    scim.create_user('alan.turing@example.com')
    log_in(page)
    exchange_id = exchange_rows(page, 'POST', '/scim/v2/Users').get_attribute('data-id')
    exchange = page.locator(f'#exchanges tr.exchange[data-id="{exchange_id}"]')
    exchange.locator('button.expand').click()
    expect(the_detail(page).locator('pre.body').first).to_contain_text('alan.turing@example.com')
    expect(exchange.locator('button.expand')).to_have_attribute('aria-expanded', 'true')

    scim.create_user('john.von.neumann@example.com')   # new data: the page redraws every table
    expect(user_row(page, 'john.von.neumann@example.com')).to_be_visible()
    expect(the_detail(page)).to_have_count(1)
    expect(the_detail(page).locator('pre.body').first).to_contain_text('alan.turing@example.com')
    expect(exchange.locator('button.expand')).to_have_attribute('aria-expanded', 'true')

    exchange.locator('button.expand').click()
    expect(the_detail(page)).to_have_count(0)
    expect(exchange.locator('button.expand')).to_have_attribute('aria-expanded', 'false')


def test_no_token_or_password_in_the_page(page, scim, server):
    """Neither the token nor a password reaches the browser: not in the page, not in
    any answer it received, not in the session cookie (which scripts cannot read)."""
    received = []   # every answer from the server
    bodies = {}     # answer -> its text, read as it arrives: a page navigated away from loses them

    def keep(answer):
        if urlsplit(answer.url).netloc == urlsplit(server.url).netloc:
            received.append(answer)
            if not 300 <= answer.status < 400:   # a redirect has no body
                bodies[answer] = answer.text()

    page.on('response', keep)
    log_in(page)
    scim.create_user('katherine.johnson@example.com', password=PASSWORD)
    exchange = exchange_rows(page, 'POST', '/scim/v2/Users')
    with page.expect_response(lambda answer: '/dashboard/exchanges/' in answer.url):
        exchange.locator('button.expand').click()
    expect(the_detail(page).locator('pre.body').first).to_contain_text('"password": "[scrubbed]"')

    urls = [urlsplit(answer.url).path for answer in received]
    assert {'/', '/dashboard/login', '/dashboard/data', '/dashboard/dashboard.js'} <= set(urls), urls
    assert any(path.startswith('/dashboard/exchanges/') for path in urls), urls
    content = page.content()
    for answer in list(received):
        # A redirect has no body; the listener may still be reading the newest ones: they are on this page.
        body = '' if 300 <= answer.status < 400 else bodies[answer] if answer in bodies else answer.text()
        headers = json.dumps(answer.all_headers())
        for secret in (TOKEN, PASSWORD):
            assert secret not in body and secret not in headers, answer.url
    for secret in (TOKEN, PASSWORD):
        assert secret not in content
    cookie, = session_cookies(page.context)
    assert TOKEN not in cookie['value']
    assert cookie['httpOnly'] and cookie['sameSite'] == 'Strict'
    assert page.evaluate('document.cookie') == ''
    assert TOKEN not in server.output and PASSWORD not in server.output


def test_logout_ends_the_session(page, problems):
    """Log out gives the login form back, and the data is refused again."""
    log_in(page)
    assert status_of(page, '/dashboard/data') == 200
    page.click('button.link:has-text("Log out")')

    assert_login_form(page)
    assert session_cookies(page.context) == []
    problems.expect_failed_load('/dashboard/data', 401)
    assert status_of(page, '/dashboard/data') == 401


def test_an_okta_push_is_shown(page, scim, tmp_path):
    """What an Okta push looks like on the page (the README's screenshot): users looked
    up and created, groups created and filled by PATCH, one user deactivated."""
    people = [('Ada', 'Lovelace'), ('Grace', 'Hopper'), ('Alan', 'Turing'),
              ('Katherine', 'Johnson'), ('Edsger', 'Dijkstra'), ('Barbara', 'Liskov')]
    log_in(page)

    users = []
    for given, family in people:
        user_name = f'{given}.{family}@example.com'.lower()
        assert scim.find_user(user_name)['totalResults'] == 0
        users.append(scim.create_user(
            user_name, externalId=f'00u{len(users) + 1:02d}okta', password=PASSWORD, displayName=f'{given} {family}',
            name={'givenName': given, 'familyName': family},
            emails=[{'primary': True, 'value': user_name, 'type': 'work'}], locale='en-US', groups=[]))
    engineering = scim.create_group('Engineering')
    research = scim.create_group('Research')
    scim.patch(f'/Groups/{engineering["id"]}',
               [{'op': 'add', 'path': 'members', 'value': [{'value': user['id']} for user in users[:4]]}])
    scim.patch(f'/Groups/{research["id"]}',
               [{'op': 'add', 'path': 'members', 'value': [{'value': users[0]['id']}, {'value': users[5]['id']}]}])
    scim.patch(f'/Users/{users[4]["id"]}', [{'op': 'replace', 'value': {'active': False}}])

    expect(page.locator('#users tbody tr')).to_have_count(len(people))
    expect(user_row(page, 'ada.lovelace@example.com').locator('td')).to_have_text(
        ['ada.lovelace@example.com', 'Ada Lovelace', 'yes', 'Engineering, Research'])
    expect(user_row(page, 'edsger.dijkstra@example.com').locator('td.inactive')).to_have_text('no')
    expect(group_row(page, 'Engineering').locator('td.number')).to_have_text('4')
    expect(group_row(page, 'Research').locator('td.number')).to_have_text('2')
    expect(page.locator('#exchanges tr.exchange')).to_have_count(scim.sent)

    exchange = exchange_rows(page, 'PATCH', f'/scim/v2/Groups/{engineering["id"]}')
    exchange.locator('button.expand').click()
    expect(the_detail(page).locator('pre.body').first).to_contain_text('"path": "members"')

    screenshot = tmp_path / 'dashboard.png'
    page.screenshot(path=str(screenshot), full_page=True)
    assert screenshot.read_bytes()[:8] == b'\x89PNG\r\n\x1a\n'
    assert screenshot.stat().st_size > 10_000
    if os.environ.get('SCIMLITE_SCREENSHOT'):
        wanted = Path(os.environ['SCIMLITE_SCREENSHOT'])
        wanted.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(screenshot, wanted)


# ---------------------------------------------------------------------------
# A workshop: the instructor's board, the seat cards, an attendee's seat
# ---------------------------------------------------------------------------

def seat_tokens(page):
    """{seat: token}, as the instructor's CSV gives them (the page must be logged in as the instructor)."""
    text = page.evaluate('async () => (await fetch("/dashboard/cards.csv", {cache: "no-store"})).text()')
    lines = text.splitlines()
    assert lines[0] == 'seat,base_url,token'
    return {int(line.split(',')[0]): line.split(',')[2] for line in lines[1:]}


def seat_row(page, number):
    return page.locator(f'#seats tbody tr[data-seat="{number}"]')


def okta_push(scim, people):
    """Okta's Test API Credentials, then users looked up and created, one updated, a
    group pushed and filled, one user deactivated."""
    scim.request('GET', '/Users?startIndex=1&count=2', status=200)
    users = []
    for given, family in people:
        user_name = f'{given}.{family}@example.com'.lower()
        scim.find_user(user_name)
        users.append(scim.create_user(user_name, name={'givenName': given, 'familyName': family}))
    scim.patch(f'/Users/{users[0]["id"]}', [{'op': 'replace', 'value': {'title': 'Engineer'}}])
    group = scim.create_group('Engineering')
    scim.patch(f'/Groups/{group["id"]}', [{'op': 'add', 'path': 'members',
                                           'value': [{'value': user['id']} for user in users]}])
    scim.patch(f'/Users/{users[-1]["id"]}', [{'op': 'replace', 'value': {'active': False}}])
    return users


@WITH_SEATS
def test_the_board_shows_each_seat_live_at_its_own_milestone(page, server, tmp_path):
    """The instructor's board: seats at different steps, a label given on the page, a
    last error, and the link to a seat's exchanges (the README's screenshot)."""
    log_in(page)
    tokens = seat_tokens(page)
    assert sorted(tokens) == list(range(1, SEATS + 1))
    expect(page.locator('#seats tbody tr')).to_have_count(SEATS)
    expect(page.locator('#seats-count')).to_have_text(f'({SEATS}; 0 started)')
    page.evaluate('window.__marker = 1')

    okta_push(Scim(server, tokens[1]), [('Ada', 'Lovelace'), ('Grace', 'Hopper'), ('Alan', 'Turing')])
    entra = Scim(server, tokens[2])
    entra.request('GET', '/Users?filter=' + quote('userName eq "5e8a0b5e-7c2f-4a1d-9b53-0f6c2d8e4a17"'), status=200)
    entra.create_user('katherine.johnson@example.com')
    entra.request('POST', '/Users', {'schemas': [USER_SCHEMA], 'userName': 'katherine.johnson@example.com'},
                  status=409)
    Scim(server, tokens[3]).request('GET', '/Users?startIndex=1&count=2', status=200)

    for number, label in ((1, 'Ada L.'), (2, 'Grace H.'), (3, 'Alan T.')):
        seat_row(page, number).locator('button.edit').click()
        expect(page.locator('#label-form input[name=seat]')).to_have_value(str(number))
        expect(page.locator('#label-form input[name=label]')).to_be_focused()
        page.fill('#label-form input[name=label]', label)
        page.click('#label-form button[type=submit]')
        expect(seat_row(page, number).locator('td.label')).to_contain_text(label)

    reached = {number: seat_row(page, number).locator('td.milestone.reached') for number in range(1, SEATS + 1)}
    expect(reached[1]).to_have_count(7)
    expect(reached[2]).to_have_count(3)
    expect(reached[3]).to_have_count(2)
    expect(reached[4]).to_have_count(0)
    expect(seat_row(page, 4).locator('td.milestone.pending')).to_have_count(7)
    expect(seat_row(page, 2).locator('td.error')).to_contain_text('409')
    expect(seat_row(page, 2).locator('td.error')).to_contain_text('katherine.johnson@example.com')
    expect(seat_row(page, 1).locator('td.error')).to_have_text('')
    expect(page.locator('#seats-count')).to_have_text(f'({SEATS}; 3 started)')
    headings = page.locator('#seats thead th[data-milestone]')   # each with how many seats got there
    expect(headings).to_have_text(['First request (3)', 'Test Connection (3)', 'User created (2)',
                                   'User updated (1)', 'Group pushed (1)', 'Member added (1)',
                                   'User deactivated (1)'])
    expect(page.locator('#users tbody tr')).to_have_count(0)   # the instructor's own data: none of the seats'
    content = page.content()
    for token in tokens.values():
        assert token not in content

    screenshot = tmp_path / 'seat-board.png'
    page.screenshot(path=str(screenshot), full_page=True)
    assert screenshot.read_bytes()[:8] == b'\x89PNG\r\n\x1a\n'
    if os.environ.get('SCIMLITE_BOARD_SCREENSHOT'):
        wanted = Path(os.environ['SCIMLITE_BOARD_SCREENSHOT'])
        wanted.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(screenshot, wanted)

    seat_row(page, 1).locator('a', has_text='exchanges').click()
    expect(page).to_have_url(re.compile(r'/\?seat=1$'))
    expect(page.locator('#seat-name')).to_have_text('Seat 1 — Ada L.')
    expect(page.locator('#users tbody tr')).to_have_count(3)
    expect(user_row(page, 'alan.turing@example.com').locator('td.inactive')).to_have_text('no')
    exchange = exchange_rows(page, 'GET', '/scim/v2/Users?startIndex=1&count=2')
    exchange.locator('button.expand').click()
    expect(the_detail(page).locator('pre.headers').first).to_contain_text('Authorization: Bearer [scrubbed]')
    expect(page.locator('#seats')).to_have_count(0)
    page.click('a:has-text("Back to the board")')
    expect(seat_row(page, 1)).to_be_visible()


@WITH_SEATS
def test_the_seat_cards_print_one_card_per_seat(page, server):
    """The cards page: every seat's base URL, token and what to type in Okta and Entra;
    printed, the page's header is left out and no card is split across pages."""
    log_in(page)
    tokens = seat_tokens(page)
    seat_row(page, 2).locator('button.edit').click()
    page.fill('#label-form input[name=label]', 'Grace H.')
    page.click('#label-form button[type=submit]')
    expect(seat_row(page, 2).locator('td.label')).to_contain_text('Grace H.')
    page.click('a:has-text("Seat cards to print")')

    cards = page.locator('article.card')
    expect(cards).to_have_count(SEATS)
    expect(page.locator('#card-2 h2')).to_have_text('Seat 2 — Grace H.')
    base_url = f'{server.url}/scim/v2'
    for number, token in tokens.items():
        card = page.locator(f'#card-{number}')
        expect(card.locator('code.base-url')).to_have_text(base_url)
        expect(card.locator('code.token')).to_have_text(token)
        expect(card.locator('dl.okta-header-auth dd').nth(1)).to_contain_text(f'Bearer {token}')
        expect(card.locator('dl.okta-custom dd')).to_have_text(
            [base_url, 'userName', 'HTTP Header', re.compile(f'^{re.escape(token)} ')])
        expect(card.locator('dl.entra dd')).to_have_text([base_url, re.compile(f'^{re.escape(token)} ')])
    expect(page.locator('header .warning')).to_contain_text('only this')   # 127.0.0.1: not for a room

    page.emulate_media(media='print')
    expect(page.locator('header.no-print')).to_be_hidden()
    assert page.evaluate('getComputedStyle(document.querySelector("article.card")).breakInside') == 'avoid'
    pdf = page.pdf(format='A4')
    pages = len(re.findall(rb'/Type\s*/Page(?!s)', pdf))
    assert pdf[:5] == b'%PDF-' and 2 <= pages <= SEATS   # about half an A4 page a card, none split


@WITH_SEATS
def test_an_attendee_sees_their_seat_and_resets_it(page, server, browser, problems):
    """A seat's token logs in to that seat alone; Reset my seat warns, then empties it."""
    log_in(page)
    tokens = seat_tokens(page)
    Scim(server, tokens[3]).create_user('not.mine@example.com')
    page.context.clear_cookies()

    log_in(page, tokens[1])
    mine = Scim(server, tokens[1])
    mine.create_user('mine@example.com')
    expect(page.locator('#seat-name')).to_have_text('Seat 1')
    expect(user_row(page, 'mine@example.com')).to_be_visible()
    expect(page.locator('#users tbody tr')).to_have_count(1)
    expect(page.locator('#seats')).to_have_count(0)
    problems.expect_failed_load('/dashboard/seats', 403)
    problems.expect_failed_load('/dashboard/cards.csv', 403)
    assert status_of(page, '/dashboard/seats') == 403
    assert status_of(page, '/dashboard/cards.csv') == 403

    warning = page.locator('#reset-section .warning')
    expect(warning).to_be_hidden()
    page.click('#reset-section summary:has-text("Reset my seat")')
    expect(warning).to_contain_text('still hold the ids they provisioned')
    page.click('#reset-section button:has-text("Yes, empty seat 1")')
    expect(page.locator('#status')).to_have_text(re.compile(r'^Updated'))
    expect(page.locator('#users tbody tr')).to_have_count(0)
    expect(page.locator('#users-count')).to_have_text('(0)')
    assert TOKEN not in page.content() and tokens[1] not in page.content()
