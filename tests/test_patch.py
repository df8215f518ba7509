"""PATCH (RFC 7644 §3.5.2) on users and groups: the shapes, and the edge cases that broke."""

import pytest

from conftest import GROUP_SCHEMA, USER_SCHEMA, assert_scim_error

ENTERPRISE = 'urn:ietf:params:scim:schemas:extension:enterprise:2.0:User'
OKTA = 'urn:okta:custom:1.0:User'


@pytest.fixture
def jane(client):
    return client.create_user('jane@example.com', emails=[
        {'value': 'a@example.com', 'type': 'work', 'primary': True},
        {'value': 'b@example.com', 'type': 'home'},
        {'value': 'c@example.com', 'type': 'other'}])


def emails(client, user):
    return [email['value'] for email in client.get(f'/Users/{user["id"]}', status=200).json.get('emails', [])]


@pytest.mark.parametrize('removed, left', [
    ('a@example.com', ['b@example.com', 'c@example.com']),
    ('b@example.com', ['a@example.com', 'c@example.com']),
    ('c@example.com', ['a@example.com', 'b@example.com']),
])
def test_filtered_remove_drops_exactly_the_matching_value(client, jane, removed, left):
    client.patch(f'/Users/{jane["id"]}', [{'op': 'remove', 'path': f'emails[value eq "{removed}"]'}], status=200)
    assert emails(client, jane) == left


def test_filtered_remove_of_every_value_removes_the_attribute(client, jane):
    client.patch(f'/Users/{jane["id"]}', [{'op': 'remove', 'path': 'emails[value co "example.com"]'}], status=200)
    assert 'emails' not in client.get(f'/Users/{jane["id"]}').json


def test_filtered_remove_of_a_sub_attribute_keeps_the_value(client, jane):
    client.patch(f'/Users/{jane["id"]}', [{'op': 'remove', 'path': 'emails[type eq "work"].primary'}], status=200)
    work = client.get(f'/Users/{jane["id"]}').json['emails'][0]
    assert work == {'value': 'a@example.com', 'type': 'work'}


def test_filter_that_matches_nothing_and_describes_no_value_is_400_no_target(client, jane):
    response = client.patch(f'/Users/{jane["id"]}', [{'op': 'replace', 'path': 'emails[type co "fax"].value',
                                                      'value': 'x@example.com'}])
    assert_scim_error(response, 400, 'noTarget')
    assert emails(client, jane) == ['a@example.com', 'b@example.com', 'c@example.com']


def test_setting_primary_clears_it_on_the_others(client, jane):
    client.patch(f'/Users/{jane["id"]}', [{'op': 'replace', 'path': 'emails[type eq "home"].primary',
                                           'value': True}], status=200)
    primaries = {e['value']: e.get('primary') for e in client.get(f'/Users/{jane["id"]}').json['emails']}
    assert primaries == {'a@example.com': False, 'b@example.com': True, 'c@example.com': None}


def test_adding_an_email_that_is_there_in_another_case_does_not_duplicate_it(client, jane):
    client.patch(f'/Users/{jane["id"]}', [{'op': 'add', 'path': 'emails',
                                           'value': [{'value': 'A@EXAMPLE.COM', 'type': 'work'}]}], status=200)
    assert emails(client, jane) == ['a@example.com', 'b@example.com', 'c@example.com']


def test_filter_path_on_a_single_valued_or_unknown_attribute_is_400_invalid_path(client):
    user = client.create_user('x@example.com', nickName='X', foo='plain text')
    for path in ('nickName[type eq "w"].v', 'foo[type eq "w"].v', 'name[givenName eq "a"]'):
        response = client.patch(f'/Users/{user["id"]}', [{'op': 'add', 'path': path, 'value': 1}])
        assert_scim_error(response, 400, 'invalidPath')


def test_fully_qualified_core_path_is_the_plain_attribute(client):
    user = client.create_user('fq@example.com')
    client.patch(f'/Users/{user["id"]}', [
        {'op': 'replace', 'path': f'{USER_SCHEMA}:displayName', 'value': 'Full'},
        {'op': 'replace', 'path': f'{USER_SCHEMA}:name.givenName', 'value': 'Given'}], status=200)
    read = client.get(f'/Users/{user["id"]}').json
    assert (read['displayName'], read['name']) == ('Full', {'givenName': 'Given'})


def test_fully_qualified_read_only_path_is_400_mutability(client):
    user = client.create_user('ro@example.com')
    for path in (f'{USER_SCHEMA}:id', 'id', 'meta', 'groups', f'{USER_SCHEMA}:groups'):
        response = client.patch(f'/Users/{user["id"]}', [{'op': 'replace', 'path': path, 'value': 'x'}])
        assert_scim_error(response, 400, 'mutability')


