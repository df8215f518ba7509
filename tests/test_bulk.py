"""POST /Bulk (RFC 7644 §3.7): operations in one request, bulkId references in any
order, failOnErrors, the limits, and each operation answered as its own request is."""

import json

import pytest

import dashboard
import scim_server
import store
from conftest import (GROUP_SCHEMA, ON_POSTGRESQL, PATCH_SCHEMA, USER_SCHEMA, ScimClient, assert_scim_error, postgresql,
                      store_rows)

BULK_REQUEST = 'urn:ietf:params:scim:api:messages:2.0:BulkRequest'
BULK_RESPONSE = 'urn:ietf:params:scim:api:messages:2.0:BulkResponse'


def bulk(client, operations, status=200, **fields):
    """POST /Bulk of `operations`; the BulkResponse's Operations (or the response, on an error)."""
    response = client.post('/Bulk', {'schemas': [BULK_REQUEST], 'Operations': operations, **fields}, status=status)
    if status != 200:
        return response
    assert response.json['schemas'] == [BULK_RESPONSE]
    return response.json['Operations']


def post_user(bulk_id, user_name, **attributes):
    return {'method': 'POST', 'path': '/Users', 'bulkId': bulk_id,
            'data': {'schemas': [USER_SCHEMA], 'userName': user_name, **attributes}}


def post_group(bulk_id, display_name, members=()):
    return {'method': 'POST', 'path': '/Groups', 'bulkId': bulk_id,
            'data': {'schemas': [GROUP_SCHEMA], 'displayName': display_name,
                     'members': [{'type': 'User', 'value': value} for value in members]}}


def created_id(result):
    return result['location'].rsplit('/', 1)[1]


def member_names(client, group_id):
    group = client.get(f'/Groups/{group_id}', status=200).json
    return sorted(member['display'] for member in group['members'])


# ---------------------------------------------------------------------------
# The RFC's examples
# ---------------------------------------------------------------------------

def test_rfc_3_7_2_a_group_whose_member_is_created_in_the_same_request(client):
    """RFC 7644 §3.7.2: 'The following example creates a User with the "userName"
    "Alice" and a Group with the "displayName" "Tour Guides" with Alice as a member.'
    The member is `{"type": "User", "value": "bulkId:qwerty"}`."""
    results = bulk(client, [
        {'method': 'POST', 'path': '/Users', 'bulkId': 'qwerty',
         'data': {'schemas': [USER_SCHEMA], 'userName': 'Alice'}},
        {'method': 'POST', 'path': '/Groups', 'bulkId': 'ytrewq',
         'data': {'schemas': [GROUP_SCHEMA], 'displayName': 'Tour Guides',
                  'members': [{'type': 'User', 'value': 'bulkId:qwerty'}]}},
    ])
    assert [(r['method'], r['bulkId'], r['status']) for r in results] == [
        ('POST', 'qwerty', '201'), ('POST', 'ytrewq', '201')]
    alice, guides = (client.get(r['location'].split('/scim/v2')[1], status=200) for r in results)
    assert alice.json['userName'] == 'Alice'
    assert [r['version'] for r in results] == [alice.headers['ETag'], guides.headers['ETag']]
    assert [m['value'] for m in guides.json['members']] == [alice.json['id']]
    assert all('response' not in r for r in results)


