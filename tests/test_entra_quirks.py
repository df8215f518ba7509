"""What Microsoft Entra ID (and its SCIM Validator) sends that the RFC does not:
"True"/"False" strings for declared booleans, in bodies and in filters, and
filtered writes to values that do not exist yet. Each test asserts the whole
resource that results, read back over HTTP."""

import json
from urllib.parse import quote

import pytest

from conftest import USER_SCHEMA, ScimClient, assert_scim_error

ENTERPRISE = 'urn:ietf:params:scim:schemas:extension:enterprise:2.0:User'
OKTA = 'urn:okta:scimlite:1.0:user:custom'   # declared below
UNDECLARED = 'urn:okta:someapp:1.0:user:custom'   # nobody declared it: kept as sent
SERVER_SET = ('id', 'meta', 'groups')


@pytest.fixture
def entra(tmp_path, make_app):
    """A server whose config declares an extension with a boolean, as an admin would."""
    path = tmp_path / 'extensions.json'
    path.write_text(json.dumps({'Resources': [{'id': OKTA, 'name': 'OktaCustom', 'attributes': [
        {'name': 'remote', 'type': 'boolean'}, {'name': 'costCenter', 'type': 'string'}]}]}), encoding='utf-8')
    return ScimClient(make_app(extensions=str(path)))


def stored(client, user):
    """The user as read back, without what the server sets."""
    read = client.get(f'/Users/{user["id"]}', status=200).json
    return {key: value for key, value in read.items() if key not in SERVER_SET}


def test_post_takes_true_and_false_strings_for_every_declared_boolean(entra):
    # The SCIM Validator's create carries roles[].primary as "True"; Entra has sent active as "False".
    body = {'schemas': [USER_SCHEMA, OKTA, UNDECLARED], 'userName': 'strings@contoso.example', 'active': 'False',
            'emails': [{'value': 'strings@contoso.example', 'type': 'work', 'primary': 'TRUE'}],
            'roles': [{'primary': 'True', 'display': 'Admin', 'value': 'admin',
                       'type': 'WindowsAzureActiveDirectoryRole'}],
            OKTA: {'remote': 'true', 'costCenter': 'True'},
            UNDECLARED: {'isContractor': 'True'}, 'nickNameIsUndeclared': 'False'}
    created = entra.post('/Users', body, status=201).json
    expected = {
        'schemas': [USER_SCHEMA, OKTA, UNDECLARED], 'userName': 'strings@contoso.example', 'active': False,
        'emails': [{'value': 'strings@contoso.example', 'type': 'work', 'primary': True}],
        'roles': [{'primary': True, 'display': 'Admin', 'value': 'admin', 'type': 'WindowsAzureActiveDirectoryRole'}],
        OKTA: {'remote': True, 'costCenter': 'True'},   # a declared string stays a string
        UNDECLARED: {'isContractor': 'True'}, 'nickNameIsUndeclared': 'False'}   # undeclared: exactly as sent
    assert {key: value for key, value in created.items() if key not in SERVER_SET} == expected
    assert stored(entra, created) == expected


def test_put_takes_them_too_and_the_enterprise_extension_keeps_its_strings(entra):
    user = entra.create_user('put@contoso.example')
    body = {'schemas': [USER_SCHEMA, ENTERPRISE], 'userName': 'put@contoso.example', 'active': 'false',
            'phoneNumbers': [{'value': '+1 555 0100', 'type': 'work', 'primary': 'False'}],
            ENTERPRISE: {'department': 'True'}}
    entra.put(f'/Users/{user["id"]}', body, status=200)
    assert stored(entra, user) == {
        'schemas': [USER_SCHEMA, ENTERPRISE], 'userName': 'put@contoso.example', 'active': False,
        'phoneNumbers': [{'value': '+1 555 0100', 'type': 'work', 'primary': False}],
        ENTERPRISE: {'department': 'True'}}


@pytest.mark.parametrize('body', [
    {'active': 'yes'}, {'active': ''}, {'active': 'True '}, {'active': 1},
    {'roles': [{'primary': 'T', 'value': 'admin'}]}, {OKTA: {'remote': 'no'}}])
def test_other_strings_for_a_boolean_are_still_400_and_store_nothing(entra, body):
    schemas = [USER_SCHEMA, OKTA] if OKTA in body else [USER_SCHEMA]
    response = entra.post('/Users', {'schemas': schemas, 'userName': 'refused@contoso.example', **body})
    assert_scim_error(response, 400, 'invalidValue')
    assert entra.get('/Users', status=200).json['totalResults'] == 0


