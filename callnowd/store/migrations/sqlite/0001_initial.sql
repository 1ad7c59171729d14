-- callnowd SQLite schema, version 1: extensions, their CallNow preferences, call
-- requests and the audit trail of their states.
-- Applied by callnowd/store/sqlite_migrate.py in one transaction; one statement per
-- line ending in ";".

CREATE TABLE extensions (
    number TEXT PRIMARY KEY NOT NULL,
    display_name TEXT NOT NULL,
    external_number TEXT NOT NULL,
    dial_string TEXT NOT NULL,
    timezone TEXT NOT NULL,
    account TEXT NOT NULL DEFAULT ''
);

-- One row per extension. callnow_id uses SQLite's default BINARY collation, so both
-- the UNIQUE constraint and lookups are exact and case-sensitive.
-- windows is JSON text: [{"days": [0, 1], "start": "09:00", "end": "17:00"}].
CREATE TABLE preferences (
    extension TEXT PRIMARY KEY NOT NULL
        REFERENCES extensions (number) ON DELETE CASCADE ON UPDATE CASCADE,
    callnow_id TEXT NOT NULL UNIQUE,
    enabled INTEGER NOT NULL CHECK (enabled IN (0, 1)),
    availability_enabled INTEGER NOT NULL CHECK (availability_enabled IN (0, 1)),
    windows TEXT NOT NULL DEFAULT '[]',
    reject_all INTEGER NOT NULL CHECK (reject_all IN (0, 1)),
    confirmation_required INTEGER NOT NULL CHECK (confirmation_required IN (0, 1)),
    show_name INTEGER NOT NULL CHECK (show_name IN (0, 1)),
    ask_name INTEGER NOT NULL CHECK (ask_name IN (0, 1)),
    image_validation INTEGER NOT NULL CHECK (image_validation IN (0, 1)),
    one_step_enabled INTEGER NOT NULL CHECK (one_step_enabled IN (0, 1)),
    public_message TEXT NOT NULL DEFAULT ''
);

-- extension is deliberately not a foreign key: requests outlive removed extensions.
CREATE TABLE call_requests (
    id TEXT PRIMARY KEY NOT NULL,
    token TEXT NOT NULL,
    extension TEXT NOT NULL,
    callnow_id TEXT NOT NULL,
    phone TEXT NOT NULL,
    name TEXT,
    state TEXT NOT NULL,
    reason TEXT,
    source TEXT NOT NULL,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL,
    dedupe_key TEXT
);

CREATE UNIQUE INDEX call_requests_token ON call_requests (token);
CREATE INDEX call_requests_dedupe ON call_requests (dedupe_key, created_at);
CREATE INDEX call_requests_extension ON call_requests (extension, created_at);
CREATE INDEX call_requests_created ON call_requests (created_at);

CREATE TABLE request_events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    request_id TEXT NOT NULL REFERENCES call_requests (id) ON DELETE CASCADE,
    at REAL NOT NULL,
    state TEXT NOT NULL,
    reason TEXT,
    detail TEXT
);

CREATE INDEX request_events_request ON request_events (request_id, id);
