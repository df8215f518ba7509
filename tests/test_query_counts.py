"""A list or a group read costs a constant number of SQL statements (no N+1)."""

import threading

import pytest
from playhouse.test_utils import count_queries


def statements(client, path):
    """The SQL statements a GET of `path` runs: those of this thread (webtest serves
    the request on it), not the exchange log's writer thread, which may flush meanwhile."""
    with count_queries() as counter:
        client.get(path, status=200)
    return [query.msg[0] for query in counter.get_queries() if query.thread == threading.get_ident()]


@pytest.fixture
def populate(client):
    """populate(users, groups, members_each): more users, and groups of the first of them
    (names are unique: each call numbers its users and groups on from the last)."""
    made = []
    groups_made = []

    def populate(users, groups, members_each):
        ids = [client.create_user(f'user{len(made) + n}@example.com')['id'] for n in range(users)]
        made.extend(ids)
        for _ in range(groups):
            groups_made.append(client.create_group(f'Group {len(groups_made)}', ids[:members_each])['id'])
        return ids
    return populate


def test_user_list_cost_does_not_grow_with_the_page(client, populate):
    """A full page: the count, and the page with every listed user's groups. Two, whatever the size."""
    populate(120, 3, 120)
    for count in (1, 10, 100):
        assert len(statements(client, f'/Users?count={count}&startIndex=2')) == 2, count


def test_a_first_page_that_is_not_full_needs_no_count(client, populate):
    """Okta's lookup before a create: the page itself says how many match."""
    populate(3, 1, 3)
    lookup = '/Users?filter=userName%20eq%20%22user1%40example.com%22&startIndex=1&count=100'
    assert len(statements(client, lookup)) == 1
    assert len(statements(client, '/Users?startIndex=1&count=100')) == 1


def test_group_list_cost_does_not_grow_with_groups_or_members(client, populate):
    populate(2, 2, 2)
    small = statements(client, '/Groups?count=1&startIndex=2')
    populate(30, 20, 30)
    large = statements(client, '/Groups?count=100&startIndex=2')
    # The page, its count, how many members (up to store.MEMBERS_AT_ONCE), the members.
    assert len(small) == len(large) == 4, large


def test_group_read_cost_does_not_grow_with_members(client, populate):
    populate(1, 1, 1)
    group_id = client.get('/Groups').json['Resources'][0]['id']
    small = statements(client, f'/Groups/{group_id}')
    ids = populate(50, 0, 0)
    client.patch(f'/Groups/{group_id}', [{'op': 'add', 'path': 'members', 'value': [{'value': i} for i in ids]}],
                 status=204)
    # The group, how many members (up to store.MEMBERS_AT_ONCE), the members.
    assert 1 <= len(statements(client, f"/Groups/{group_id}")) == len(small) <= 3


@pytest.mark.parametrize('query', ['excludedAttributes=members', 'attributes=displayName'])
def test_groups_without_members_read_no_link_rows(client, populate, query):
    populate(5, 3, 5)
    group_id = client.get('/Groups').json['Resources'][0]['id']
    for path in (f'/Groups?{query}', f'/Groups/{group_id}?{query}'):
        assert not [sql for sql in statements(client, path) if '"link"' in sql], path
    assert [sql for sql in statements(client, f'/Groups/{group_id}') if '"link"' in sql], 'members are read by default'


def test_a_member_add_reads_and_writes_only_that_member(client, populate):
    """Okta's member add to a big group: the same statements as to a group of one, none of
    which reads the group's other members (the PATCH answers 204, without them)."""
    ids = populate(60, 1, 1)
    group_id = client.get('/Groups').json['Resources'][0]['id']

    def add(user_id):
        with count_queries() as counter:
            client.patch(f'/Groups/{group_id}', [{'op': 'add', 'path': 'members', 'value': [{'value': user_id}]}],
                         status=204)
        # this thread's: the seat board's thread may read the seats meanwhile
        return [query.msg[0] for query in counter.get_queries() if query.thread == threading.get_ident()]
    small = add(ids[1])
    client.patch(f'/Groups/{group_id}', [{'op': 'add', 'path': 'members', 'value': [{'value': i} for i in ids[2:-1]]}],
                 status=204)
    large = add(ids[-1])
    assert large == small
    assert not [sql for sql in large if sql.lstrip().upper().startswith('SELECT') and '"link"' in sql], large
