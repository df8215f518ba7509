"""Paging of /Users (RFC 7644 §3.4.2.4): startIndex is 1-based, count is a maximum,
totalResults counts every match whatever the page."""

from urllib.parse import urlencode

import pytest

from conftest import ScimClient, assert_scim_error

USER_COUNT = 7


@pytest.fixture
def seven_users(client):
    """Seven users, ids in creation order; user3..user6 are inactive."""
    return [client.create_user(f'user{n}@example.com', active=n < 3)['id'] for n in range(USER_COUNT)]


def page(client, **params):
    return client.get(f'/Users?{urlencode(params)}', status=200).json


def ids(listing):
    return [resource['id'] for resource in listing.get('Resources', [])]


def all_pages(client, size, **params):
    """The ids of every page of `size`, walked by startIndex, in order."""
    collected, start = [], 1
    while True:
        listing = page(client, startIndex=start, count=size, **params)
        assert listing['startIndex'] == start
        assert listing['itemsPerPage'] == len(ids(listing))
        if not ids(listing):
            return collected
        assert len(ids(listing)) <= size
        collected += ids(listing)
        start += size


@pytest.mark.parametrize('count', [1, 2, 3, 7, 100])
@pytest.mark.parametrize('start_index', [1, 2, 5, 7])
def test_total_results_is_every_user_whatever_the_page(client, seven_users, count, start_index):
    listing = page(client, startIndex=start_index, count=count)
    assert listing['totalResults'] == USER_COUNT
    assert listing['startIndex'] == start_index
    expected = min(count, USER_COUNT - start_index + 1)
    assert listing['itemsPerPage'] == expected
    assert len(ids(listing)) == expected


def test_one_big_page_holds_every_user_once(client, seven_users):
    assert sorted(ids(page(client, count=100))) == sorted(seven_users)


@pytest.mark.parametrize('size', range(1, USER_COUNT + 1))
def test_pages_concatenate_to_the_order_of_one_big_page(client, seven_users, size):
    assert all_pages(client, size) == ids(page(client, count=100))


@pytest.mark.parametrize('start_index', [USER_COUNT + 1, USER_COUNT + 50, 10 ** 12])
def test_page_past_the_end_is_empty_but_counts_everyone(client, seven_users, start_index):
    listing = page(client, startIndex=start_index, count=3)
    assert listing['totalResults'] == USER_COUNT
    assert listing['itemsPerPage'] == 0
    assert ids(listing) == []


@pytest.mark.parametrize('count', [0, -1, -100])
def test_count_zero_or_negative_returns_only_the_total(client, seven_users, count):
    listing = page(client, count=count)
    assert listing['totalResults'] == USER_COUNT
    assert listing['itemsPerPage'] == 0
    assert ids(listing) == []


@pytest.mark.parametrize('start_index', [0, -1, -99])
def test_start_index_below_one_is_treated_as_one(client, seven_users, start_index):
    listing = page(client, startIndex=start_index, count=2)
    assert listing['startIndex'] == 1
    assert ids(listing) == ids(page(client, count=100))[:2]
    assert listing['totalResults'] == USER_COUNT


@pytest.fixture
def small_page_client(make_app):
    """A client on an app whose largest page is 3."""
    return ScimClient(make_app(max_page_size=3))


@pytest.mark.parametrize('params', [{'count': 4}, {'count': 100}, {'count': 10 ** 12}, {}])
def test_count_above_max_page_size_is_capped(small_page_client, params):
    for n in range(USER_COUNT):
        small_page_client.create_user(f'user{n}@example.com')
    listing = page(small_page_client, **params)
    assert listing['totalResults'] == USER_COUNT
    assert listing['itemsPerPage'] == 3
    assert len(ids(listing)) == 3


def test_small_max_page_size_still_pages_through_everyone(small_page_client):
    created = [small_page_client.create_user(f'user{n}@example.com')['id'] for n in range(USER_COUNT)]
    walked, start = [], 1
    while True:
        listing = page(small_page_client, startIndex=start, count=100)
        if not ids(listing):
            break
        walked += ids(listing)
        start += listing['itemsPerPage']
    assert sorted(walked) == sorted(created)
    assert len(walked) == USER_COUNT


@pytest.mark.parametrize('name', ['startIndex', 'count'])
@pytest.mark.parametrize('value', ['abc', '1.5', '0x10', '1e3', 'NaN', '2,3'])
def test_non_numeric_paging_parameter_is_400_invalid_value(client, seven_users, name, value):
    error = assert_scim_error(client.get(f'/Users?{urlencode({name: value})}'), 400, 'invalidValue')
    assert name in error['detail']


def test_paging_fields_are_json_integers(client, seven_users):
    listing = page(client, startIndex='2', count='3')
    for field in ('totalResults', 'startIndex', 'itemsPerPage'):
        assert type(listing[field]) is int, (field, listing[field])


@pytest.mark.parametrize('size', [1, 2, 3])
def test_filtered_pages_count_every_match_not_the_page(client, seven_users, size):
    inactive = seven_users[3:]
    first = page(client, filter='active eq false', count=size)
    assert first['totalResults'] == len(inactive)
    assert first['itemsPerPage'] == size
    walked = all_pages(client, size, filter='active eq false')
    assert sorted(walked) == sorted(inactive)
    assert len(walked) == len(inactive)


def test_users_in_many_groups_page_by_users_not_by_memberships(client):
    """A page holds `count` users, however many groups each is in."""
    ids = [client.create_user(f'many{n}@example.com')['id'] for n in range(5)]
    for n in range(4):
        client.create_group(f'G{n}', ids)
    first = client.get('/Users?startIndex=1&count=2', status=200).json
    second = client.get('/Users?startIndex=3&count=3', status=200).json
    assert [u['id'] for u in first['Resources'] + second['Resources']] == ids
    assert all(len(u['groups']) == 4 for u in first['Resources'] + second['Resources'])
    assert (first['totalResults'], first['itemsPerPage'], second['itemsPerPage']) == (5, 2, 3)