def test_rfc_3_7_2_references_are_resolved_whatever_the_order(client):
    """RFC 7644 §3.7.2: the service provider 'MUST try to resolve' references; the
    group that names bulkId:qwerty comes first here, the user after it."""
    results = bulk(client, [
        post_group('ytrewq', 'Tour Guides', ['bulkId:qwerty', 'bulkId:asdf']),
        {'method': 'PATCH', 'path': '/Users/bulkId:qwerty',
         'data': {'schemas': [PATCH_SCHEMA], 'Operations': [{'op': 'replace', 'path': 'title', 'value': 'Guide'}]}},
        post_user('qwerty', 'Alice'),
        post_user('asdf', 'Bob'),
    ])
    by_bulk_id = {r.get('bulkId', r['method']): r for r in results}
    assert {key: r['status'] for key, r in by_bulk_id.items()} == {
        'ytrewq': '201', 'qwerty': '201', 'asdf': '201', 'PATCH': '200'}
    # run in the order references need: the users before the group and the PATCH
    assert [r.get('bulkId') for r in results] == ['qwerty', 'asdf', 'ytrewq', None]
    assert member_names(client, created_id(by_bulk_id['ytrewq'])) == ['Alice', 'Bob']
    alice = client.get(f'/Users/{created_id(by_bulk_id["qwerty"])}', status=200).json
    assert alice['title'] == 'Guide'
    assert by_bulk_id['PATCH']['location'] == alice['meta']['location']
    assert by_bulk_id['PATCH']['version'] == alice['meta']['version']


def test_rfc_3_7_3_add_update_remove_a_user(client):
    """RFC 7644 §3.7.3: 'The following example shows how to add, update, and remove
    a user': a POST (bulkId "qwerty"), a PUT and a PATCH with the user's version, a
    DELETE. Answered: 201, 200, 200, 204, with location and version."""
    bob = client.create_user('Bob')
    smith = client.create_user('Smith')
    gone = client.create_user('Gone')
    results = bulk(client, [
        post_user('qwerty', 'Alice'),
        {'method': 'PUT', 'path': f'/Users/{bob["id"]}', 'version': bob['meta']['version'],
         'data': {'schemas': [USER_SCHEMA], 'id': bob['id'], 'userName': 'Bob'}},
        {'method': 'PATCH', 'path': f'/Users/{smith["id"]}', 'version': smith['meta']['version'],
         'data': {'schemas': [PATCH_SCHEMA], 'Operations': [
             {'op': 'add', 'path': 'nickName', 'value': 'Smithy'}]}},
        {'method': 'DELETE', 'path': f'/Users/{gone["id"]}', 'version': gone['meta']['version']},
    ], failOnErrors=1)
    assert [(r['method'], r['status']) for r in results] == [
        ('POST', '201'), ('PUT', '200'), ('PATCH', '200'), ('DELETE', '204')]
    assert results[1]['location'] == bob['meta']['location']
    assert results[2]['version'] == client.get(f'/Users/{smith["id"]}').json['meta']['version'] == 'W/"2"'
    assert client.get(f'/Users/{smith["id"]}').json['nickName'] == 'Smithy'
    client.get(f'/Users/{gone["id"]}', status=404)
    assert 'version' not in results[3]


def test_rfc_3_7_3_every_operation_failing_each_answered_with_its_error(client):
    """RFC 7644 §3.7.3: 'an example in which all operations failed' (failOnErrors not
    given: every operation is processed): each has its status and, as `response`,
    the SCIM Error its single request would get."""
    alice = client.create_user('Alice')
    results = bulk(client, [
        post_user('qwerty', 'alice'),   # userName is case-insensitive: taken
        {'method': 'PUT', 'path': f'/Users/{alice["id"]}', 'version': 'W/"9"',
         'data': {'schemas': [USER_SCHEMA], 'userName': 'Alice2'}},
        {'method': 'PATCH', 'path': '/Users/no-such-user',
         'data': {'schemas': [PATCH_SCHEMA], 'Operations': [{'op': 'add', 'path': 'nickName', 'value': 'x'}]}},
        {'method': 'DELETE', 'path': '/Users/no-such-user'},
    ])
    assert [(r['method'], r['status'], r['response']['status'], r['response'].get('scimType')) for r in results] == [
        ('POST', '409', '409', 'uniqueness'), ('PUT', '412', '412', None),
        ('PATCH', '404', '404', None), ('DELETE', '404', '404', None)]
    assert results[0]['bulkId'] == 'qwerty'
    assert all(r['response']['schemas'] == ['urn:ietf:params:scim:api:messages:2.0:Error'] for r in results)
    assert client.get(f'/Users/{alice["id"]}').json['userName'] == 'Alice'


