-- A version of each portfolio's ledger: a fresh random value after every write to its transactions, by
-- whichever writer (the API, psql, a restore script), so a value derived from the ledger (the service's
-- replayed positions, valuation.LedgerCache) stays valid exactly while the version is unchanged.
-- Random rather than a counter: a re-created database or a restored backup never repeats a version that
-- meant another ledger.

ALTER TABLE portfolios ADD COLUMN ledger_version uuid NOT NULL DEFAULT gen_random_uuid();

CREATE FUNCTION bump_ledger_version() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'TRUNCATE' THEN
        UPDATE portfolios SET ledger_version = gen_random_uuid();
        RETURN NULL;
    END IF;
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
        UPDATE portfolios SET ledger_version = gen_random_uuid() WHERE id = OLD.portfolio_id;
    END IF;
    IF TG_OP = 'INSERT' OR (TG_OP = 'UPDATE' AND NEW.portfolio_id <> OLD.portfolio_id) THEN
        UPDATE portfolios SET ledger_version = gen_random_uuid() WHERE id = NEW.portfolio_id;
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER transactions_ledger_version AFTER INSERT OR UPDATE OR DELETE ON transactions
    FOR EACH ROW EXECUTE FUNCTION bump_ledger_version();
CREATE TRIGGER transactions_ledger_version_truncate AFTER TRUNCATE ON transactions
    FOR EACH STATEMENT EXECUTE FUNCTION bump_ledger_version();
