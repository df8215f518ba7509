"""/Groups over HTTP: members as link rows, and the membership PATCHes Okta and Entra send."""

from urllib.parse import quote

import pytest

from conftest import GROUP_SCHEMA, assert_scim_error


@pytest.fixture
def users(client):
    """Four users, by short name -> id."""
    return {name: client.create_user(f'{name}@example.com')['id'] for name in ('ann', 'bob', 'cat', 'dan')}


def member_ids(client, group_id):
    group = client.get(f'/Groups/{group_id}', status=200).json
    return sorted(member['value'] for member in group['members'])


def group_ids_of_user(client, user_id):
    user = client.get(f'/Users/{user_id}', status=200).json
    return sorted(group['value'] for group in user['groups'])


def patch_ok(client, group_id, operations):
    response = client.patch(f'/Groups/{group_id}', operations)
    assert response.status_int in (200, 204), response.body
    return response


def test_create_with_members_returns_them_with_value_and_display(client, users):
    response = client.post('/Groups', {
        'schemas': [GROUP_SCHEMA], 'displayName': 'Engineering',
        'members': [{'value': users['ann']}, {'value': users['bob'], 'display': 'ignored'}]}, status=201)
    group = response.json
    assert group['id']
    assert group['displayName'] == 'Engineering'
    assert response.headers['Location'] == group['meta']['location']
    assert response.headers['ETag'] == group['meta']['version']
    assert {(m['value'], m['display']) for m in group['members']} == {
        (users['ann'], 'ann@example.com'), (users['bob'], 'bob@example.com')}
    assert member_ids(client, group['id']) == sorted([users['ann'], users['bob']])


def test_group_without_members_has_an_empty_member_list(client):
    group = client.create_group('Empty')
    assert client.get(f'/Groups/{group["id"]}').json.get('members', []) == []


def test_member_user_lists_the_group_in_groups(client, users):
    group = client.create_group('Engineering', [users['ann']])
    user = client.get(f'/Users/{users["ann"]}').json
    assert [(g['value'], g['display']) for g in user['groups']] == [(group['id'], 'Engineering')]
    assert client.get(f'/Users/{users["bob"]}').json['groups'] == []


def test_deleting_a_user_removes_it_from_members(client, users):
    group = client.create_group('Engineering', [users['ann'], users['bob']])
    client.delete(f'/Users/{users["ann"]}', status=204)
    assert member_ids(client, group['id']) == [users['bob']]


def test_deleting_a_group_removes_it_from_users_groups(client, users):
    doomed = client.create_group('Doomed', [users['ann']])
    kept = client.create_group('Kept', [users['ann']])
    client.delete(f'/Groups/{doomed["id"]}', status=204)
    assert group_ids_of_user(client, users['ann']) == [kept['id']]


@pytest.mark.parametrize('members', [
    [{'value': 'no-such-user'}],
    'known-then-unknown',
])
def test_unknown_member_id_is_400_and_nothing_is_created(client, users, members):
    if members == 'known-then-unknown':
        members = [{'value': users['ann']}, {'value': 'no-such-user'}]
    body = {'schemas': [GROUP_SCHEMA], 'displayName': 'Engineering', 'members': members}
    assert_scim_error(client.post('/Groups', body), 400, 'invalidValue')
    assert client.get('/Groups').json['totalResults'] == 0
    assert group_ids_of_user(client, users['ann']) == []


def test_patch_adding_unknown_member_is_400_and_changes_nothing(client, users):
    group = client.create_group('Engineering', [users['ann']])
    response = client.patch(f'/Groups/{group["id"]}', [
        {'op': 'add', 'path': 'members', 'value': [{'value': users['bob']}, {'value': 'no-such-user'}]}])
    assert_scim_error(response, 400, 'invalidValue')
    assert member_ids(client, group['id']) == [users['ann']]


def test_okta_rename_with_own_id_in_the_value(client, users):
    group = client.create_group('Old', [users['ann']])
    patch_ok(client, group['id'], [{'op': 'replace', 'value': {'id': group['id'], 'displayName': 'New'}}])
    fetched = client.get(f'/Groups/{group["id"]}').json
    assert fetched['id'] == group['id']
    assert fetched['displayName'] == 'New'
    assert member_ids(client, group['id']) == [users['ann']]


def test_okta_membership_patch_removes_one_and_adds_another(client, users):
    group = client.create_group('Engineering', [users['ann'], users['bob']])
    patch_ok(client, group['id'], [
        {'op': 'remove', 'path': f'members[value eq "{users["ann"]}"]'},
        {'op': 'add', 'path': 'members', 'value': [{'value': users['cat'], 'display': 'x'}]},
    ])
    assert member_ids(client, group['id']) == sorted([users['bob'], users['cat']])


