"""The Authorization header (README, Authorization): every form an admin can make Okta
or Entra send is taken, each form but `Bearer <token>` is flagged on the console line
and in the dashboard's exchange, and every other header is a 401 whose detail says by
its shape what arrived and where the token goes. Neither the token nor anything else
that came in the header is in any answer, console line or stored exchange."""

import base64
import http.client
import json
import re
import time
from pathlib import Path

import hypothesis
import pytest
import webtest

import scim_server
import store
from conftest import BASE, TOKEN, USER_SCHEMA, assert_scim_error
from serverprocess import ServerProcess

SECOND_TOKEN = 'second-token-4e9d1c'
OKTA_USER = 'okta-admin-5c2f'   # a Basic user name: shown nowhere


def basic(user, password):
    return 'Basic ' + base64.b64encode(f'{user}:{password}'.encode()).decode('ascii')


def utf8_header(text):
    """`text` as a WSGI server hands over a header sent in UTF-8 (its bytes as latin-1)."""
    return text.encode('utf-8').decode('latin-1')


# (Authorization, the form it is taken as: how the dashboard shows the header, or None if not flagged)
ACCEPTED = [
    (f'Bearer {TOKEN}', None),
    (f'bearer {TOKEN}', None),
    (f'BEARER {TOKEN}', None),
    (f'Bearer    {TOKEN}', None),
    (f'Bearer\t{TOKEN}', None),
    (TOKEN, '[scrubbed]'),
    (f'Bearer Bearer {TOKEN}', 'Bearer Bearer [scrubbed]'),
    (f'bearer BEARER {TOKEN}', 'Bearer Bearer [scrubbed]'),
    (f'Bearer  Bearer\t{TOKEN}', 'Bearer Bearer [scrubbed]'),
    (basic(OKTA_USER, TOKEN), 'Basic [scrubbed]'),
    (basic('', TOKEN), 'Basic [scrubbed]'),
    (basic('admin@example.com', TOKEN), 'Basic [scrubbed]'),
    ('basic ' + base64.b64encode(f'{OKTA_USER}:{TOKEN}'.encode()).decode(), 'Basic [scrubbed]'),
    (basic('Zoë Ångström', TOKEN), 'Basic [scrubbed]'),   # the user name in UTF-8, inside base64
]
ACCEPTED_IDS = ['bearer', 'lower', 'upper', 'spaces', 'tab', 'bare', 'bearer-bearer', 'bearer-bearer-cased',
                'bearer-bearer-spaced', 'basic', 'basic-no-user', 'basic-email-user', 'basic-lower', 'basic-utf8-user']

# What the console line and the exchange say of each flagged form: the form, and what to type instead.
FLAGS = {
    '[scrubbed]': ('the token bare, without "Bearer "',
                   'In Okta\'s "SCIM 2.0 Test App (Header Auth)", type Bearer <token> in API Token'),
    'Bearer Bearer [scrubbed]': ('"Bearer Bearer <token>": "Bearer" typed into a field that adds it',
                                 'Type the token alone in Okta\'s Authorization field (HTTP Header mode) '
                                 'or in Entra\'s Secret Token'),
    'Basic [scrubbed]': ('HTTP Basic, the token as password (the user name is not read)',
                         'Okta\'s "SCIM 2.0 Test App (Header Auth)" with API Token Bearer <token>'),
}

