"""The protocol around the resources: the token, errors as SCIM documents, reading bodies,
media types, and ETag preconditions."""

import json

import pytest

import scim_server
import scimschema
import webtest
from conftest import BASE, GROUP_SCHEMA, PATCH_SCHEMA, TOKEN, USER_SCHEMA, ScimClient, assert_scim_error

PATH_VALUES = {'<name>': 'User', '<urn>': USER_SCHEMA,
               '<resource_id>': 'some-resource-id'}


def concrete(path):
    for placeholder, value in PATH_VALUES.items():
        path = path.replace(placeholder, value)
    return path


ROUTES = [(method, concrete(path)) for method, path, _, _ in scim_server.SCIM_ROUTES]
BAD_AUTHORIZATIONS = [
    None,
    '',
    'Bearer wrong',
    'Bearer ',
    'Bearer',
    'Basic xyz',
    f'Basic {TOKEN}',
    f'Bearer {TOKEN[:-1]}',
    f'Bearer {TOKEN}x',
    f'Bearer x{TOKEN}',
    f'Bearer {TOKEN.upper()}',
    f'Bearer {TOKEN} extra',
    f'Bearer{TOKEN}',
    f'bearer {TOKEN[1:]}',
    'wrong',
    TOKEN[:-1],
    f'{TOKEN}x',
    f'XYZBearer {TOKEN}',                  # the tutorial accepted this
    f'Bearer {TOKEN}, Bearer {TOKEN}',     # several tokens in one header
    f'Bearer {TOKEN} {TOKEN}',
    f'{TOKEN} {TOKEN}',
    f'Bearer "{TOKEN}"',
    'Bearer ' + 'x' * 65536,               # a 64 KiB header
    f'Token {TOKEN}',
]


def send(client, method, path, authorization):
    """`method path` with this Authorization header (None: no header at all)."""
    headers = dict(client.headers)
    headers.pop('Authorization')
    if authorization is not None:
        headers['Authorization'] = authorization
    body = None
    if method in ('POST', 'PUT', 'PATCH'):
        body = json.dumps({'schemas': [USER_SCHEMA], 'userName': 'ann@example.com'}).encode()
        headers['Content-Type'] = 'application/scim+json'
    return client.test_app.request(BASE + path, method=method, body=body or b'', headers=headers,
                                   expect_errors=True)


# ---------------------------------------------------------------------------
# Authentication
# ---------------------------------------------------------------------------

@pytest.mark.parametrize('authorization', BAD_AUTHORIZATIONS)
@pytest.mark.parametrize('method, path', ROUTES)
def test_every_route_refuses_a_missing_or_wrong_token_with_401(client, method, path, authorization):
    response = send(client, method, path, authorization)
    assert_scim_error(response, 401)
    assert response.headers.get('WWW-Authenticate', '').lower().startswith('bearer')


def test_refused_requests_change_nothing(client):
    for authorization in BAD_AUTHORIZATIONS:
        send(client, 'POST', '/Users', authorization)
    assert client.get('/Users', status=200).json['totalResults'] == 0


@pytest.mark.parametrize('authorization', [f'Bearer {TOKEN}', TOKEN, f'bearer {TOKEN}', f'BEARER {TOKEN}'])
@pytest.mark.parametrize('method, path', [('GET', '/Users'), ('GET', '/ServiceProviderConfig'),
                                          ('POST', '/Users')])
def test_valid_token_is_accepted_as_bearer_or_bare(client, method, path, authorization):
    response = send(client, method, path, authorization)
    assert response.status_int in (200, 201), response.body


@pytest.fixture
def two_token_client(make_app):
    return ScimClient(make_app(token=f'{TOKEN}, second-token-abc'))


@pytest.mark.parametrize('token', [TOKEN, 'second-token-abc'])
def test_each_configured_token_is_accepted(two_token_client, token):
    assert send(two_token_client, 'GET', '/Users', f'Bearer {token}').status_int == 200


