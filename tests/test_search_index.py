"""The search and sort indexes (schema version 7) answer exactly what the scans they
stand in for answer: the trigram index only narrows co/sw/ew/eq on userName,
displayName and emails, the sort key columns order as the JSON path does, after
every kind of write, where the database has no trigram index, and after an upgrade."""

import json
import logging
import urllib.parse

import pytest

import sampledata
import scimfilter
import store
import test_upgrade
from conftest import PATCH_SCHEMA, ScimClient

BULK_REQUEST = 'urn:ietf:params:scim:api:messages:2.0:BulkRequest'

# Users whose values try the index's edges: case, letters Python and the database
# lower-case differently, LIKE's wildcards, quotes, short and long strings, emails
# that are not a list of objects.
USERS = [
    dict(userName='Ann.Lee@Example.com', displayName='Ann Lee', title='Engineer',
         name={'familyName': 'Lee', 'givenName': 'Ann'},
         emails=[{'value': 'ann@work.example', 'type': 'work', 'primary': True},
                 {'value': 'ann.lee@home.example', 'type': 'home'}]),
    dict(userName='bob_100%@example.com', displayName='Bob "Q" Müller', title='engineer',
         name={'familyName': 'Müller', 'givenName': 'Bob'},
         emails=[{'value': 'BOB_100%@Work.Example', 'type': 'work'}, {'value': 'bob@home.example', 'type': 'home',
                                                                     'primary': True}]),
    dict(userName='İstanbul.user@example.org', displayName='İSTANBUL', title='Ärzte-Team',
         name={'familyName': 'Öz'}, emails=[{'value': 'İst@work.example', 'type': 'work'}]),
    dict(userName='carol@example.org', displayName='Carol', externalId='ext-c',
         emails=[{'value': 'carol@work.example', 'type': 'other'}]),
    dict(userName='dan@example.com', title='Σίσυφος', name={'givenName': 'Dan'}, externalId='EXT-d', emails=[]),
    dict(userName='erin@example.com', displayName='erin', title='', emails=[{'type': 'work'}]),
    dict(userName='annabel@example.net', displayName='Annabel Lee', title='Engineer', externalId='ext-a',
         emails=[{'value': 'annabel@work.example', 'type': 'work'}, {'value': 'ann@work.example', 'type': 'home'}]),
]
FILTERS = [
    'userName co "ann"', 'userName co "ANN"', 'userName sw "ann"', 'userName ew ".ORG"', 'userName co "an"',
    'userName co "_100%"', 'userName co "100%@"', 'userName co "b_1"', 'userName co "ist"', 'userName co "İst"',
    'userName sw "istanbul"', 'userName co "e@example.c"', 'not (userName co "ann")',
    'displayName co "lee"', 'displayName eq "ann lee"', 'displayName co "\\"q\\""', 'displayName co "MÜLL"',
    'displayName sw "ist"', 'displayName ew "bul"', 'displayName co "Σίσ"', 'displayName co "zzz"',
    'emails co "work.ex"', 'emails.value co "ann@"', 'emails.value eq "ANN@work.example"', 'emails.value sw "bob_"',
    'emails.value ew "%@work.example"', 'emails[type eq "work" and value co "ann"]',
    'emails[value co "ann" and type eq "home"]', 'emails[type eq "work" and value sw "BOB_1"]',
    'emails[type eq "work" and value ew "ple"]', 'emails[value eq "ann@work.example"]',
    'emails[type eq "work" and (value co "ann" or value co "bob")]', 'not (emails[value co "work"])',
    'emails[type eq "work" and value co "st@"]', 'userName co "ann" or displayName co "müller"',
    'userName co "lee" and emails[type eq "home" and value co "lee"]',
]
SORTS = ['title', 'name.familyName', 'name.givenName', 'emails', 'emails.value', 'displayName', 'externalId',
         'userName']


def add_user(client, user):
    return client.post('/Users', {'schemas': [sampledata.USER_SCHEMA], **user}, status=201).json['id']


def create(client, number, **attributes):
    return add_user(client, {**USERS[number], **attributes})


@pytest.fixture
def people(client):
    return [add_user(client, user) for user in USERS]


def listing(client, **query):
    response = client.get('/Users?' + urllib.parse.urlencode({'count': 500, **query}), status=200).json
    return response['totalResults'], [user['id'] for user in response.get('Resources', [])]


def scanned(client, monkeypatch, **query):
    """What the list answers without the indexes: filters scan, sorts take the JSON path."""
    with monkeypatch.context() as patch:
        patch.setattr(store, '_trigram_index', None)
        patch.setattr(store, '_odd_sort_values', lambda: True)
        return listing(client, **query)


def index_waiting():
    """On SQLite, index the users that wait for the trigram index (UNINDEXED_AT_MOST);
    PostgreSQL's GIN index takes each user as it is written."""
    if store.is_sqlite():
        with store.database.atomic():
            store._index_waiting()


def waiting():
    """The users the trigram index does not hold yet (SQLite)."""
    return store.database.execute_sql(
        'SELECT COUNT(*) FROM users WHERE search_row > (SELECT upto FROM user_text_upto)').fetchone()[0]


def search_row(user_id):
    """A user's number in SQLite's trigram index."""
    return store.database.execute_sql('SELECT search_row FROM users WHERE id = ?', (user_id,)).fetchone()[0]


