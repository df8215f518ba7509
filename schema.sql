-- scimlite's tables, valid for SQLite and PostgreSQL alike.
-- Applied at every start; each statement is IF NOT EXISTS, so it is idempotent.
-- store.py's models describe the same tables (tests/test_store.py checks they agree).
-- Comments are stripped, then the file is split into statements at each semicolon.

-- userName is matched case-insensitively but stored as sent: user_name keeps the
-- client's text, user_name_key its lower-case form, and the UNIQUE index on the key
-- is what refuses a duplicate, even when two creates race.
CREATE TABLE IF NOT EXISTS users (
    id            VARCHAR(64) NOT NULL PRIMARY KEY,
    user_name     TEXT        NOT NULL,
    user_name_key TEXT        NOT NULL,
    external_id   TEXT,
    display_name  TEXT,
    active        BOOLEAN     DEFAULT TRUE,  -- NULL: unassigned, after a PATCH remove (version 5)
    resource      TEXT        NOT NULL,  -- the whole resource as JSON, minus id/meta/groups
    version       INTEGER     NOT NULL DEFAULT 1,  -- meta.version and the ETag
    created       TEXT        NOT NULL,  -- UTC, fixed width, so text order is time order
    last_modified TEXT        NOT NULL,
    seat          INTEGER     NOT NULL DEFAULT 0,  -- whose data (version 6): 0 the server's own, else a seat
    -- What sortBy sorts by (version 7), lower-cased by the database as the sort
    -- compares: each string attribute's value, NULL when it is absent or not a string;
    -- sort_odd is TRUE when one is there but not a string (a number, an object): its
    -- seat's sorts then take today's path, through the JSON (store.sort_expression).
    display_name_key TEXT,
    title_key        TEXT,
    family_name_key  TEXT,
    given_name_key   TEXT,
    email_key        TEXT,    -- the primary email's value, else the first one's
    sort_odd         BOOLEAN NOT NULL DEFAULT FALSE,
    -- SQLite: the user's number in the trigram index (version 12), and the values it
    -- searches (version 13), lower-cased: userName's is user_name_key, displayName's
    -- and the emails' (one a line) are these. NULL on PostgreSQL, whose side table
    -- user_search holds its searched values.
    search_row          INTEGER,
    search_display_name TEXT,
    search_emails       TEXT
);
-- Every lookup is within one seat's data (0: the server's own, all there is without
-- seats), so the unique and paging indexes start with the seat; the others are
-- selective enough alone (an externalId is rarely in more than a few seats).
CREATE UNIQUE INDEX IF NOT EXISTS users_seat_user_name_key ON users (seat, user_name_key);
CREATE INDEX IF NOT EXISTS users_external_id ON users (external_id);
-- No (id, seat) index (schema version 11): whether an id is this seat's user (a
-- member being added) reads the row the primary key finds; the index cost every
-- create 1.4 of its 13.3 pages written, and checking 10,000 members was no faster for it.
-- The paging order: stable whatever startIndex and count are.
CREATE INDEX IF NOT EXISTS users_seat_created_id ON users (seat, created, id);
-- Whether a seat holds a user whose sort values are not all strings (version 7).
CREATE INDEX IF NOT EXISTS users_seat_sort_odd ON users (seat) WHERE sort_odd;
-- The sort indexes (one per attribute and direction, their first column "IS NULL"
-- as the nulls-last ORDER BY spells it) and the search side table user_search differ
-- between the databases: store.SEARCH_SCHEMA makes them, after this file.

