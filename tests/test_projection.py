"""attributes / excludedAttributes (RFC 7644 §3.4.2.5) on reads, lists and writes."""

from urllib.parse import quote

import pytest

from conftest import USER_SCHEMA, assert_scim_error

ENTERPRISE = 'urn:ietf:params:scim:schemas:extension:enterprise:2.0:User'


@pytest.fixture
def ann(client):
    return client.create_user(
        'ann@example.com', schemas=[USER_SCHEMA, ENTERPRISE], displayName='Ann', title='Boss',
        name={'givenName': 'Ann', 'familyName': 'Lee'},
        emails=[{'value': 'ann@work.example', 'type': 'work', 'primary': True},
                {'value': 'ann@home.example', 'type': 'home'}],
        **{ENTERPRISE: {'employeeNumber': '42', 'department': 'R&D'}})


def read(client, user, query):
    return client.get(f'/Users/{user["id"]}?{query}', status=200).json


ALWAYS = {'schemas', 'id', 'meta'}


@pytest.mark.parametrize('names, expected', [
    ('userName', {'userName': 'ann@example.com'}),
    ('USERNAME,title', {'userName': 'ann@example.com', 'title': 'Boss'}),
    ('name.givenName', {'name': {'givenName': 'Ann'}}),
    ('emails.value', {'emails': [{'value': 'ann@work.example'}, {'value': 'ann@home.example'}]}),
    ('emails.value,emails.type', {'emails': [{'value': 'ann@work.example', 'type': 'work'},
                                             {'value': 'ann@home.example', 'type': 'home'}]}),
    (ENTERPRISE, {ENTERPRISE: {'employeeNumber': '42', 'department': 'R&D'}}),
    (f'{ENTERPRISE}:employeeNumber', {ENTERPRISE: {'employeeNumber': '42'}}),
    (f'{USER_SCHEMA}:title', {'title': 'Boss'}),
    ('nosuch', {}),
])
def test_attributes_returns_those_and_the_always_returned(client, ann, names, expected):
    document = read(client, ann, f'attributes={quote(names)}')
    assert {k: v for k, v in document.items() if k not in ALWAYS} == expected
    assert document['id'] == ann['id'] and document['meta'] == ann['meta']


@pytest.mark.parametrize('names, missing', [
    ('title', [('title',)]),
    ('emails.type', [('emails', 0, 'type'), ('emails', 1, 'type')]),
    ('name.familyName', [('name', 'familyName')]),
    (ENTERPRISE, [(ENTERPRISE,)]),
    (f'{ENTERPRISE}:department', [(ENTERPRISE, 'department')]),
])
def test_excluded_attributes_leave_out_exactly_those(client, ann, names, missing):
    document = read(client, ann, f'excludedAttributes={quote(names)}')
    expected = dict(ann)
    for path in missing:
        container = expected
        for step in path[:-1]:
            container[step] = container[step].copy() if isinstance(container[step], (dict, list)) else container[step]
            container = container[step]
            if isinstance(container, list):
                container[:] = [dict(item) for item in container]
        del container[path[-1]]
    assert document == expected


def test_id_schemas_and_meta_cannot_be_excluded(client, ann):
    document = read(client, ann, 'excludedAttributes=id,schemas,meta')
    assert document == ann


def test_projection_applies_to_lists_and_writes(client, ann):
    listing = client.get('/Users?attributes=userName', status=200).json
    assert listing['Resources'] == [{'schemas': ann['schemas'], 'id': ann['id'], 'meta': ann['meta'],
                                     'userName': 'ann@example.com'}]
    patched = client.patch(f'/Users/{ann["id"]}?attributes=title',
                           [{'op': 'replace', 'path': 'title', 'value': 'CEO'}], status=200).json
    assert {k: v for k, v in patched.items() if k not in ALWAYS} == {'title': 'CEO'}
    created = client.post('/Users?excludedAttributes=emails,name',
                          {'schemas': [USER_SCHEMA], 'userName': 'b@example.com', 'name': {'givenName': 'B'}},
                          status=201).json
    assert 'name' not in created and created['userName'] == 'b@example.com'


def test_members_value_only(client):
    user = client.create_user('m@example.com')
    group = client.create_group('Team', [user['id']])
    document = client.get(f'/Groups/{group["id"]}?attributes=members.value', status=200).json
    assert document['members'] == [{'value': user['id']}]
    assert 'displayName' not in document


def test_both_parameters_at_once_is_400(client, ann):
    assert_scim_error(client.get(f'/Users/{ann["id"]}?attributes=title&excludedAttributes=name'), 400, 'invalidValue')