def assert_indexes_agree(client, monkeypatch):
    """Every filter and sort answers the same with the indexes and without them, with
    new users waiting to be indexed and once they are; the side table has a row for
    each user, and no other."""
    assert store._trigram_index == ('fts5' if store.is_sqlite() else 'pg_trgm')
    for text in FILTERS:
        assert listing(client, filter=text) == scanned(client, monkeypatch, filter=text), text
    index_waiting()
    for text in FILTERS:
        assert listing(client, filter=text) == scanned(client, monkeypatch, filter=text), text
    for attribute in SORTS:
        for order in ('ascending', 'descending'):
            query = {'sortBy': attribute, 'sortOrder': order}
            assert listing(client, **query) == scanned(client, monkeypatch, **query), query
    if not store.is_sqlite():   # PostgreSQL's side table: a row for each user
        user_ids = sorted(row[0] for row in store.User.select(store.User.id).tuples())
        assert sorted(row[0] for row in store.UserSearch.select(store.UserSearch.user_id).tuples()) == user_ids
        return
    # SQLite's: each user's row, with a number of its own, and its values as a write
    # would make them; the FTS5 table follows users (its integrity-check reads them).
    rows = store.database.execute_sql('SELECT search_row, resource, user_name_key, search_display_name, '
                                      'search_emails FROM users').fetchall()
    assert len({row[0] for row in rows}) == len(rows) and None not in {row[0] for row in rows}
    for _, text, *searched in rows:
        columns = store._user_columns(json.loads(text))
        assert searched == [columns['user_name_key'], columns['search_display_name'], columns['search_emails']]
    assert store.database.execute_sql(
        "INSERT INTO user_text (user_text, rank) VALUES ('integrity-check', 1)") is not None


def test_filters_and_sorts_answer_as_the_scans_do(client, people, monkeypatch):
    assert_indexes_agree(client, monkeypatch)
    assert listing(client, filter='userName co "ann"')[0] == 2
    assert listing(client, filter='emails[type eq "work" and value co "ann"]')[0] == 2
    assert listing(client, filter='userName co "_100%"')[0] == 1   # the wildcards are the characters


def test_the_trigram_index_narrows_the_query(client, people):
    """The filter's SQL goes through the index, and the seat is still asked."""
    where = store.filter_expression(scimfilter.parse_filter('userName co "ann"'), store.USER_COLUMNS,
                                    store.USER_MEMBERSHIP, {'emails': True})
    sql, _ = store.User.select(store.User.id).where(store.in_seat(store.User, where)).sql()
    assert ('user_text' if store.is_sqlite() else 'user_search') in sql and 'seat' in sql
    assert ('user_text' in sql) == store.is_sqlite()


def test_a_seat_with_a_title_that_is_not_a_string_sorts_by_the_json_path(client, people, monkeypatch):
    """The server takes only strings there today; an older one's rows may differ."""
    store.create_user({**USERS[0], 'userName': 'numbered@example.com', 'title': 42, 'name': {'familyName': ['x']}})
    store.create_user({**USERS[0], 'userName': 'truth@example.com', 'title': True,
                       'emails': [{'value': 7, 'primary': True}]})
    assert store._odd_sort_values()
    assert_indexes_agree(client, monkeypatch)
    total, ids = listing(client, sortBy='title')
    assert total == len(USERS) + 2


def test_a_title_longer_than_an_index_entry_sorts_by_the_json_path(client, people, monkeypatch):
    """PostgreSQL's B-tree refuses an entry over 2,704 bytes: such a value is left out
    of the sort keys, and its seat sorts as before."""
    user_id = create(client, 0, userName='long@example.com', title='T' * 3000, displayName='D' * 3000)
    put_user(client, user_id, 0, userName='long@example.com', title='U' * 6000)
    assert store._odd_sort_values()
    assert_indexes_agree(client, monkeypatch)


def put_user(client, user_id, number, **attributes):
    client.put(f'/Users/{user_id}', {'schemas': [sampledata.USER_SCHEMA], **USERS[number], **attributes}, status=200)


def patch_user(client, user_id, operations):
    client.patch(f'/Users/{user_id}', operations, status=200)


def bulk(client, operations):
    client.post('/Bulk', {'schemas': [BULK_REQUEST], 'Operations': operations}, status=200)


WRITES = {
    'create': lambda client, ids: create(client, 1, userName='NEW.ann@example.com', displayName='Newcomer'),
    'put': lambda client, ids: put_user(client, ids[0], 3, userName='renamed@example.com'),
    'put, emails only': lambda client, ids: put_user(client, ids[0], 0, emails=[{'value': 'fresh@x.example'}]),
    'patch userName and emails': lambda client, ids: patch_user(client, ids[1], [
        {'op': 'replace', 'path': 'userName', 'value': 'robert@example.com'},
        {'op': 'add', 'path': 'emails', 'value': [{'value': 'robert.ann@work.example', 'type': 'work'}]},
        {'op': 'replace', 'path': 'title', 'value': 'Zookeeper'}]),
    'patch a filtered email': lambda client, ids: patch_user(client, ids[0], [
        {'op': 'replace', 'path': 'emails[type eq "work"].value', 'value': 'moved@work.example'}]),
    'patch remove displayName and title': lambda client, ids: patch_user(client, ids[6], [
        {'op': 'remove', 'path': 'displayName'}, {'op': 'remove', 'path': 'title'},
        {'op': 'remove', 'path': 'emails'}]),
    'patch deactivate': lambda client, ids: patch_user(client, ids[0], [
        {'op': 'replace', 'value': {'active': False}}]),
    'delete': lambda client, ids: client.delete(f'/Users/{ids[0]}', status=204),
    'bulk': lambda client, ids: bulk(client, [
        {'method': 'POST', 'path': '/Users', 'bulkId': 'b1',
         'data': {'schemas': [sampledata.USER_SCHEMA], 'userName': 'bulk.ann@example.com',
                  'emails': [{'value': 'bulk@work.example', 'type': 'work'}], 'title': 'Bulk'}},
        {'method': 'PATCH', 'path': f'/Users/{ids[2]}', 'data': {'schemas': [PATCH_SCHEMA], 'Operations': [
            {'op': 'replace', 'path': 'displayName', 'value': 'Renamed Ann'}]}},
        {'method': 'DELETE', 'path': f'/Users/{ids[3]}'}]),
}


