"""The dashboard of a workshop with seats, over webtest: a seat's session sees its own
seat alone and may reset it; the instructor's (the server's token) has the board of
every seat's progress, their labels, any seat's data, and the seat cards (page and
CSV), the one place seat tokens are shown; seat tokens are scrubbed from what is
recorded; the login throttle behind ngrok counts each attendee apart.
The browser's view of the board and the cards is in tests/test_dashboard_browser.py."""

import json
import re
import threading
from pathlib import Path

import pytest
import webtest

import dashboard
import store
from conftest import TOKEN, USER_SCHEMA, ScimClient
from serverprocess import clean_environment, run_server
from test_idp_replay import WsgiTransport, replay

SEATS = 3
INSTRUCTOR_ROUTES = [(method, path) for method, path, _, access in dashboard.DASHBOARD_ROUTES
                     if access == dashboard.INSTRUCTOR_ONLY]
NGROK = {'X-Forwarded-Proto': 'https', 'X-Forwarded-Host': 'abcd-1234.ngrok-free.app'}


@pytest.fixture
def app(make_app):
    """The real app with three seats."""
    return make_app(seats=SEATS)


@pytest.fixture
def tokens(app):
    """{seat number: its token}."""
    return {seat['number']: seat['token'] for seat in store.seats()}


def scim_as(app, token):
    """A SCIM client (conftest.ScimClient) that sends `token`."""
    client = ScimClient(app)
    client.headers['Authorization'] = f'Bearer {token}'
    return client


def dashboard_as(app, token=TOKEN, address='127.0.0.1'):
    """A browser-like webtest client, logged in to the dashboard with `token`."""
    browser = webtest.TestApp(app, extra_environ={'REMOTE_ADDR': address})
    browser.post('/dashboard/login', {'token': token}, status=303)
    return browser


def shown(app, browser, query=''):
    """What the dashboard's data endpoint shows this session (exchanges flushed first)."""
    app.recorder.exchanges.flush()
    data = browser.get(f'/dashboard/data{query}', status=200).json
    return {'users': [user['userName'] for user in data['users']['shown']],
            'groups': [group['displayName'] for group in data['groups']['shown']],
            'exchanges': [(exchange['method'], exchange['path']) for exchange in data['exchanges']['shown']],
            'exchange_ids': [exchange['id'] for exchange in data['exchanges']['shown']]}


def board(app, browser):
    """The board's seats by number, progress flushed first."""
    app.recorder.progress.flush()
    return {seat['number']: seat for seat in browser.get('/dashboard/seats', status=200).json['seats']}


def session_cookie(browser):
    return browser.cookies[dashboard.SESSION_COOKIE].strip('"')


# ---------------------------------------------------------------------------
# A seat's session: its own seat, and nothing else
# ---------------------------------------------------------------------------

def test_each_session_shows_its_own_seat_only(app, tokens):
    for seat, token in (('instructor', TOKEN), *tokens.items()):
        client = scim_as(app, token)
        client.create_user('same.name@example.com')   # one userName in every seat: each its own
        client.create_user(f'only.in.{seat}@example.com')
        client.create_group(f'Group of {seat}')
    for seat, token in (('instructor', TOKEN), *tokens.items()):
        seen = shown(app, dashboard_as(app, token))
        assert seen['users'] == [f'only.in.{seat}@example.com', 'same.name@example.com'], seat
        assert seen['groups'] == [f'Group of {seat}'], seat
        assert [method for method, _ in seen['exchanges']] == ['POST'] * 3, seat


def test_a_seat_session_cannot_open_another_seats_exchange(app, tokens):
    scim_as(app, tokens[1]).create_user('ada@example.com')
    seat_one = dashboard_as(app, tokens[1])
    exchange_id, = shown(app, seat_one)['exchange_ids']
    assert seat_one.get(f'/dashboard/exchanges/{exchange_id}', status=200).json['method'] == 'POST'
    for other in (dashboard_as(app, tokens[2]), dashboard_as(app, TOKEN)):
        assert other.get(f'/dashboard/exchanges/{exchange_id}', status=404).json == {
            'detail': 'That exchange is no longer kept.'}


