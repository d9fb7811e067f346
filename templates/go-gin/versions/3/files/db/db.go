// Package db is the service's PostgreSQL database: a pgx pool from the DATABASE_* settings and
// the SQL migrations embedded from migrations/, applied in file-name order as DATABASE_USER (the
// owner role) under a PostgreSQL advisory lock, so one replica migrates at a time.
//
// The service starts without its database; migrations run as soon as it answers.
package db

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"path"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

//go:embed migrations/*.sql
var migrations embed.FS

// MigrationLock is the pg_advisory_xact_lock key taken while migrating (the Python template's).
const MigrationLock int64 = 7_320_451_889

// ErrUnavailable wraps every error that means "the database is not reachable now, retry later".
var ErrUnavailable = errors.New("database unavailable")

// DB is the pool plus the migration state.
type DB struct {
	Pool     *pgxpool.Pool
	Timeout  time.Duration
	migrated atomic.Bool
	migrate  sync.Mutex
}

// Open makes the pool; it connects lazily, so it succeeds while the database is away.
func Open(ctx context.Context, url string, size int, timeout time.Duration) (*DB, error) {
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("DATABASE_URL (or DATABASE_*) is not a valid PostgreSQL address: %w", err)
	}
	cfg.MaxConns = int32(size)
	// One round trip per query, no named prepared statements: works through a pooler in
	// transaction mode (pgbouncer, core.postgres.pooler), which cannot carry them.
	cfg.ConnConfig.DefaultQueryExecMode = pgx.QueryExecModeExec
	cfg.MinConns = 0
	if cfg.ConnConfig.ConnectTimeout == 0 || cfg.ConnConfig.ConnectTimeout > timeout {
		cfg.ConnConfig.ConnectTimeout = timeout
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, err
	}
	return &DB{Pool: pool, Timeout: timeout}, nil
}

// Close waits for the connections in use and closes the pool.
func (d *DB) Close() { d.Pool.Close() }

// Ready migrates when that has not happened yet; its error wraps ErrUnavailable when the
// database does not answer.
func (d *DB) Ready(ctx context.Context) error {
	if d.migrated.Load() {
		return nil
	}
	_, err := d.Migrate(ctx)
	return err
}

// Check is the health check: nil when the database answers and is migrated.
func (d *DB) Check(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, d.Timeout)
	defer cancel()
	if err := d.Ready(ctx); err != nil {
		return err
	}
	return Classify(d.Pool.Ping(ctx))
}

// Migrate applies the pending migrations and returns their names.
func (d *DB) Migrate(ctx context.Context) ([]string, error) {
	d.migrate.Lock()
	defer d.migrate.Unlock()
	if d.migrated.Load() {
		return nil, nil
	}
	names, err := fs.Glob(migrations, "migrations/*.sql")
	if err != nil {
		return nil, err
	}
	sort.Strings(names)
	var applied []string
	err = pgx.BeginFunc(ctx, d.Pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock($1)", MigrationLock); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, "CREATE TABLE IF NOT EXISTS schema_migrations ("+
			" version text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())"); err != nil {
			return err
		}
		rows, _ := tx.Query(ctx, "SELECT version FROM schema_migrations")
		done, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			return err
		}
		seen := make(map[string]bool, len(done))
		for _, version := range done {
			seen[version] = true
		}
		for _, name := range names {
			version := strings.TrimSuffix(path.Base(name), ".sql")
			if seen[version] {
				continue
			}
			script, err := migrations.ReadFile(name)
			if err != nil {
				return err
			}
			// the simple protocol runs a file of several statements in one round trip
			if _, err := tx.Exec(ctx, string(script), pgx.QueryExecModeSimpleProtocol); err != nil {
				return fmt.Errorf("migration %s: %w", version, err)
			}
			if _, err := tx.Exec(ctx, "INSERT INTO schema_migrations (version) VALUES ($1)", version); err != nil {
				return err
			}
			applied = append(applied, version)
		}
		return nil
	})
	if err != nil {
		return nil, Classify(err)
	}
	d.migrated.Store(true)
	if len(applied) > 0 {
		slog.Info("applied migrations", "versions", strings.Join(applied, ", "))
	}
	return applied, nil
}

// MigrateInBackground retries Migrate until it succeeds or ctx ends, so the service answers
// (503 on /healthz) while its database is away.
func (d *DB) MigrateInBackground(ctx context.Context) {
	for {
		_, err := d.Migrate(ctx)
		if err == nil || ctx.Err() != nil {
			return
		}
		if errors.Is(err, ErrUnavailable) {
			slog.Warn("database not reachable; migrations will run when it is", "error", err)
		} else {
			slog.Error("migrations failed; /healthz reports 503 until they pass", "error", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(5 * time.Second):
		}
	}
}

// Classify wraps connection-level failures (refused, timed out, server shutting down) with
// ErrUnavailable; other errors are returned as they are.
func Classify(err error) error {
	if err == nil || errors.Is(err, ErrUnavailable) {
		return err
	}
	var connectErr *pgconn.ConnectError
	var netErr net.Error
	var pgErr *pgconn.PgError
	switch {
	case errors.As(err, &pgErr):
		// class 08 (connection), 53 (resources), 57P01-03 (shutdown, cannot connect now)
		if strings.HasPrefix(pgErr.Code, "08") || strings.HasPrefix(pgErr.Code, "53") ||
			pgErr.Code == "57P01" || pgErr.Code == "57P02" || pgErr.Code == "57P03" {
			return fmt.Errorf("%w: %v", ErrUnavailable, err)
		}
		return err
	case errors.As(err, &connectErr), errors.As(err, &netErr), errors.Is(err, context.DeadlineExceeded),
		pgconn.SafeToRetry(err):
		return fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	return err
}