@pytest.mark.parametrize('indexed', [False, True], ids=['users waiting', 'users indexed'])
@pytest.mark.parametrize('write', WRITES)
def test_every_write_keeps_the_indexes(client, people, monkeypatch, write, indexed):
    if indexed:
        index_waiting()
    WRITES[write](client, people)
    assert_indexes_agree(client, monkeypatch)


def test_a_change_sets_the_indexed_columns_only_where_they_change(client, people, caplog, monkeypatch):
    """A user's UPDATE sets an indexed column (a sort key, a searched value, externalId,
    the userName key) only where the value the row holds changes: SQLite rewrites an
    index entry of every column set, and a searched value set lists the user stale."""
    def set_columns(request):
        caplog.clear()
        with caplog.at_level(logging.DEBUG, logger='peewee'):
            request()
        (sql,) = [record.args[0] if record.args else record.msg[0] for record in caplog.records
                  if 'UPDATE "users"' in str(record.msg)]
        return {column for column in INDEXED_COLUMNS if f'"{column}" =' in sql}

    assert set_columns(lambda: patch_user(client, people[0], [{'op': 'replace', 'value': {'active': False}}])) == set()
    assert set_columns(lambda: put_user(client, people[0], 0, title='ENGINEER')) == set()   # the key is the same
    assert set_columns(lambda: put_user(client, people[0], 0, title='Manager')) == {'title_key'}
    searched = {'search_display_name'} if store.is_sqlite() else set()
    assert set_columns(lambda: put_user(client, people[0], 0, title='Manager', displayName='Ann Lee-Smith')) == {
        'display_name_key', *searched}
    assert set_columns(lambda: put_user(client, people[0], 0, title='Manager', displayName='Ann Lee-Smith',
                                        userName='ANN.LEE@example.com')) == set()
    assert listing(client, filter='displayName co "lee-sm"') == (1, [people[0]])
    assert listing(client, sortBy='title', filter='title eq "manager"') == (1, [people[0]])
    assert_indexes_agree(client, monkeypatch)


INDEXED_COLUMNS = ('external_id', 'user_name_key', 'display_name_key', 'title_key', 'family_name_key',
                   'given_name_key', 'email_key', 'sort_odd', 'search_display_name', 'search_emails')


def test_new_users_wait_for_the_trigram_index_and_are_found_meanwhile(client, monkeypatch):
    """On SQLite, the write that makes UNINDEXED_AT_MOST users wait indexes them all."""
    if not store.is_sqlite():
        pytest.skip("PostgreSQL's GIN index keeps its own pending list")
    monkeypatch.setattr(store, 'UNINDEXED_AT_MOST', 3)
    ids = [add_user(client, USERS[0]), add_user(client, USERS[6])]
    assert waiting() == 2
    assert listing(client, filter='userName co "ann"') == (2, ids)
    assert store.database.execute_sql("SELECT COUNT(*) FROM user_text WHERE user_text MATCH 'ann'").fetchone() == (0,)
    ids.append(create(client, 1, userName='third.ann@example.com'))
    assert waiting() == 0
    assert store.database.execute_sql("SELECT COUNT(*) FROM user_text WHERE user_text MATCH 'ann'").fetchone() == (3,)
    assert listing(client, filter='userName co "ann"') == (3, ids)
    ids.append(create(client, 2, userName='fourth.ann@example.com'))
    assert waiting() == 1
    assert listing(client, filter='userName co "ann"') == (4, ids)
    assert_indexes_agree(client, monkeypatch)


def stale():
    """The indexed users whose values changed since the index took them (SQLite)."""
    return store.database.execute_sql('SELECT COUNT(*) FROM user_text_stale').fetchone()[0]


def matches(text):
    """How many entries of SQLite's trigram index hold `text`, stale ones too."""
    return store.database.execute_sql('SELECT COUNT(*) FROM user_text WHERE user_text MATCH ?',
                                      (f'"{text}"',)).fetchone()[0]


def test_a_changed_user_is_found_by_its_new_values_only(client, monkeypatch):
    """An indexed user's values change in its row; the index keeps the old ones, listed
    as stale, until the next batch drops them and takes the new ones. Meanwhile the
    old values find nobody and the new ones find the user."""
    if not store.is_sqlite():
        pytest.skip("SQLite's trigram index")
    ids = [add_user(client, user) for user in USERS[:2]]
    index_waiting()
    row = search_row(ids[0])
    put_user(client, ids[0], 0, userName='moved.zed@example.com', emails=[{'value': 'zed@work.example'}])
    assert search_row(ids[0]) == row
    assert waiting() == 0 and stale() == 1
    assert matches('ann.lee') == 1 and matches('zed@') == 0   # the index still holds the old values
    assert listing(client, filter='userName co "ann.lee"') == (0, [])
    assert listing(client, filter='emails co "ann@work"') == (0, [])
    assert listing(client, filter='userName co "zed@"') == (1, [ids[0]])
    assert listing(client, filter='emails[type eq "work" and value co "zed@w"]') == (0, [])   # no type
    assert listing(client, filter='emails[value co "zed@w"]') == (1, [ids[0]])
    # A second change: the stale list keeps what the index holds, the first values.
    put_user(client, ids[0], 0, userName='again.yve@example.com', emails=[{'value': 'yve@work.example'}])
    assert stale() == 1
    assert listing(client, filter='userName co "zed@"') == (0, [])
    assert listing(client, filter='userName co "yve@"') == (1, [ids[0]])
    index_waiting()
    assert waiting() == 0 and stale() == 0
    assert matches('ann.lee') == 0 and matches('zed@') == 0 and matches('yve@') == 1
    assert listing(client, filter='userName co "yve@"') == (1, [ids[0]])
    assert_indexes_agree(client, monkeypatch)