# ---------------------------------------------------------------------------
# Errors are SCIM documents
# ---------------------------------------------------------------------------

@pytest.mark.parametrize('path', ['/Nope', '/Users/a/b', '/users', '/Groups/x/members'])
def test_unknown_path_is_404_scim_error(client, path):
    assert_scim_error(client.get(path), 404)


@pytest.mark.parametrize('method, path, allowed', [
    ('DELETE', '/Users', {'GET', 'POST'}),
    ('PUT', '/Users', {'GET', 'POST'}),
    ('PATCH', '/Groups', {'GET', 'POST'}),
    ('POST', '/Users/some-id', {'GET', 'PUT', 'PATCH', 'DELETE'}),
    ('POST', '/Groups/some-id', {'GET', 'PUT', 'PATCH', 'DELETE'}),
    ('POST', '/ServiceProviderConfig', {'GET'}),
    ('DELETE', '/Schemas', {'GET'}),
])
def test_wrong_method_is_405_scim_error_with_allow(client, method, path, allowed):
    response = client.request(method, path, body={'schemas': [USER_SCHEMA]})
    assert_scim_error(response, 405)
    assert allowed <= {m.strip() for m in response.headers['Allow'].split(',')}
    assert method not in {m.strip() for m in response.headers['Allow'].split(',')}


@pytest.fixture
def user(client):
    return client.create_user('ann@example.com', title='Engineer')


def body_targets(user):
    return [('POST', '/Users'), ('PUT', f'/Users/{user["id"]}'), ('PATCH', f'/Users/{user["id"]}'),
            ('POST', '/Groups')]


@pytest.mark.parametrize('raw', [
    b'{',
    b'{"schemas": [}',
    b'',
    b'not json',
    b"{'single': 'quotes'}",
    b'{"a": 1} trailing',
    b'[' * 100000 + b']' * 100000,
])
def test_invalid_json_is_400_invalid_syntax(client, user, raw):
    for method, path in body_targets(user):
        assert_scim_error(client.request(method, path, raw=raw), 400, 'invalidSyntax')
    assert client.get(f'/Users/{user["id"]}').json['meta']['version'] == user['meta']['version']


@pytest.mark.parametrize('raw', [b'[]', b'[{"userName": "x"}]', b'"text"', b'42', b'null', b'true'])
def test_non_object_json_is_400_invalid_syntax(client, user, raw):
    for method, path in body_targets(user):
        assert_scim_error(client.request(method, path, raw=raw), 400, 'invalidSyntax')


@pytest.mark.parametrize('raw', [
    b'{"schemas": ["' + USER_SCHEMA.encode() + b'"], "userName": "\xff\xfe"}',
    b'\xef\xbb\xbf\xc3',
    b'{"userName": "ann\xc3"}',
])
def test_invalid_utf8_is_400_invalid_syntax(client, user, raw):
    for method, path in body_targets(user):
        assert_scim_error(client.request(method, path, raw=raw), 400, 'invalidSyntax')
    assert client.get('/Users').json['totalResults'] == 1


@pytest.mark.parametrize('content_type', [
    'application/json',
    'application/scim+json',
    'application/scim+json; charset=utf-8',
    'application/json; charset=UTF-8',
    'text/plain',
    None,
])
def test_body_is_read_whatever_the_content_type(client, content_type):
    headers = dict(client.headers)
    if content_type is not None:
        headers['Content-Type'] = content_type
    body = json.dumps({'schemas': [USER_SCHEMA], 'userName': 'ann@example.com', 'title': 'Engineer'}).encode()
    response = client.test_app.request(BASE + '/Users', method='POST', body=body, headers=headers,
                                       expect_errors=True)
    assert response.status_int == 201, response.body
    if content_type is None:
        assert not response.request.environ.get('CONTENT_TYPE')
    assert client.get(f'/Users/{response.json["id"]}').json['title'] == 'Engineer'


