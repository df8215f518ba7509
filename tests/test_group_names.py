"""A group's displayName is unique, ignoring case, as userName is: a second group of
one name is `409 uniqueness` on POST, PUT and PATCH, and the refused request changes
nothing. A group keeping its own name, in any case, is never refused.

Races are in test_concurrency.py; databases that already hold duplicate names, in
test_upgrade.py."""

from urllib.parse import quote

import pytest

from conftest import GROUP_SCHEMA, assert_scim_error, store_rows

SPELLINGS = ['Engineering', 'engineering', 'ENGINEERING', 'eNgInEeRiNg']


@pytest.fixture
def ann_and_bob(client):
    return client.create_user('ann@example.com')['id'], client.create_user('bob@example.com')['id']


def group_body(display_name, members=()):
    return {'schemas': [GROUP_SCHEMA], 'displayName': display_name, 'members': [{'value': m} for m in members]}


def groups_named(client, display_name):
    """The ids of the groups `displayName eq` finds."""
    filter_text = f'displayName eq "{display_name}"'
    found = client.get(f'/Groups?filter={quote(filter_text)}', status=200)
    return [group['id'] for group in found.json['Resources']]


def assert_name_taken(response, display_name):
    body = assert_scim_error(response, 409, 'uniqueness')
    assert body['detail'] == f'displayName {display_name!r} is already taken by another group.'


def read(client, group_id):
    group = client.get(f'/Groups/{group_id}', status=200).json
    return group['displayName'], sorted(member['value'] for member in group['members']), group['meta']['version']


@pytest.mark.parametrize('display_name', SPELLINGS)
def test_creating_a_second_group_of_a_name_is_409_and_stores_nothing(client, ann_and_bob, display_name):
    ann, bob = ann_and_bob
    existing = client.create_group('Engineering', [ann])
    before = store_rows()
    assert_name_taken(client.post('/Groups', group_body(display_name, [bob])), display_name)
    assert store_rows() == before
    assert groups_named(client, display_name) == [existing['id']]
    assert client.get(f'/Users/{bob}').json['groups'] == []


@pytest.mark.parametrize('display_name', SPELLINGS)
def test_renaming_a_group_by_put_to_a_taken_name_is_409_and_changes_nothing(client, ann_and_bob, display_name):
    ann, bob = ann_and_bob
    client.create_group('Engineering', [ann])
    sales = client.create_group('Sales', [bob])
    before = store_rows()
    assert_name_taken(client.put(f'/Groups/{sales["id"]}', group_body(display_name, [ann])), display_name)
    assert store_rows() == before
    assert read(client, sales['id']) == ('Sales', [bob], 'W/"1"')


def rename_by_path(group_id, display_name, ann):
    return [{'op': 'replace', 'path': 'displayName', 'value': display_name}]


def rename_okta(group_id, display_name, ann):
    """Okta's Group Push rename: no path, the group's own id inside the value."""
    return [{'op': 'replace', 'value': {'id': group_id, 'displayName': display_name}}]


def rename_entra(group_id, display_name, ann):
    return [{'op': 'Replace', 'path': 'displayName', 'value': display_name}]


def add_member_then_rename(group_id, display_name, ann):
    return [{'op': 'add', 'path': 'members', 'value': [{'value': ann}]},
            {'op': 'replace', 'path': 'displayName', 'value': display_name}]


RENAMES = [rename_by_path, rename_okta, rename_entra, add_member_then_rename]


@pytest.mark.parametrize('display_name', ['Engineering', 'eNgInEeRiNg'])
@pytest.mark.parametrize('rename', RENAMES, ids=[rename.__name__ for rename in RENAMES])
def test_renaming_a_group_by_patch_to_a_taken_name_is_409_and_changes_nothing(client, ann_and_bob, rename,
                                                                                display_name):
    ann, bob = ann_and_bob
    client.create_group('Engineering')
    sales = client.create_group('Sales', [bob])
    before = store_rows()
    assert_name_taken(client.patch(f'/Groups/{sales["id"]}', rename(sales['id'], display_name, ann)), display_name)
    assert store_rows() == before
    assert read(client, sales['id']) == ('Sales', [bob], 'W/"1"')


@pytest.mark.parametrize('rename', RENAMES, ids=[rename.__name__ for rename in RENAMES])
def test_a_group_may_change_the_case_of_its_own_name_by_patch(client, ann_and_bob, rename):
    ann, bob = ann_and_bob
    client.create_group('Sales')
    engineering = client.create_group('Engineering', [bob])
    response = client.patch(f'/Groups/{engineering["id"]}', rename(engineering['id'], 'ENGINEERING', ann))
    assert response.status_int == 204, response.body
    members = sorted([ann, bob]) if rename is add_member_then_rename else [bob]
    assert read(client, engineering['id']) == ('ENGINEERING', members, 'W/"2"')
    assert groups_named(client, 'engineering') == [engineering['id']]


def test_a_put_that_keeps_the_groups_own_name_succeeds_in_any_case(client, ann_and_bob):
    ann, bob = ann_and_bob
    engineering = client.create_group('Engineering', [ann])
    client.create_group('Sales')
    client.put(f'/Groups/{engineering["id"]}', group_body('Engineering', [ann, bob]), status=200)
    assert read(client, engineering['id']) == ('Engineering', sorted([ann, bob]), 'W/"2"')
    client.put(f'/Groups/{engineering["id"]}', group_body('engineering', [bob]), status=200)
    assert read(client, engineering['id']) == ('engineering', [bob], 'W/"3"')
    # Okta's rename repeated with the name the group already has: nothing to write.
    response = client.patch(f'/Groups/{engineering["id"]}', rename_okta(engineering['id'], 'engineering', ann))
    assert response.status_int == 204, response.body
    assert read(client, engineering['id']) == ('engineering', [bob], 'W/"3"')


def test_a_name_is_free_again_once_its_group_is_renamed_or_deleted(client):
    old = client.create_group('Old Name')
    doomed = client.create_group('Doomed')
    client.patch(f'/Groups/{old["id"]}', rename_by_path(old['id'], 'New Name', None), status=204)
    client.delete(f'/Groups/{doomed["id"]}', status=204)
    reuses_old = client.create_group('old name')
    reuses_doomed = client.create_group('DOOMED')
    assert groups_named(client, 'Old Name') == [reuses_old['id']]
    assert groups_named(client, 'Doomed') == [reuses_doomed['id']]
    # The first group's old name is someone else's now.
    assert_name_taken(client.patch(f'/Groups/{old["id"]}', rename_by_path(old['id'], 'Old Name', None)), 'Old Name')
    assert read(client, old['id'])[0] == 'New Name'


def test_names_that_differ_beyond_case_are_different_names(client):
    names = ['Team', 'Team ', 'Team A', 'Téam', 'Tea m']
    ids = [client.create_group(name)['id'] for name in names]
    assert [groups_named(client, name) for name in names] == [[group_id] for group_id in ids]


def test_a_user_and_a_group_may_share_a_name(client):
    client.create_user('Shared')
    client.create_group('shared')
    assert_scim_error(client.post('/Groups', group_body('SHARED')), 409, 'uniqueness')