# (Authorization or None for no header, how the 401's detail begins: what arrived, by its shape)
MATCHES_NO_TOKEN = "A Bearer token that matches none of this server's tokens"
NOT_BASE64 = 'Basic credentials that are not base64 of "user name:password"'
REFUSED = [
    (None, 'No Authorization header'),
    ('', 'An empty Authorization header'),
    ('   ', 'An empty Authorization header'),
    ('Bearer wrong', MATCHES_NO_TOKEN),
    (f'Bearer {TOKEN[:-1]}', MATCHES_NO_TOKEN),
    (f'Bearer {TOKEN}x', MATCHES_NO_TOKEN),
    (f'Bearer x{TOKEN}', MATCHES_NO_TOKEN),
    (f'Bearer {TOKEN.upper()}', MATCHES_NO_TOKEN),
    (f'Bearer {TOKEN} extra', MATCHES_NO_TOKEN),
    (f'Bearer {TOKEN} {TOKEN}', MATCHES_NO_TOKEN),
    (f'Bearer {TOKEN}, Bearer {TOKEN}', MATCHES_NO_TOKEN),   # the header sent twice, joined
    ('Bearer ' + 'x' * 65536, MATCHES_NO_TOKEN),
    ('Bearer', '"Bearer" with no token after it'),
    ('Bearer ', '"Bearer" with no token after it'),
    ('Bearer Bearer', '"Bearer" with no token after it'),
    (f'Bearer Bearer {TOKEN[1:]}', '"Bearer" twice, then a token that matches none of this server\'s tokens'),
    (TOKEN[:-1], 'A bare token (no "Bearer " before it) that matches none of this server\'s tokens'),
    ('wrong', 'A bare token (no "Bearer " before it) that matches none of this server\'s tokens'),
    (basic(OKTA_USER, 'wrong-password-93'), 'Basic credentials whose password is not a token'),
    (basic(OKTA_USER, TOKEN[:-1]), 'Basic credentials whose password is not a token'),
    (basic(OKTA_USER, ''), 'Basic credentials whose password is not a token'),
    (basic(OKTA_USER, f'Bearer {TOKEN}'), 'Basic credentials whose password is not a token'),
    (basic(TOKEN, ''), 'Basic credentials with the token as the user name'),
    (basic(TOKEN, 'okta-pass-71'), 'Basic credentials with the token as the user name'),
    ('Basic', NOT_BASE64),
    ('Basic xyz', NOT_BASE64),
    (f'Basic {TOKEN}', NOT_BASE64),
    (f'Basic {OKTA_USER}:{TOKEN}', NOT_BASE64),   # typed in plain, not encoded
    ('Basic ' + base64.b64encode(TOKEN.encode()).decode(), NOT_BASE64),   # no colon
    ('Basic ' + base64.b64encode(f'{OKTA_USER}:{TOKEN}'.encode()).decode().rstrip('='), NOT_BASE64),
    (utf8_header('Basic é'), NOT_BASE64),
    (f'Bearer "{TOKEN}"', 'A token in quotation marks'),
    (f'"{TOKEN}"', 'A token in quotation marks'),
    (f"Bearer '{TOKEN}'", 'A token in quotation marks'),
    (utf8_header(f'Bearer \u201c{TOKEN}\u201d'), 'A token in quotation marks'),
    (f'"Bearer {TOKEN}"', 'A token in quotation marks'),
    ('Bearer <token>', 'A token in angle brackets'),
    (f'Bearer <{TOKEN}>', 'A token in angle brackets'),
    (f'Bearer:{TOKEN}', '"Bearer:" with a colon'),
    (f'Bearer: {TOKEN}', '"Bearer:" with a colon'),
    (f'Bearer{TOKEN}', '"Bearer" and the token without a plain space between them'),
    (utf8_header(f'Bearer\u00a0{TOKEN}'), '"Bearer" and the token without a plain space between them'),
    (f'Authorization: Bearer {TOKEN}', 'The header\'s name inside its value ("Authorization: ...")'),
    (f'SSWS {TOKEN}', 'The SSWS scheme, which this server does not take'),
    (f'Token {TOKEN}', 'The Token scheme, which this server does not take'),
    (f'token {TOKEN}', 'The Token scheme, which this server does not take'),
    ('Digest username="okta-digest-user", realm="scimlite", response="6629fae49393a05397450978507c4ef1"',
     'The Digest scheme, which this server does not take'),
    ('Negotiate YIIBhwYGKwYBBQUCoIIBezCCAXeg', 'The Negotiate scheme, which this server does not take'),
    (f'XYZBearer {TOKEN}', 'Several words that start with no scheme this server takes (Bearer, Basic)'),
    (f'{TOKEN} {TOKEN}', 'Several words that start with no scheme this server takes (Bearer, Basic)'),
]


def send(app, authorization, method='GET', path='/Users', body=None, remote='127.0.0.1'):
    headers = {'Accept': 'application/scim+json', 'User-Agent': 'Okta SCIM Client 1.0.0'}
    if authorization is not None:
        headers['Authorization'] = authorization
    payload = b''
    if body is not None:
        payload = json.dumps(body).encode()
        headers['Content-Type'] = 'application/scim+json; charset=utf-8'
    return webtest.TestApp(app, extra_environ={'REMOTE_ADDR': remote}).request(
        BASE + path, method=method, headers=headers, body=payload, expect_errors=True)


def console_lines(app, capsys):
    app.recorder.console.print_waiting()
    return capsys.readouterr().out.splitlines()


def stored_exchanges(app):
    """What the dashboard shows of every exchange, read over HTTP with a session."""
    app.recorder.exchanges.flush()
    browser = webtest.TestApp(app, extra_environ={'REMOTE_ADDR': '127.0.0.1'})
    browser.post('/dashboard/login', {'token': TOKEN}, status=303)
    shown = browser.get('/dashboard/data', status=200).json['exchanges']['shown']
    return [browser.get(f'/dashboard/exchanges/{exchange["id"]}', status=200).json for exchange in shown]