@pytest.fixture
def small_body_client(make_app):
    """A client on an app that accepts bodies of up to 300 bytes."""
    return ScimClient(make_app(max_body_bytes=300))


def test_body_within_max_body_bytes_is_accepted(small_body_client):
    small_body_client.post('/Users', {'schemas': [USER_SCHEMA], 'userName': 'ann@example.com'}, status=201)


@pytest.mark.parametrize('method', ['POST', 'PUT', 'PATCH'])
def test_body_above_max_body_bytes_is_413(small_body_client, method):
    user = small_body_client.create_user('ann@example.com')
    path = '/Users' if method == 'POST' else f'/Users/{user["id"]}'
    body = {'schemas': [USER_SCHEMA], 'userName': 'bob@example.com', 'title': 'x' * 400}
    assert_scim_error(small_body_client.request(method, path, body), 413)
    listing = small_body_client.get('/Users').json
    assert listing['totalResults'] == 1
    assert listing['Resources'][0]['meta']['version'] == user['meta']['version']


def test_body_above_the_default_limit_is_413(client):
    body = {'schemas': [USER_SCHEMA], 'userName': 'ann@example.com', 'title': 'x' * (1024 * 1024 + 10)}
    assert_scim_error(client.post('/Users', body), 413)
    assert client.get('/Users').json['totalResults'] == 0


# ---------------------------------------------------------------------------
# Media type, trailing slashes
# ---------------------------------------------------------------------------

@pytest.mark.parametrize('method, path, body, headers, status', [
    ('GET', '/ServiceProviderConfig', None, {}, 200),
    ('GET', '/Users', None, {}, 200),
    ('POST', '/Users', {'schemas': [USER_SCHEMA], 'userName': 'ann@example.com'}, {}, 201),
    ('POST', '/Users', {'schemas': [USER_SCHEMA]}, {}, 400),
    ('GET', '/Users?filter=bad', None, {}, 400),
    ('GET', '/Users', None, {'Authorization': 'Bearer wrong'}, 401),
    ('GET', '/Users/no-such-id', None, {}, 404),
    ('GET', '/Nope', None, {}, 404),
    ('DELETE', '/Users', None, {}, 405),
])
def test_every_response_is_scim_json(client, method, path, body, headers, status):
    response = client.request(method, path, body, headers=headers)
    assert response.status_int == status
    assert response.headers['Content-Type'].split(';')[0].strip() == 'application/scim+json'
    json.loads(response.body)


@pytest.mark.parametrize('path', ['/Users/', '/Groups/', '/ServiceProviderConfig/', '/Schemas/'])
def test_trailing_slash_on_a_collection_works(client, path):
    assert client.get(path, status=200).json['schemas']


def test_trailing_slash_on_post_and_resource_works(client):
    created = client.post('/Users/', {'schemas': [USER_SCHEMA], 'userName': 'ann@example.com'}, status=201).json
    assert client.get(f'/Users/{created["id"]}/', status=200).json['id'] == created['id']


# ---------------------------------------------------------------------------
# ETags
# ---------------------------------------------------------------------------

@pytest.mark.parametrize('kind', ['Users', 'Groups'])
def test_if_none_match_with_the_current_etag_is_304(client, kind):
    resource = client.create_user('ann@example.com') if kind == 'Users' else client.create_group('Eng')
    path = f'/{kind}/{resource["id"]}'
    etag = client.get(path).headers['ETag']
    response = client.get(path, headers={'If-None-Match': etag})
    assert response.status_int == 304
    assert response.body == b''
    assert response.headers['ETag'] == etag


def test_if_none_match_with_an_old_etag_returns_the_resource(client):
    user = client.create_user('ann@example.com')
    old = user['meta']['version']
    client.patch(f'/Users/{user["id"]}', [{'op': 'replace', 'path': 'title', 'value': 'Boss'}])
    response = client.get(f'/Users/{user["id"]}', headers={'If-None-Match': old}, status=200)
    assert response.json['title'] == 'Boss'