def test_rfc_3_7_3_fail_on_errors_stops_and_leaves_out_what_was_not_processed(client):
    """RFC 7644 §3.7.3: with "failOnErrors": 1, 'The service provider stops processing
    the bulk operation and immediately returns a response to the client. The response
    contains the error and any successful results prior to the error.'"""
    client.create_user('taken')
    results = bulk(client, [
        post_user('a', 'first'), post_user('b', 'taken'), post_user('c', 'never'),
    ], failOnErrors=1)
    assert [(r['bulkId'], r['status']) for r in results] == [('a', '201'), ('b', '409')]
    assert client.get('/Users?filter=userName%20eq%20%22never%22').json['totalResults'] == 0


def test_fail_on_errors_counts_errors_up_to_its_number(client):
    results = bulk(client, [
        post_user('a', 'x'), post_user('b', 'x'), post_user('c', 'y'), post_user('d', 'y'), post_user('e', 'z'),
    ], failOnErrors=2)
    assert [r['status'] for r in results] == ['201', '409', '201', '409']


def test_without_fail_on_errors_every_operation_is_processed(client):
    results = bulk(client, [post_user('a', 'x'), post_user('b', 'x'), post_user('c', 'y')])
    assert [r['status'] for r in results] == ['201', '409', '201']


# ---------------------------------------------------------------------------
# bulkId references that cannot be resolved
# ---------------------------------------------------------------------------

def test_a_bulk_id_no_operation_defines_fails_the_operation_that_names_it(client):
    results = bulk(client, [post_group('g', 'Guides', ['bulkId:nobody']), post_user('u', 'Alice')])
    assert [(r['bulkId'], r['status']) for r in results] == [('g', '409'), ('u', '201')]
    assert 'bulkId:nobody' in results[0]['response']['detail']
    assert client.get('/Groups').json['totalResults'] == 0


def test_a_bulk_id_whose_post_failed_fails_the_operations_that_name_it(client):
    client.create_user('taken')
    results = bulk(client, [
        post_user('u', 'taken'),
        post_group('g', 'Guides', ['bulkId:u']),
        {'method': 'DELETE', 'path': '/Users/bulkId:u'},
    ])
    assert [r['status'] for r in results] == ['409', '409', '409']
    assert 'its POST failed' in results[1]['response']['detail']
    assert client.get('/Groups').json['totalResults'] == 0


def test_a_bulk_id_naming_a_group_in_members_is_a_400(client):
    """Members are users: a group's bulkId in members is refused, so no circle of
    groups can arise (RFC 7644 §3.7.2's "Group A"/"Group B" example)."""
    results = bulk(client, [
        post_group('a', 'Group A', ['bulkId:b']),
        post_group('b', 'Group B', ['bulkId:a']),
    ])
    assert [(r['bulkId'], r['status'], r['response']['scimType']) for r in results] == [
        ('a', '400', 'invalidValue'), ('b', '400', 'invalidValue')]
    assert 'members are users' in results[0]['response']['detail']
    assert client.get('/Groups').json['totalResults'] == 0


def test_a_circle_of_managers_is_a_409_not_a_hang(client):
    enterprise = 'urn:ietf:params:scim:schemas:extension:enterprise:2.0:User'
    results = bulk(client, [
        post_user('a', 'ann', **{enterprise: {'manager': {'value': 'bulkId:b'}}}),
        post_user('b', 'bob', **{enterprise: {'manager': {'value': 'bulkId:a'}}}),
    ])
    assert sorted(r['status'] for r in results) == ['409', '409']