-- A group's displayName is unique too, ignoring case (schema version 4): the UNIQUE
-- index is on display_name_unique, the lower-cased name a group holds. It is NULL
-- only for a group that shared its name with an older one before version 4 and
-- still keeps that name (store.MIGRATIONS says how; NULLs never collide).
CREATE TABLE IF NOT EXISTS "groups" (
    id                  VARCHAR(64) NOT NULL PRIMARY KEY,
    display_name        TEXT        NOT NULL,
    display_name_key    TEXT        NOT NULL,
    display_name_unique TEXT,
    external_id         TEXT,
    resource            TEXT        NOT NULL,  -- the whole resource as JSON, minus id/meta/members
    version             INTEGER     NOT NULL DEFAULT 1,
    created             TEXT        NOT NULL,
    last_modified       TEXT        NOT NULL,
    seat                INTEGER     NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS groups_display_name_key ON "groups" (display_name_key);
CREATE UNIQUE INDEX IF NOT EXISTS groups_seat_display_name_unique ON "groups" (seat, display_name_unique);
CREATE INDEX IF NOT EXISTS groups_external_id ON "groups" (external_id);
CREATE INDEX IF NOT EXISTS groups_seat_created_id ON "groups" (seat, created, id);

-- Membership lives here and only here: adding one member to a large group is one row.
CREATE TABLE IF NOT EXISTS link (
    group_id VARCHAR(64) NOT NULL REFERENCES "groups" (id) ON DELETE CASCADE,
    user_id  VARCHAR(64) NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    PRIMARY KEY (group_id, user_id)
);
CREATE INDEX IF NOT EXISTS link_user_id ON link (user_id);

-- How many users and groups each seat's data holds (schema version 8), kept by
-- triggers (store.COUNT_TRIGGERS) in the transaction of every insert and delete,
-- so that a whole collection's totalResults is one row read, however large it is.
-- `changes` counts those inserts and deletes: while it stays the same, a user's
-- position in the paging order stays the same too (store.PAGE_ENDS).
CREATE TABLE IF NOT EXISTS resource_count (
    seat    INTEGER    NOT NULL,
    kind    VARCHAR(8) NOT NULL,  -- the table: users or groups
    total   INTEGER    NOT NULL,
    changes INTEGER    NOT NULL,
    PRIMARY KEY (seat, kind)
);

-- The schema's version (store.SCHEMA_VERSION), one row: an older database is
-- upgraded in place when a newer scimlite opens it (store.MIGRATIONS).
CREATE TABLE IF NOT EXISTS scimlite_schema (
    version INTEGER NOT NULL
);

-- The recent SCIM exchanges the dashboard shows (schema version 3). Each server
-- process writes them in batches, already scrubbed of tokens and passwords, and
-- keeps only the newest few hundred. The id orders them: the time received in
-- nanoseconds (20 digits), then the process and its count, to break ties.
CREATE TABLE IF NOT EXISTS request_log (
    id               VARCHAR(64) NOT NULL PRIMARY KEY,
    received         TEXT        NOT NULL,  -- UTC, as created and last_modified
    method           TEXT        NOT NULL,
    path             TEXT        NOT NULL,  -- with the query string, decoded
    status           INTEGER     NOT NULL,
    duration_ms      REAL        NOT NULL,
    user_agent       TEXT,
    request_headers  TEXT        NOT NULL,  -- JSON: {name: value}
    request_body     TEXT        NOT NULL,
    response_headers TEXT        NOT NULL,
    response_body    TEXT        NOT NULL,
    seat             INTEGER     NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS request_log_seat_id ON request_log (seat, id);

-- Random keys made once per database (schema version 3): "dashboard session" signs
-- the dashboard's session cookies. Every process on the database shares it, and no
-- one can compute it from the token (the demo token is public).
CREATE TABLE IF NOT EXISTS scimlite_secret (
    name  VARCHAR(64) NOT NULL PRIMARY KEY,
    value TEXT        NOT NULL
);

-- Workshop seats (schema version 6): `python scim_server.py --seats 30` makes seats 1
-- to 30, each with a random token of its own. The token a request carries picks the
-- seat whose users and groups it sees (the server's own tokens: seat 0, no row here).
-- The token is kept as made, for the instructor's seat cards; requests find their
-- seat by its SHA-256 digest. The milestones are when the seat's IdP first did each
-- step (UTC, as created), written as they happen; the last error is its last 4xx/5xx.
CREATE TABLE IF NOT EXISTS seat (
    number            INTEGER     NOT NULL PRIMARY KEY,
    token             TEXT        NOT NULL,
    token_digest      VARCHAR(64) NOT NULL,
    label             TEXT,
    created           TEXT        NOT NULL,
    first_request     TEXT,
    connection_test   TEXT,
    user_created      TEXT,
    user_updated      TEXT,
    group_pushed      TEXT,
    member_added      TEXT,
    user_deactivated  TEXT,
    last_error_at     TEXT,
    last_error_status INTEGER,
    last_error_detail TEXT
);
CREATE UNIQUE INDEX IF NOT EXISTS seat_token_digest ON seat (token_digest);

-- `--sample-users N` fills a data set (a seat, or seat 0) once: this row says it did.
CREATE TABLE IF NOT EXISTS sample_data (
    seat    INTEGER NOT NULL PRIMARY KEY,
    users   INTEGER NOT NULL,
    created TEXT    NOT NULL
);