def modifications(user_id):
    return {
        'PUT': ('PUT', f'/Users/{user_id}', {'schemas': [USER_SCHEMA], 'userName': 'changed@example.com'}),
        'PATCH': ('PATCH', f'/Users/{user_id}', {
            'schemas': [scimschema.PATCH_SCHEMA],
            'Operations': [{'op': 'replace', 'path': 'userName', 'value': 'changed@example.com'}]}),
        'DELETE': ('DELETE', f'/Users/{user_id}', None),
    }


@pytest.mark.parametrize('if_match', ['W/"999"', '"999"', 'W/"0"', 'garbage'])
@pytest.mark.parametrize('verb', ['PUT', 'PATCH', 'DELETE'])
def test_if_match_mismatch_is_412_and_changes_nothing(client, user, verb, if_match):
    method, path, body = modifications(user['id'])[verb]
    assert_scim_error(client.request(method, path, body, headers={'If-Match': if_match}), 412)
    after = client.get(f'/Users/{user["id"]}', status=200).json
    assert after == user


@pytest.mark.parametrize('verb', ['PUT', 'PATCH', 'DELETE'])
def test_if_match_with_the_current_etag_succeeds(client, user, verb):
    method, path, body = modifications(user['id'])[verb]
    response = client.request(method, path, body, headers={'If-Match': user['meta']['version']})
    assert response.status_int in (200, 204)


def test_if_match_with_a_stale_etag_after_an_update_is_412(client, user):
    client.patch(f'/Users/{user["id"]}', [{'op': 'replace', 'path': 'title', 'value': 'Boss'}], status=200)
    response = client.patch(f'/Users/{user["id"]}', [{'op': 'replace', 'path': 'title', 'value': 'Stale'}],
                            headers={'If-Match': user['meta']['version']})
    assert_scim_error(response, 412)
    assert client.get(f'/Users/{user["id"]}').json['title'] == 'Boss'


def test_demo_token_is_accepted_only_from_this_machine(make_app):
    """Whatever server runs the app (waitress-serve on *:8080 too), the tutorial's
    token opens the door to loopback clients only; ngrok connects from loopback."""
    client = webtest.TestApp(make_app(token=scim_server.DEMO_TOKEN))
    headers = {'Authorization': f'Bearer {scim_server.DEMO_TOKEN}'}
    # ::ffff:127.0.0.1: loopback as a dual-stack (IPv6) socket sees an IPv4 client.
    for address in ('127.0.0.1', '::1', '::ffff:127.0.0.1'):
        client.get('/scim/v2/Users', headers=headers, extra_environ={'REMOTE_ADDR': address}, status=200)
    for address in ('192.0.2.7', '10.0.0.2', '::ffff:192.0.2.7', 'localhost.example', ''):
        refused = client.get('/scim/v2/Users', headers=headers, extra_environ={'REMOTE_ADDR': address},
                             expect_errors=True)
        body = assert_scim_error(refused, 401)
        assert 'only from this machine' in body['detail']
    forwarded = client.get('/scim/v2/Users', extra_environ={'REMOTE_ADDR': '127.0.0.1'},
                           headers={**headers, 'X-Forwarded-For': '203.0.113.9'})
    assert forwarded.status_int == 200, 'ngrok forwards from loopback and adds X-Forwarded-For'


@pytest.mark.parametrize('raw', [
    b'{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":"\\ud800"}',
    b'{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":"nan","title":NaN}',
    b'{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":"inf","x":Infinity}',
    b'{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":"big","x":1e999}',
])
def test_json_that_is_no_text_or_no_number_is_400_and_stores_nothing(client, raw):
    response = client.request('POST', '/Users', raw=raw)
    assert response.status_int == 400, response.body
    assert response.json['scimType'] == 'invalidSyntax'
    assert client.get('/Users', status=200).json['totalResults'] == 0