def test_a_long_chain_of_references_is_resolved_without_recursion(make_app):
    """Each user's manager is the next one's bulkId: the last runs first, and a chain
    longer than Python's recursion limit is no 500."""
    client = ScimClient(make_app(bulk_max_operations=1200))
    enterprise = 'urn:ietf:params:scim:schemas:extension:enterprise:2.0:User'
    count = 1200
    operations = [post_user(f'u{i}', f'user{i}', **({enterprise: {'manager': {'value': f'bulkId:u{i + 1}'}}}
                                                    if i + 1 < count else {})) for i in range(count)]
    results = bulk(client, operations)
    assert [r['status'] for r in results] == ['201'] * count
    assert results[0]['bulkId'] == f'u{count - 1}'
    first = client.get(f'/Users/{created_id(results[-1])}').json
    assert first['userName'] == 'user0'
    assert first[enterprise]['manager']['value'] == created_id(results[-2])


def test_a_path_bulk_id_of_the_other_resource_type_is_a_400(client):
    results = bulk(client, [post_group('g', 'Guides'), {'method': 'DELETE', 'path': '/Users/bulkId:g'}])
    assert results[1]['status'] == '400'
    assert client.get('/Groups').json['totalResults'] == 1


# ---------------------------------------------------------------------------
# Each operation as its own request
# ---------------------------------------------------------------------------

def test_an_operation_is_validated_as_its_single_request_is(client):
    results = bulk(client, [
        post_user('a', ''),
        {'method': 'POST', 'path': '/Users', 'bulkId': 'b', 'data': {'schemas': [USER_SCHEMA]}},
        {'method': 'POST', 'path': '/Groups', 'bulkId': 'c', 'data': {'schemas': [GROUP_SCHEMA]}},
    ])
    for result in results:
        assert result['status'] == '400' and result['response']['status'] == '400'
    single = client.post('/Users', {'schemas': [USER_SCHEMA]})
    assert results[1]['response'] == single.json


def test_a_failing_operation_leaves_nothing_half_applied_and_undoes_no_other(client):
    """A group PUT whose members name a user that does not exist is refused whole,
    as its single request is: the group's name and members stay; the operations
    before and after it stand."""
    ann = client.create_user('ann')
    group = client.create_group('Guides', [ann['id']])
    before = store_rows()
    results = bulk(client, [
        {'method': 'PUT', 'path': f'/Groups/{group["id"]}',
         'data': {'schemas': [GROUP_SCHEMA], 'displayName': 'Renamed',
                  'members': [{'value': ann['id']}, {'value': 'no-such-user'}]}},
        {'method': 'PATCH', 'path': f'/Groups/{group["id"]}', 'data': {'schemas': [PATCH_SCHEMA], 'Operations': [
            {'op': 'replace', 'path': 'displayName', 'value': 'Renamed'},
            {'op': 'add', 'path': 'members', 'value': [{'value': 'no-such-user'}]}]}},
    ])
    assert [r['status'] for r in results] == ['400', '400']
    assert store_rows() == before
    results = bulk(client, [
        post_user('b', 'bob'),
        {'method': 'PATCH', 'path': f'/Groups/{group["id"]}', 'data': {'schemas': [PATCH_SCHEMA], 'Operations': [
            {'op': 'add', 'path': 'members', 'value': [{'value': 'bulkId:b'}]},
            {'op': 'remove', 'path': 'members[value eq "nobody"]'},
            {'op': 'replace', 'path': 'displayName', 'value': 'Renamed'}]}},
        post_user('c', 'cat'),
    ])
    assert [r['status'] for r in results] == ['201', '200', '201']
    assert member_names(client, group['id']) == ['ann', 'bob']


def test_version_is_if_match(client):
    ann = client.create_user('ann')
    results = bulk(client, [
        {'method': 'PATCH', 'path': f'/Users/{ann["id"]}', 'version': 'W/"1"', 'data': {
            'schemas': [PATCH_SCHEMA], 'Operations': [{'op': 'replace', 'path': 'title', 'value': 'one'}]}},
        {'method': 'PATCH', 'path': f'/Users/{ann["id"]}', 'version': 'W/"1"', 'data': {
            'schemas': [PATCH_SCHEMA], 'Operations': [{'op': 'replace', 'path': 'title', 'value': 'two'}]}},
        {'method': 'DELETE', 'path': f'/Users/{ann["id"]}', 'version': 'W/"1"'},
    ])
    assert [r['status'] for r in results] == ['200', '412', '412']
    assert results[0]['version'] == 'W/"2"'
    assert client.get(f'/Users/{ann["id"]}').json['title'] == 'one'