@pytest.mark.parametrize('path', ['/dashboard/data?seat=2', '/dashboard/exchanges/x?seat=2', '/?seat=2',
                                  '/dashboard/data?seat=0', '/dashboard/data?seat=abc'])
def test_a_seat_session_may_not_choose_another_seat(app, tokens, path):
    scim_as(app, tokens[2]).create_user('secret.of.two@example.com')
    seat_one = dashboard_as(app, tokens[1])
    answer = seat_one.get(path, status=403)
    assert answer.json == {'detail': 'A seat’s session shows that seat only.'}
    page = seat_one.get(path, headers={'Accept': 'text/html'}, status=403)
    assert page.content_type == 'text/html' and 'shows that seat only' in page.text
    assert 'secret.of.two' not in answer.text + page.text


def test_a_seat_session_may_name_its_own_seat(app, tokens):
    scim_as(app, tokens[1]).create_user('ada@example.com')
    assert shown(app, dashboard_as(app, tokens[1]), '?seat=1')['users'] == ['ada@example.com']


@pytest.mark.parametrize('method,path', INSTRUCTOR_ROUTES)
def test_a_seat_session_is_refused_the_instructors_routes(app, tokens, method, path):
    seat_one = dashboard_as(app, tokens[1])
    label_form = {'seat': '1', 'label': 'Mallory'} if method == 'POST' else None
    answer = seat_one.request(path, method=method, POST=label_form, expect_errors=True)
    assert answer.status_int == 403
    assert answer.json == {'detail': 'Only the instructor (the server’s token) may see this, not a seat.'}
    page = seat_one.request(path, method=method, POST=label_form, headers={'Accept': 'text/html'},
                            expect_errors=True)
    assert page.status_int == 403 and page.content_type == 'text/html'
    for token in tokens.values():
        assert token not in answer.text + page.text
    assert store.seats()[0]['label'] is None


def test_the_instructor_routes_are_the_ones_tested():
    assert INSTRUCTOR_ROUTES == [('GET', '/dashboard/seats'), ('POST', '/dashboard/seats/label'),
                                 ('GET', '/dashboard/cards'), ('GET', '/dashboard/cards.csv')]


def test_a_seat_page_has_no_board_and_no_cards_but_its_reset(app, tokens):
    page = dashboard_as(app, tokens[2]).get('/', status=200)
    assert 'Seat 2' in page.text and 'Reset my seat' in page.text
    assert 'id="seats"' not in page.text and '/dashboard/cards' not in page.text
    assert 'still hold the ids they provisioned' in page.text and '404' in page.text
    reset, = [form for form in page.forms.values() if form.action.startswith('/dashboard/reset')]
    assert reset.action == '/dashboard/reset' and reset.method.upper() == 'POST'
    for token in tokens.values():
        assert token not in page.text


def test_a_session_cookie_names_its_seat_under_the_signature(app, tokens):
    """The seat is in the signed claim: changing it breaks the signature."""
    seat_one = dashboard_as(app, tokens[1])
    expires, seat, rest = session_cookie(seat_one).split('.', 2)
    assert seat == '1'
    for forged_seat in ('0', '2'):
        seat_one.set_cookie(dashboard.SESSION_COOKIE, f'{expires}.{forged_seat}.{rest}')
        assert seat_one.get('/dashboard/data', expect_errors=True).status_int == 401
    assert session_cookie(dashboard_as(app, TOKEN)).split('.')[1] == '0'


