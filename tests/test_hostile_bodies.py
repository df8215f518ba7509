"""Bodies with a wrong type for each attribute the schemas define, generated from the
schemas themselves: a 400 invalidValue whose detail names the attribute, and nothing
stored or changed (issue #6, bodies)."""

import pytest

import scim_server
import scimschema
from conftest import GROUP_SCHEMA, USER_SCHEMA, assert_scim_error, store_rows

WRONG = {   # a value of another type, for each type an attribute may have ("true" is Entra's boolean)
    'string': 42, 'reference': 42, 'binary': True, 'dateTime': 'not a time', 'boolean': 'yes',
    'integer': 'one', 'decimal': 'half', 'complex': 'not an object',
}


def cases(kind, urn=None):
    """(attribute path, body fragment with a wrong value) for every writable attribute and sub-attribute."""
    definitions = kind.definition(urn).values() if urn else kind.writable.values()
    for definition in definitions:
        if definition['mutability'] == 'readOnly' or definition['name'] in (kind.membership.attribute, 'password'):
            continue   # password is accepted and dropped unread (README): nothing of it is kept to check
        name = f'{urn}:{definition["name"]}' if urn else definition['name']
        if definition['multiValued']:
            yield name, 'not a list', 'must be a list'
            if definition['type'] == 'complex':
                for sub in definition['subAttributes']:
                    if sub['mutability'] != 'readOnly':
                        yield f'{name}[0].{sub["name"]}', [{sub['name']: WRONG[sub['type']]}], sub['name']
            else:
                yield f'{name}[0]', [WRONG[definition['type']]], definition['name']
            continue
        yield name, WRONG[definition['type']], definition['name']
        for sub in definition.get('subAttributes', ()):
            if sub['mutability'] != 'readOnly':
                yield f'{name}.{sub["name"]}', {sub['name']: WRONG[sub['type']]}, sub['name']


BUILT_IN = scimschema.Catalog()   # the resource types of an app that declares no extension
USERS, GROUPS = BUILT_IN.users, BUILT_IN.groups


def place(kind, attribute_path, value):
    """The body that puts `value` at the attribute (its first segment; the value carries the rest)."""
    required = {'userName': 'x@example.com'} if kind is USERS else {'displayName': 'G'}
    schema = USER_SCHEMA if kind is USERS else GROUP_SCHEMA
    if attribute_path.startswith('urn:'):
        urn, _, rest = attribute_path.rpartition(':')
        top = rest.split('.')[0].split('[')[0]
        return {'schemas': [schema, urn], **required, urn: {top: value}}
    top = attribute_path.split('.')[0].split('[')[0]
    return {'schemas': [schema], **required, top: value}


USER_CASES = [*cases(USERS), *cases(USERS, scimschema.ENTERPRISE_SCHEMA)]
GROUP_CASES = list(cases(GROUPS))
ALL_CASES = [(USERS, *case) for case in USER_CASES] + [(GROUPS, *case) for case in GROUP_CASES]


@pytest.mark.parametrize('kind, path, value, named', ALL_CASES,
                         ids=[f'{kind.name}:{path}' for kind, path, _, _ in ALL_CASES])
def test_a_wrong_type_for_any_attribute_is_400_naming_it(client, kind, path, value, named):
    existing = client.create_user('existing@example.com') if kind is USERS else client.create_group('G0')
    before = store_rows()
    for method, url in (('POST', kind.endpoint), ('PUT', f'{kind.endpoint}/{existing["id"]}')):
        body = assert_scim_error(client.request(method, url, place(kind, path, value)), 400, 'invalidValue')
        assert named in body['detail'], (path, body['detail'])
    assert store_rows() == before


def attribute_of(path):
    urn, _, rest = path.rpartition(':') if path.startswith('urn:') else ('', '', path)
    name = rest.split('[')[0].split('.')[0]
    return f'{urn}:{name}' if urn else name


def test_the_table_covers_every_writable_attribute():
    names = {attribute_of(path) for path, _, _ in USER_CASES}
    assert {'userName', 'name', 'emails', 'active', 'addresses', 'externalId',
            f'{scimschema.ENTERPRISE_SCHEMA}:manager'} <= names
    assert len(USER_CASES) > 50


@pytest.mark.parametrize('depth, status', [(scim_server.MAX_JSON_DEPTH, 201), (scim_server.MAX_JSON_DEPTH + 1, 400),
                                           (500, 400), (100_000, 400)])
def test_a_body_nesting_deeper_than_the_limit_is_400_invalid_syntax(client, depth, status):
    """An unknown extension is stored as sent, so how deep it may nest is fixed (32 levels)."""
    lists = depth - 2   # the body is one level, the extension's object another
    raw = ('{"schemas":["%s","urn:x:deep"],"userName":"deep%d@example.com","urn:x:deep":{"v":%s}}'
           % (USER_SCHEMA, depth, '[' * lists + ']' * lists)).encode()
    response = client.request('POST', '/Users', raw=raw)
    if status == 201:
        assert response.status_int == 201, response.body[:300]
    else:
        assert_scim_error(response, 400, 'invalidSyntax')
        assert client.get('/Users?count=0').json['totalResults'] == 0


@pytest.mark.parametrize('resource_id', ['x' * 10_000, 'a%2Fb', '..%2F..%2Fetc', '%20', '%C3%A9', '%E2%80%8B', "x'--"])
@pytest.mark.parametrize('method', ['GET', 'PUT', 'PATCH', 'DELETE'])
def test_odd_resource_ids_are_404_never_another_resource(client, resource_id, method):
    client.create_user('someone@example.com')
    body = None
    if method == 'PUT':
        body = {'schemas': [USER_SCHEMA], 'userName': 'someone-else@example.com'}
    elif method == 'PATCH':
        body = {'schemas': ['urn:ietf:params:scim:api:messages:2.0:PatchOp'],
                'Operations': [{'op': 'replace', 'path': 'title', 'value': 'x'}]}
    assert_scim_error(client.request(method, f'/Users/{resource_id}', body=body), 404)
    assert client.get('/Users?count=0').json['totalResults'] == 1
