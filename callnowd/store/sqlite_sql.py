"""The SQL text of the SQLite store, and the small lookups shared by its writes.

Statements are spelled out literally (no string building) and take only ``?``
parameters. Column order follows the codecs in :mod:`callnowd.store.rows`.
"""

from __future__ import annotations

import functools
import sqlite3

SELECT_EXTENSION = (
    "SELECT e.number, e.display_name, e.external_number, e.dial_string, e.timezone,"
    " e.account, p.callnow_id, p.enabled, p.availability_enabled, p.windows,"
    " p.reject_all, p.confirmation_required, p.show_name, p.ask_name,"
    " p.image_validation, p.one_step_enabled, p.public_message,"
    " p.reject_when_busy, p.show_hours,"
    " (SELECT group_concat(h.day, ',') FROM holidays AS h"
    " WHERE h.extension = e.number)"
    " FROM extensions AS e JOIN preferences AS p ON p.extension = e.number"
)
INSERT_EXTENSION = (
    "INSERT INTO extensions (number, display_name, external_number, dial_string,"
    " timezone, account) VALUES (?, ?, ?, ?, ?, ?)"
)
INSERT_PREFERENCES = (
    "INSERT INTO preferences (extension, callnow_id, enabled, availability_enabled,"
    " windows, reject_all, confirmation_required, show_name, ask_name,"
    " image_validation, one_step_enabled, public_message, reject_when_busy,"
    " show_hours) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
UPDATE_EXTENSION = (
    "UPDATE extensions SET display_name = ?, external_number = ?, dial_string = ?,"
    " timezone = ?, account = ? WHERE number = ?"
)
UPDATE_PREFERENCES = (
    "UPDATE preferences SET callnow_id = ?, enabled = ?, availability_enabled = ?,"
    " windows = ?, reject_all = ?, confirmation_required = ?, show_name = ?,"
    " ask_name = ?, image_validation = ?, one_step_enabled = ?, public_message = ?,"
    " reject_when_busy = ?, show_hours = ? WHERE extension = ?"
)
# preferences, holidays and rules go with the extension (ON DELETE CASCADE);
# call_requests stay.
DELETE_EXTENSION = "DELETE FROM extensions WHERE number = ?"

SELECT_REQUEST = (
    "SELECT id, token, extension, callnow_id, phone, name, state, reason, source,"
    " created_at, updated_at, dedupe_key, decision, decided_by, channel_id"
    " FROM call_requests"
)
INSERT_REQUEST = (
    "INSERT INTO call_requests (id, token, extension, callnow_id, phone, name, state,"
    " reason, source, created_at, updated_at, dedupe_key, decision, decided_by,"
    " channel_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
UPDATE_REQUEST_STATE = (
    "UPDATE call_requests SET state = ?, reason = ?, updated_at = ?,"
    " channel_id = COALESCE(?, channel_id) WHERE id = ?"
)
SELECT_STATE = "SELECT state FROM call_requests WHERE id = ?"
_REQUEST_COLUMNS = SELECT_REQUEST.removeprefix("SELECT ").removesuffix(
    " FROM call_requests"
)


@functools.cache
def move_request(expected: int) -> str:
    """``UPDATE_REQUEST_STATE`` for a request in one of ``expected`` states.

    Parameters: those of ``UPDATE_REQUEST_STATE``, then the ``expected`` state
    values. Returns the moved request's ``SELECT_REQUEST`` columns, or no row when
    the request does not exist or is in another state.
    """
    states = ", ".join("?" * expected)
    return (
        UPDATE_REQUEST_STATE + f" AND state IN ({states}) RETURNING " + _REQUEST_COLUMNS
    )


# Newest first; rowid breaks ties between requests created at the same instant.
NEWEST_FIRST = " ORDER BY created_at DESC, rowid DESC"

SELECT_EVENTS = (
    "SELECT request_id, at, state, reason, detail FROM request_events"
    " WHERE request_id = ? ORDER BY id"
)
INSERT_EVENT = (
    "INSERT INTO request_events (request_id, at, state, reason, detail)"
    " VALUES (?, ?, ?, ?, ?)"
)


def extension_exists(cursor: sqlite3.Cursor, number: str) -> bool:
    """Return whether an extension has this number."""
    cursor.execute("SELECT 1 FROM extensions WHERE number = ?", (number,))
    return cursor.fetchone() is not None


def callnow_id_owner(cursor: sqlite3.Cursor, callnow_id: str) -> str | None:
    """Return the number of the extension using this CallNow ID, if any."""
    cursor.execute(
        "SELECT extension FROM preferences WHERE callnow_id = ?", (callnow_id,)
    )
    row = cursor.fetchone()
    return None if row is None else str(row[0])


def write_holidays(cursor: sqlite3.Cursor, number: str, days: list[str]) -> None:
    """Replace the holidays of extension ``number`` with ``days`` (ISO dates)."""
    cursor.execute("DELETE FROM holidays WHERE extension = ?", (number,))
    cursor.executemany(
        "INSERT INTO holidays (extension, day) VALUES (?, ?)",
        [(number, day) for day in days],
    )


SELECT_RULE = (
    "SELECT id, position, enabled, number_kind, number_pattern, name_glob, action,"
    " created_at FROM caller_rules"
)
RULES_IN_ORDER = SELECT_RULE + " WHERE extension = ? ORDER BY position, id"
INSERT_RULE = (
    "INSERT INTO caller_rules (extension, position, enabled, number_kind,"
    " number_pattern, name_glob, action, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
)
UPDATE_RULE = (
    "UPDATE caller_rules SET enabled = ?, number_kind = ?, number_pattern = ?,"
    " name_glob = ?, action = ? WHERE id = ? AND extension = ?"
)
SET_RULE_POSITION = "UPDATE caller_rules SET position = ? WHERE id = ?"
DELETE_RULE = "DELETE FROM caller_rules WHERE id = ? AND extension = ?"