def test_if_match_with_several_tags_accepts_any_of_them(client):
    user = client.create_user('tags@example.com')
    headers = {'If-Match': f'W/"999", {user["meta"]["version"]}'}
    client.patch(f'/Users/{user["id"]}', [{'op': 'replace', 'path': 'title', 'value': 'x'}],
                 headers=headers, status=200)
    stale = client.patch(f'/Users/{user["id"]}', [{'op': 'replace', 'path': 'title', 'value': 'y'}],
                         headers=headers)
    assert_scim_error(stale, 412)


def test_if_match_on_delete_is_checked_in_the_same_statement(client):
    user = client.create_user('del@example.com')
    assert_scim_error(client.delete(f'/Users/{user["id"]}', headers={'If-Match': 'W/"2"'}), 412)
    client.delete(f'/Users/{user["id"]}', headers={'If-Match': user['meta']['version']}, status=204)
    assert_scim_error(client.delete(f'/Users/{user["id"]}', headers={'If-Match': user['meta']['version']}), 404)


def test_a_non_ascii_token_matches_its_utf8_bytes(make_app):
    token = 'clé-secrète-ünïcode'
    client = webtest.TestApp(make_app(token=token))
    header = token.encode('utf-8').decode('latin-1')   # what a WSGI server hands over
    client.get('/scim/v2/Users', headers={'Authorization': f'Bearer {header}'}, status=200)
    client.get('/scim/v2/Users', headers={'Authorization': 'Bearer cle-secrete'}, status=401)


def test_an_unexpected_exception_is_a_scim_500_with_the_traceback_only_in_the_log(app, caplog):
    def explode():
        raise RuntimeError('secret internals')
    app.route('/scim/v2/Explode', 'GET', scim_server.scim_endpoint(explode))
    client = ScimClient(app)
    response = client.get('/Explode')
    assert_scim_error(response, 500)
    assert 'secret internals' not in response.text and 'Traceback' not in response.text
    assert 'secret internals' in caplog.text
    assert TOKEN not in caplog.text


def test_a_scim_error_raised_in_any_route_is_answered_as_one(app):
    """Not only the SCIM routes: a route added to the app later (here without the token
    check) that raises a SCIM error answers it, headers and all, not a 500."""
    def refuse():
        raise scimschema.ScimError(409, 'uniqueness', 'Taken.', Retry_After='7')
    app.route('/plain/refuse', 'GET', refuse)
    response = webtest.TestApp(app).get('/plain/refuse', expect_errors=True)
    body = assert_scim_error(response, 409, 'uniqueness')
    assert (body['detail'], response.headers['Retry-After']) == ('Taken.', '7')


@pytest.mark.parametrize('raw, where', [
    (b'{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":"a\\u0000b"}', 'userName'),
    (b'{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":"n",'
     b'"emails":[{"value":"x\\u0000"}]}', 'emails[0].value'),
    (b'{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":"n","x\\u0000":1}', 'A key'),
    (b'{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":"n",'
     b'"urn:example:custom":{"note":"\\u0000"}}', 'urn:example:custom.note'),
])
def test_a_nul_character_anywhere_in_a_body_is_400_naming_where_and_stores_nothing(client, raw, where):
    """No text can hold a NUL (PostgreSQL's cannot): the body is refused, the place named."""
    body = assert_scim_error(client.request('POST', '/Users', raw=raw), 400, 'invalidValue')
    assert body['detail'].startswith(where)
    assert client.get('/Users', status=200).json['totalResults'] == 0


def test_an_escaped_backslash_before_u0000_is_text_not_a_nul(client):
    raw = b'{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":"back\\\\u0000slash"}'
    created = client.request('POST', '/Users', raw=raw, status=201).json
    assert created['userName'] == 'back\\u0000slash'