# ---------------------------------------------------------------------------
# Every form Okta or Entra can send is taken
# ---------------------------------------------------------------------------

@pytest.mark.parametrize('authorization, shown', ACCEPTED, ids=ACCEPTED_IDS)
def test_each_form_of_the_token_is_accepted_for_reads_and_writes(app, authorization, shown):
    assert send(app, authorization).status_int == 200
    created = send(app, authorization, 'POST', '/Users', {'schemas': [USER_SCHEMA], 'userName': 'ann@example.com'})
    assert created.status_int == 201, created.text
    assert send(app, authorization, 'GET', f'/Users/{created.json["id"]}').json['userName'] == 'ann@example.com'
    assert send(app, authorization, 'DELETE', f'/Users/{created.json["id"]}').status_int == 204


@pytest.mark.parametrize('authorization', [f'Bearer {SECOND_TOKEN}', SECOND_TOKEN, f'Bearer Bearer {SECOND_TOKEN}',
                                           basic(OKTA_USER, SECOND_TOKEN)])
def test_every_form_takes_every_configured_token(make_app, authorization):
    app = make_app(token=f'{TOKEN},{SECOND_TOKEN}')
    assert send(app, authorization).status_int == 200


@pytest.mark.parametrize('authorization', ['Bearer two words', 'two words', 'Bearer Bearer two words',
                                           basic(OKTA_USER, 'two words')])
def test_a_token_with_a_space_in_it_still_works(make_app, authorization):
    """Nothing in the settings forbids one, and it was accepted as Bearer and bare before."""
    assert send(make_app(token='two words'), authorization).status_int == 200


@pytest.mark.parametrize('authorization, shown', [case for case in ACCEPTED if case[1]],
                         ids=[name for name, case in zip(ACCEPTED_IDS, ACCEPTED, strict=True) if case[1]])
def test_a_form_other_than_bearer_is_flagged_on_the_console_and_in_the_exchange(make_app, capsys, authorization,
                                                                                 shown):
    app = make_app()   # after capsys: its console is the captured one
    assert send(app, authorization, path='/Users?startIndex=1&count=2').status_int == 200
    form, instead = FLAGS[shown]
    lines = console_lines(app, capsys)
    assert len(lines) == 1
    assert re.fullmatch(r'\d\d:\d\d:\d\d  GET    /scim/v2/Users\?startIndex=1&count=2  200  [\d.]+ ms  '
                        r'auth: accepted, flagged: (.*)', lines[0]), lines
    assert form in lines[0] and instead in lines[0]
    [exchange] = stored_exchanges(app)
    header = exchange['request_headers']['Authorization']
    assert header.startswith(f'{shown} (accepted, flagged: {form}')
    assert instead in header


@pytest.mark.parametrize('authorization', [case[0] for case in ACCEPTED if not case[1]],
                         ids=[name for name, case in zip(ACCEPTED_IDS, ACCEPTED, strict=True) if not case[1]])
def test_bearer_in_any_case_and_spacing_is_not_flagged(make_app, capsys, authorization):
    app = make_app()
    assert send(app, authorization).status_int == 200
    assert re.fullmatch(r'\d\d:\d\d:\d\d  GET    /scim/v2/Users  200  [\d.]+ ms', console_lines(app, capsys)[0])
    assert stored_exchanges(app)[0]['request_headers']['Authorization'] == 'Bearer [scrubbed]'


@pytest.mark.parametrize('authorization', [f'Bearer {scim_server.DEMO_TOKEN}', scim_server.DEMO_TOKEN,
                                           f'Bearer Bearer {scim_server.DEMO_TOKEN}',
                                           basic(OKTA_USER, scim_server.DEMO_TOKEN)],
                         ids=['bearer', 'bare', 'bearer-bearer', 'basic'])
def test_the_demo_token_is_taken_only_from_this_machine_in_every_form(make_app, authorization):
    app = make_app(token=scim_server.DEMO_TOKEN)
    for address in ('127.0.0.1', '::1'):
        assert send(app, authorization, remote=address).status_int == 200
    for address in ('192.0.2.7', '10.0.0.2', ''):
        refused = send(app, authorization, 'POST', '/Users', {'schemas': [USER_SCHEMA], 'userName': 'x'},
                       remote=address)
        detail = assert_scim_error(refused, 401)['detail']
        assert detail.startswith('The demo token, sent from another machine. It is accepted only from this machine')
        assert scim_server.DEMO_TOKEN not in refused.text
    assert send(app, authorization).json['totalResults'] == 0