def test_a_wrong_token_is_refused_and_throttled_with_seats_too(app, tokens):
    guesser = webtest.TestApp(app, extra_environ={'REMOTE_ADDR': '198.51.100.9'})
    for guess in (tokens[1][:-1], tokens[1].upper(), 'x', f'Bearer {tokens[1]}', tokens[1] + tokens[2]):
        answer = guesser.post('/dashboard/login', {'token': guess}, status=401)
        assert 'not the server’s token, nor a seat’s' in answer.text
    assert guesser.post('/dashboard/login', {'token': tokens[1]}, status=429)


# ---------------------------------------------------------------------------
# The instructor: their own data, any seat's, the board
# ---------------------------------------------------------------------------

def test_the_instructor_may_look_at_any_seat(app, tokens):
    scim_as(app, tokens[2]).create_user('two@example.com')
    scim_as(app, TOKEN).create_user('own@example.com')
    instructor = dashboard_as(app)
    assert shown(app, instructor)['users'] == ['own@example.com']
    assert shown(app, instructor, '?seat=0')['users'] == ['own@example.com']
    seat_two = shown(app, instructor, '?seat=2')
    assert seat_two['users'] == ['two@example.com']
    exchange_id, = seat_two['exchange_ids']
    assert instructor.get(f'/dashboard/exchanges/{exchange_id}?seat=2', status=200).json['method'] == 'POST'
    assert instructor.get(f'/dashboard/exchanges/{exchange_id}', status=404)
    page = instructor.get('/?seat=2', status=200)
    assert 'Seat 2' in page.text and 'Back to the board' in page.text and 'Reset seat 2' in page.text
    assert 'id="seats"' not in page.text
    for missing in ('4', '99999', 'abc', '-1', '1.0', '１'):
        assert instructor.get(f'/dashboard/data?seat={missing}', status=404).json['detail'].startswith(
            'There is no seat')
        assert instructor.get(f'/?seat={missing}', headers={'Accept': 'text/html'}, status=404).content_type == \
            'text/html'


def test_the_instructors_page_has_the_board_above_their_own_data(app, tokens):
    page = dashboard_as(app).get('/', status=200)
    assert 'id="seats"' in page.text and 'Your own data set' in page.text
    assert page.text.index('id="seats"') < page.text.index('id="users"')
    assert '/dashboard/cards' in page.text and '/dashboard/cards.csv' in page.text
    assert 'Reset' not in page.text and 'seats-hint' not in page.text
    headings = re.findall(r'<th data-milestone="(\w+)"', page.text)
    assert headings == list(store.MILESTONES)
    said, = re.findall(r'<p class="hint">Test Connection is(.*?)</p>', page.text, re.S)   # in plain sight
    test_connection = re.sub(r'\s+', ' ', re.sub(r'<[^>]+>', '', said))
    assert ('Okta\'s “Test API Credentials”, GET /Users?startIndex=1&amp;count=2' in test_connection
            and 'Entra\'s “Test Connection”, GET /Users?filter=userName eq "&lt;a random GUID&gt;"' in test_connection)
    assert 'GET /Users?filter=userName eq &quot;&lt;a random GUID&gt;&quot;' in page.text   # each step's title
    for token in tokens.values():
        assert token not in page.text


def test_without_seats_the_page_is_as_before_with_a_one_line_hint(make_app):
    app = make_app()
    instructor = dashboard_as(app)
    page = instructor.get('/', status=200)
    assert 'id="seats"' not in page.text and 'Your own data set' not in page.text and 'Reset' not in page.text
    assert len(re.findall(r'--seats', page.text)) == 1 and 'id="seats-hint"' in page.text
    assert instructor.get('/dashboard/seats', status=200).json == {'seats': []}
    assert 'There are no seats' in instructor.get('/dashboard/cards', status=200).text
    assert instructor.get('/dashboard/cards.csv', status=200).text == 'seat,base_url,token\n'


def test_the_milestone_steps_are_the_stores():
    assert [name for name, _, _ in dashboard.MILESTONE_STEPS] == list(store.MILESTONES)


