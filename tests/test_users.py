"""/Users over HTTP: create, read, replace, patch, delete, and what a body may contain."""

from urllib.parse import quote

import pytest

from conftest import USER_SCHEMA, assert_scim_error, driver_connection, list_tables_sql

ENTERPRISE_SCHEMA = 'urn:ietf:params:scim:schemas:extension:enterprise:2.0:User'
OKTA_SCHEMA = 'urn:okta:custom:1.0:User'
PASSWORD = 'Pa55-word-that-must-never-be-stored-7f3a'


def user_body(user_name, **attributes):
    return {'schemas': [USER_SCHEMA], 'userName': user_name, **attributes}


def list_users(client, filter_text=None):
    path = '/Users' if filter_text is None else f'/Users?filter={quote(filter_text)}'
    return client.get(path, status=200).json


def database_texts(database_url):
    """Every text value in every column of every table of the database (SQLite or PostgreSQL)."""
    connection, _ = driver_connection(database_url)
    try:
        cursor = connection.cursor()
        cursor.execute(list_tables_sql(database_url))
        tables = [row[0] for row in cursor.fetchall()]
        texts = []
        for table in tables:
            cursor.execute(f'SELECT * FROM "{table}"')
            for row in cursor.fetchall():
                texts.extend(value for value in row if isinstance(value, str))
        return tables, texts
    finally:
        connection.close()


# ---------------------------------------------------------------------------
# Create
# ---------------------------------------------------------------------------

def test_create_returns_201_with_id_location_and_etag(client):
    response = client.post('/Users', user_body('ann@example.com', displayName='Ann'), status=201)
    user = response.json
    assert user['id']
    assert user['userName'] == 'ann@example.com'
    assert user['displayName'] == 'Ann'
    assert USER_SCHEMA in user['schemas']
    assert user['meta']['resourceType'] == 'User'
    assert user['meta']['location'].endswith(f'/Users/{user["id"]}')
    assert response.headers['Location'] == user['meta']['location']
    assert response.headers['ETag'] == user['meta']['version']


def test_created_user_is_readable_by_id(client):
    created = client.create_user('ann@example.com', title='Engineer')
    fetched = client.get(f'/Users/{created["id"]}', status=200)
    assert fetched.json['userName'] == 'ann@example.com'
    assert fetched.json['title'] == 'Engineer'
    assert fetched.headers['ETag'] == created['meta']['version']


def test_unknown_user_id_is_404_scim_error(client):
    assert_scim_error(client.get('/Users/no-such-id'), 404)


def test_password_is_never_returned_nor_stored(client, database_url):
    created = client.post('/Users', user_body('ann@example.com', password=PASSWORD), status=201)
    user_id = created.json['id']
    replaced = client.put(f'/Users/{user_id}', user_body('ann@example.com', password=PASSWORD), status=200)
    patched = client.patch(f'/Users/{user_id}', [{'op': 'replace', 'path': 'password', 'value': PASSWORD}])
    assert patched.status_int in (200, 204)
    fetched = client.get(f'/Users/{user_id}', status=200)
    listed = client.get('/Users', status=200)
    for response in (created, replaced, patched, fetched, listed):
        assert PASSWORD not in response.text
        assert 'password' not in response.text.lower()

    tables, texts = database_texts(database_url)
    assert 'users' in tables
    assert any('ann@example.com' in text for text in texts)   # the scan does see the data
    assert not any(PASSWORD in text for text in texts)


def test_user_name_keeps_its_case(client):
    created = client.create_user('Ann.Lee@Example.COM')
    assert created['userName'] == 'Ann.Lee@Example.COM'
    assert client.get(f'/Users/{created["id"]}').json['userName'] == 'Ann.Lee@Example.COM'


