package pgstore

import (
	"context"
	"errors"
	"fmt"
	"regexp"

	"github.com/jackc/pgx/v5"
)

// migrations are the schema's versions: migration i brings the schema to version i+1. They
// only ever get appended to; a released one never changes.
var migrations = []string{
	// 1: state records, jobs, the per-state counts and the chain sequence.
	`
CREATE TABLE states (
	key   bytea PRIMARY KEY,
	value bytea NOT NULL
);

-- A job: the columns that queries select, order or lock by; the rest in head and body (see codec.go).
-- Times are Unix nanoseconds (the zero time is the smallest bigint) with their zone offset in seconds.
-- hold: the job is unfinished and in its chain's line (enqueued, or replayed into an idle chain);
-- a job enqueued into a chain waits while another job of the chain holds.
CREATE TABLE jobs (
	id      bytea PRIMARY KEY,
	state   text NOT NULL CHECK (state IN ('waiting', 'pending', 'delivered', 'dead')),
	dest    bytea NOT NULL,
	due_at  bigint NOT NULL,
	due_off integer NOT NULL,
	fin_at  bigint NOT NULL,
	fin_off integer NOT NULL,
	chain   bytea,
	seq     bigint,
	hold    boolean NOT NULL DEFAULT false,
	lease   text NOT NULL DEFAULT '',
	head    bytea NOT NULL,
	body    bytea NOT NULL
);

-- Pending jobs by destination, then due time: Destinations, PendingJobs, Due, List(pending).
CREATE INDEX jobs_due ON jobs (dest, due_at, id) WHERE state = 'pending';
-- The holding jobs of each chain in enqueue order: whether a new job waits, which job a finish
-- makes pending.
CREATE INDEX jobs_chain ON jobs (chain, seq) INCLUDE (state) WHERE hold;
-- The waiting jobs by chain and enqueue order, for List(waiting): few, where jobs_chain holds
-- every unfinished chained job.
CREATE INDEX jobs_waiting ON jobs (chain, seq) WHERE state = 'waiting';
-- Finished jobs by finish time: Finished, List(delivered/dead), retention.
CREATE INDEX jobs_finished ON jobs (state, fin_at, id) WHERE state IN ('delivered', 'dead');

-- The enqueue order within chains. CACHE 1 (the default) keeps it one order across sessions.
CREATE SEQUENCE chain_seq;

-- The number of jobs per state, in slots: each transaction adds its changes to one slot picked
-- at random, so concurrent writers seldom wait for one another's row lock; Counts adds the slots.
CREATE TABLE counts (
	slot      integer PRIMARY KEY,
	waiting   bigint NOT NULL DEFAULT 0,
	pending   bigint NOT NULL DEFAULT 0,
	delivered bigint NOT NULL DEFAULT 0,
	dead      bigint NOT NULL DEFAULT 0
);
`,
}

// migrationLock is the key of the advisory lock that serialises migrations: two processes that
// open the store at once must not both create the schema.
const migrationLock int64 = 0x6661786d69677231 // "faxmigr1"

// schemaName is what a schema name may be: it goes into search_path and DDL unquoted.
var schemaName = regexp.MustCompile(`^[a-z_][a-z0-9_]{0,62}$`)

// migrate creates the schema or brings it to the latest version, in one transaction under the
// migration lock.
func migrate(ctx context.Context, conn *pgx.Conn, schema string) (err error) {
	tx, err := conn.Begin(ctx)
	if err != nil {
		return fmt.Errorf("beginning the migration: %w", err)
	}
	defer func() {
		if err != nil {
			tx.Rollback(context.WithoutCancel(ctx))
		}
	}()
	if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock($1)", migrationLock); err != nil {
		return fmt.Errorf("taking the migration lock: %w", err)
	}
	for _, q := range []string{
		"CREATE SCHEMA IF NOT EXISTS " + schema,
		"CREATE TABLE IF NOT EXISTS " + schema + ".schema_migrations (version integer PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())",
	} {
		if _, err := tx.Exec(ctx, q); err != nil {
			return fmt.Errorf("creating schema %s: %w", schema, err)
		}
	}
	var version int
	if err := tx.QueryRow(ctx, "SELECT coalesce(max(version), 0) FROM "+schema+".schema_migrations").Scan(&version); err != nil {
		return fmt.Errorf("reading the schema version: %w", err)
	}
	if version > len(migrations) {
		return fmt.Errorf("schema %s is at version %d, written by a newer faxhook; this build knows versions up to %d", schema, version, len(migrations))
	}
	for v := version; v < len(migrations); v++ {
		// search_path names the schema (see Open), so the migrations' names are unqualified.
		if _, err := tx.Exec(ctx, migrations[v]); err != nil {
			return fmt.Errorf("migrating schema %s to version %d: %w", schema, v+1, err)
		}
		if _, err := tx.Exec(ctx, "INSERT INTO "+schema+".schema_migrations (version) VALUES ($1)", v+1); err != nil {
			return fmt.Errorf("recording schema version %d: %w", v+1, err)
		}
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("committing the migration: %w", err)
	}
	return nil
}

var errBadSchema = errors.New("a schema name is lower-case letters, digits and underscores, not starting with a digit, at most 63 bytes")
