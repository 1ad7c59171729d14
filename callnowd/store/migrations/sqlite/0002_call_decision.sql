-- callnowd SQLite schema, version 2: what the rules decided for a request (connect on
-- answer, or ask the owner to confirm) and which rule decided, and the PBX channel id
-- a dialled request carries (for reconciliation after a restart or an AMI outage).

ALTER TABLE call_requests ADD COLUMN decision TEXT;
ALTER TABLE call_requests ADD COLUMN decided_by TEXT;
ALTER TABLE call_requests ADD COLUMN channel_id TEXT;
CREATE INDEX call_requests_state ON call_requests (state);
