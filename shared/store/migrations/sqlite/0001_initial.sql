-- The reporting store's first schema (SQLite). Times are epoch seconds; `day` is the UTC day
-- as yyyymmdd. The same tables as PostgreSQL's without declared partitions: a day is deleted
-- by its `day` (the primary key's first column) instead of dropped, the single-host trade-off.

CREATE TABLE events (
    day integer NOT NULL,
    -- BLAKE2b-128 of the record's bytes: a replay or a producer's retry inserts nothing.
    id blob NOT NULL,
    at real NOT NULL,
    kind text NOT NULL,
    tenant text NOT NULL DEFAULT '',
    message_id text NOT NULL DEFAULT '',
    recipient text NOT NULL DEFAULT '',
    recipient_domain text NOT NULL DEFAULT '',
    sender text NOT NULL DEFAULT '',
    sender_domain text NOT NULL DEFAULT '',
    subject text NOT NULL DEFAULT '',
    campaign text NOT NULL DEFAULT '',
    tags text NOT NULL DEFAULT '{}',
    provider text NOT NULL DEFAULT '',
    mx text NOT NULL DEFAULT '',
    classification text NOT NULL DEFAULT '',
    reason text NOT NULL DEFAULT '',
    code integer NOT NULL DEFAULT 0,
    status text NOT NULL DEFAULT '',
    detail text NOT NULL DEFAULT '',
    machine integer NOT NULL DEFAULT 0,
    agent text NOT NULL DEFAULT '',
    url text NOT NULL DEFAULT '',
    doc text NOT NULL,
    PRIMARY KEY (day, id)
);

CREATE INDEX events_message ON events (message_id);
CREATE INDEX events_recipient ON events (recipient, at);
CREATE INDEX events_sender ON events (sender, at);
CREATE INDEX events_tenant ON events (tenant, at);
CREATE INDEX events_campaign ON events (tenant, campaign, at);
CREATE INDEX events_kind ON events (tenant, kind, at);
CREATE INDEX events_subject ON events (subject) WHERE kind = 'accepted';

-- One row per message, from its `accepted` event: what later events lacking the tenant,
-- sender or campaign (asynchronous bounces, complaints, opens) are attributed through.
CREATE TABLE messages (
    day integer NOT NULL,
    message_id text NOT NULL,
    at real NOT NULL,
    tenant text NOT NULL DEFAULT '',
    sender text NOT NULL DEFAULT '',
    sender_domain text NOT NULL DEFAULT '',
    subject text NOT NULL DEFAULT '',
    campaign text NOT NULL DEFAULT '',
    tags text NOT NULL DEFAULT '{}',
    recipients integer NOT NULL DEFAULT 0,
    PRIMARY KEY (day, message_id)
);

CREATE INDEX messages_id ON messages (message_id);

-- Rollups: counts of the events inserted (never of a replayed one). Per hour for the
-- series and a range's partial first and last day; per UTC day for everything longer, so a
-- month's report reads 30 rows where it read 720. `day_start` is the day's first second
-- (epoch), what Grafana's $__unixEpochFilter compares.
CREATE TABLE rollup_hourly (
    hour integer NOT NULL,
    day integer NOT NULL,
    tenant text NOT NULL,
    sender_domain text NOT NULL,
    campaign text NOT NULL,
    provider text NOT NULL,
    accepted integer NOT NULL DEFAULT 0,
    delivered integer NOT NULL DEFAULT 0,
    deferred integer NOT NULL DEFAULT 0,
    bounced integer NOT NULL DEFAULT 0,
    bounced_hard integer NOT NULL DEFAULT 0,
    bounced_soft integer NOT NULL DEFAULT 0,
    expired integer NOT NULL DEFAULT 0,
    complained integer NOT NULL DEFAULT 0,
    unsubscribed integer NOT NULL DEFAULT 0,
    opened integer NOT NULL DEFAULT 0,
    opened_machine integer NOT NULL DEFAULT 0,
    clicked integer NOT NULL DEFAULT 0,
    clicked_machine integer NOT NULL DEFAULT 0,
    suppressed integer NOT NULL DEFAULT 0,
    rejected integer NOT NULL DEFAULT 0,
    PRIMARY KEY (hour, tenant, sender_domain, campaign, provider)
);

CREATE INDEX rollup_hourly_tenant ON rollup_hourly (tenant, campaign, hour);
CREATE INDEX rollup_hourly_day ON rollup_hourly (day);

CREATE TABLE rollup_daily (
    day integer NOT NULL,
    day_start integer NOT NULL,
    tenant text NOT NULL,
    sender_domain text NOT NULL,
    campaign text NOT NULL,
    provider text NOT NULL,
    accepted integer NOT NULL DEFAULT 0,
    delivered integer NOT NULL DEFAULT 0,
    deferred integer NOT NULL DEFAULT 0,
    bounced integer NOT NULL DEFAULT 0,
    bounced_hard integer NOT NULL DEFAULT 0,
    bounced_soft integer NOT NULL DEFAULT 0,
    expired integer NOT NULL DEFAULT 0,
    complained integer NOT NULL DEFAULT 0,
    unsubscribed integer NOT NULL DEFAULT 0,
    opened integer NOT NULL DEFAULT 0,
    opened_machine integer NOT NULL DEFAULT 0,
    clicked integer NOT NULL DEFAULT 0,
    clicked_machine integer NOT NULL DEFAULT 0,
    suppressed integer NOT NULL DEFAULT 0,
    rejected integer NOT NULL DEFAULT 0,
    PRIMARY KEY (day, tenant, sender_domain, campaign, provider)
);

CREATE INDEX rollup_daily_tenant ON rollup_daily (tenant, campaign, day);

CREATE TABLE rollup_reasons (
    day integer NOT NULL,
    day_start integer NOT NULL,
    tenant text NOT NULL,
    campaign text NOT NULL,
    kind text NOT NULL,
    classification text NOT NULL,
    reason text NOT NULL,
    count integer NOT NULL DEFAULT 0,
    PRIMARY KEY (day, tenant, campaign, kind, classification, reason)
);

CREATE INDEX rollup_reasons_tenant ON rollup_reasons (tenant, campaign, day);

CREATE TABLE rollup_domains (
    day integer NOT NULL,
    day_start integer NOT NULL,
    tenant text NOT NULL,
    campaign text NOT NULL,
    recipient_domain text NOT NULL,
    delivered integer NOT NULL DEFAULT 0,
    deferred integer NOT NULL DEFAULT 0,
    bounced integer NOT NULL DEFAULT 0,
    PRIMARY KEY (day, tenant, campaign, recipient_domain)
);

CREATE INDEX rollup_domains_tenant ON rollup_domains (tenant, campaign, day);

-- The same without the campaign, for the reports of a whole tenant (or of everyone): a
-- tenant's month is days x domains rows, not days x campaigns x domains.
CREATE TABLE rollup_tenant_domains (
    day integer NOT NULL,
    day_start integer NOT NULL,
    tenant text NOT NULL,
    recipient_domain text NOT NULL,
    delivered integer NOT NULL DEFAULT 0,
    deferred integer NOT NULL DEFAULT 0,
    bounced integer NOT NULL DEFAULT 0,
    PRIMARY KEY (day, tenant, recipient_domain)
);

CREATE INDEX rollup_tenant_domains_tenant ON rollup_tenant_domains (tenant, day);

-- Each `postline gdpr erase`, without the address: its keyed hash only.
CREATE TABLE erasures (
    id integer PRIMARY KEY AUTOINCREMENT,
    at real NOT NULL,
    tenant text NOT NULL DEFAULT '',
    address_hash text NOT NULL,
    by text NOT NULL DEFAULT '',
    counts text NOT NULL DEFAULT '{}'
);