@pytest.mark.parametrize('removed', ['ann', 'bob', 'cat'])
def test_removing_one_member_keeps_the_others(client, users, removed):
    three = [users['ann'], users['bob'], users['cat']]
    group = client.create_group('Engineering', three)
    patch_ok(client, group['id'], [{'op': 'remove', 'path': f'members[value eq "{users[removed]}"]'}])
    remaining = member_ids(client, group['id'])
    assert len(remaining) == 2
    assert remaining == sorted(set(three) - {users[removed]})


@pytest.mark.parametrize('operation', [
    'filter-path',
    'entra-value',
])
def test_removing_a_user_who_is_not_a_member_succeeds(client, users, operation):
    group = client.create_group('Engineering', [users['ann'], users['bob']])
    if operation == 'filter-path':
        op = {'op': 'remove', 'path': f'members[value eq "{users["dan"]}"]'}
    else:
        op = {'op': 'Remove', 'path': 'members', 'value': [{'value': users['dan']}]}
    patch_ok(client, group['id'], [op])
    assert member_ids(client, group['id']) == sorted([users['ann'], users['bob']])


def test_replace_members_sets_exactly_the_new_list(client, users):
    group = client.create_group('Engineering', [users['ann'], users['bob']])
    patch_ok(client, group['id'], [
        {'op': 'replace', 'path': 'members', 'value': [{'value': users['bob']}, {'value': users['cat']}]}])
    assert member_ids(client, group['id']) == sorted([users['bob'], users['cat']])


def test_entra_remove_with_value_removes_only_that_member(client, users):
    group = client.create_group('Engineering', [users['ann'], users['bob'], users['cat']])
    patch_ok(client, group['id'], [{'op': 'Remove', 'path': 'members', 'value': [{'value': users['bob']}]}])
    assert member_ids(client, group['id']) == sorted([users['ann'], users['cat']])


def test_adding_an_existing_member_does_not_duplicate_it(client, users):
    group = client.create_group('Engineering', [users['ann']])
    patch_ok(client, group['id'], [
        {'op': 'add', 'path': 'members', 'value': [{'value': users['ann']}, {'value': users['bob']}]}])
    assert member_ids(client, group['id']) == sorted([users['ann'], users['bob']])


@pytest.mark.parametrize('wanted', ['Engineering', 'engineering', 'ENGINEERING', 'eNgInEeRiNg'])
def test_filter_display_name_eq_is_case_insensitive(client, wanted):
    engineering = client.create_group('Engineering')
    client.create_group('Engineering Managers')
    client.create_group('Sales')
    filter_text = f'displayName eq "{wanted}"'
    found = client.get(f'/Groups?filter={quote(filter_text)}', status=200).json
    assert found['totalResults'] == 1
    assert [group['id'] for group in found['Resources']] == [engineering['id']]


def test_excluded_members_leaves_out_the_members_key(client, users):
    group = client.create_group('Engineering', [users['ann']])
    one = client.get(f'/Groups/{group["id"]}?excludedAttributes=members', status=200).json
    assert 'members' not in one
    assert one['displayName'] == 'Engineering'
    listed = client.get('/Groups?excludedAttributes=members', status=200).json
    assert listed['totalResults'] == 1
    assert all('members' not in resource for resource in listed['Resources'])
    assert listed['Resources'][0]['id'] == group['id']


def test_put_replaces_members(client, users):
    group = client.create_group('Engineering', [users['ann'], users['bob']])
    body = {'schemas': [GROUP_SCHEMA], 'displayName': 'Platform',
            'members': [{'value': users['cat']}, {'value': users['dan']}]}
    replaced = client.put(f'/Groups/{group["id"]}', body, status=200).json
    assert replaced['displayName'] == 'Platform'
    assert member_ids(client, group['id']) == sorted([users['cat'], users['dan']])
    assert group_ids_of_user(client, users['ann']) == []
    assert group_ids_of_user(client, users['cat']) == [group['id']]


def test_put_without_members_empties_the_group(client, users):
    group = client.create_group('Engineering', [users['ann']])
    client.put(f'/Groups/{group["id"]}', {'schemas': [GROUP_SCHEMA], 'displayName': 'Engineering'}, status=200)
    assert member_ids(client, group['id']) == []


def test_delete_group_is_204_then_404(client, users):
    group = client.create_group('Engineering', [users['ann']])
    response = client.delete(f'/Groups/{group["id"]}', status=204)
    assert response.body == b''
    assert_scim_error(client.get(f'/Groups/{group["id"]}'), 404)
    assert client.get(f'/Users/{users["ann"]}', status=200).json['userName'] == 'ann@example.com'


@pytest.mark.parametrize('display_name', [None, '', 42])
def test_group_without_a_valid_display_name_is_400(client, display_name):
    body = {'schemas': [GROUP_SCHEMA]}
    if display_name is not None:
        body['displayName'] = display_name
    assert_scim_error(client.post('/Groups', body), 400)
    assert client.get('/Groups').json['totalResults'] == 0
