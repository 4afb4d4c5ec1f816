-- The reporting store's first schema (PostgreSQL). Times are epoch seconds; `day` is the UTC
-- day as yyyymmdd, the partition key: a day's partition is dropped whole at retention.

CREATE TABLE events (
    day integer NOT NULL,
    -- BLAKE2b-128 of the record's bytes: a replay or a producer's retry inserts nothing.
    id bytea NOT NULL,
    at double precision NOT NULL,
    kind text NOT NULL,
    tenant text NOT NULL DEFAULT '',
    message_id text NOT NULL DEFAULT '',
    recipient text COLLATE "C" NOT NULL DEFAULT '',
    recipient_domain text COLLATE "C" NOT NULL DEFAULT '',
    sender text COLLATE "C" NOT NULL DEFAULT '',
    sender_domain text COLLATE "C" NOT NULL DEFAULT '',
    -- "C": a prefix search is a range scan of the index, whatever the database's locale.
    subject text COLLATE "C" NOT NULL DEFAULT '',
    campaign text COLLATE "C" NOT NULL DEFAULT '',
    tags text NOT NULL DEFAULT '{}',
    provider text NOT NULL DEFAULT '',
    mx text NOT NULL DEFAULT '',
    classification text NOT NULL DEFAULT '',
    reason text NOT NULL DEFAULT '',
    code integer NOT NULL DEFAULT 0,
    status text NOT NULL DEFAULT '',
    detail text NOT NULL DEFAULT '',
    machine boolean NOT NULL DEFAULT false,
    agent text NOT NULL DEFAULT '',
    url text NOT NULL DEFAULT '',
    doc text NOT NULL,
    PRIMARY KEY (day, id)
) PARTITION BY RANGE (day);

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
    at double precision NOT NULL,
    tenant text NOT NULL DEFAULT '',
    sender text COLLATE "C" NOT NULL DEFAULT '',
    sender_domain text COLLATE "C" NOT NULL DEFAULT '',
    subject text COLLATE "C" NOT NULL DEFAULT '',
    campaign text COLLATE "C" NOT NULL DEFAULT '',
    tags text NOT NULL DEFAULT '{}',
    recipients integer NOT NULL DEFAULT 0,
    PRIMARY KEY (day, message_id)
) PARTITION BY RANGE (day);

CREATE INDEX messages_id ON messages (message_id);

-- Rollups: counts of the events inserted (never of a replayed one). Per hour for the
-- series and a range's partial first and last day; per UTC day for everything longer, so a
-- month's report reads 30 rows where it read 720. `day_start` is the day's first second
-- (epoch), what Grafana's $__unixEpochFilter compares.
CREATE TABLE rollup_hourly (
    hour bigint NOT NULL,
    day integer NOT NULL,
    tenant text NOT NULL,
    sender_domain text COLLATE "C" NOT NULL,
    campaign text COLLATE "C" NOT NULL,
    provider text NOT NULL,
    accepted bigint NOT NULL DEFAULT 0,
    delivered bigint NOT NULL DEFAULT 0,
    deferred bigint NOT NULL DEFAULT 0,
    bounced bigint NOT NULL DEFAULT 0,
    bounced_hard bigint NOT NULL DEFAULT 0,
    bounced_soft bigint NOT NULL DEFAULT 0,
    expired bigint NOT NULL DEFAULT 0,
    complained bigint NOT NULL DEFAULT 0,
    unsubscribed bigint NOT NULL DEFAULT 0,
    opened bigint NOT NULL DEFAULT 0,
    opened_machine bigint NOT NULL DEFAULT 0,
    clicked bigint NOT NULL DEFAULT 0,
    clicked_machine bigint NOT NULL DEFAULT 0,
    suppressed bigint NOT NULL DEFAULT 0,
    rejected bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (hour, tenant, sender_domain, campaign, provider)
);

CREATE INDEX rollup_hourly_tenant ON rollup_hourly (tenant, campaign, hour);
CREATE INDEX rollup_hourly_day ON rollup_hourly (day);

CREATE TABLE rollup_daily (
    day integer NOT NULL,
    day_start bigint NOT NULL,
    tenant text NOT NULL,
    sender_domain text COLLATE "C" NOT NULL,
    campaign text COLLATE "C" NOT NULL,
    provider text NOT NULL,
    accepted bigint NOT NULL DEFAULT 0,
    delivered bigint NOT NULL DEFAULT 0,
    deferred bigint NOT NULL DEFAULT 0,
    bounced bigint NOT NULL DEFAULT 0,
    bounced_hard bigint NOT NULL DEFAULT 0,
    bounced_soft bigint NOT NULL DEFAULT 0,
    expired bigint NOT NULL DEFAULT 0,
    complained bigint NOT NULL DEFAULT 0,
    unsubscribed bigint NOT NULL DEFAULT 0,
    opened bigint NOT NULL DEFAULT 0,
    opened_machine bigint NOT NULL DEFAULT 0,
    clicked bigint NOT NULL DEFAULT 0,
    clicked_machine bigint NOT NULL DEFAULT 0,
    suppressed bigint NOT NULL DEFAULT 0,
    rejected bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (day, tenant, sender_domain, campaign, provider)
);

CREATE INDEX rollup_daily_tenant ON rollup_daily (tenant, campaign, day);

CREATE TABLE rollup_reasons (
    day integer NOT NULL,
    day_start bigint NOT NULL,
    tenant text NOT NULL,
    campaign text COLLATE "C" NOT NULL,
    kind text NOT NULL,
    classification text NOT NULL,
    reason text NOT NULL,
    count bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (day, tenant, campaign, kind, classification, reason)
);

CREATE INDEX rollup_reasons_tenant ON rollup_reasons (tenant, campaign, day);

CREATE TABLE rollup_domains (
    day integer NOT NULL,
    day_start bigint NOT NULL,
    tenant text NOT NULL,
    campaign text COLLATE "C" NOT NULL,
    recipient_domain text COLLATE "C" NOT NULL,
    delivered bigint NOT NULL DEFAULT 0,
    deferred bigint NOT NULL DEFAULT 0,
    bounced bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (day, tenant, campaign, recipient_domain)
);

CREATE INDEX rollup_domains_tenant ON rollup_domains (tenant, campaign, day);

-- The same without the campaign, for the reports of a whole tenant (or of everyone): a
-- tenant's month is days x domains rows, not days x campaigns x domains.
CREATE TABLE rollup_tenant_domains (
    day integer NOT NULL,
    day_start bigint NOT NULL,
    tenant text NOT NULL,
    recipient_domain text COLLATE "C" NOT NULL,
    delivered bigint NOT NULL DEFAULT 0,
    deferred bigint NOT NULL DEFAULT 0,
    bounced bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (day, tenant, recipient_domain)
);

CREATE INDEX rollup_tenant_domains_tenant ON rollup_tenant_domains (tenant, day);

-- Each `postline gdpr erase`, without the address: its keyed hash only.
CREATE TABLE erasures (
    id bigserial PRIMARY KEY,
    at double precision NOT NULL,
    tenant text NOT NULL DEFAULT '',
    address_hash text NOT NULL,
    by text NOT NULL DEFAULT '',
    counts text NOT NULL DEFAULT '{}'
);