def okta_flow(client):
    """Okta's steps, each reaching the next milestone: Test API Credentials, a user
    looked up and created, updated, a group pushed and filled, the user deactivated."""
    client.get('/Users?startIndex=1&count=2', status=200)
    client.get('/Users?filter=userName%20eq%20%22ada%40example.com%22&startIndex=1&count=100', status=200)
    ada = client.create_user('ada@example.com', active=True)
    client.patch(f'/Users/{ada["id"]}', [{'op': 'replace', 'value': {'title': 'Countess'}}], status=200)
    group = client.create_group('Engineering')
    client.patch(f'/Groups/{group["id"]}', [{'op': 'add', 'path': 'members', 'value': [{'value': ada['id']}]}])
    client.patch(f'/Users/{ada["id"]}', [{'op': 'replace', 'value': {'active': False}}], status=200)


def test_the_board_shows_each_seats_milestones_in_order_and_its_last_error(app, tokens):
    okta_flow(scim_as(app, tokens[1]))
    entra = scim_as(app, tokens[2])
    entra.get('/Users?filter=userName%20eq%20%225e8a0b5e-7c2f-4a1d-9b53-0f6c2d8e4a17%22', status=200)
    entra.create_user('grace@example.com')
    entra.post('/Users', {'schemas': [USER_SCHEMA], 'userName': 'grace@example.com'}, status=409)
    okta_flow(scim_as(app, TOKEN))   # the instructor's own requests are no seat's progress
    seats = board(app, dashboard_as(app))
    assert sorted(seats) == [1, 2, 3]
    reached = [seats[1]['milestones'][name] for name in store.MILESTONES]
    assert None not in reached and reached == sorted(reached)
    assert seats[1]['last_error'] is None
    assert [name for name in store.MILESTONES if seats[2]['milestones'][name]] == [
        'first_request', 'connection_test', 'user_created']
    error = seats[2]['last_error']
    assert error['status'] == 409 and 'grace@example.com' in error['detail'] and error['at'] >= reached[0]
    assert seats[3] == {'number': 3, 'label': None, 'milestones': dict.fromkeys(store.MILESTONES),
                        'last_error': None}


class SeatTransport(WsgiTransport):
    """A recorded flow's requests (tests/test_idp_replay.py), sent with a seat's token
    where the flow sends the server's."""

    def __init__(self, app, token):
        super().__init__(app)
        self.token = token

    def send(self, method, path, headers, body):
        if 'Authorization' in headers:
            headers = {**headers, 'Authorization': headers['Authorization'].replace(TOKEN, self.token)}
        return super().send(method, path, headers, body)


def test_recorded_okta_and_entra_flows_replayed_into_seats_at_once_reach_their_milestones(app, tokens):
    flows = {1: 'okta-crud-test', 2: 'entra-test-connection', 3: 'okta-group-push'}
    failures, start = [], threading.Barrier(len(flows))

    def run(seat, name):
        flow = json.loads((Path(__file__).with_name('idp') / f'{name}.json').read_text(encoding='utf-8'))
        start.wait()
        try:
            replay(flow, SeatTransport(app, tokens[seat]))
        except Exception as error:   # reported below, on the test's thread
            failures.append((name, error))
    threads = [threading.Thread(target=run, args=item) for item in flows.items()]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not failures
    seats = board(app, dashboard_as(app))
    reached = {number: [name for name in store.MILESTONES if seat['milestones'][name]]
               for number, seat in seats.items()}
    assert reached == {
        1: ['first_request', 'connection_test', 'user_created', 'user_updated', 'user_deactivated'],
        2: ['first_request', 'connection_test'],
        3: ['first_request', 'user_created', 'group_pushed', 'member_added'],
    }
    # Okta's CRUD test creates the same userName in other letters (409), then looks up one that is not there
    assert seats[1]['last_error']['status'] == 404
    assert seats[2]['last_error'] is None   # the flow's wrong token is no seat's request
    assert seats[3]['last_error']['status'] == 404   # the group read after its DELETE
    instructor = dashboard_as(app)
    for seat in flows:   # each seat's exchanges are its own
        paths = [path for _, path in shown(app, instructor, f'?seat={seat}')['exchanges']]
        assert paths and all(path.startswith('/scim/v2/') for path in paths)
    # A refused request (the flows' wrong token) is no seat's: the instructor's log has it.
    assert {exchange['status'] for exchange in instructor.get('/dashboard/data').json['exchanges']['shown']} == {401}


