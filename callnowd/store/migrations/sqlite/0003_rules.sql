-- callnowd SQLite schema, version 3: per-caller rules, holidays, and two new
-- preferences (reject while the owner is on the phone; show the hours publicly).

ALTER TABLE preferences ADD COLUMN reject_when_busy INTEGER NOT NULL DEFAULT 0
    CHECK (reject_when_busy IN (0, 1));
ALTER TABLE preferences ADD COLUMN show_hours INTEGER NOT NULL DEFAULT 0
    CHECK (show_hours IN (0, 1));

-- Dates (YYYY-MM-DD, in the owner's time zone) on which the owner is unavailable.
CREATE TABLE holidays (
    extension TEXT NOT NULL
        REFERENCES extensions (number) ON DELETE CASCADE ON UPDATE CASCADE,
    day TEXT NOT NULL CHECK (length(day) = 10),
    PRIMARY KEY (extension, day)
);

-- Ordered per extension by position (1, 2, ... without gaps, kept so by the store);
-- ids are never reused (AUTOINCREMENT), so "rule:<id>" on a request stays unambiguous.
CREATE TABLE caller_rules (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    extension TEXT NOT NULL
        REFERENCES extensions (number) ON DELETE CASCADE ON UPDATE CASCADE,
    position INTEGER NOT NULL CHECK (position >= 1),
    enabled INTEGER NOT NULL CHECK (enabled IN (0, 1)),
    number_kind TEXT CHECK (number_kind IN ('exact', 'prefix', 'glob')),
    number_pattern TEXT,
    name_glob TEXT,
    action TEXT NOT NULL CHECK (action IN ('accept', 'confirm', 'reject')),
    created_at REAL NOT NULL,
    CHECK ((number_kind IS NULL) = (number_pattern IS NULL)),
    CHECK (number_pattern IS NOT NULL OR name_glob IS NOT NULL)
);

CREATE INDEX caller_rules_extension ON caller_rules (extension, position);
