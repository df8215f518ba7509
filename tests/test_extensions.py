"""Extension schemas declared in config.ini (`extensions = file.json`): described by
/Schemas and /ResourceTypes, their values type-checked, searchable; a bad file stops
the server with one line. Undeclared extensions stay stored and returned as sent."""

import json
from urllib.parse import quote

import pytest

import scimschema
from conftest import GROUP_SCHEMA, TOKEN, USER_SCHEMA, ScimClient, assert_scim_error
from serverprocess import clean_environment, run_server

OKTA = 'urn:okta:scimlite:1.0:user:custom'
TEAM = 'urn:example:scimlite:1.0:group:team'
DECLARED = {'schemas': ['urn:ietf:params:scim:api:messages:2.0:ListResponse'], 'Resources': [
    {'id': OKTA, 'name': 'OktaCustom', 'description': 'Custom attributes from Okta',
     'attributes': [
         {'name': 'costCenter', 'type': 'string'},
         {'name': 'badgeNumber', 'type': 'integer', 'uniqueness': 'none'},
         {'name': 'fte', 'type': 'decimal'},
         {'name': 'remote', 'type': 'boolean'},
         {'name': 'hired', 'type': 'dateTime'},
         {'name': 'desk', 'type': 'complex', 'subAttributes': [
             {'name': 'building', 'type': 'string'}, {'name': 'floor', 'type': 'integer'}]},
         {'name': 'badgeIssued', 'type': 'string', 'mutability': 'readOnly'},
     ]},
    {'id': TEAM, 'resourceType': 'Group', 'attributes': [{'name': 'room', 'type': 'string'}]},
]}


@pytest.fixture
def declared(tmp_path, make_app):
    path = tmp_path / 'extensions.json'
    path.write_text(json.dumps(DECLARED), encoding='utf-8')
    return ScimClient(make_app(extensions=str(path)))


def test_declared_schemas_are_described_by_schemas_and_resource_types(declared):
    listed = {schema['id']: schema for schema in declared.get('/Schemas', status=200).json['Resources']}
    assert set(listed) == {*scimschema.BUILT_IN_SCHEMAS, OKTA, TEAM}
    okta = declared.get(f'/Schemas/{OKTA}', status=200).json
    assert (okta['name'], okta['description']) == ('OktaCustom', 'Custom attributes from Okta')
    attributes = {attribute['name']: attribute for attribute in okta['attributes']}
    assert attributes['badgeNumber']['type'] == 'integer'
    assert attributes['desk']['subAttributes'][1] == {
        'name': 'floor', 'type': 'integer', 'multiValued': False, 'description': '', 'required': False,
        'caseExact': False, 'mutability': 'readWrite', 'returned': 'default', 'uniqueness': 'none'}
    users = declared.get('/ResourceTypes/User', status=200).json
    groups = declared.get('/ResourceTypes/Group', status=200).json
    assert [extension['schema'] for extension in users['schemaExtensions']] == [scimschema.ENTERPRISE_SCHEMA, OKTA]
    assert [extension['schema'] for extension in groups['schemaExtensions']] == [TEAM]


