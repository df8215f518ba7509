"""The discovery endpoints (RFC 7644 §4, RFC 7643 §5-7): what the server says it supports."""

from urllib.parse import quote

import pytest

from conftest import GROUP_SCHEMA, USER_SCHEMA, assert_scim_error

ENTERPRISE_SCHEMA = 'urn:ietf:params:scim:schemas:extension:enterprise:2.0:User'
LIST_SCHEMA = 'urn:ietf:params:scim:api:messages:2.0:ListResponse'
SCHEMA_SCHEMA = 'urn:ietf:params:scim:schemas:core:2.0:Schema'
RESOURCE_TYPE_SCHEMA = 'urn:ietf:params:scim:schemas:core:2.0:ResourceType'
SPC_SCHEMA = 'urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig'

ATTRIBUTE_TYPES = {'string', 'boolean', 'decimal', 'integer', 'dateTime', 'binary', 'reference', 'complex'}
MUTABILITIES = {'readOnly', 'readWrite', 'immutable', 'writeOnly'}
RETURNED = {'always', 'never', 'default', 'request'}
UNIQUENESS = {'none', 'server', 'global'}


def all_attributes(attributes, prefix=''):
    """(dotted name, definition) for every attribute and sub-attribute."""
    for definition in attributes:
        name = f'{prefix}{definition["name"]}'
        yield name, definition
        yield from all_attributes(definition.get('subAttributes', ()), f'{name}.')


def schema_by_urn(client, urn):
    return client.get(f'/Schemas/{quote(urn)}', status=200).json


def test_service_provider_config_says_what_is_supported(client):
    config = client.get('/ServiceProviderConfig', status=200).json
    assert config['schemas'] == [SPC_SCHEMA]
    assert config['patch']['supported'] is True
    assert config['bulk'] == {'supported': True, 'maxOperations': 1000, 'maxPayloadSize': 1024 * 1024}
    assert config['filter']['supported'] is True
    assert type(config['filter']['maxResults']) is int and config['filter']['maxResults'] > 0
    assert config['changePassword']['supported'] is False
    assert config['sort']['supported'] is True
    assert config['etag']['supported'] is True
    schemes = config['authenticationSchemes']
    assert schemes and all(scheme['type'] and scheme['name'] and scheme['description'] for scheme in schemes)
    assert 'oauthbearertoken' in {scheme['type'] for scheme in schemes}


def test_filter_max_results_is_the_largest_page_served(client):
    max_results = client.get('/ServiceProviderConfig').json['filter']['maxResults']
    listing = client.get(f'/Users?count={max_results + 1000}', status=200).json
    assert listing['itemsPerPage'] <= max_results


def test_resource_types_list_users_and_groups(client):
    listing = client.get('/ResourceTypes', status=200).json
    assert listing['schemas'] == [LIST_SCHEMA]
    assert listing['totalResults'] == len(listing['Resources']) == 2
    by_id = {resource['id']: resource for resource in listing['Resources']}
    assert set(by_id) == {'User', 'Group'}
    assert by_id['User']['endpoint'] == '/Users'
    assert by_id['User']['schema'] == USER_SCHEMA
    assert by_id['Group']['endpoint'] == '/Groups'
    assert by_id['Group']['schema'] == GROUP_SCHEMA


@pytest.mark.parametrize('name, endpoint, schema', [
    ('User', '/Users', USER_SCHEMA),
    ('Group', '/Groups', GROUP_SCHEMA),
])
def test_each_resource_type_by_id(client, name, endpoint, schema):
    resource_type = client.get(f'/ResourceTypes/{name}', status=200).json
    assert resource_type['schemas'] == [RESOURCE_TYPE_SCHEMA]
    assert resource_type['id'] == resource_type['name'] == name
    assert resource_type['endpoint'] == endpoint
    assert resource_type['schema'] == schema
    assert resource_type['meta']['resourceType'] == 'ResourceType'
    assert resource_type['meta']['location'].endswith(f'/ResourceTypes/{name}')


def test_user_resource_type_has_the_enterprise_extension(client):
    extensions = client.get('/ResourceTypes/User').json['schemaExtensions']
    assert {'schema': ENTERPRISE_SCHEMA, 'required': False} in extensions


def test_schemas_list_the_three_schemas(client):
    listing = client.get('/Schemas', status=200).json
    assert listing['schemas'] == [LIST_SCHEMA]
    assert listing['totalResults'] == 3
    assert {resource['id'] for resource in listing['Resources']} == {USER_SCHEMA, GROUP_SCHEMA, ENTERPRISE_SCHEMA}