# ---------------------------------------------------------------------------
# Labels
# ---------------------------------------------------------------------------

def test_the_instructor_labels_a_seat_and_everyone_sees_it(app, tokens):
    instructor = dashboard_as(app)
    assert instructor.post('/dashboard/seats/label', {'seat': '2', 'label': '  Ada <Lovelace>  '},
                           status=303).headers['Location'].endswith('/')
    assert board(app, instructor)[2]['label'] == 'Ada <Lovelace>'
    seat_page = dashboard_as(app, tokens[2]).get('/').text
    assert 'Seat 2 — Ada &lt;Lovelace&gt;' in seat_page and '<Lovelace>' not in seat_page
    assert 'Seat 2 — Ada &lt;Lovelace&gt;' in instructor.get('/dashboard/cards').text
    instructor.post('/dashboard/seats/label', {'seat': '2', 'label': ''}, status=303)
    assert board(app, instructor)[2]['label'] is None


@pytest.mark.parametrize('form,status', [
    ({'seat': '9', 'label': 'Nobody'}, 404),
    ({'seat': 'two', 'label': 'Ada'}, 400),
    ({'seat': '', 'label': 'Ada'}, 400),
    ({'label': 'Ada'}, 400),
    ({'seat': '2'}, 400),
    ({'seat': '2', 'label': 'x' * (dashboard.LABEL_MAX + 1)}, 400),
    ({'seat': '2', 'label': 'Ada\nLovelace'}, 400),
    ({'seat': '2', 'label': 'Ada\x00'}, 400),
])
def test_a_bad_label_is_refused_with_json_and_changes_nothing(app, form, status):
    instructor = dashboard_as(app)
    instructor.post('/dashboard/seats/label', {'seat': '2', 'label': 'Ada'}, status=303)
    answer = instructor.post('/dashboard/seats/label', form, status=status)
    assert answer.content_type == 'application/json' and answer.json['detail']
    assert board(app, instructor)[2]['label'] == 'Ada'


def test_a_label_posted_from_another_site_is_refused(app):
    instructor = dashboard_as(app)
    instructor.post('/dashboard/seats/label', {'seat': '1', 'label': 'Mallory'},
                    headers={'Sec-Fetch-Site': 'cross-site'}, status=403)
    assert board(app, instructor)[1]['label'] is None


# ---------------------------------------------------------------------------
# Reset
# ---------------------------------------------------------------------------

def fill(app, token):
    client = scim_as(app, token)
    okta_flow(client)
    client.get('/Users/missing', status=404)
    return client


def test_reset_my_seat_empties_that_seat_alone(app, tokens):
    one, two = fill(app, tokens[1]), fill(app, tokens[2])
    instructor = dashboard_as(app)
    instructor.post('/dashboard/seats/label', {'seat': '1', 'label': 'Ada'}, status=303)
    seat_one = dashboard_as(app, tokens[1])
    assert shown(app, seat_one)['users'] == ['ada@example.com']
    assert board(app, instructor)[1]['last_error']['status'] == 404

    assert seat_one.post('/dashboard/reset', status=303).headers['Location'].endswith('/')
    assert shown(app, seat_one) == {'users': [], 'groups': [], 'exchanges': [], 'exchange_ids': []}
    after = board(app, instructor)
    assert after[1] == {'number': 1, 'label': 'Ada', 'milestones': dict.fromkeys(store.MILESTONES),
                        'last_error': None}
    assert all(after[2]['milestones'].values()) and after[2]['last_error']['status'] == 404
    assert shown(app, dashboard_as(app, tokens[2]))['users'] == ['ada@example.com']

    # The token still works, and the IdP that still holds the old id gets a 404, as the warning says.
    one.get('/Users?startIndex=1&count=2', status=200)
    assert board(app, instructor)[1]['milestones']['connection_test'] is not None   # noted again
    one.create_user('ada@example.com')
    assert two.get('/Users?startIndex=1&count=2', status=200).json['totalResults'] == 1


