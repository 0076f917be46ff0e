-- markovbot's PostgreSQL schema, version 1: guild state (consent, enabled channels, settings).
-- The same tables as SQLite's 0001_initial.sql, with PostgreSQL's types. The other parts of the
-- store follow in later migrations. The runner (bot/core/postgres/schema.py) records each
-- migration in markov_migrations, in the transaction that applies it.

CREATE TABLE consent (
    platform TEXT   NOT NULL,
    guild    TEXT   NOT NULL,
    member   TEXT   NOT NULL,
    since    BIGINT NOT NULL,
    PRIMARY KEY (platform, guild, member)
);

CREATE TABLE enabled_channels (
    platform TEXT   NOT NULL,
    guild    TEXT   NOT NULL,
    channel  TEXT   NOT NULL,
    since    BIGINT NOT NULL,
    PRIMARY KEY (platform, guild, channel)
);

CREATE TABLE guild_settings (
    platform         TEXT             NOT NULL,
    guild            TEXT             NOT NULL,
    ord              INTEGER          NOT NULL DEFAULT 2,
    reply_on_mention BOOLEAN          NOT NULL DEFAULT TRUE,
    chime_chance     DOUBLE PRECISION NOT NULL DEFAULT 0,
    run_length       INTEGER          NOT NULL DEFAULT 8,
    copy_guard       BOOLEAN          NOT NULL DEFAULT TRUE,
    PRIMARY KEY (platform, guild)
);

-- Every process caches guild state; whoever changes a row (a bot process, a forget, an import,
-- psql) tells them all in the same transaction, delivered at commit: the payload is the
-- (platform, guild) as a JSON array, or '*' (drop everything) when that would not fit a payload.
CREATE FUNCTION markov_guild_state_changed() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    payload TEXT;
BEGIN
    IF TG_LEVEL = 'STATEMENT' THEN  -- TRUNCATE
        PERFORM pg_notify('markov_guild_state', '*');
        RETURN NULL;
    END IF;
    IF TG_OP IN ('DELETE', 'UPDATE') THEN
        payload := json_build_array(OLD.platform, OLD.guild)::text;
        PERFORM pg_notify('markov_guild_state', CASE WHEN octet_length(payload) < 7000 THEN payload ELSE '*' END);
    END IF;
    IF TG_OP IN ('INSERT', 'UPDATE') THEN
        payload := json_build_array(NEW.platform, NEW.guild)::text;
        PERFORM pg_notify('markov_guild_state', CASE WHEN octet_length(payload) < 7000 THEN payload ELSE '*' END);
    END IF;
    RETURN NULL;
END;
$$;

CREATE TRIGGER consent_changed AFTER INSERT OR UPDATE OR DELETE ON consent
    FOR EACH ROW EXECUTE FUNCTION markov_guild_state_changed();
CREATE TRIGGER consent_truncated AFTER TRUNCATE ON consent
    FOR EACH STATEMENT EXECUTE FUNCTION markov_guild_state_changed();
CREATE TRIGGER enabled_channels_changed AFTER INSERT OR UPDATE OR DELETE ON enabled_channels
    FOR EACH ROW EXECUTE FUNCTION markov_guild_state_changed();
CREATE TRIGGER enabled_channels_truncated AFTER TRUNCATE ON enabled_channels
    FOR EACH STATEMENT EXECUTE FUNCTION markov_guild_state_changed();
CREATE TRIGGER guild_settings_changed AFTER INSERT OR UPDATE OR DELETE ON guild_settings
    FOR EACH ROW EXECUTE FUNCTION markov_guild_state_changed();
CREATE TRIGGER guild_settings_truncated AFTER TRUNCATE ON guild_settings
    FOR EACH STATEMENT EXECUTE FUNCTION markov_guild_state_changed();