@pytest.mark.parametrize('variant', ['Ann.Lee@Example.COM', 'ann.lee@example.com', 'ANN.LEE@EXAMPLE.COM'])
def test_duplicate_username_in_other_case_is_409(client, variant):
    original = client.create_user('Ann.Lee@Example.COM')
    response = client.post('/Users', user_body(variant, displayName='Impostor'))
    assert_scim_error(response, 409, 'uniqueness')
    fetched = client.get(f'/Users/{original["id"]}').json
    assert fetched['userName'] == 'Ann.Lee@Example.COM'
    assert 'displayName' not in fetched
    assert fetched['meta']['version'] == original['meta']['version']
    assert list_users(client)['totalResults'] == 1


@pytest.mark.parametrize('attribute', ['title', 'displayName', 'nickName', 'externalId'])
def test_null_attribute_on_create_means_not_set(client, attribute):
    user = client.create_user('ann@example.com', **{attribute: None})
    assert attribute not in user
    assert attribute not in client.get(f'/Users/{user["id"]}').json


def test_null_sub_attribute_means_not_set(client):
    user = client.create_user('ann@example.com', name={'givenName': 'Ann', 'familyName': None})
    assert client.get(f'/Users/{user["id"]}').json['name'] == {'givenName': 'Ann'}


def test_enterprise_extension_round_trips(client):
    enterprise = {'employeeNumber': '701984', 'costCenter': '4130', 'department': 'Tour Operations',
                  'manager': {'value': '26118915-6090-4610-87e4-49d8ca9f808d'}}
    user = client.create_user('ann@example.com', schemas=[USER_SCHEMA, ENTERPRISE_SCHEMA],
                              **{ENTERPRISE_SCHEMA: enterprise})
    fetched = client.get(f'/Users/{user["id"]}').json
    assert ENTERPRISE_SCHEMA in fetched['schemas']
    assert fetched[ENTERPRISE_SCHEMA] == enterprise


def test_unknown_extension_namespace_round_trips_unchanged(client):
    custom = {'costCode': 'X-1', 'flags': [1, 'two', True], 'nested': {'level': {'deep': None, 'n': 2.5}}}
    user = client.create_user('ann@example.com', schemas=[USER_SCHEMA, OKTA_SCHEMA], **{OKTA_SCHEMA: custom})
    fetched = client.get(f'/Users/{user["id"]}').json
    assert OKTA_SCHEMA in fetched['schemas']
    assert fetched[OKTA_SCHEMA] == custom


@pytest.mark.parametrize('attribute, value', [
    ('userName', 42),
    ('userName', ['ann@example.com']),
    ('active', {'value': True}),
    ('active', 'yes'),
    ('active', 1),
    ('emails', 'ann@example.com'),
    ('emails', [{'value': 5}]),
    ('name', 'Ann Lee'),
    ('displayName', ['Ann']),
    ('phoneNumbers', 5551234),
])
def test_wrong_type_is_400_invalid_value_naming_the_attribute(client, attribute, value):
    body = user_body('ann@example.com', **{attribute: value})
    error = assert_scim_error(client.post('/Users', body), 400, 'invalidValue')
    assert attribute in error['detail']
    assert list_users(client)['totalResults'] == 0


@pytest.mark.parametrize('user_name', [None, '', '   '])
def test_missing_or_empty_username_is_400(client, user_name):
    body = {'schemas': [USER_SCHEMA], 'displayName': 'Ann'}
    if user_name is not None:
        body['userName'] = user_name
    error = assert_scim_error(client.post('/Users', body), 400)
    assert 'userName' in error['detail']
    assert list_users(client)['totalResults'] == 0


@pytest.mark.parametrize('schemas', [
    'missing',
    USER_SCHEMA,
    {'0': USER_SCHEMA},
    [],
    [ENTERPRISE_SCHEMA],
    ['urn:ietf:params:scim:schemas:core:2.0:Group'],
    [None],
])
def test_schemas_missing_malformed_or_without_core_urn_is_400(client, schemas):
    body = {'userName': 'ann@example.com'}
    if schemas != 'missing':
        body['schemas'] = schemas
    assert_scim_error(client.post('/Users', body), 400)
    assert list_users(client)['totalResults'] == 0