def test_a_reset_posted_from_another_site_deletes_nothing(app, tokens):
    fill(app, tokens[1])
    seat_one = dashboard_as(app, tokens[1])
    answer = seat_one.post('/dashboard/reset', headers={'Sec-Fetch-Site': 'cross-site'}, status=403)
    assert answer.json == {'detail': 'That was not a reset from this page.'}
    assert shown(app, seat_one)['users'] == ['ada@example.com']


def test_the_instructor_resets_a_seat_but_not_their_own_data(app, tokens):
    fill(app, tokens[3])
    fill(app, TOKEN)
    instructor = dashboard_as(app)
    assert instructor.post('/dashboard/reset?seat=3', status=303).headers['Location'].endswith('/?seat=3')
    assert shown(app, instructor, '?seat=3')['users'] == []
    answer = instructor.post('/dashboard/reset', status=400)
    assert answer.json == {'detail': 'The server’s own data set is not a seat: it has no reset.'}
    assert shown(app, instructor)['users'] == ['ada@example.com']


def test_a_seat_cannot_reset_another_seat(app, tokens):
    fill(app, tokens[2])
    dashboard_as(app, tokens[1]).post('/dashboard/reset?seat=2', status=403)
    assert shown(app, dashboard_as(app, tokens[2]))['users'] == ['ada@example.com']


# ---------------------------------------------------------------------------
# Seat cards and their CSV: the one place seat tokens are shown
# ---------------------------------------------------------------------------

def test_the_cards_show_each_seat_with_what_to_type_in_okta_and_entra(app, tokens):
    instructor = dashboard_as(app)
    instructor.post('/dashboard/seats/label', {'seat': '3', 'label': 'Grace'}, status=303)
    page = instructor.get('/dashboard/cards', headers=NGROK, status=200)
    url = 'https://abcd-1234.ngrok-free.app/scim/v2'
    cards = re.findall(r'<article class="card" id="card-(\d+)">(.*?)</article>', page.text, re.S)
    assert [number for number, _ in cards] == ['1', '2', '3']
    for number, card in cards:
        token = tokens[int(number)]
        text = re.sub(r'<[^>]+>', '', re.sub(r'>\s+<', '><', card))
        assert f'Seat {number}' in text
        assert f'SCIM base URL{url}' in text and f'Token{token}' in text
        assert f'Base URL{url}API Token' in text and f'Bearer {token}' in text                  # Okta, Header Auth
        assert f'SCIM connector base URL{url}' in text and 'Unique identifier field for usersuserName' in text
        assert 'Authentication ModeHTTP Header' in text and f'Authorization{token} (the token alone' in text
        assert f'Tenant URL{url}' in text and f'Secret Token{token} (the token alone' in text    # Entra
        assert 'https://abcd-1234.ngrok-free.app/,' in text   # the attendee's own dashboard
        assert [other for other in tokens.values() if other in card] == [token]
    assert 'Seat 3 — Grace' in page.text
    assert 'the address you opened this page at' not in page.text
    assert page.headers['Cache-Control'] == 'no-store'