def test_entra_patch_dialect_is_understood_in_a_bulk_operation(client):
    """Entra sends `"op": "Replace"` and booleans as "False": the same normalisers run."""
    ann = client.create_user('ann')
    results = bulk(client, [{'method': 'PATCH', 'path': f'/Users/{ann["id"]}', 'data': {
        'schemas': [PATCH_SCHEMA], 'Operations': [{'op': 'Replace', 'path': 'active', 'value': 'False'}]}}])
    assert results[0]['status'] == '200', results
    assert client.get(f'/Users/{ann["id"]}').json['active'] is False


def test_group_operations_by_id_and_their_members(client):
    ann, bob = client.create_user('ann'), client.create_user('bob')
    group = client.create_group('Guides', [ann['id']])
    results = bulk(client, [
        {'method': 'PATCH', 'path': f'/Groups/{group["id"]}', 'data': {'schemas': [PATCH_SCHEMA], 'Operations': [
            {'op': 'add', 'path': 'members', 'value': [{'value': bob['id']}]}]}},
        post_group('other', 'Guides'),
    ])
    assert [(r['status'], r.get('response', {}).get('scimType')) for r in results] == [
        ('200', None), ('409', 'uniqueness')]
    assert member_names(client, group['id']) == ['ann', 'bob']
    results = bulk(client, [{'method': 'DELETE', 'path': f'/Groups/{group["id"]}'}])
    assert results == [{'method': 'DELETE', 'location': group['meta']['location'], 'status': '204'}]


# ---------------------------------------------------------------------------
# A bad BulkRequest, a bad operation
# ---------------------------------------------------------------------------

@pytest.mark.parametrize('raw', [
    b'not json',
    b'[]',
    json.dumps({'Operations': []}).encode(),
    json.dumps({'schemas': [PATCH_SCHEMA], 'Operations': []}).encode(),
    json.dumps({'schemas': [BULK_REQUEST]}).encode(),
    json.dumps({'schemas': [BULK_REQUEST], 'Operations': {'method': 'POST'}}).encode(),
    json.dumps({'schemas': [BULK_REQUEST], 'Operations': ['POST']}).encode(),
    json.dumps({'schemas': [BULK_REQUEST], 'Operations': [], 'failOnErrors': 0}).encode(),
    json.dumps({'schemas': [BULK_REQUEST], 'Operations': [], 'failOnErrors': '1'}).encode(),
    json.dumps({'schemas': [BULK_REQUEST], 'Operations': [post_user('a', 'x'), post_user('a', 'y')]}).encode(),
])
def test_a_bad_bulk_request_is_a_400_and_runs_nothing(client, raw):
    assert_scim_error(client.request('POST', '/Bulk', raw=raw), 400)
    assert client.get('/Users').json['totalResults'] == 0


@pytest.mark.parametrize('operation,scim_type', [
    ({'method': 'GET', 'path': '/Users'}, 'invalidSyntax'),
    ({'path': '/Users', 'bulkId': 'a', 'data': {}}, 'invalidSyntax'),
    ({'method': 'POST', 'path': '/Users', 'data': {'schemas': [USER_SCHEMA], 'userName': 'x'}}, 'invalidValue'),
    ({'method': 'POST', 'path': '/Users', 'bulkId': '', 'data': {'schemas': [USER_SCHEMA], 'userName': 'x'}},
     'invalidValue'),
    ({'method': 'POST', 'path': '/Things', 'bulkId': 'a', 'data': {}}, 'invalidPath'),
    ({'method': 'POST', 'path': '/Users/abc', 'bulkId': 'a', 'data': {}}, 'invalidPath'),
    ({'method': 'PUT', 'path': '/Users', 'data': {}}, 'invalidPath'),
    ({'method': 'DELETE', 'path': '/Users/a/b'}, 'invalidPath'),
    ({'method': 'DELETE'}, 'invalidPath'),
    ({'method': 'PATCH', 'path': '/Groups/x'}, 'invalidSyntax'),
    ({'method': 'DELETE', 'path': '/Users/x', 'version': 3}, 'invalidValue'),
])
def test_a_bad_operation_fails_alone(client, operation, scim_type):
    results = bulk(client, [operation, post_user('ok', 'fine')])
    assert results[0]['status'] == '400'
    assert results[0]['response']['scimType'] == scim_type
    assert results[1]['status'] == '201'