def test_fully_qualified_members_path_adds_the_member(client):
    user = client.create_user('member@example.com')
    group = client.create_group('Team')
    client.patch(f'/Groups/{group["id"]}', [{'op': 'add', 'path': f'{GROUP_SCHEMA}:members',
                                             'value': [{'value': user['id']}]}], status=204)
    assert [m['value'] for m in client.get(f'/Groups/{group["id"]}').json['members']] == [user['id']]


def test_attribute_of_the_other_resource_type_is_400_invalid_path(client):
    user = client.create_user('other@example.com')
    response = client.patch(f'/Users/{user["id"]}', [{'op': 'replace', 'path': f'{GROUP_SCHEMA}:displayName',
                                                      'value': 'x'}])
    assert_scim_error(response, 400, 'invalidPath')


@pytest.mark.parametrize('operation', [
    {'op': 'replace', 'value': {OKTA: {'color': 'blue'}}},
    {'op': 'replace', 'path': f'{OKTA}:color', 'value': 'blue'},
    {'op': 'add', 'path': OKTA, 'value': {'color': 'blue'}},
])
def test_custom_extension_attributes_can_be_patched(client, operation):
    user = client.create_user('custom@example.com', schemas=[USER_SCHEMA, OKTA], **{OKTA: {'color': 'red', 'size': 2}})
    client.patch(f'/Users/{user["id"]}', [operation], status=200)
    read = client.get(f'/Users/{user["id"]}').json
    assert read[OKTA] == {'color': 'blue', 'size': 2}
    assert read['schemas'] == [USER_SCHEMA, OKTA]


def test_a_new_custom_extension_is_added_to_schemas(client):
    user = client.create_user('newext@example.com')
    client.patch(f'/Users/{user["id"]}', [{'op': 'add', 'path': f'{OKTA}:color', 'value': 'green'}], status=200)
    read = client.get(f'/Users/{user["id"]}').json
    assert read[OKTA] == {'color': 'green'}
    assert OKTA in read['schemas']


def test_enterprise_manager_is_type_checked(client):
    user = client.create_user('m@example.com')
    response = client.patch(f'/Users/{user["id"]}', [{'op': 'replace', 'path': f'{ENTERPRISE}:manager',
                                                      'value': ['not', 'an', 'object']}])
    assert_scim_error(response, 400, 'invalidValue')


def test_patch_that_changes_nothing_keeps_the_version(client):
    user = client.create_user('same@example.com', displayName='Same')
    patched = client.patch(f'/Users/{user["id"]}', [{'op': 'replace', 'path': 'displayName', 'value': 'Same'}],
                           status=200)
    assert patched.json['meta']['version'] == user['meta']['version']
    assert patched.headers['ETag'] == user['meta']['version']


def test_all_operations_apply_or_none_do(client, jane):
    response = client.patch(f'/Users/{jane["id"]}', [
        {'op': 'replace', 'path': 'displayName', 'value': 'Changed'},
        {'op': 'replace', 'path': 'emails[type co "fax"].value', 'value': 'x@example.com'}])
    assert_scim_error(response, 400, 'noTarget')
    read = client.get(f'/Users/{jane["id"]}').json
    assert 'displayName' not in read and read['meta']['version'] == jane['meta']['version']


@pytest.mark.parametrize('body, scim_type', [
    ({'schemas': ['urn:ietf:params:scim:api:messages:2.0:PatchOp']}, 'invalidSyntax'),
    ({'schemas': ['urn:ietf:params:scim:api:messages:2.0:PatchOp'], 'Operations': []}, 'invalidSyntax'),
    ({'schemas': ['urn:ietf:params:scim:api:messages:2.0:PatchOp'], 'Operations': {'op': 'add'}}, 'invalidSyntax'),
    ({'schemas': ['urn:ietf:params:scim:api:messages:2.0:PatchOp'], 'Operations': ['add']}, 'invalidSyntax'),
    ({'schemas': ['urn:ietf:params:scim:api:messages:2.0:PatchOp'], 'Operations': [{'op': 'move'}]}, 'invalidSyntax'),
    ({'schemas': ['urn:ietf:params:scim:api:messages:2.0:PatchOp'],
      'Operations': [{'op': 'add', 'path': 5}]}, 'invalidPath'),
    ({'schemas': ['urn:ietf:params:scim:api:messages:2.0:PatchOp'],
      'Operations': [{'op': 'add', 'path': 'a[b'}]}, 'invalidPath'),
    ({'schemas': ['urn:ietf:params:scim:api:messages:2.0:PatchOp'], 'Operations': [{'op': 'remove'}]}, 'noTarget'),
    ({'schemas': ['urn:ietf:params:scim:api:messages:2.0:PatchOp'],
      'Operations': [{'op': 'add', 'value': 'x'}]}, 'invalidValue'),
    ({'Operations': [{'op': 'add', 'path': 'title', 'value': 'x'}]}, 'invalidSyntax'),
])
def test_malformed_patch_is_a_scim_400_and_changes_nothing(client, jane, body, scim_type):
    response = client.request('PATCH', f'/Users/{jane["id"]}', body)
    assert_scim_error(response, 400, scim_type)
    assert client.get(f'/Users/{jane["id"]}').json == jane


