"""sortBy / sortOrder, and POST .search (RFC 7644 §3.4.2.3 and §3.4.3)."""

from urllib.parse import quote

import pytest

from conftest import USER_SCHEMA, assert_scim_error

ENTERPRISE = 'urn:ietf:params:scim:schemas:extension:enterprise:2.0:User'
SEARCH = 'urn:ietf:params:scim:api:messages:2.0:SearchRequest'


@pytest.fixture
def people(client):
    """Five users created in this order; some attributes missing on purpose."""
    specs = [
        ('carol@example.com', {'displayName': 'carol', 'title': 'b',
                               'emails': [{'value': 'z@example.com'}, {'value': 'c@example.com', 'primary': True}]}),
        ('Alice@example.com', {'displayName': 'Alice', 'emails': [{'value': 'a@example.com'}],
                               ENTERPRISE: {'employeeNumber': '20'}}),
        ('bob@example.com', {'displayName': 'bob', 'title': 'A', ENTERPRISE: {'employeeNumber': '3'}}),
        ('dave@example.com', {'title': 'c', 'emails': [{'value': 'b@example.com'}]}),
        ('erin@example.com', {'displayName': 'Bob'}),
    ]
    made = {}
    for user_name, attributes in specs:
        schemas = [USER_SCHEMA, ENTERPRISE] if ENTERPRISE in attributes else [USER_SCHEMA]
        made[user_name.split('@')[0].lower()] = client.create_user(user_name, schemas=schemas, **attributes)['id']
    return made


def order(client, people, query):
    listing = client.get(f'/Users?{query}', status=200).json
    by_id = {user_id: name for name, user_id in people.items()}
    return [by_id[user['id']] for user in listing['Resources']]


@pytest.mark.parametrize('query, expected', [
    ('', ['carol', 'alice', 'bob', 'dave', 'erin']),                            # the stable order
    ('sortBy=userName', ['alice', 'bob', 'carol', 'dave', 'erin']),             # ignoring case
    ('sortBy=userName&sortOrder=descending', ['erin', 'dave', 'carol', 'bob', 'alice']),
    ('sortBy=displayName', ['alice', 'bob', 'erin', 'carol', 'dave']),          # ties keep creation order; nulls last
    # descending: the ascending order reversed, ties too, but nulls still last
    ('sortBy=displayName&sortOrder=DESCENDING', ['carol', 'erin', 'bob', 'alice', 'dave']),
    ('sortBy=title', ['bob', 'carol', 'dave', 'alice', 'erin']),                # a JSON attribute
    ('sortBy=emails', ['alice', 'dave', 'carol', 'bob', 'erin']),               # the primary value, else the first
    ('sortBy=emails.value', ['alice', 'dave', 'carol', 'bob', 'erin']),
    (f'sortBy={quote(ENTERPRISE)}:employeeNumber', ['alice', 'bob', 'carol', 'dave', 'erin']),  # text: "20" < "3"
    ('sortBy=meta.created&sortOrder=descending', ['erin', 'dave', 'bob', 'alice', 'carol']),
    ('sortBy=userName&startIndex=2&count=2', ['bob', 'carol']),
    ('sortBy=userName&filter=' + quote('title pr'), ['bob', 'carol', 'dave']),
])
def test_sort_by(client, people, query, expected):
    assert order(client, people, query) == expected


@pytest.mark.parametrize('query', ['sortBy=nosuch', 'sortBy=name', 'sortBy=emails[type eq "work"]',
                                   'sortBy=userName&sortOrder=sideways', 'sortBy=groups'])
def test_bad_sort_is_400_invalid_value(client, people, query):
    assert_scim_error(client.get(f'/Users?{query}'), 400, 'invalidValue')


def test_sorted_pages_concatenate_to_one_sorted_list(client, people):
    whole = order(client, people, 'sortBy=displayName&count=100')
    pieces = sum((order(client, people, f'sortBy=displayName&startIndex={start}&count=2') for start in (1, 3, 5)), [])
    assert pieces == whole


def test_users_search_is_the_same_as_the_query(client, people):
    body = {'schemas': [SEARCH], 'filter': 'userName sw "b" or userName sw "c"', 'sortBy': 'userName',
            'sortOrder': 'descending', 'startIndex': 1, 'count': 10, 'attributes': ['userName']}
    found = client.post('/Users/.search', body, status=200).json
    assert [user['userName'] for user in found['Resources']] == ['carol@example.com', 'bob@example.com']
    assert found['totalResults'] == 2
    assert set(found['Resources'][0]) == {'schemas', 'id', 'meta', 'userName'}


def test_groups_search(client, people):
    client.create_group('Sales', [people['bob']])
    client.create_group('Support')
    found = client.post('/Groups/.search', {'schemas': [SEARCH], 'filter': 'displayName sw "s"',
                                            'excludedAttributes': ['members']}, status=200).json
    assert sorted(group['displayName'] for group in found['Resources']) == ['Sales', 'Support']
    assert all('members' not in group for group in found['Resources'])


def test_root_search_lists_users_then_groups_with_one_paging(client, people):
    client.create_group('Bob fans', [people['bob']])
    body = {'schemas': [SEARCH], 'filter': 'displayName co "bob"', 'startIndex': 2, 'count': 2}
    found = client.post('/.search', body, status=200).json
    assert found['totalResults'] == 3   # users bob and Bob (erin), the group "Bob fans"
    assert [(r['meta']['resourceType'], r['displayName']) for r in found['Resources']] == \
        [('User', 'Bob'), ('Group', 'Bob fans')]


def test_root_search_with_an_attribute_only_users_have(client, people):
    client.create_group('Team')
    found = client.post('/.search', {'schemas': [SEARCH], 'filter': 'userName eq "bob@example.com"'}, status=200).json
    assert [r['id'] for r in found['Resources']] == [people['bob']]


@pytest.mark.parametrize('body, scim_type', [
    ({'filter': 'userName pr'}, 'invalidSyntax'),
    ({'schemas': [SEARCH], 'filter': 'userName eq'}, 'invalidFilter'),
    ({'schemas': [SEARCH], 'count': 'many'}, 'invalidValue'),
    ({'schemas': [SEARCH], 'count': True}, 'invalidValue'),
    ({'schemas': [SEARCH], 'filter': 5}, 'invalidValue'),
    ({'schemas': [SEARCH], 'attributes': ['a'], 'excludedAttributes': ['b']}, 'invalidValue'),
])
def test_bad_search_request_is_400(client, people, body, scim_type):
    for path in ('/Users/.search', '/Groups/.search', '/.search'):
        assert_scim_error(client.post(path, body), 400, scim_type)


def test_count_zero_gives_only_the_total(client, people):
    listing = client.get('/Users?count=0&filter=' + quote('title pr'), status=200).json
    assert listing['totalResults'] == 3 and listing['itemsPerPage'] == 0 and listing['Resources'] == []


def test_root_search_sorts_each_type_by_an_attribute_only_one_has(client, people):
    client.create_group('Team')
    found = client.post('/.search', {'schemas': [SEARCH], 'sortBy': 'userName', 'count': 100}, status=200).json
    kinds = [r['meta']['resourceType'] for r in found['Resources']]
    assert kinds == ['User'] * 5 + ['Group']
    assert [r['userName'] for r in found['Resources'][:5]] == sorted(
        (r['userName'] for r in found['Resources'][:5]), key=str.lower)
    assert_scim_error(client.post('/.search', {'schemas': [SEARCH], 'sortBy': 'nosuch'}), 400, 'invalidValue')
