-- kith-relay PostgreSQL schema, version 1.
--
-- Stores exactly what the sled engine stores (ARCHITECTURE.md, "What the relay may know and
-- keep"): no sender of an envelope, no addresses. Times are Unix seconds passed by the relay
-- (BIGINT); the database clock is never used for logic. Keys, ids and blobs are BYTEA.

CREATE TABLE accounts (
    account_key BYTEA  NOT NULL CHECK (octet_length(account_key) = 32),
    handle      TEXT   NOT NULL,
    created_at  BIGINT NOT NULL,
    CONSTRAINT accounts_pkey PRIMARY KEY (account_key),
    CONSTRAINT accounts_handle_key UNIQUE (handle)
);

CREATE TABLE devices (
    device_id   BYTEA  NOT NULL CHECK (octet_length(device_id) = 16),
    account_key BYTEA  NOT NULL REFERENCES accounts (account_key),
    -- The order devices were added in (Account::devices lists them in that order).
    position    BIGINT GENERATED ALWAYS AS IDENTITY,
    certificate BYTEA  NOT NULL,
    added_at    BIGINT NOT NULL,
    CONSTRAINT devices_pkey PRIMARY KEY (device_id)
);
CREATE INDEX devices_by_account ON devices (account_key, position);

-- SHA-256 of the invite token only, never the token.
CREATE TABLE invites (
    token_hash BYTEA  NOT NULL CHECK (octet_length(token_hash) = 32),
    uses_left  BIGINT NOT NULL CHECK (uses_left >= 0),
    expires_at BIGINT NOT NULL,
    CONSTRAINT invites_pkey PRIMARY KEY (token_hash)
);
CREATE INDEX invites_by_expiry ON invites (expires_at);

-- Prekeys: the postcard encoding of the protocol's public prekey records.
CREATE TABLE signed_prekeys (
    device_id BYTEA NOT NULL REFERENCES devices (device_id),
    prekey    BYTEA NOT NULL,
    CONSTRAINT signed_prekeys_pkey PRIMARY KEY (device_id)
);

CREATE TABLE last_resort_kem_prekeys (
    device_id BYTEA NOT NULL REFERENCES devices (device_id),
    prekey    BYTEA NOT NULL,
    CONSTRAINT last_resort_kem_prekeys_pkey PRIMARY KEY (device_id)
);

CREATE TABLE one_time_prekeys (
    device_id BYTEA  NOT NULL REFERENCES devices (device_id),
    key_id    BIGINT NOT NULL,
    prekey    BYTEA  NOT NULL,
    CONSTRAINT one_time_prekeys_pkey PRIMARY KEY (device_id, key_id)
);

CREATE TABLE one_time_kem_prekeys (
    device_id BYTEA  NOT NULL REFERENCES devices (device_id),
    key_id    BIGINT NOT NULL,
    prekey    BYTEA  NOT NULL,
    CONSTRAINT one_time_kem_prekeys_pkey PRIMARY KEY (device_id, key_id)
);

-- One row per device, created with the device: the next delivery id and the quota counters.
-- Enqueues lock the rows of their recipients (in device id order), which serialises id
-- assignment per device: ids are handed out and committed in increasing order.
CREATE TABLE mailboxes (
    device_id     BYTEA  NOT NULL REFERENCES devices (device_id),
    next_delivery BIGINT NOT NULL DEFAULT 1 CHECK (next_delivery >= 1),
    entries       BIGINT NOT NULL DEFAULT 0,
    -- Bytes charged to the quota: body + part per entry (a shared body counts per entry).
    charged_bytes BIGINT NOT NULL DEFAULT 0,
    CONSTRAINT mailboxes_pkey PRIMARY KEY (device_id)
);

-- A send's opaque sealed body, stored once; refs counts the entries that point at it and the
-- body is deleted with the last of them.
CREATE TABLE bodies (
    body_id BIGINT GENERATED ALWAYS AS IDENTITY,
    refs    BIGINT NOT NULL,
    body    BYTEA  NOT NULL,
    CONSTRAINT bodies_pkey PRIMARY KEY (body_id)
);
-- Sealed ciphertext does not compress: store it out of line without trying.
ALTER TABLE bodies ALTER COLUMN body SET STORAGE EXTERNAL;

-- Mailbox entries: recipient device, delivery id, body, this recipient's part, arrival and
-- expiry. No sender, by design.
CREATE TABLE entries (
    device_id   BYTEA  NOT NULL REFERENCES mailboxes (device_id),
    delivery_id BIGINT NOT NULL,
    body_id     BIGINT NOT NULL REFERENCES bodies (body_id),
    part        BYTEA,
    arrived_at  BIGINT NOT NULL,
    expires_at  BIGINT NOT NULL,
    CONSTRAINT entries_pkey PRIMARY KEY (device_id, delivery_id)
);
CREATE INDEX entries_by_expiry ON entries (expires_at);
CREATE INDEX entries_by_body ON entries (body_id);

-- Recognises a retried send for a short window: the key, the delivery ids it produced, expiry.
CREATE TABLE idempotency (
    key        BYTEA    NOT NULL CHECK (octet_length(key) = 32),
    deliveries BIGINT[] NOT NULL,
    expires_at BIGINT   NOT NULL,
    CONSTRAINT idempotency_pkey PRIMARY KEY (key)
);
CREATE INDEX idempotency_by_expiry ON idempotency (expires_at);