def test_a_changed_user_deleted_before_the_batch_leaves_the_index(client, monkeypatch):
    """Deleting a user whose index entry is stale leaves that entry to the batch, which
    drops it with the values the index holds (FTS5's integrity-check would catch a
    'delete' with other values), and indexes nothing in its place."""
    if not store.is_sqlite():
        pytest.skip("SQLite's trigram index")
    ids = [add_user(client, user) for user in USERS[:3]]
    index_waiting()
    put_user(client, ids[1], 1, userName='gone.zed@example.com')
    client.delete(f'/Users/{ids[1]}', status=204)
    client.delete(f'/Users/{ids[2]}', status=204)   # an indexed user that had not changed
    assert stale() == 1 and matches('bob_') == 1 and matches('stanbul') == 0
    assert listing(client, filter='userName co "zed@"') == (0, [])
    assert listing(client, filter='userName co "bob_"') == (0, [])
    index_waiting()
    assert stale() == 0 and matches('bob_') == 0 and matches('zed@') == 0
    assert_indexes_agree(client, monkeypatch)


def test_the_change_that_makes_enough_stale_indexes_them(client, monkeypatch):
    """On SQLite, the change that makes UNINDEXED_AT_MOST indexed users' values stale
    indexes them, as the create that makes that many wait does."""
    if not store.is_sqlite():
        pytest.skip("SQLite's trigram index")
    monkeypatch.setattr(store, 'UNINDEXED_AT_MOST', 3)
    ids = [add_user(client, user) for user in USERS[:3]]
    assert waiting() == 0   # the third create indexed all three
    put_user(client, ids[0], 0, userName='one.zed@example.com')
    put_user(client, ids[1], 1, userName='two.zed@example.com')
    assert stale() == 2 and matches('zed@') == 0
    client.patch(f'/Users/{ids[0]}', [{'op': 'replace', 'value': {'active': False}}],
                 status=200)   # its searched values stay: not stale again
    assert stale() == 2
    put_user(client, ids[2], 2, userName='three.zed@example.com')
    assert stale() == 0 and matches('zed@') == 3
    assert listing(client, filter='userName co "zed@"') == (3, ids)
    assert_indexes_agree(client, monkeypatch)


def test_the_stale_list_is_counted_now_and_then_and_overruns_by_little(client, monkeypatch):
    """A process counts the stale list at one in UNINDEXED_AT_MOST // WAIT_COUNT_EVERY
    of its changes: with 33 and 16, at every second change, so the change after the
    one that makes 33 stale indexes them."""
    if not store.is_sqlite():
        pytest.skip("SQLite's trigram index")
    monkeypatch.setattr(store, 'UNINDEXED_AT_MOST', 33)
    monkeypatch.setitem(store._uncounted, 'stale', 0)
    ids = [create(client, 3, userName=f'count{number}@example.com') for number in range(34)]
    index_waiting()
    for number, user_id in enumerate(ids[:33]):
        put_user(client, user_id, 3, userName=f'counted{number}.zed@example.com')
    assert stale() == 33 and matches('zed@') == 0   # counted at the 32nd change: 32
    put_user(client, ids[33], 3, userName='counted33.zed@example.com')
    assert stale() == 0 and matches('zed@') == 34
    assert listing(client, filter='userName co "zed@"') == (34, ids)
    assert_indexes_agree(client, monkeypatch)


def test_the_waiting_users_are_counted_now_and_then_and_overrun_by_little(client, monkeypatch):
    """Creates count the users waiting for the index as changes count the stale list:
    with 33 and 16, at every second create, so the create after the one that makes
    33 wait indexes them; meanwhile searches find the waiting ones."""
    if not store.is_sqlite():
        pytest.skip("SQLite's trigram index")
    monkeypatch.setattr(store, 'UNINDEXED_AT_MOST', 33)
    monkeypatch.setitem(store._uncounted, 'waiting', 0)
    ids = [create(client, 3, userName=f'waits{number}.zed@example.com') for number in range(33)]
    assert waiting() == 33 and matches('zed@') == 0   # counted at the 32nd create: 32
    assert listing(client, filter='userName co "zed@"') == (33, ids)
    ids.append(create(client, 3, userName='waits33.zed@example.com'))
    assert waiting() == 0 and matches('zed@') == 34
    assert listing(client, filter='userName co "zed@"') == (34, ids)
    assert_indexes_agree(client, monkeypatch)


def test_a_new_user_is_numbered_past_the_indexed_rows(client, monkeypatch):
    """SQLite gives the next row the highest rowid + 1: after the highest indexed row
    goes, that number is one the index takes to hold. A new row is numbered past it."""
    if not store.is_sqlite():
        pytest.skip("SQLite's rowids")
    ids = [add_user(client, user) for user in USERS[:3]]
    index_waiting()
    client.delete(f'/Users/{ids[2]}', status=204)
    newest = create(client, 6, userName='after.ann@example.com')
    assert search_row(newest) == 4 and waiting() == 1
    assert listing(client, filter='userName co "after.ann"') == (1, [newest])
    assert_indexes_agree(client, monkeypatch)


def test_sample_data_and_a_seat_reset_keep_the_indexes(make_app, monkeypatch):
    app = make_app(seats=1)
    (seat,) = store.seats()
    seat_client = ScimClient(app)
    seat_client.headers['Authorization'] = f'Bearer {seat["token"]}'
    users = sampledata.sample_users(40)
    assert store.fill_sample_data(seat['number'], users, [])
    assert store.fill_sample_data(0, users[:10], [])
    first = users[0]['emails'][0]['value'][:6]
    assert listing(seat_client, filter=f'emails[type eq "work" and value co "{first}"]')[0] >= 1
    with store.seat_data(seat['number']):
        assert_indexes_agree(seat_client, monkeypatch)
    store.reset_seat(seat['number'])
    assert listing(seat_client, filter=f'userName co "{first}"') == (0, [])
    with store.seat_data(seat['number']):
        assert_indexes_agree(seat_client, monkeypatch)
    assert_indexes_agree(ScimClient(app), monkeypatch)   # seat 0's, untouched