def test_the_cards_warn_when_they_show_a_local_address_and_honour_base_url(make_app):
    app = make_app(seats=1)
    assert 'the address you opened this page at' in dashboard_as(app).get('/dashboard/cards').text
    app = make_app(seats=1, base_url='https://scim.example.org/scim/v2')
    page = dashboard_as(app).get('/dashboard/cards', headers=NGROK).text
    assert 'https://scim.example.org/scim/v2' in page and 'ngrok' not in page.replace("ngrok's", '')


def test_the_csv_is_what_seat_cards_prints(make_app, database_url, tmp_path):
    app = make_app(seats=2, base_url='https://abcd-1234.ngrok-free.app/scim/v2')
    answer = dashboard_as(app).get('/dashboard/cards.csv', status=200)
    assert answer.content_type == 'text/csv'
    assert answer.headers['Content-Disposition'] == 'attachment; filename="scimlite-seats.csv"'
    assert answer.headers['Cache-Control'] == 'no-store'
    lines = answer.text.splitlines()
    assert lines[0] == 'seat,base_url,token'
    assert lines[1:] == [f'{seat["number"]},https://abcd-1234.ngrok-free.app/scim/v2,{seat["token"]}'
                         for seat in store.seats()]
    app.close()   # the command line reads the same database
    printed = run_server('--seat-cards', '--database', database_url, '--token', TOKEN, cwd=tmp_path,
                         env={**clean_environment(), 'SCIM_BASE_URL': 'https://abcd-1234.ngrok-free.app/scim/v2'})
    output, _ = printed.communicate(timeout=60)
    assert printed.returncode == 0, output
    assert output == answer.text


# ---------------------------------------------------------------------------
# Seat tokens: never anywhere else
# ---------------------------------------------------------------------------

def test_seat_tokens_are_on_no_page_but_the_cards(app, tokens):
    fill(app, tokens[1])
    pages = []
    for browser in (dashboard_as(app), dashboard_as(app, tokens[1])):
        for path in ('/', '/dashboard/data', '/dashboard/dashboard.js', '/dashboard/data?seat=1'):
            pages.append(browser.get(path, expect_errors=True))
    instructor = dashboard_as(app)
    pages.append(instructor.get('/dashboard/seats'))
    pages.append(instructor.get('/?seat=1'))
    for exchange_id in shown(app, instructor, '?seat=1')['exchange_ids']:
        pages.append(instructor.get(f'/dashboard/exchanges/{exchange_id}?seat=1'))
    for answer in pages:
        for token in (*tokens.values(), TOKEN):
            assert token not in answer.text and token not in str(answer.headers), answer.request.path_qs


def test_seat_tokens_are_scrubbed_from_the_exchanges_and_the_console(make_app, capsys):
    app = make_app(seats=1, quiet=False)
    store.ensure_seats(2)   # seat 2: made by another process after this one started
    app.seats.RELOAD_SECONDS = 0   # its token opens it at once, not a second after the start
    tokens = [seat['token'] for seat in store.seats()]
    for token in tokens:
        client = scim_as(app, token)
        client.get(f'/Users?access_token={token}', status=200)
        client.request('GET', '/Groups', headers={'X-Note': f'token {token}', f'X-{token}': 'name'}, status=200)
        client.post('/Users', {'schemas': [USER_SCHEMA], 'userName': 'u', 'title': token}, status=201)
        scim_as(app, TOKEN).get(f'/Users?filter=userName%20eq%20%22{token}%22', status=200)   # not a seat's
    app.recorder.exchanges.flush()
    app.recorder.console.print_waiting()
    everything = json.dumps(list(store.Exchange.select().dicts()))
    console = capsys.readouterr().out
    assert everything.count('[scrubbed]') >= 10
    for token in tokens:
        assert token not in everything and token not in console
    assert console.count('access_token=[scrubbed]') == 2