# ---------------------------------------------------------------------------
# Anything else: a 401 that says what arrived and how to fix it
# ---------------------------------------------------------------------------

@pytest.mark.parametrize('authorization, what', REFUSED,
                         ids=[f'{number:02d} {what[:32]}' for number, (_, what) in enumerate(REFUSED)])
def test_every_other_header_is_a_401_that_says_what_arrived_and_where_the_token_goes(make_app, capsys,
                                                                                      authorization, what):
    app = make_app()
    response = send(app, authorization, 'POST', '/Users', {'schemas': [USER_SCHEMA], 'userName': 'x'})
    detail = assert_scim_error(response, 401)['detail']
    assert detail.startswith(what), detail
    for place in ('"SCIM 2.0 Test App (Header Auth)", API Token: Bearer <token>',
                  'HTTP Header), Authorization: the token alone', '"SCIM 2.0 Test App (Basic Auth)": any Username',
                  'Entra, Secret Token: the token alone'):
        assert place in detail
    challenges = response.headers['WWW-Authenticate']
    assert challenges.startswith('Bearer realm="scimlite"') and 'Basic realm="scimlite"' in challenges
    [line] = console_lines(app, capsys)
    assert re.fullmatch(r'\d\d:\d\d:\d\d  POST   /scim/v2/Users  401  [\d.]+ ms  auth: refused: (.*)', line)
    assert what.lower() in line.lower()
    assert send(app, f'Bearer {TOKEN}').json['totalResults'] == 0


def test_the_demo_token_sent_to_a_server_with_its_own_token_is_just_a_wrong_token(app):
    """No hint that the demo token is special where it is not in use."""
    detail = assert_scim_error(send(app, f'Bearer {scim_server.DEMO_TOKEN}', remote='192.0.2.7'), 401)['detail']
    assert detail.startswith(MATCHES_NO_TOKEN)


def test_the_exchange_of_a_refusal_shows_the_scheme_and_why(app):
    send(app, f'Bearer Bearer {TOKEN[:-1]}')
    [exchange] = stored_exchanges(app)
    assert exchange['request_headers']['Authorization'] == (
        'Bearer Bearer [scrubbed] (refused: "Bearer" twice, then a token that matches none of this server\'s tokens)')
    assert json.loads(exchange['response_body'])['detail'].startswith('"Bearer" twice')


# ---------------------------------------------------------------------------
# Nothing that came in the header is shown anywhere
# ---------------------------------------------------------------------------

# Texts that came in some Authorization header above: the token, near misses of it,
# Basic's user names and passwords, and the header values themselves.
CAME = [TOKEN, TOKEN[:-1], TOKEN[1:], TOKEN.upper(), OKTA_USER, 'wrong-password-93', 'Zoë', 'Ångström',
        utf8_header('Ångström'), 'admin@example.com', 'okta-pass-71', 'okta-digest-user', 'x' * 64,
        'YIIBhwYGKwYBBQUCoIIBezCCAXeg', '6629fae49393a05397450978507c4ef1']


def test_nothing_that_came_in_the_header_is_in_an_answer_a_console_line_an_exchange_or_the_log(
        make_app, capsys, caplog):
    caplog.set_level('DEBUG')
    app = make_app()
    headers = [authorization for authorization, _ in ACCEPTED + REFUSED if authorization]
    answers = []
    for authorization in headers:
        answers.append(send(app, authorization))
        answers.append(send(app, authorization, 'POST', '/Users', {'schemas': [USER_SCHEMA], 'userName': 'u'}))
    came = CAME + [header.split(' ', 1)[1].strip() for header in headers   # Basic's base64, whole
                   if header.lower().startswith('basic ') and len(header) > 12]
    texts = [answer.text + json.dumps(answer.headerlist) for answer in answers]
    texts.append('\n'.join(console_lines(app, capsys)))
    texts.append(json.dumps(stored_exchanges(app)))
    texts.append(json.dumps(list(store.Exchange.select().dicts())))
    texts.append(caplog.text)
    pieces = {secret[start:start + 10] for secret in came for start in range(max(1, len(secret) - 9))}
    for text in texts:
        for piece in pieces:   # not even ten characters in a row of anything that came
            assert piece not in text, (piece, text[:2000])


# ---------------------------------------------------------------------------
# ServiceProviderConfig says what is accepted
# ---------------------------------------------------------------------------