def test_an_empty_bulk_request_answers_no_operations(client):
    assert bulk(client, []) == []


def test_bulk_needs_the_token(client):
    response = client.request('POST', '/Bulk', {'schemas': [BULK_REQUEST], 'Operations': [post_user('a', 'x')]},
                              headers={'Authorization': 'Bearer wrong'})
    assert_scim_error(response, 401)
    assert client.get('/Users').json['totalResults'] == 0


# ---------------------------------------------------------------------------
# Limits (RFC 7644 §3.7.4)
# ---------------------------------------------------------------------------

def test_service_provider_config_advertises_the_limits(make_app):
    client = ScimClient(make_app(bulk_max_operations=7, bulk_max_payload_bytes=5000))
    assert client.get('/ServiceProviderConfig').json['bulk'] == {
        'supported': True, 'maxOperations': 7, 'maxPayloadSize': 5000}


def test_too_many_operations_is_a_413_that_states_the_limits(make_app):
    client = ScimClient(make_app(bulk_max_operations=2, bulk_max_payload_bytes=5000))
    assert bulk(client, [post_user('a', 'a'), post_user('b', 'b')]) != []
    response = bulk(client, [post_user('c', 'c'), post_user('d', 'd'), post_user('e', 'e')], status=413)
    detail = assert_scim_error(response, 413)['detail']
    assert '3 operations' in detail and '{"maxOperations":2,"maxPayloadSize":5000}' in detail
    assert client.get('/Users').json['totalResults'] == 2


def test_too_large_a_payload_is_a_413_that_states_the_limits(make_app):
    client = ScimClient(make_app(bulk_max_operations=10, bulk_max_payload_bytes=5000, max_body_bytes=100000))
    response = bulk(client, [post_user('a', 'a', title='x' * 5000)], status=413)
    detail = assert_scim_error(response, 413)['detail']
    assert 'maxPayloadSize' in detail and '{"maxOperations":10,"maxPayloadSize":5000}' in detail
    assert client.get('/Users').json['totalResults'] == 0


def test_the_bulk_payload_limit_may_exceed_max_body_bytes(make_app):
    client = ScimClient(make_app(max_body_bytes=2000, bulk_max_payload_bytes=100000))
    results = bulk(client, [post_user(str(i), f'user{i}', title='x' * 100) for i in range(20)])
    assert [r['status'] for r in results] == ['201'] * 20
    assert_scim_error(client.post('/Users', {'schemas': [USER_SCHEMA], 'userName': 'x', 'title': 'x' * 3000}), 413)


def test_waitress_reads_a_body_as_large_as_either_limit_so_the_app_answers_413():
    for max_body, max_bulk in ((1000, 500000), (500000, 1000)):
        settings = scim_server.normalise_settings({'token': 't', 'max_body_bytes': max_body,
                                                   'bulk_max_payload_bytes': max_bulk})
        options = scim_server.waitress_options(settings)
        assert options['max_request_body_size'] == 500000 + scim_server.BODY_HEADROOM


@pytest.mark.parametrize('key', ['bulk_max_operations', 'bulk_max_payload_bytes'])
@pytest.mark.parametrize('value', ['0', '-1', 'lots'])
def test_a_bad_bulk_limit_is_a_settings_error(key, value):
    with pytest.raises(scim_server.SettingsError, match=key):
        scim_server.normalise_settings({'token': 't', key: value})


# ---------------------------------------------------------------------------
# The dashboard
# ---------------------------------------------------------------------------

