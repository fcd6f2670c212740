-- OptoVault on PostgreSQL, schema 1: one table per sled tree (server/src/store/sled_store.rs lists
-- them), keyed by the tree's key parts as typed columns. Every per-clinic table's primary key
-- starts with clinic_id, so an engine that shards by a distribution column (Citus:
-- create_distributed_table('<table>', 'clinic_id')) keeps each clinic on one shard. Values keep
-- sled's encoding: JSON rows as bytea (the exact bytes sled stores), envelopes and chunks as
-- bytea; sled's packed binary values (seq ‖ version, feed rows, heads) become typed columns.
-- u64 counters are bigint. No foreign keys, sequences, triggers or cross-table constraints: the
-- store checks everything inside its transactions, and distributed engines accept plain tables.
-- The account-level audit log uses the nil uuid as its clinic_id, as sled does.

-- Server-wide values (the OPAQUE server setup).
CREATE TABLE meta (
    name text PRIMARY KEY,
    value bytea NOT NULL
);

-- Account-level tables: keyed by account, username, session or login id.
CREATE TABLE accounts (
    account_id uuid PRIMARY KEY,
    value bytea NOT NULL -- AccountRow (JSON)
);
CREATE TABLE usernames (
    username text PRIMARY KEY,
    account_id uuid NOT NULL
);
CREATE TABLE login_attempts (
    login_id uuid PRIMARY KEY,
    value bytea NOT NULL -- LoginAttempt (JSON)
);
CREATE TABLE sessions (
    token_hash bytea PRIMARY KEY, -- SHA-256 of the cookie token
    value bytea NOT NULL -- SessionRow (JSON)
);
CREATE TABLE account_sessions (
    account_id uuid NOT NULL,
    token_hash bytea NOT NULL,
    PRIMARY KEY (account_id, token_hash)
);
CREATE TABLE account_clinics (
    account_id uuid NOT NULL,
    clinic_id uuid NOT NULL,
    role bytea NOT NULL, -- Role (JSON)
    PRIMARY KEY (account_id, clinic_id)
);
CREATE TABLE throttle (
    key text PRIMARY KEY, -- user:<name> or ip:<address>
    value bytea NOT NULL -- ThrottleRow (JSON)
);

-- Per-clinic tables: the primary key starts with clinic_id.
CREATE TABLE clinics (
    clinic_id uuid PRIMARY KEY,
    value bytea NOT NULL -- ClinicRow (JSON)
);
CREATE TABLE members (
    clinic_id uuid NOT NULL,
    account_id uuid NOT NULL,
    value bytea NOT NULL, -- MemberRow (JSON)
    PRIMARY KEY (clinic_id, account_id)
);
-- The clinic's last change sequence number; its row is locked by every record write.
CREATE TABLE heads (
    clinic_id uuid PRIMARY KEY,
    seq bigint NOT NULL
);
-- The record index: where each record's latest version is in the feed.
CREATE TABLE records (
    clinic_id uuid NOT NULL,
    record_id uuid NOT NULL,
    seq bigint NOT NULL,
    version bigint NOT NULL,
    PRIMARY KEY (clinic_id, record_id)
);
-- One row per record, at its latest change.
CREATE TABLE feed (
    clinic_id uuid NOT NULL,
    seq bigint NOT NULL,
    record_id uuid NOT NULL,
    chart_id uuid NOT NULL,
    version bigint NOT NULL,
    updated_at bigint NOT NULL,
    compartment smallint NOT NULL, -- Compartment::code
    envelope bytea NOT NULL, -- canonical JSON, opaque to the store
    PRIMARY KEY (clinic_id, seq)
);
CREATE INDEX feed_chart ON feed (clinic_id, chart_id);
-- Every replaced version of a record (history).
CREATE TABLE versions (
    clinic_id uuid NOT NULL,
    record_id uuid NOT NULL,
    version bigint NOT NULL,
    seq bigint NOT NULL,
    chart_id uuid NOT NULL,
    updated_at bigint NOT NULL,
    compartment smallint NOT NULL,
    envelope bytea NOT NULL,
    PRIMARY KEY (clinic_id, record_id, version)
);
-- Records whose latest version is a tombstone.
CREATE TABLE trash (
    clinic_id uuid NOT NULL,
    record_id uuid NOT NULL,
    deleted_at bigint NOT NULL,
    PRIMARY KEY (clinic_id, record_id)
);
-- Audit logs, hash-chained; clinic_id is the nil uuid for the account-level log. `at` repeats
-- the entry's time (from the JSON) for pruning.
CREATE TABLE events (
    clinic_id uuid NOT NULL,
    seq bigint NOT NULL,
    at bigint NOT NULL,
    value bytea NOT NULL, -- AuditEntry (JSON)
    PRIMARY KEY (clinic_id, seq)
);
-- Each log's last entry; its row is locked by every append.
CREATE TABLE event_heads (
    clinic_id uuid PRIMARY KEY,
    seq bigint NOT NULL,
    hash bytea NOT NULL
);
CREATE TABLE audit_anchors (
    clinic_id uuid PRIMARY KEY,
    seq bigint NOT NULL,
    hash bytea NOT NULL
);
CREATE TABLE audit_keys (
    clinic_id uuid PRIMARY KEY,
    value bytea NOT NULL -- AuditKeySetup (JSON)
);
CREATE TABLE audit_checkpoints (
    clinic_id uuid NOT NULL,
    seq bigint NOT NULL,
    value bytea NOT NULL, -- AuditCheckpoint (JSON)
    PRIMARY KEY (clinic_id, seq)
);
CREATE TABLE roster (
    clinic_id uuid NOT NULL,
    seq bigint NOT NULL,
    value bytea NOT NULL, -- RosterRow (JSON)
    PRIMARY KEY (clinic_id, seq)
);
-- The roster's last entry; locked by roster appends (FOR UPDATE) and write guards (FOR SHARE).
CREATE TABLE roster_heads (
    clinic_id uuid PRIMARY KEY,
    seq bigint NOT NULL,
    hash bytea NOT NULL,
    key_epoch bigint NOT NULL
);
CREATE TABLE invitations (
    clinic_id uuid NOT NULL,
    invitation_id uuid NOT NULL,
    value bytea NOT NULL, -- InvitationRow (JSON)
    PRIMARY KEY (clinic_id, invitation_id)
);
CREATE TABLE charts (
    clinic_id uuid NOT NULL,
    chart_id uuid NOT NULL,
    value bytea NOT NULL, -- ChartRow (JSON): restricted charts
    PRIMARY KEY (clinic_id, chart_id)
);
CREATE TABLE files (
    clinic_id uuid NOT NULL,
    file_id uuid NOT NULL,
    value bytea NOT NULL, -- FileRow (JSON)
    PRIMARY KEY (clinic_id, file_id)
);
CREATE TABLE file_chunks (
    clinic_id uuid NOT NULL,
    file_id uuid NOT NULL,
    idx bigint NOT NULL,
    bytes bytea NOT NULL, -- chunk ciphertext, as received
    PRIMARY KEY (clinic_id, file_id, idx)
);
CREATE TABLE file_chunk_lens (
    clinic_id uuid NOT NULL,
    file_id uuid NOT NULL,
    idx bigint NOT NULL,
    len bigint NOT NULL,
    PRIMARY KEY (clinic_id, file_id, idx)
);
-- Chunks are ciphertext: compressing them is wasted work.
ALTER TABLE file_chunks ALTER COLUMN bytes SET STORAGE EXTERNAL;