def test_each_seat_searches_its_own_users(make_app):
    app = make_app(seats=1)
    (seat,) = store.seats()
    own, other = ScimClient(app), ScimClient(app)
    other.headers['Authorization'] = f'Bearer {seat["token"]}'
    add_user(own, USERS[0])
    add_user(other, USERS[6])
    assert listing(own, filter='userName co "ann"')[0] == 1
    assert listing(other, filter='userName co "ann"')[0] == 1
    assert listing(other, sortBy='title')[0] == 1


def break_trigram_index(monkeypatch):
    """As on a SQLite without the trigram tokenizer, or a PostgreSQL without pg_trgm."""
    statements = store.SEARCH_SCHEMA['sqlite']['trigram']
    monkeypatch.setitem(store.SEARCH_SCHEMA['sqlite'], 'trigram',
                        [statements[0].replace("'trigram'", "'no_such_tokenizer'"), *statements[1:]])
    monkeypatch.setattr(store, 'TRIGRAM_EXTENSION', 'pg_trgm_not_installed')


def test_without_a_trigram_index_filters_scan_and_answer_alike(make_app, monkeypatch):
    break_trigram_index(monkeypatch)
    client = ScimClient(make_app())
    ids = [add_user(client, user) for user in USERS]
    assert store._trigram_index is None
    answers = {text: listing(client, filter=text) for text in FILTERS}
    assert answers['userName co "ann"'] == (2, [ids[0], ids[6]])
    assert answers['emails[type eq "work" and value co "ann"]'] == (2, [ids[0], ids[6]])
    assert answers['userName co "_100%"'] == (1, [ids[1]])
    WRITES['patch userName and emails'](client, ids)
    monkeypatch.undo()   # the next start can make it: it is built from what users (user_search) kept
    client = ScimClient(make_app())
    assert store._trigram_index == ('fts5' if store.is_sqlite() else 'pg_trgm')
    assert_indexes_agree(client, monkeypatch)


def test_filters_decode_what_they_stored(client, people):
    """The searched values are kept lower-cased, one email a line: in the user's row
    on SQLite, in the side table on PostgreSQL."""
    if store.is_sqlite():
        row = store.User.get(store.User.id == people[0])
        searched = (row.user_name_key, row.search_display_name, row.search_emails)
    else:
        row = store.UserSearch.get(store.UserSearch.user_id == people[0])
        searched = (row.user_name, row.display_name, row.emails)
    assert searched == ('ann.lee@example.com', 'ann lee', 'ann@work.example\nann.lee@home.example')
    stored = json.loads(store.User.get(store.User.id == people[0]).resource)
    assert stored['emails'][0]['value'] == 'ann@work.example'


def test_a_search_with_too_many_candidates_scans_and_answers_alike(client, people, monkeypatch):
    monkeypatch.setattr(store, 'MAX_CANDIDATES', 1)
    assert_indexes_agree(client, monkeypatch)
    if store.is_sqlite():
        assert 'user_text' not in user_query_sql('userName co "example"')[0]
        assert 'user_text' in user_query_sql('userName co "ann.lee"')[0]


def user_query_sql(text, order_by=()):
    where = store.filter_expression(scimfilter.parse_filter(text), store.USER_COLUMNS, store.USER_MEMBERSHIP,
                                    {'emails': True})
    query = store.User.select(store.User.id).where(store.in_seat(store.User, where)).order_by(*order_by)
    return query.sql()


def test_sqlite_takes_the_trigram_candidates_before_the_paging_index(client, people):
    """Told how unselective the seat is (_describe_users_indexes), SQLite's planner looks
    the candidates up rather than walking a seat's users in paging order."""
    if not store.is_sqlite():
        pytest.skip("SQLite's planner")
    for text in ('userName co "ann"', 'emails[type eq "work" and value co "ann"]'):
        for order in ([store.User.created, store.User.id], [store.User.title_key.is_null(), store.User.title_key]):
            sql, params = user_query_sql(text, order)
            plan = ' '.join(row[3] for row in store.database.execute_sql('EXPLAIN QUERY PLAN ' + sql, params))
            assert 'user_text VIRTUAL TABLE' in plan and 'sqlite_autoindex_users_1 (id=?)' in plan, plan
            assert 'users_seat_created_id' not in plan and 'users_sort_title_key' not in plan, plan


@pytest.mark.parametrize('descending', [False, True])
@pytest.mark.parametrize('attribute, index', [('title', 'users_sort_title_key'),
                                              ('userName', 'users_s')])   # SQLite: users_seat_user_name_key
def test_a_sorted_page_walks_its_index(client, people, attribute, index, descending):
    """The page's ORDER BY (_page_keys) is spelt as the index is (its COLLATE too, on
    PostgreSQL), ties and all: no sort, either way."""
    sort_key = store.sort_expression(store.User, store.USER_COLUMNS, {'emails': True},
                                     scimfilter.AttrPath(attribute))
    # SQLite's one title index, walked backward: the users with a title, then those
    # without (_descending_page); otherwise one walk.
    parts = (True, False) if descending and store._walked_backward(store.User, sort_key) else (None,)
    for has in parts:
        sql, params = store.Prepared(lambda has=has: store._page_keys(
            store.User, None, sort_key, descending, has_value=has)).statement(seat=0, limit=100, offset=0)
        if store.is_sqlite():
            plan = ' '.join(row[3] for row in store.database.execute_sql('EXPLAIN QUERY PLAN ' + sql, params))
            assert index in plan and 'TEMP B-TREE' not in plan, plan
        else:
            with store.database.atomic():
                store.database.execute_sql('SET LOCAL enable_seqscan = off')
                plan = ' '.join(row[0] for row in store.database.execute_sql('EXPLAIN ' + sql, params))
            assert index in plan and 'Sort' not in plan, plan