# ---------------------------------------------------------------------------
# 200 with the resource, or 204 (RFC 7644 §3.5.2; Prefer, RFC 7240)
# ---------------------------------------------------------------------------

def test_a_user_patch_answers_200_with_the_user_or_204_when_asked_for_no_body(client):
    user = client.create_user('prefer@example.com')
    replace_title = [{'op': 'replace', 'path': 'title', 'value': 'One'}]
    answered = client.patch(f'/Users/{user["id"]}', replace_title, status=200)
    assert answered.json['title'] == 'One' and answered.headers['ETag'] == 'W/"2"'
    minimal = client.patch(f'/Users/{user["id"]}', [{'op': 'replace', 'path': 'title', 'value': 'Two'}],
                           headers={'Prefer': 'return=minimal'}, status=204)
    assert (minimal.body, minimal.headers['ETag'], minimal.headers['Preference-Applied']) == (
        b'', 'W/"3"', 'return=minimal')
    assert client.get(f'/Users/{user["id"]}').json['title'] == 'Two'
    # `attributes` asks for the body, and the RFC then requires 200.
    projected = client.patch(f'/Users/{user["id"]}?attributes=title',
                             [{'op': 'replace', 'path': 'title', 'value': 'x'}],
                             headers={'Prefer': 'return=minimal'}, status=200)
    assert set(projected.json) == {'schemas', 'id', 'meta', 'title'}


def test_a_group_patch_answers_204_unless_asked_for_the_group(client):
    """A group may have 100,000 members: it is read and sent only when asked for."""
    ann, bob = client.create_user('ann@example.com'), client.create_user('bob@example.com')
    group = client.create_group('Team', [ann['id']])
    add_bob = [{'op': 'add', 'path': 'members', 'value': [{'value': bob['id']}]}]
    plain = client.patch(f'/Groups/{group["id"]}', add_bob, status=204)
    assert (plain.body, plain.headers['ETag']) == (b'', 'W/"2"')
    remove_bob = [{'op': 'remove', 'path': f'members[value eq "{bob["id"]}"]'}]
    asked = client.patch(f'/Groups/{group["id"]}', remove_bob, headers={'Prefer': 'return=representation'},
                         status=200)
    assert [member['value'] for member in asked.json['members']] == [ann['id']]
    assert asked.headers['Preference-Applied'] == 'return=representation'
    without_members = client.patch(f'/Groups/{group["id"]}?excludedAttributes=members', add_bob, status=200)
    assert 'members' not in without_members.json and without_members.json['meta']['version'] == 'W/"4"'


def test_adding_the_primary_email_again_with_a_new_primary_moves_primary_to_the_new_one(client):
    user = client.create_user('prim@example.com', emails=[{'value': 'a@example.com', 'primary': True}])
    patched = client.patch(f'/Users/{user["id"]}', [{'op': 'add', 'path': 'emails', 'value': [
        {'value': 'a@example.com'}, {'value': 'b@example.com', 'primary': True}]}], status=200).json
    assert [(email['value'], email.get('primary')) for email in patched['emails']] == [
        ('a@example.com', False), ('b@example.com', True)]


@pytest.mark.parametrize('prefer, status', [
    ('return=minimal', 204), ('return = minimal', 204), ('return="minimal"', 204), ('RETURN=Minimal', 204),
    ('handling=lenient, return=minimal', 204), ('return=minimal; foo=bar', 204),
    ('return=representation', 200), ('return=minimalist', 200), ('x-return=minimal', 200), ('', 200),
])
def test_prefer_return_is_read_as_rfc_7240_writes_it(client, prefer, status):
    user = client.create_user('pref@example.com')
    response = client.patch(f'/Users/{user["id"]}', [{'op': 'replace', 'path': 'title', 'value': prefer or 'x'}],
                            headers={'Prefer': prefer}, status=status)
    assert response.headers['ETag'] == 'W/"2"'


def test_a_group_put_that_changes_nothing_keeps_the_version(client):
    ann, bob = client.create_user('ann@example.com'), client.create_user('bob@example.com')
    group = client.create_group('Same', [ann['id'], bob['id']])
    body = {'schemas': [GROUP_SCHEMA], 'displayName': 'Same', 'members': [{'value': bob['id']}, {'value': ann['id']}]}
    assert client.put(f'/Groups/{group["id"]}', body, status=200).json['meta']['version'] == 'W/"1"'
    body['members'] = [{'value': ann['id']}]
    assert client.put(f'/Groups/{group["id"]}', body, status=200).json['meta']['version'] == 'W/"2"'