# ---------------------------------------------------------------------------
# PUT: a full replace
# ---------------------------------------------------------------------------

def test_put_replaces_the_whole_user(client):
    created = client.create_user('ann@example.com', displayName='Ann', title='Engineer',
                                 name={'givenName': 'Ann', 'familyName': 'Lee'},
                                 emails=[{'value': 'ann@example.com', 'type': 'work'}])
    user_id = created['id']
    body = user_body('ann.lee@example.com', displayName='Ann Lee',
                     id='some-other-id',
                     meta={'created': '2001-01-01T00:00:00Z', 'version': 'W/"99"'},
                     groups=[{'value': 'no-such-group'}])
    response = client.put(f'/Users/{user_id}', body, status=200)
    replaced = response.json
    assert replaced['id'] == user_id
    assert replaced['userName'] == 'ann.lee@example.com'
    assert replaced['displayName'] == 'Ann Lee'
    for cleared in ('title', 'name', 'emails'):
        assert cleared not in replaced
    assert replaced['groups'] == []
    assert replaced['meta']['created'] == created['meta']['created']
    assert replaced['meta']['version'] != created['meta']['version']
    assert response.headers['ETag'] == replaced['meta']['version']
    assert response.headers['ETag'] != created['meta']['version']

    fetched = client.get(f'/Users/{user_id}').json
    assert fetched == replaced
    assert client.get('/Users/some-other-id').status_int == 404


@pytest.mark.parametrize('taken', ['bob@example.com', 'BOB@example.com'])
def test_put_to_a_taken_username_is_409(client, taken):
    client.create_user('bob@example.com')
    ann = client.create_user('ann@example.com', title='Engineer')
    assert_scim_error(client.put(f'/Users/{ann["id"]}', user_body(taken)), 409, 'uniqueness')
    fetched = client.get(f'/Users/{ann["id"]}').json
    assert fetched['userName'] == 'ann@example.com'
    assert fetched['title'] == 'Engineer'


def test_put_changing_only_the_case_of_own_username_succeeds(client):
    ann = client.create_user('ann@example.com')
    replaced = client.put(f'/Users/{ann["id"]}', user_body('Ann@Example.com'), status=200).json
    assert replaced['userName'] == 'Ann@Example.com'


def test_put_with_null_attribute_clears_it(client):
    ann = client.create_user('ann@example.com', title='Engineer')
    client.put(f'/Users/{ann["id"]}', user_body('ann@example.com', title=None), status=200)
    assert 'title' not in client.get(f'/Users/{ann["id"]}').json


def test_put_to_unknown_id_is_404(client):
    assert_scim_error(client.put('/Users/no-such-id', user_body('ann@example.com')), 404)


# ---------------------------------------------------------------------------
# PATCH
# ---------------------------------------------------------------------------

def test_okta_deactivate_keeps_the_user_readable_and_findable(client):
    ann = client.create_user('ann@example.com')
    client.create_user('bob@example.com')
    response = client.patch(f'/Users/{ann["id"]}', [{'op': 'replace', 'value': {'active': False}}])
    assert response.status_int in (200, 204)
    assert client.get(f'/Users/{ann["id"]}', status=200).json['active'] is False
    by_name = list_users(client, 'userName eq "ann@example.com"')
    assert [user['id'] for user in by_name['Resources']] == [ann['id']]
    assert by_name['Resources'][0]['active'] is False
    inactive = list_users(client, 'active eq false')
    assert [user['id'] for user in inactive['Resources']] == [ann['id']]


