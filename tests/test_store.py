"""store.py's models and schema.sql describe the same tables."""

import threading
from pathlib import Path

import peewee
import pytest

import store
from conftest import ScimClient, store_rows


@pytest.fixture
def database(app):
    return store.database.obj


@pytest.mark.parametrize('model', [store.User, store.Group, store.Link, store.Exchange, store.Secret])
def test_models_and_schema_sql_have_the_same_columns(database, model):
    in_database = {column.name: column for column in database.get_columns(model._meta.table_name)}
    in_model = {field.column_name: field for field in model._meta.sorted_fields}
    assert set(in_database) == set(in_model)
    for name, field in in_model.items():
        assert in_database[name].null == field.null, name


@pytest.mark.parametrize('model', [store.User, store.Group, store.Link, store.Exchange, store.Secret])
def test_every_model_index_exists_in_schema_sql(database, model):
    """Each index the model declares (unique or not) is in the database, same columns."""
    indexes = database.get_indexes(model._meta.table_name)
    in_database = {(tuple(index.columns), index.unique) for index in indexes}
    primary = tuple(field.column_name for field in model._meta.get_primary_keys())
    for index in model._meta.fields_to_index():
        columns = tuple(getattr(part, 'column_name', None) or part.name for part in index._expressions)
        if columns == primary:
            continue
        assert (columns, index._unique) in in_database, (columns, in_database)


def test_foreign_keys_cascade(database):
    for column in ('group_id', 'user_id'):
        keys = {key.column: key for key in database.get_foreign_keys('link')}
        assert keys[column].dest_table in ('users', 'groups')
    if store.is_sqlite():
        rules = {row[6] for row in database.execute_sql('PRAGMA foreign_key_list(link)').fetchall()}
    else:
        rules = {row[0] for row in database.execute_sql(
            'SELECT delete_rule FROM information_schema.referential_constraints').fetchall()}
    assert rules == {'CASCADE'}   # on_delete


def test_every_sqlite_connection_gets_the_settings(database):
    """Each thread has its own connection: WAL, synchronous=NORMAL, foreign keys, a
    16 MiB page cache and checkpoints at 4,000 WAL pages apply to the one a new thread
    opens, not only to the first."""
    if not store.is_sqlite():
        pytest.skip('SQLite settings')
    seen = {}

    def read():
        for name in ('journal_mode', 'synchronous', 'foreign_keys', 'cache_size', 'wal_autocheckpoint'):
            seen[name] = store.database.execute_sql(f'PRAGMA {name}').fetchone()[0]
        store.database.close()
    thread = threading.Thread(target=read)
    thread.start()
    thread.join()
    assert seen == {'journal_mode': 'wal', 'synchronous': 1, 'foreign_keys': 1, 'cache_size': -16384,
                    'wal_autocheckpoint': 4000}


def test_the_wal_is_checkpointed_past_4000_pages_not_1000(make_app, database_url):
    """Writes through the API grow the -wal past SQLite's 1,000 pages without a
    checkpoint, and a checkpoint restarts it before it holds much more than 4,000:
    the file (which SQLite reuses from its start, not truncates) stops growing. No
    exchange log: its thread's reads could keep the -wal from restarting at that moment."""
    client = ScimClient(make_app(record_exchanges=False))
    if not store.is_sqlite():
        pytest.skip("SQLite's WAL")
    wal = Path(store.sqlite_path(database_url) + '-wal')
    page = store.database.execute_sql('PRAGMA page_size').fetchone()[0]
    frame = page + 24   # each page in the WAL has a 24-byte header
    number = 0

    def create():
        nonlocal number
        number += 1
        client.create_user(f'wal{number}@example.com', displayName=f'Wal {number}', title='t' * 300,
                           emails=[{'value': f'wal{number}@example.com', 'primary': True}])
    while wal.stat().st_size < 1500 * frame:   # past where SQLite's own setting checkpoints
        create()
        assert number < 5000, wal.stat().st_size
    for _ in range(number * 4):   # four times the writes that wrote 1,500 pages: ~6,000
        create()
    assert 4000 * frame <= wal.stat().st_size < 4600 * frame
    assert client.get('/Users?count=0').json['totalResults'] == number


def test_schema_is_applied_idempotently(app):
    store.apply_schema()
    store.apply_schema()
    assert store.User.select().count() == 0


def test_username_key_is_unique_in_the_database_itself(app):
    """The unique index, not a check before the insert, refuses a duplicate."""
    columns = dict(id='a', user_name='Jane', user_name_key='jane', resource='{}',
                   created='t', last_modified='t')
    store.User.insert(**columns).execute()
    with pytest.raises(peewee.IntegrityError):
        store.User.insert(**dict(columns, id='b', user_name='JANE')).execute()


def test_group_name_key_is_unique_in_the_database_itself_and_null_never_collides(app):
    """The unique index refuses a second holder of a group name; the NULL a group keeps
    while it shares its name from before names were unique (MIGRATIONS 4) never collides."""
    columns = dict(display_name='Sales', display_name_key='sales', resource='{}', created='t', last_modified='t')
    store.Group.insert(id='a', display_name_unique='sales', **columns).execute()
    with pytest.raises(peewee.IntegrityError):
        store.Group.insert(id='b', display_name_unique='sales', **dict(columns, display_name='SALES')).execute()
    store.Group.insert(id='c', display_name_unique=None, **columns).execute()
    store.Group.insert(id='d', display_name_unique=None, **columns).execute()
    assert sorted(store.Group.select(store.Group.id).tuples()) == [('a',), ('c',), ('d',)]


def test_an_unknown_member_change_is_an_error_and_deletes_nothing(client):
    """update_group takes the store's member-change types only: anything else (here the
    old string form of "remove where") is refused before any link row is touched."""
    ann = client.create_user('ann@example.com')
    group = client.create_group('G', [ann['id']])
    before = store_rows()
    for change in (('remove where', None), object()):
        with pytest.raises(TypeError, match='not a member change'):
            store.update_group(group['id'], lambda record, change=change: (record['resource'], [change]))
    assert store_rows() == before
    assert client.get(f'/Groups/{group["id"]}').json['members'][0]['value'] == ann['id']