@pytest.mark.parametrize('urn, name', [
    (USER_SCHEMA, 'User'),
    (GROUP_SCHEMA, 'Group'),
    (ENTERPRISE_SCHEMA, 'EnterpriseUser'),
])
def test_each_schema_by_urn(client, urn, name):
    schema = schema_by_urn(client, urn)
    assert schema['schemas'] == [SCHEMA_SCHEMA]
    assert schema['id'] == urn
    assert schema['name'] == name
    assert schema['attributes']
    assert schema['meta']['resourceType'] == 'Schema'


@pytest.mark.parametrize('urn', [USER_SCHEMA, GROUP_SCHEMA, ENTERPRISE_SCHEMA])
def test_every_attribute_states_its_characteristics(client, urn):
    for name, definition in all_attributes(schema_by_urn(client, urn)['attributes']):
        assert definition['type'] in ATTRIBUTE_TYPES, name
        assert type(definition['multiValued']) is bool, name
        assert type(definition['required']) is bool, name
        assert type(definition['caseExact']) is bool, name
        assert definition['mutability'] in MUTABILITIES, name
        assert definition['returned'] in RETURNED, name
        assert definition['uniqueness'] in UNIQUENESS, name
        assert ('subAttributes' in definition) == (definition['type'] == 'complex'), name


@pytest.mark.parametrize('urn, expected', [
    (USER_SCHEMA, {'userName', 'name', 'displayName', 'active', 'emails', 'groups', 'password'}),
    (GROUP_SCHEMA, {'displayName', 'members'}),
    (ENTERPRISE_SCHEMA, {'employeeNumber', 'department', 'manager'}),
])
def test_schemas_describe_the_attributes_we_store(client, urn, expected):
    names = {definition['name'] for definition in schema_by_urn(client, urn)['attributes']}
    assert expected <= names


def test_password_is_write_only_and_never_returned(client):
    attributes = {a['name']: a for a in schema_by_urn(client, USER_SCHEMA)['attributes']}
    assert attributes['password']['returned'] == 'never'
    assert attributes['password']['mutability'] == 'writeOnly'


def test_username_is_required_and_unique(client):
    attributes = {a['name']: a for a in schema_by_urn(client, USER_SCHEMA)['attributes']}
    assert attributes['userName']['required'] is True
    assert attributes['userName']['uniqueness'] == 'server'
    assert attributes['userName']['caseExact'] is False


def test_group_display_name_is_required_and_unique_in_schemas_and_in_its_own_document(client):
    listed = {schema['id']: schema for schema in client.get('/Schemas', status=200).json['Resources']}
    for document in (listed[GROUP_SCHEMA], schema_by_urn(client, GROUP_SCHEMA)):
        attributes = {a['name']: a for a in document['attributes']}
        assert (attributes['displayName']['required'], attributes['displayName']['uniqueness'],
                attributes['displayName']['caseExact']) == (True, 'server', False)


def test_user_groups_are_read_only(client):
    attributes = {a['name']: a for a in schema_by_urn(client, USER_SCHEMA)['attributes']}
    assert attributes['groups']['mutability'] == 'readOnly'
    assert attributes['groups']['multiValued'] is True


@pytest.mark.parametrize('path', [
    '/Schemas/urn:ietf:params:scim:schemas:core:2.0:Nope',
    '/Schemas/nope',
    '/ResourceTypes/Nope',
    '/ResourceTypes/Users',
])
def test_unknown_schema_or_resource_type_is_404(client, path):
    assert_scim_error(client.get(path), 404)


@pytest.mark.parametrize('method, path', [
    ('GET', '/Me'), ('POST', '/Me'), ('PUT', '/Me'), ('PATCH', '/Me'), ('DELETE', '/Me')])
def test_me_is_a_501_scim_error_not_a_404(client, method, path):
    """RFC 7644 §3.11: a server without /Me SHOULD answer 501, behind the token."""
    response = client.request(method, path, {'schemas': [USER_SCHEMA]} if method in ('POST', 'PUT', 'PATCH') else None)
    detail = assert_scim_error(response, 501)['detail']
    assert path in detail and 'not implemented' in detail
    client.headers.pop('Authorization')
    assert_scim_error(client.request(method, path), 401)