def as_version_12(database_url):
    """Statements that turn this version's tables back into version 12's: on SQLite the
    searched values in user_search, by the users' numbers, and the trigram index over
    it holding what this one holds (the waiting users left out, the stale values in
    place of the changed users' new ones), with version 12's triggers."""
    if store.backend(database_url) != 'sqlite':
        return [('ALTER TABLE users DROP COLUMN search_display_name', ()),
                ('ALTER TABLE users DROP COLUMN search_emails', ()), ('UPDATE scimlite_schema SET version = 12', ())]
    return [(sql, ()) for sql in [
        'DROP TRIGGER users_search_removed', 'DROP TRIGGER users_search_changed', 'DROP TABLE user_text',
        store.SEARCH_TABLE_SQLITE.format(name='user_search'),
        'INSERT INTO user_search (row, user_id, user_name, display_name, emails) '
        'SELECT search_row, id, user_name_key, search_display_name, search_emails FROM users',
        'DROP INDEX users_search_row', 'ALTER TABLE users DROP COLUMN search_display_name',
        'ALTER TABLE users DROP COLUMN search_emails',
        "CREATE VIRTUAL TABLE user_text USING fts5(user_name, display_name, emails, content='user_search', "
        "content_rowid='row', tokenize='trigram', columnsize=0)",
        'INSERT INTO user_text (rowid, user_name, display_name, emails) SELECT row, user_name, display_name, emails '
        'FROM user_search WHERE row <= (SELECT upto FROM user_text_upto) '
        'AND row NOT IN (SELECT row FROM user_text_stale)',
        'INSERT INTO user_text (rowid, user_name, display_name, emails) '
        'SELECT row, user_name, display_name, emails FROM user_text_stale',
        *(sql for sql in store.SEARCH_TRIGGERS_V12 if sql.startswith('CREATE TRIGGER')),
        store.SEARCH_ROW_REMOVED,
        'UPDATE scimlite_schema SET version = 12']]


# What schema version 8 had on SQLite: the trigram index took each user as it was written.
VERSION_8_TRIGGERS = [
    'CREATE TRIGGER user_search_added AFTER INSERT ON user_search BEGIN '
    'INSERT INTO user_text (rowid, user_name, display_name, emails) '
    'VALUES (new.row, new.user_name, new.display_name, new.emails); END',
    'CREATE TRIGGER user_search_removed AFTER DELETE ON user_search BEGIN '
    "INSERT INTO user_text (user_text, rowid, user_name, display_name, emails) "
    "VALUES ('delete', old.row, old.user_name, old.display_name, old.emails); END",
    'CREATE TRIGGER user_search_changed AFTER UPDATE ON user_search BEGIN '
    "INSERT INTO user_text (user_text, rowid, user_name, display_name, emails) "
    "VALUES ('delete', old.row, old.user_name, old.display_name, old.emails); "
    'INSERT INTO user_text (rowid, user_name, display_name, emails) '
    'VALUES (new.row, new.user_name, new.display_name, new.emails); END',
]


def test_a_version_8_database_lets_new_users_wait_once_it_opens(make_app, database_url, monkeypatch):
    client = ScimClient(make_app())
    ids = [add_user(client, user) for user in USERS[:4]]
    index_waiting()
    store.close_database()
    statements = [('UPDATE scimlite_schema SET version = 8', ())]
    if store.is_sqlite():
        statements = [('DROP TRIGGER user_search_removed', ()), ('DROP TRIGGER user_search_changed', ()),
                      ('DROP TABLE user_text_upto', ()), *((sql, ()) for sql in VERSION_8_TRIGGERS), *statements,
                      # written as version 8 did: indexed at once
                      ("INSERT INTO users (id, user_name, user_name_key, resource, created, last_modified) "
                       "VALUES ('v8', 'v8.ann@example.com', 'v8.ann@example.com', "
                       "'{\"schemas\":[\"urn:ietf:params:scim:schemas:core:2.0:User\"],"
                       "\"userName\":\"v8.ann@example.com\"}', '2026-12-01T00:00:00Z', '2026-12-01T00:00:00Z')", ()),
                      ("INSERT INTO user_search (user_id, user_name) VALUES ('v8', 'v8.ann@example.com')", ())]
    test_upgrade.run_sql(database_url, as_version_12(database_url) + statements)

    client = ScimClient(make_app())
    assert test_upgrade.run_sql(database_url, [('SELECT version FROM scimlite_schema', ())]) == [
        (store.SCHEMA_VERSION,)]
    if store.is_sqlite():
        assert waiting() == 0
        assert search_triggers() == {'users_search_removed', 'users_search_changed'}
    found = ['v8', ids[0]] if store.is_sqlite() else [ids[0]]   # v8's created is older
    assert listing(client, filter='userName co "ann"') == (len(found), found)
    found.append(create(client, 6, userName='nine.ann@example.com'))
    if store.is_sqlite():
        assert waiting() == 1
    assert listing(client, filter='userName co "ann"') == (len(found), found)
    assert_indexes_agree(client, monkeypatch)


def search_triggers():
    return {name for (name,) in store.database.execute_sql(
        "SELECT name FROM sqlite_master WHERE type = 'trigger' AND (name LIKE 'user_search%' "
        "OR name LIKE 'users_search%')")}


def sqlite_indexes():
    return {name for (name,) in store.database.execute_sql("SELECT name FROM sqlite_master WHERE type = 'index'")}


# What schema version 9 had on SQLite: a changed indexed user moved to a new row number.
VERSION_9_TRIGGERS = [
    'CREATE TRIGGER user_search_removed AFTER DELETE ON user_search '
    'WHEN old.row <= (SELECT upto FROM user_text_upto) BEGIN '
    "INSERT INTO user_text (user_text, rowid, user_name, display_name, emails) "
    "VALUES ('delete', old.row, old.user_name, old.display_name, old.emails); END",
    'CREATE TRIGGER user_search_moved AFTER UPDATE ON user_search '
    'WHEN old.row <= (SELECT upto FROM user_text_upto) AND new.row <> old.row BEGIN '
    'INSERT INTO user_text_stale (row, user_name, display_name, emails) '
    'VALUES (old.row, old.user_name, old.display_name, old.emails); END',
    'CREATE TRIGGER user_search_changed AFTER UPDATE ON user_search '
    'WHEN old.row <= (SELECT upto FROM user_text_upto) AND new.row = old.row BEGIN '
    "INSERT INTO user_text (user_text, rowid, user_name, display_name, emails) "
    "VALUES ('delete', old.row, old.user_name, old.display_name, old.emails); "
    'INSERT INTO user_text (rowid, user_name, display_name, emails) '
    'VALUES (new.row, new.user_name, new.display_name, new.emails); END',
]