@pytest.mark.parametrize('method', ['GET', 'PUT', 'PATCH', 'DELETE'])
@pytest.mark.parametrize('collection', ['Users', 'Groups'])
def test_an_id_with_a_nul_character_is_404(client, method, collection):
    body = ({'schemas': [PATCH_SCHEMA], 'Operations': [{'op': 'replace', 'path': 'displayName', 'value': 'x'}]}
            if method == 'PATCH' else
            {'schemas': [USER_SCHEMA if collection == 'Users' else GROUP_SCHEMA], 'userName': 'n', 'displayName': 'n'})
    response = client.request(method, f'/{collection}/abc%00def', body=None if method in ('GET', 'DELETE') else body)
    assert_scim_error(response, 404)


@pytest.mark.parametrize('query', [
    'startIndex=99999999999999999999', 'startIndex=-99999999999999999999', 'count=99999999999999999999',
    'startIndex=9223372036854775807&count=5', 'startIndex=٣', 'count=1_0x',
])
def test_huge_or_odd_paging_numbers_are_a_page_or_a_400_never_a_500(client, query):
    client.create_user('page@example.com')
    response = client.get(f'/Users?{query}')
    if response.status_int == 200:
        assert response.json['totalResults'] == 1
    else:
        assert_scim_error(response, 400, 'invalidValue')


@pytest.mark.parametrize('moment', ['0001-01-01T00:00:00+14:00', '9999-12-31T23:59:59-14:00'])
def test_a_time_beyond_year_1_to_9999_in_utc_is_400_invalid_filter(client, moment):
    client.create_user('time@example.com')
    assert_scim_error(client.get(f'/Users?filter=meta.created gt "{moment}"'), 400, 'invalidFilter')


@pytest.mark.parametrize('tag', ['W/"²"', 'W/"99999999999999999999"', '"１"'])
@pytest.mark.parametrize('method', ['PUT', 'PATCH', 'DELETE'])
def test_if_match_naming_no_version_we_wrote_is_412_never_a_500(client, tag, method):
    user = client.create_user('tag@example.com')
    body = {'PUT': {'schemas': [USER_SCHEMA], 'userName': 'tag@example.com'},
            'PATCH': {'schemas': [PATCH_SCHEMA], 'Operations': [{'op': 'replace', 'path': 'title', 'value': 'x'}]},
            'DELETE': None}[method]
    response = client.request(method, f'/Users/{user["id"]}', body=body, headers={'If-Match': tag})
    assert_scim_error(response, 412)
    assert client.get(f'/Users/{user["id"]}', status=200).json['meta']['version'] == user['meta']['version']



def test_a_token_anywhere_but_the_authorization_header_is_401(client):
    """Not in the query string, not in a cookie, not in another header."""
    for headers, query in [({}, f'?access_token={TOKEN}'), ({'Cookie': f'token={TOKEN}'}, ''),
                           ({'X-Api-Key': TOKEN}, ''), ({'Proxy-Authorization': f'Bearer {TOKEN}'}, '')]:
        response = client.test_app.get(f'{BASE}/Users{query}', headers=headers, expect_errors=True)
        assert_scim_error(response, 401)


def test_the_token_is_in_no_answer_and_no_log_line(client, caplog):
    """Whatever is refused or accepted, the token is not echoed back nor logged."""
    caplog.set_level('DEBUG')
    answers = [send(client, 'GET', '/Users', authorization) for authorization in (f'Bearer {TOKEN}x', f'Basic {TOKEN}')]
    answers.append(client.get('/Users'))
    answers.append(client.post('/Users', {'schemas': [USER_SCHEMA], 'userName': TOKEN[:5]}))
    for response in answers:
        assert TOKEN not in response.text
        assert all(TOKEN not in value for value in response.headers.values())
    assert TOKEN not in caplog.text
