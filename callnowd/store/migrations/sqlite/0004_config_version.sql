-- callnowd SQLite schema, version 4: a counter of configuration changes.
-- Every insert, update or delete of an extension, its preferences, holidays or
-- caller rules (by any process: daemons, callnowctl) adds one, in the same
-- transaction; a daemon caches those rows and reads this one row to know whether
-- its copies are still current.

CREATE TABLE config_version (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    n INTEGER NOT NULL
);

INSERT INTO config_version (id, n) VALUES (1, 0);

CREATE TRIGGER extensions_insert_version AFTER INSERT ON extensions
BEGIN UPDATE config_version SET n = n + 1 WHERE id = 1; END;

CREATE TRIGGER extensions_update_version AFTER UPDATE ON extensions
BEGIN UPDATE config_version SET n = n + 1 WHERE id = 1; END;

CREATE TRIGGER extensions_delete_version AFTER DELETE ON extensions
BEGIN UPDATE config_version SET n = n + 1 WHERE id = 1; END;

CREATE TRIGGER preferences_insert_version AFTER INSERT ON preferences
BEGIN UPDATE config_version SET n = n + 1 WHERE id = 1; END;

CREATE TRIGGER preferences_update_version AFTER UPDATE ON preferences
BEGIN UPDATE config_version SET n = n + 1 WHERE id = 1; END;

CREATE TRIGGER preferences_delete_version AFTER DELETE ON preferences
BEGIN UPDATE config_version SET n = n + 1 WHERE id = 1; END;

CREATE TRIGGER holidays_insert_version AFTER INSERT ON holidays
BEGIN UPDATE config_version SET n = n + 1 WHERE id = 1; END;

CREATE TRIGGER holidays_update_version AFTER UPDATE ON holidays
BEGIN UPDATE config_version SET n = n + 1 WHERE id = 1; END;

CREATE TRIGGER holidays_delete_version AFTER DELETE ON holidays
BEGIN UPDATE config_version SET n = n + 1 WHERE id = 1; END;

CREATE TRIGGER caller_rules_insert_version AFTER INSERT ON caller_rules
BEGIN UPDATE config_version SET n = n + 1 WHERE id = 1; END;

CREATE TRIGGER caller_rules_update_version AFTER UPDATE ON caller_rules
BEGIN UPDATE config_version SET n = n + 1 WHERE id = 1; END;

CREATE TRIGGER caller_rules_delete_version AFTER DELETE ON caller_rules
BEGIN UPDATE config_version SET n = n + 1 WHERE id = 1; END;