def test_a_version_9_database_changes_users_in_place_once_it_opens(make_app, database_url, monkeypatch):
    """Version 9 moved a changed indexed user to a new number and kept a descending
    title index: a user it moved, its stale entry still in the index, is found by its
    new values only, before and after the batch, and the descending index goes."""
    client = ScimClient(make_app())
    if not store.is_sqlite():
        pytest.skip("SQLite's trigram index and its one title index")
    ids = [add_user(client, user) for user in USERS[:4]]
    index_waiting()
    store.close_database()
    test_upgrade.run_sql(database_url, [
        *as_version_12(database_url),
        *(('DROP TRIGGER ' + name, ()) for name in ('user_search_removed', 'user_search_changed')),
        *((sql, ()) for sql in VERSION_9_TRIGGERS),
        (store._sort_indexes('', directions=store.BOTH_DIRECTIONS[1:])[0], ()),
        # as version 9 changed ids[0]: moved past every row, its old values stale
        ("UPDATE user_search SET row = (SELECT max(row) + 1 FROM user_search), user_name = 'v9.zed@example.com' "
         'WHERE user_id = ?', (ids[0],)),
        ("UPDATE users SET user_name = 'v9.zed@example.com', user_name_key = 'v9.zed@example.com', "
         "resource = json_set(resource, '$.userName', 'v9.zed@example.com') WHERE id = ?", (ids[0],)),
        ('UPDATE scimlite_schema SET version = 9', ())])

    client = ScimClient(make_app())
    assert test_upgrade.run_sql(database_url, [('SELECT version FROM scimlite_schema', ())]) == [
        (store.SCHEMA_VERSION,)]
    assert search_triggers() == {'users_search_removed', 'users_search_changed'}
    assert 'users_sort_title_key_desc' not in sqlite_indexes() and 'users_sort_title_key' in sqlite_indexes()
    # Version 13 made the index anew over users: what the user holds now, nothing waiting.
    assert waiting() == 0 and stale() == 0 and matches('ann.lee@example') == 0 and matches('v9.zed') == 1
    assert listing(client, filter='userName co "ann.lee"') == (0, [])
    assert listing(client, filter='userName co "v9.zed"') == (1, [ids[0]])
    put_user(client, ids[1], 1, userName='ten.yve@example.com')   # changed in place now
    assert waiting() == 0 and stale() == 1
    assert listing(client, filter='userName co "yve@"') == (1, [ids[1]])
    assert_indexes_agree(client, monkeypatch)
    assert matches('ann.lee@example') == 0 and matches('v9.zed') == 1 and matches('yve@') == 1


@pytest.mark.parametrize('count', [1, 3, 7, 100])
def test_descending_pages_run_from_the_titles_into_the_users_without_one(client, monkeypatch, count):
    """Every page of a descending title sort, the users with a title first (ties in
    the stable order) and those without last, as the JSON path sorts them: pages that
    end among the titles, straddle the two, or start past every title."""
    titles = ['b', 'A', None, 'c', 'a', None, 'B', 'b', None, None, 'a']
    ids = [create(client, 3, userName=f'page{number}@example.com',
                  **({'title': title} if title is not None else {})) for number, title in enumerate(titles)]
    for user_id in ids[::4]:   # a change moves a user's entry in the index
        body = client.get(f'/Users/{user_id}', status=200).json
        client.put(f'/Users/{user_id}', {**body, 'title': 'B'}, status=200)
    query = {'sortBy': 'title', 'sortOrder': 'descending'}
    whole = scanned(client, monkeypatch, **query)
    assert listing(client, **query) == whole and whole[0] == len(titles)
    for start in range(1, len(titles) + 3):
        page = listing(client, **query, startIndex=start, count=count)
        assert page == (len(titles), whole[1][start - 1:start - 1 + count]), (start, count)
    page = listing(client, **query, filter='userName sw "page1"', startIndex=2, count=count)
    assert page == scanned(client, monkeypatch, **query, filter='userName sw "page1"', startIndex=2, count=count)



def test_a_version_9_database_sorts_descending_ties_newest_first(make_app, database_url):
    """Version 9's descending indexes kept ties oldest first: the upgrade drops SQLite's
    (the ascending one is walked backward) and makes PostgreSQL's anew, ties newest
    first, and a descending page reverses the ascending one but for the nulls."""
    client = ScimClient(make_app())
    ids = [create(client, 3, userName=f'tie{number}@example.com', **({'title': title} if title else {}))
           for number, title in enumerate(['Same', None, 'same', 'Other', None])]
    store.close_database()
    collate = '' if store.backend(database_url) == 'sqlite' else ' COLLATE "C"'
    names = ('title_key',) if not collate else ('title_key', 'user_name_key')
    test_upgrade.run_sql(database_url, [
        *((f'DROP INDEX IF EXISTS users_sort_{name}_desc', ()) for name in names),
        *((f'CREATE INDEX users_sort_{name}_desc ON users (seat, (({name}{collate}) IS NULL), '
           f'{name}{collate} DESC, created, id)', ()) for name in names),   # as version 9 made them
        ('UPDATE scimlite_schema SET version = 9', ())])

    client = ScimClient(make_app())
    assert test_upgrade.run_sql(database_url, [('SELECT version FROM scimlite_schema', ())]) == [
        (store.SCHEMA_VERSION,)]
    if store.is_sqlite():
        assert 'users_sort_title_key_desc' not in sqlite_indexes()
    else:
        for name in names:
            (definition,) = store.database.execute_sql(
                'SELECT indexdef FROM pg_indexes WHERE indexname = %s', (f'users_sort_{name}_desc',)).fetchone()
            assert definition.endswith('DESC, created DESC, id DESC)'), definition
    descending = listing(client, sortBy='title', sortOrder='descending')[1]
    assert descending == [ids[2], ids[0], ids[3], ids[4], ids[1]]   # same (newest first), other, then none
    ascending = listing(client, sortBy='title')[1]
    assert ascending == [ids[3], ids[0], ids[2], ids[1], ids[4]]