def test_declared_attributes_are_type_checked_stored_and_searchable(declared):
    values = {'costCenter': 'CC-7', 'badgeNumber': 4711, 'fte': 0.8, 'remote': True,
              'hired': '2024-01-02T03:04:05Z', 'desk': {'building': 'B', 'floor': 3}, 'badgeIssued': 'ignored'}
    created = declared.post('/Users', {'schemas': [USER_SCHEMA, OKTA], 'userName': 'ann@example.com',
                                       OKTA.upper(): values}, status=201).json
    assert created[OKTA] == {key: value for key, value in values.items() if key != 'badgeIssued'}
    for text, expected in [(f'{OKTA}:badgeNumber gt 4000', 1), (f'{OKTA}:badgeNumber eq "4711"', 0),
                           (f'{OKTA}:desk.floor eq 3', 1), (f'{OKTA}:remote eq true', 1),
                           (f'{OKTA}:costCenter eq "cc-7"', 1)]:
        assert declared.get(f'/Users?filter={quote(text)}', status=200).json['totalResults'] == expected, text
    for attribute, wrong in [('badgeNumber', '4711'), ('badgeNumber', 1.5), ('fte', 'most'), ('remote', 'yes'),
                             ('hired', 'yesterday'), ('desk', 'B3'), ('costCenter', 7)]:
        body = {'schemas': [USER_SCHEMA, OKTA], 'userName': f'{attribute}@example.com', OKTA: {attribute: wrong}}
        refused = assert_scim_error(declared.post('/Users', body), 400, 'invalidValue')
        assert f'{OKTA}:{attribute}' in refused['detail']
    patched = declared.patch(f'/Users/{created["id"]}', [
        {'op': 'replace', 'path': f'{OKTA}:desk.floor', 'value': 4}], status=200).json
    assert patched[OKTA]['desk'] == {'building': 'B', 'floor': 4}
    assert_scim_error(declared.patch(f'/Users/{created["id"]}', [
        {'op': 'replace', 'path': f'{OKTA}:badgeNumber', 'value': 'x'}]), 400, 'invalidValue')
    group = declared.post('/Groups', {'schemas': [GROUP_SCHEMA, TEAM], 'displayName': 'G', TEAM: {'room': 'R1'}},
                          status=201).json
    assert group[TEAM] == {'room': 'R1'}


def test_without_declarations_an_extension_is_stored_as_sent(client):
    created = client.post('/Users', {'schemas': [USER_SCHEMA, OKTA], 'userName': 'free@example.com',
                                     OKTA: {'badgeNumber': 'not checked'}}, status=201).json
    assert created[OKTA] == {'badgeNumber': 'not checked'}
    assert OKTA not in {schema['id'] for schema in client.get('/Schemas').json['Resources']}


@pytest.mark.parametrize('content, says', [
    ('not json', 'cannot read the extensions file'),
    (json.dumps([{'id': 'not-a-urn', 'attributes': []}]), 'new URN'),
    (json.dumps([{'id': USER_SCHEMA, 'attributes': []}]), 'new URN'),
    (json.dumps([{'id': OKTA, 'attributes': [{'name': 'x', 'type': 'float'}]}]), 'type must be one of'),
    (json.dumps([{'id': OKTA, 'attributes': [{'name': 'bad name'}]}]), 'needs a "name"'),
    (json.dumps([{'id': OKTA, 'resourceType': 'Device', 'attributes': []}]), 'resourceType must be User or Group'),
    (json.dumps([{'id': OKTA, 'attributes': [{'name': 'c', 'type': 'complex'}]}]), 'has subAttributes'),
    (json.dumps([{'id': OKTA, 'attributes': [{'name': 'm', 'mutability': 'sometimes'}]}]), 'mutability must be'),
])
def test_a_bad_extensions_file_stops_the_server_with_one_line(tmp_path, database_url, content, says):
    path = tmp_path / 'extensions.json'
    path.write_text(content, encoding='utf-8')
    process = run_server('--port', '0', '--token', TOKEN, '--database', database_url,
                         env={**clean_environment(), 'SCIM_EXTENSIONS': str(path)})
    output, _ = process.communicate(timeout=30)
    lines = [line for line in output.splitlines() if line.strip()]
    assert process.returncode != 0 and len(lines) == 1 and says in lines[0], output


def test_an_extension_held_puts_its_urn_in_schemas_and_filters_find_it(client):
    """RFC 7643 §3: "schemas" holds the URIs of the schemas the resource holds. A body
    with enterprise data but only the core schema listed is stored with both, so
    `schemas eq` (RFC 7644 §3.4.2.2's own example) finds it."""
    enterprise = 'urn:ietf:params:scim:schemas:extension:enterprise:2.0:User'
    created = client.create_user('p2', schemas=[USER_SCHEMA], **{enterprise: {'department': 'd'}})
    assert created['schemas'] == [USER_SCHEMA, enterprise]
    found = client.get(f'/Users?filter=schemas eq "{enterprise}"'.replace(' ', '%20'), status=200).json
    assert [user['userName'] for user in found['Resources']] == ['p2']