def test_a_patch_replaces_active_with_a_string_as_before(entra):
    user = entra.create_user('patch@contoso.example')
    entra.patch(f'/Users/{user["id"]}', [{'op': 'Replace', 'path': 'active', 'value': 'False'},
                                         {'op': 'Replace', 'value': {'emails[type eq "work"].primary': 'True'}}],
                status=200)
    assert stored(entra, user) == {'schemas': [USER_SCHEMA], 'userName': 'patch@contoso.example', 'active': False,
                                   'emails': [{'type': 'work', 'primary': True}]}


def user_names(client, text):
    found = client.get(f'/Users?filter={quote(text)}', status=200).json
    return sorted(resource['userName'] for resource in found.get('Resources', []))


def test_list_filters_compare_true_and_false_strings_with_booleans(entra):
    entra.post('/Users', {'schemas': [USER_SCHEMA, OKTA], 'userName': 'on@contoso.example',
                          'roles': [{'primary': True, 'value': 'admin'}],
                          'emails': [{'value': 'on@contoso.example', 'primary': True}], OKTA: {'remote': True}},
               status=201)
    entra.post('/Users', {'schemas': [USER_SCHEMA], 'userName': 'off@contoso.example', 'active': False,
                          'roles': [{'primary': False, 'value': 'reader'}]}, status=201)
    assert user_names(entra, 'active eq "true"') == ['on@contoso.example']
    assert user_names(entra, 'active eq "FALSE"') == ['off@contoso.example']
    assert user_names(entra, 'active ne "False"') == ['on@contoso.example']
    assert user_names(entra, 'roles[primary eq "True"]') == ['on@contoso.example']
    assert user_names(entra, 'roles[primary eq "false" and value eq "reader"]') == ['off@contoso.example']
    assert user_names(entra, 'emails.primary eq "True"') == ['on@contoso.example']
    assert user_names(entra, f'{OKTA}:remote eq "true"') == ['on@contoso.example']
    # The same through POST /Users/.search.
    searched = entra.post('/Users/.search', {'schemas': ['urn:ietf:params:scim:api:messages:2.0:SearchRequest'],
                                             'filter': 'active eq "False"'}, status=200).json
    assert [resource['userName'] for resource in searched['Resources']] == ['off@contoso.example']


def test_any_other_string_for_a_boolean_stays_a_type_mismatch(entra):
    entra.create_user('on@contoso.example', roles=[{'primary': True, 'value': 'admin'}])
    assert_scim_error(entra.get('/Users?filter=' + quote('active eq "yes"')), 400, 'invalidFilter')
    # In the JSON a string never equals a boolean: no match, as for any other type mismatch.
    assert user_names(entra, 'roles[primary eq "yes"]') == []
    # And a string attribute compared with "true" compares as text.
    entra.create_user('text@contoso.example', title='True')
    assert user_names(entra, 'title eq "true"') == ['text@contoso.example']


def test_patch_value_filters_compare_true_with_a_boolean(entra):
    user = entra.create_user('roles@contoso.example', roles=[{'primary': True, 'value': 'admin', 'display': 'Old'},
                                                            {'primary': False, 'value': 'reader'}])
    entra.patch(f'/Users/{user["id"]}', [{'op': 'replace', 'path': 'roles[primary eq "True"].display',
                                          'value': 'Admin'},
                                         {'op': 'replace', 'path': 'roles[PRIMARY eq "false"].display',
                                          'value': 'Reader'}], status=200)
    assert stored(entra, user)['roles'] == [{'primary': True, 'value': 'admin', 'display': 'Admin'},
                                            {'primary': False, 'value': 'reader', 'display': 'Reader'}]


# -- Filtered writes to a value that does not exist yet ---------------------

@pytest.mark.parametrize('op', ['replace', 'Replace', 'add', 'Add'])
def test_entra_filtered_writes_make_the_values_the_filters_describe(entra, op):
    # The paths of Entra's default attribute mapping, sent to a user that has none of these values.
    user = entra.create_user('bare@contoso.example')
    entra.patch(f'/Users/{user["id"]}', [
        {'op': op, 'path': 'emails[type eq "work"].value', 'value': 'bare@contoso.example'},
        {'op': op, 'path': 'phoneNumbers[type eq "mobile"].value', 'value': '+1 555 0101'},
        {'op': op, 'path': 'phoneNumbers[type eq "work"].value', 'value': '+1 555 0102'},
        {'op': op, 'path': 'addresses[type eq "work"].streetAddress', 'value': '1 Microsoft Way'},
        {'op': op, 'path': 'addresses[type eq "work"].locality', 'value': 'Redmond'},
        {'op': op, 'path': 'roles[primary eq "True"].display', 'value': 'Admin'},
        {'op': op, 'path': 'roles[primary eq "True"].value', 'value': 'admin'},
    ], status=200)
    assert stored(entra, user) == {
        'schemas': [USER_SCHEMA], 'userName': 'bare@contoso.example', 'active': True,
        'emails': [{'type': 'work', 'value': 'bare@contoso.example'}],
        'phoneNumbers': [{'type': 'mobile', 'value': '+1 555 0101'}, {'type': 'work', 'value': '+1 555 0102'}],
        'addresses': [{'type': 'work', 'streetAddress': '1 Microsoft Way', 'locality': 'Redmond'}],
        'roles': [{'primary': True, 'display': 'Admin', 'value': 'admin'}]}