def test_a_version_11_database_numbers_its_users_search_rows(make_app, database_url, monkeypatch, capsys):
    """Version 12: each user keeps the number of its user_search row, and SQLite's
    user_search loses its UNIQUE user_id (an index a create wrote a page of): the rows
    keep their numbers, so the trigram index, the waiting user and the stale one still
    answer; a user deleted afterwards takes its row, and its index entry, with it."""
    client = ScimClient(make_app())
    ids = [add_user(client, user) for user in USERS[:4]]
    index_waiting()
    put_user(client, ids[1], 1, userName='stale.yve@example.com')   # its indexed values stale
    ids.append(create(client, 6))   # waits for the index
    store.close_database()
    statements = as_version_12(database_url)
    if store.backend(database_url) == 'sqlite':
        statements += [  # user_search as versions 7 to 11 made it, and no users.search_row
            ('DROP TRIGGER users_search_row_removed', ()),
            ('CREATE TABLE user_search_v11 (row INTEGER PRIMARY KEY, user_id VARCHAR(64) NOT NULL UNIQUE '
             'REFERENCES users (id) ON DELETE CASCADE, user_name TEXT NOT NULL, display_name TEXT, emails TEXT)', ()),
            ('INSERT INTO user_search_v11 SELECT row, user_id, user_name, display_name, emails FROM user_search', ()),
            ('DROP TABLE user_search', ()), ('ALTER TABLE user_search_v11 RENAME TO user_search', ()),
            *((sql, ()) for sql in store.SEARCH_TRIGGERS_V12 if sql.startswith('CREATE TRIGGER'))]
    statements += [('ALTER TABLE users DROP COLUMN search_row', ()), ('UPDATE scimlite_schema SET version = 11', ())]
    test_upgrade.run_sql(database_url, statements)
    capsys.readouterr()

    client = ScimClient(make_app())
    assert test_upgrade.run_sql(database_url, [('SELECT version FROM scimlite_schema', ())]) == [
        (store.SCHEMA_VERSION,)]
    if store.is_sqlite():   # then version 13 moved the values into users, by those numbers
        err = capsys.readouterr().err
        assert 'upgrading: 5 of 5 users numbered' in err and "upgrading: 5 of 5 users' searched values moved" in err
        assert 'user_search' not in store.database.get_tables()
        assert search_triggers() == {'users_search_removed', 'users_search_changed'}
        assert waiting() == 0 and stale() == 0
    assert listing(client, filter='userName co "yve@"') == (1, [ids[1]])
    assert listing(client, filter='userName co "ann"') == (2, [ids[0], ids[4]])
    client.delete(f'/Users/{ids[0]}', status=204)
    client.delete(f'/Users/{ids[4]}', status=204)
    assert listing(client, filter='userName co "ann"') == (0, [])
    if store.is_sqlite():
        assert matches('ann.lee@') == 0
    assert_indexes_agree(client, monkeypatch)


def test_a_version_12_database_moves_its_searched_values_into_users(make_app, database_url, monkeypatch, capsys):
    """Version 13: the searched values move from user_search into the users' rows, by
    their numbers, with the progress on the console, and SQLite's trigram index is
    made anew over users; a user waiting for the index, one whose values were stale
    and one deleted while stale are found, or not, as before."""
    client = ScimClient(make_app())
    ids = [add_user(client, user) for user in USERS[:5]]
    index_waiting()
    put_user(client, ids[1], 1, userName='stale.yve@example.com')   # its indexed values stale
    put_user(client, ids[2], 2, userName='gone.zed@example.com')
    client.delete(f'/Users/{ids[2]}', status=204)   # deleted while stale
    ids.append(create(client, 6, userName='waiting.ann@example.net'))   # waits for the index
    if store.is_sqlite():
        assert (waiting(), stale()) == (1, 2)
    store.close_database()
    test_upgrade.run_sql(database_url, as_version_12(database_url))
    if store.backend(database_url) == 'sqlite':   # what version 12 kept, as the upgrade finds it
        assert test_upgrade.run_sql(database_url, [('SELECT COUNT(*) FROM user_search', ())]) == [(5,)]
    capsys.readouterr()

    client = ScimClient(make_app())
    assert test_upgrade.run_sql(database_url, [('SELECT version FROM scimlite_schema', ())]) == [
        (store.SCHEMA_VERSION,)]
    if store.is_sqlite():
        err = capsys.readouterr().err
        assert "upgrading: 5 of 5 users' searched values moved" in err
        assert 'building search index: trigram index' in err
        assert 'user_search' not in store.database.get_tables()
        assert search_triggers() == {'users_search_removed', 'users_search_changed'}
        assert (waiting(), stale()) == (0, 0)
        assert matches('gone.zed') == 0 and matches('bob_100%@example') == 0 and matches('stale.yve') == 1
    assert listing(client, filter='userName co "yve@"') == (1, [ids[1]])
    assert listing(client, filter='userName co "zed@"') == (0, [])
    assert listing(client, filter='userName co "ann"') == (2, [ids[0], ids[5]])
    assert listing(client, filter='emails[type eq "other" and value co "carol@w"]') == (1, [ids[3]])
    assert_indexes_agree(client, monkeypatch)
    put_user(client, ids[0], 0, userName='after.upgrade@example.com')
    assert listing(client, filter='userName co "after.up"') == (1, [ids[0]])
    assert_indexes_agree(client, monkeypatch)