def test_the_dashboard_records_a_bulk_request_as_one_exchange(app, client):
    bulk(client, [post_user('a', 'ann', password='Secret-1'), post_user('b', 'bob')])
    app.recorder.exchanges.flush()
    rows = list(store.Exchange.select().dicts())
    assert [(row['method'], row['path'], row['status']) for row in rows] == [('POST', '/scim/v2/Bulk', 200)]
    assert 'Secret-1' not in json.dumps(rows, default=str)
    assert dashboard.SCRUBBED in rows[0]['request_body']


# ---------------------------------------------------------------------------
# A review's findings: locations of failures, slices, locks held by others
# ---------------------------------------------------------------------------

def test_a_failed_put_patch_or_delete_still_says_where(client):
    """RFC 7644 §3.7: location is 'REQUIRED in a response, except in the event of a
    POST failure'."""
    user_id = client.create_user('ann')['id']
    results = bulk(client, [
        {'method': 'DELETE', 'path': '/Users/nosuch'},
        {'method': 'PUT', 'path': f'/Users/{user_id}', 'version': 'W/"7"',
         'data': {'schemas': [USER_SCHEMA], 'userName': 'ann'}},
        {'method': 'PATCH', 'path': '/Users/bulkId:nobody', 'data': {'schemas': [PATCH_SCHEMA], 'Operations': [
            {'op': 'replace', 'path': 'title', 'value': 'x'}]}},
        post_user('dup', 'ann'),
    ])
    assert [(result['status'], result.get('location', '').split('/scim/v2', 1)[-1]) for result in results] == [
        ('404', '/Users/nosuch'), ('412', f'/Users/{user_id}'), ('409', '/Users/bulkId:nobody'), ('409', '')]
    assert 'location' not in results[3]


def test_a_fault_of_the_database_answers_its_slice_and_runs_no_more(client, monkeypatch):
    """Operations are written in slices (here one operation each): a full disk in
    the third's undoes only that slice, which answers 507; the two before it stay
    written, and the rest are not run."""
    monkeypatch.setattr(scim_server, 'BULK_SLICE_SECONDS', 0)
    creates = []
    real_create = store.create_user

    def create_user(resource):
        creates.append(resource['userName'])
        if len(creates) == 3:
            raise store.OperationalError('database or disk is full')
        return real_create(resource)
    monkeypatch.setattr(store, 'create_user', create_user)
    results = bulk(client, [post_user(f'u{n}', f'user{n}') for n in range(5)])
    assert [result['status'] for result in results] == ['201', '201', '507']
    assert results[2]['response']['status'] == '507' and 'location' not in results[2]
    names = sorted(user['userName'] for user in client.get('/Users', status=200).json['Resources'])
    assert names == ['user0', 'user1']


@pytest.mark.skipif(not ON_POSTGRESQL, reason='a PostgreSQL row lock held by another session')
def test_an_operation_that_waits_too_long_for_a_row_fails_alone(make_app, database_url):
    """A lock another session holds fails the operation that needs it (503), not the
    bulk request: the operations before and after it are written."""
    client = ScimClient(make_app(lock_wait='1'))
    locked = client.create_user('locked')['id']
    other = postgresql(database_url)
    other.autocommit = False
    other.cursor().execute('SELECT id FROM users WHERE id = %s FOR UPDATE', (locked,))
    try:
        results = bulk(client, [
            post_user('a', 'before'),
            {'method': 'PATCH', 'path': f'/Users/{locked}', 'data': {'schemas': [PATCH_SCHEMA], 'Operations': [
                {'op': 'replace', 'path': 'title', 'value': 'x'}]}},
            post_user('b', 'after'),
        ])
    finally:
        other.rollback()
        other.close()
    assert [result['status'] for result in results] == ['201', '503', '201']
    assert results[1]['location'].endswith(f'/Users/{locked}')
    names = sorted(user['userName'] for user in client.get('/Users', status=200).json['Resources'])
    assert names == ['after', 'before', 'locked']