def test_a_seat_made_later_is_scrubbed_from_requests_not_its_own_once_the_tokens_are_read_again(
        make_app, monkeypatch, capsys):
    app = make_app(seats=1, quiet=False)
    scim_as(app, TOKEN).get('/Users', status=200)
    app.recorder.exchanges.flush()   # the tokens to scrub are read: the server's and seat 1's
    store.ensure_seats(2)            # by another process
    later = store.seats()[1]['token']
    scim_as(app, TOKEN).get(f'/Users?filter=userName%20eq%20%22{later}%22', status=200)
    monkeypatch.setattr(dashboard.KnownTokens, 'RELOAD_SECONDS', 0)   # as RELOAD_SECONDS later
    app.recorder.exchanges.flush()
    app.recorder.console.print_waiting()
    assert later not in json.dumps(list(store.Exchange.select().dicts())) + capsys.readouterr().out


def test_a_seat_token_inside_a_longer_one_leaves_no_end_of_it(make_app):
    """Tokens are scrubbed longest first: the server's token inside a seat's would
    otherwise leave the seat token's ends."""
    app = make_app(seats=1)
    seat_token = store.seats()[0]['token']
    known = dashboard.KnownTokens([seat_token[4:12]])
    assert dashboard.without_tokens(f'x{seat_token}x', known.current()) == 'x[scrubbed]x'
    app.close()


# ---------------------------------------------------------------------------
# The login throttle behind ngrok
# ---------------------------------------------------------------------------

def typo(app, address, forwarded=None):
    browser = webtest.TestApp(app, extra_environ={'REMOTE_ADDR': address})
    headers = {'X-Forwarded-For': forwarded} if forwarded else {}
    return browser.post('/dashboard/login', {'token': 'typo'}, headers=headers, expect_errors=True).status_int


def test_behind_ngrok_five_typos_lock_out_that_attendee_only(app, tokens):
    for _ in range(dashboard.LOGIN_FAILURES_ALLOWED):
        assert typo(app, '127.0.0.1', '203.0.113.5') == 401
    assert typo(app, '127.0.0.1', '203.0.113.5') == 429
    assert typo(app, '::1', '192.0.2.1, 203.0.113.5') == 429   # ngrok appends the address it saw: the last
    other = webtest.TestApp(app, extra_environ={'REMOTE_ADDR': '127.0.0.1'})
    other.post('/dashboard/login', {'token': tokens[2]}, headers={'X-Forwarded-For': '203.0.113.6'}, status=303)
    spoofed = webtest.TestApp(app, extra_environ={'REMOTE_ADDR': '127.0.0.1'})
    spoofed.post('/dashboard/login', {'token': tokens[2]}, headers={'X-Forwarded-For': '203.0.113.5, 203.0.113.7'},
                 status=303)   # a claimed first entry is not who is counted


def test_a_peer_that_is_not_loopback_is_counted_whatever_it_forwards(app):
    for number in range(dashboard.LOGIN_FAILURES_ALLOWED):
        assert typo(app, '198.51.100.7', f'203.0.113.{number}') == 401
    assert typo(app, '198.51.100.7', '203.0.113.99') == 429
    assert typo(app, '198.51.100.8') == 401


@pytest.mark.parametrize('peer,forwarded,counted', [
    ('127.0.0.1', '203.0.113.5', '203.0.113.5'),
    ('127.0.0.2', ' 198.51.100.1 , 203.0.113.5 ', '203.0.113.5'),
    ('::1', '2001:db8::1', '2001:db8::1'),
    ('::ffff:127.0.0.1', '203.0.113.5', '203.0.113.5'),
    ('127.0.0.1', '', '127.0.0.1'),
    ('127.0.0.1', None, '127.0.0.1'),
    ('192.0.2.4', '203.0.113.5', '192.0.2.4'),
    ('not an address', '203.0.113.5', 'not an address'),
])
def test_the_address_the_throttle_counts(peer, forwarded, counted):
    environ = {'REMOTE_ADDR': peer, **({'HTTP_X_FORWARDED_FOR': forwarded} if forwarded is not None else {})}
    assert dashboard.client_address(environ) == counted