@pytest.mark.parametrize('path, value, expected', [
    ('displayName', 'Ann Lee', {'displayName': 'Ann Lee'}),
    ('title', 'Boss', {'title': 'Boss'}),
    ('name.givenName', 'Annie', {'name': {'givenName': 'Annie', 'familyName': 'Lee'}}),
    ('name.familyName', 'Smith', {'name': {'givenName': 'Ann', 'familyName': 'Smith'}}),
])
def test_patch_replace_with_a_simple_path(client, path, value, expected):
    ann = client.create_user('ann@example.com', displayName='Ann', title='Engineer',
                             name={'givenName': 'Ann', 'familyName': 'Lee'})
    response = client.patch(f'/Users/{ann["id"]}', [{'op': 'replace', 'path': path, 'value': value}])
    assert response.status_int in (200, 204)
    fetched = client.get(f'/Users/{ann["id"]}').json
    for key, wanted in expected.items():
        assert fetched[key] == wanted
    assert fetched['userName'] == 'ann@example.com'
    assert fetched['meta']['version'] != ann['meta']['version']


def test_patch_to_unknown_id_is_404(client):
    response = client.patch('/Users/no-such-id', [{'op': 'replace', 'path': 'active', 'value': False}])
    assert_scim_error(response, 404)


# ---------------------------------------------------------------------------
# DELETE
# ---------------------------------------------------------------------------

def test_delete_is_204_then_get_is_404(client):
    ann = client.create_user('ann@example.com')
    response = client.delete(f'/Users/{ann["id"]}', status=204)
    assert response.body == b''
    assert_scim_error(client.get(f'/Users/{ann["id"]}'), 404)
    assert_scim_error(client.delete(f'/Users/{ann["id"]}'), 404)
    assert list_users(client)['totalResults'] == 0


def test_deleted_username_can_be_used_again(client):
    ann = client.create_user('ann@example.com')
    client.delete(f'/Users/{ann["id"]}', status=204)
    again = client.create_user('ANN@example.com')
    assert again['id'] != ann['id']


@pytest.mark.parametrize('external_id', [{'a': 1}, 5, ['x'], True])
def test_external_id_must_be_a_string(client, external_id):
    response = client.post('/Users', user_body('ext@example.com', externalId=external_id))
    body = assert_scim_error(response, 400, 'invalidValue')
    assert 'externalId' in body['detail']
    assert list_users(client)['totalResults'] == 0


def test_two_primary_emails_are_400(client):
    response = client.post('/Users', user_body('two@example.com', emails=[
        {'value': 'a@example.com', 'primary': True}, {'value': 'b@example.com', 'primary': True}]))
    assert_scim_error(response, 400, 'invalidValue')


def test_deactivated_user_stays_inactive_through_a_put_that_says_so(client):
    user = client.create_user('aiw@example.com')
    client.put(f'/Users/{user["id"]}', user_body('aiw@example.com', active=False), status=200)
    assert client.get(f'/Users/{user["id"]}').json['active'] is False
    assert list_users(client, 'active eq false')['totalResults'] == 1


@pytest.mark.parametrize('before, after', [(1, True), (0, False), (True, 1), (1, 1.5), (1.0, True)])
def test_a_change_between_values_python_calls_equal_is_stored(client, before, after):
    """1 == True == 1.0 in Python; in JSON they differ, and the change must be written."""
    user = client.create_user('eq@example.com', flag=before)
    replaced = client.put(f'/Users/{user["id"]}', user_body('eq@example.com', flag=after), status=200).json
    assert replaced['flag'] == after and type(replaced['flag']) is type(after)
    assert replaced['meta']['version'] == 'W/"2"'
    assert client.get(f'/Users/{user["id"]}').json['flag'] == after


def test_put_without_active_answers_what_filters_see(client):
    user = client.create_user('act@example.com', active=False)
    replaced = client.put(f'/Users/{user["id"]}', user_body('act@example.com'), status=200).json
    assert replaced['active'] is True
    assert list_users(client, 'active eq true')['totalResults'] == 1