def test_the_service_provider_config_lists_bearer_first_and_basic(client):
    schemes = client.get('/ServiceProviderConfig', status=200).json['authenticationSchemes']
    assert [(scheme['type'], scheme['primary']) for scheme in schemes] == [
        ('oauthbearertoken', True), ('httpbasic', False)]
    bearer, basic_scheme = schemes
    assert bearer['specUri'] == 'https://www.rfc-editor.org/info/rfc6750'
    assert basic_scheme['specUri'] == 'https://www.rfc-editor.org/info/rfc7617'
    assert 'Bearer <token>' in bearer['description'] and '"Bearer Bearer <token>"' in bearer['description']
    assert 'any user name' in basic_scheme['description'] and 'password' in basic_scheme['description']
    assert all(set(scheme) <= {'type', 'name', 'description', 'specUri', 'documentationUri', 'primary'}
               for scheme in schemes)


# ---------------------------------------------------------------------------
# Over a real socket, against `python scim_server.py`
# ---------------------------------------------------------------------------

def test_every_form_over_a_socket_is_taken_flagged_or_refused_and_the_console_says_so(database_url):
    server = ServerProcess(database=database_url, token=TOKEN)
    sent = [(f'Bearer {TOKEN}', 200), (TOKEN, 200), (f'Bearer Bearer {TOKEN}', 200),
            (basic(OKTA_USER, TOKEN), 200), (basic(OKTA_USER, TOKEN[:-1]), 401), (f'Bearer {TOKEN[:-1]}', 401),
            (None, 401)]
    try:
        details = []
        for number, (authorization, status) in enumerate(sent):
            connection = http.client.HTTPConnection('127.0.0.1', server.port, timeout=10)
            headers = {'Authorization': authorization} if authorization else {}
            connection.request('GET', f'{BASE}/Users?count={number}', headers=headers)
            answer = connection.getresponse()
            body = json.loads(answer.read())
            assert answer.status == status, body
            details.append(body.get('detail'))
            connection.close()
        deadline = time.monotonic() + 10
        while server.output.count(f'{BASE}/Users?count=') < len(sent) and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        server.stop()
    lines = [line for line in server.output.splitlines() if f'{BASE}/Users?count=' in line]
    notes = [line.partition(' ms')[2].strip() for line in lines]
    assert notes == [
        '',
        'auth: accepted, flagged: ' + scim_server.FLAGGED_FORMS['bare'],
        'auth: accepted, flagged: ' + scim_server.FLAGGED_FORMS['bearer-bearer'],
        'auth: accepted, flagged: ' + scim_server.FLAGGED_FORMS['basic'],
        'auth: refused: Basic credentials whose password is not a token',
        "auth: refused: a Bearer token that matches none of this server's tokens",
        'auth: refused: no Authorization header',
    ], server.output
    assert details[4].startswith('Basic credentials whose password is not a token')
    for secret in (TOKEN, TOKEN[:-1], OKTA_USER):
        assert secret not in server.output and not any(secret in (detail or '') for detail in details)


# ---------------------------------------------------------------------------
# The README's Troubleshooting table names every 401, as it is answered
# ---------------------------------------------------------------------------

def test_the_readme_lists_every_401_detail_and_no_other(make_app):
    readme = Path(scim_server.__file__).with_name('README.md').read_text(encoding='utf-8')
    table = readme[readme.index('| `detail` begins with |'):]
    table = table[:table.index('\n\n')]
    documented = {start.strip().split(' (')[0] for row in table.splitlines()[2:]
                  for start in row.split('|')[1].split(';')}
    app = make_app()
    answered = {assert_scim_error(send(app, authorization), 401)['detail'] for authorization, _ in REFUSED}
    demo = make_app(token=scim_server.DEMO_TOKEN)
    answered.add(assert_scim_error(send(demo, scim_server.DEMO_TOKEN, remote='192.0.2.7'), 401)['detail'])
    for start in documented:
        assert any(detail.startswith(start) for detail in answered), start
    for detail in answered:
        assert any(detail.startswith(start) for start in documented), detail


# ---------------------------------------------------------------------------
# The fast path for "Bearer <token>" reads a header as the general reader does
# ---------------------------------------------------------------------------

@hypothesis.settings(max_examples=400, deadline=None)
@hypothesis.given(hypothesis.strategies.text(alphabet='Bearer Basic \t"<>:=-_.aZ9\u00e9', max_size=24))
def test_the_fast_path_reads_every_header_as_the_general_reader(text):
    # A leading space is stripped, and it keeps the header off the fast path.
    for header in (text, f'Bearer {text}', f'bearer {text}'):
        assert scim_server.read_authorization(header) == scim_server.read_authorization(f' {header}'), header