def test_a_made_primary_value_takes_primary_from_the_others(entra):
    user = entra.create_user('prim@contoso.example', emails=[{'value': 'home@x.example', 'type': 'home',
                                                               'primary': True}])
    entra.patch(f'/Users/{user["id"]}', [{'op': 'replace', 'path': 'emails[type eq "work" and primary eq "True"].value',
                                          'value': 'work@x.example'}], status=200)
    assert stored(entra, user)['emails'] == [{'value': 'home@x.example', 'type': 'home', 'primary': False},
                                             {'type': 'work', 'primary': True, 'value': 'work@x.example'}]


@pytest.mark.parametrize('operation', [
    {'op': 'replace', 'path': 'emails[type co "work"].value', 'value': 'x@x.example'},
    {'op': 'replace', 'path': 'emails[type eq "work" or type eq "fax"].value', 'value': 'x@x.example'},
    {'op': 'replace', 'path': 'emails[not (type eq "home")].value', 'value': 'x@x.example'},
    {'op': 'add', 'path': 'emails[display pr].value', 'value': 'x@x.example'},
    {'op': 'remove', 'path': 'emails[type eq "work"].value'},
    {'op': 'remove', 'path': 'emails[type eq "work"]'},
])
def test_filters_that_describe_no_value_and_removes_are_still_no_target(entra, operation):
    user = entra.create_user('none@contoso.example', emails=[{'value': 'h@x.example', 'type': 'home'}])
    before = entra.get(f'/Users/{user["id"]}', status=200).json
    assert_scim_error(entra.patch(f'/Users/{user["id"]}', [operation]), 400, 'noTarget')
    assert entra.get(f'/Users/{user["id"]}', status=200).json == before


def test_a_filtered_write_never_makes_a_member(entra):
    user = entra.create_user('member@contoso.example')
    group = entra.create_group('Nobody')
    response = entra.patch(f'/Groups/{group["id"]}', [
        {'op': 'replace', 'path': f'members[value eq "{user["id"]}"]', 'value': [{'value': user['id']}]}])
    assert_scim_error(response, 400, 'noTarget')
    assert entra.get(f'/Groups/{group["id"]}', status=200).json['members'] == []


# -- The manager: {"value": id}, a bare id, and "" to remove it --------------

MANAGER = f'{ENTERPRISE}:manager'


@pytest.mark.parametrize('removal', [
    {'op': 'replace', 'path': MANAGER, 'value': ''},
    {'op': 'Replace', 'path': MANAGER, 'value': {'value': ''}},
    {'op': 'add', 'path': MANAGER, 'value': ''},
    {'op': 'remove', 'path': MANAGER},
    {'op': 'replace', 'value': {MANAGER: '', 'title': 'Still here'}},
    {'op': 'Add', 'value': {MANAGER: {'value': ''}}},
])
def test_an_empty_manager_id_removes_the_manager_and_nothing_else(entra, removal):
    boss = entra.create_user('boss@contoso.example')
    user = entra.create_user('staff@contoso.example', title='Still here')
    entra.patch(f'/Users/{user["id"]}', [{'op': 'add', 'value': {MANAGER: boss['id'], 'displayName': 'Staff'}}],
                status=200)
    assert stored(entra, user)[ENTERPRISE] == {'manager': {'value': boss['id']}}
    entra.patch(f'/Users/{user["id"]}', [removal], status=200)
    # The manager was the extension's last attribute: the empty extension goes, with its URN.
    assert stored(entra, user) == {'schemas': [USER_SCHEMA], 'userName': 'staff@contoso.example',
                                   'active': True, 'title': 'Still here', 'displayName': 'Staff'}


def test_a_path_less_remove_is_still_refused_whatever_its_value_holds(entra):
    boss = entra.create_user('boss@contoso.example')
    user = entra.create_user('staff@contoso.example', **{ENTERPRISE: {'manager': {'value': boss['id']}}})
    before = entra.get(f'/Users/{user["id"]}', status=200).json
    response = entra.patch(f'/Users/{user["id"]}', [{'op': 'remove', 'value': {MANAGER: boss['id']}}])
    assert_scim_error(response, 400, 'noTarget')
    assert entra.get(f'/Users/{user["id"]}', status=200).json == before
