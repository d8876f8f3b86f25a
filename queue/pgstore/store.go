// Package pgstore is the PostgreSQL implementation of queue.Store: the store a fleet of faxhook
// instances shares. It passes the conformance suite in queue/storetest, and adds what several
// processes on one database need: locks that serialise them where the embedded store relies on
// being alone, wake-ups through LISTEN/NOTIFY, and leader election.
package pgstore

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"go.uber.org/zap"

	"github.com/faxhook/caddy-faxhook/queue"
)

// Options tunes the store. The zero value is usable.
type Options struct {
	// MaxConns is the most connections the store's pool opens; 10 when not positive. The
	// wake-up listener and each leadership hold one connection more, outside the pool.
	MaxConns int32
	// StatementTimeout bounds each statement on the server (statement_timeout), lock waits
	// included; 30s when not positive. A round trip waits at most this long plus 10s on the
	// client, so a server that stops answering fails the operation instead of hanging it.
	StatementTimeout time.Duration
	// Logger receives the store's messages (listener and leadership reconnects); nil discards
	// them.
	Logger *zap.Logger
	// Clock tells the time a retry is due against, to decide whether it wakes the fleet (see
	// WakeWithin); the system clock when nil.
	Clock queue.Clock
	// Schema is the PostgreSQL schema of the store's tables, created if missing; "faxhook" when
	// empty. Lower-case letters, digits and underscores. Stores in different schemas of one
	// database are independent.
	Schema string
	// LeaderInterval is how often a Leadership that does not hold its lock tries to take it,
	// and how often one that holds it checks its connection; 2s when not positive.
	LeaderInterval time.Duration
	// WakeWithin is how soon a job must be due for a commit that makes it pending (or moves
	// it earlier) to send a wake-up; 1 minute when not positive. Enqueues and chain promotions
	// always wake. Jobs due later are found by the dispatchers' own schedule.
	WakeWithin time.Duration
}

// Store is the queue.Store on PostgreSQL. Every Update, UpdateLazy and View is one PostgreSQL
// transaction on one pooled connection; the statements a transaction writes are sent together
// with its next read or its commit (pipelined), so a transaction costs round trips for its reads
// and its commit, not for each write.
//
// Several processes may share one database. Where the embedded store relies on being alone,
// this one takes locks, all held until the transaction ends:
//
//   - Tx.State in an Update takes an advisory lock on the key before it reads, in a statement
//     of its own (Update runs READ COMMITTED, so the read after the lock sees what the previous
//     holder committed). Two instances that observe the same fax thus serialise on its state
//     record, and only the first enqueues its events.
//   - Enqueueing into a chain, and every change of state of a chained job that can release or
//     hold its chain (finished, replayed), take an advisory lock on the chain: a job that
//     finishes sees every job enqueued behind it and makes the next one pending, so no job is
//     left waiting.
//   - Tx.Job and Tx.JobHead in an Update lock the job's row (SELECT … FOR NO KEY UPDATE): two
//     dispatchers that claim one job serialise, and the second sees the first's claim (its Lease
//     and DueAt).
//
// Deadlocks between these locks (possible when transactions take them in different orders) and
// serialization failures end in a retry of the whole transaction, which is why fn must be
// re-runnable.
type Store struct {
	mu     sync.RWMutex // held for reading by every operation, for writing by Close
	closed bool

	pool     *pgxpool.Pool
	connCfg  *pgx.ConnConfig // for the dedicated connections of the listener and the leaders
	opts     Options
	log      *zap.Logger
	schema   string
	rtWait   time.Duration // how long the client waits for one round trip
	ctx      context.Context
	cancel   context.CancelFunc
	bg       sync.WaitGroup
	listenMu sync.Mutex
	wake     chan struct{} // nil until Wakeups starts the listener
	notify   chan struct{} // asks the notifier to send a wake-up
	leaders  map[*Leadership]struct{}
}

var _ queue.Store = (*Store)(nil)

// Open connects to the database of dsn, creates or migrates the store's schema and returns the
// store. The DSN never appears in errors or logs: it may hold a password.
//
// Open sets, on every connection, search_path (the schema), statement_timeout and
// idle_in_transaction_session_timeout (so a process that hangs inside a transaction does not
// hold its locks for ever), and TCP keepalives unless the DSN sets them (see Leadership for the
// bounds they give).
func Open(ctx context.Context, dsn string, opts Options) (*Store, error) {
	if opts.MaxConns <= 0 {
		opts.MaxConns = 10
	}
	if opts.StatementTimeout <= 0 {
		opts.StatementTimeout = 30 * time.Second
	}
	if opts.Schema == "" {
		opts.Schema = "faxhook"
	}
	if !schemaName.MatchString(opts.Schema) {
		return nil, fmt.Errorf("opening the PostgreSQL store: schema %q: %w", opts.Schema, errBadSchema)
	}
	if opts.LeaderInterval <= 0 {
		opts.LeaderInterval = 2 * time.Second
	}
	if opts.WakeWithin <= 0 {
		opts.WakeWithin = time.Minute
	}
	if opts.Clock == nil {
		opts.Clock = queue.SystemClock{}
	}
	log := opts.Logger
	if log == nil {
		log = zap.NewNop()
	}
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		return nil, fmt.Errorf("opening the PostgreSQL store: %w", sanitize(err, dsn))
	}
	cfg.MaxConns = opts.MaxConns
	rp := cfg.ConnConfig.RuntimeParams
	rp["search_path"] = opts.Schema
	rp["statement_timeout"] = strconv.FormatInt(opts.StatementTimeout.Milliseconds(), 10)
	rp["idle_in_transaction_session_timeout"] = strconv.FormatInt(max(opts.StatementTimeout, time.Minute).Milliseconds(), 10)
	setKeepalives(rp)
	if rp["application_name"] == "" {
		rp["application_name"] = "faxhook"
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("opening the PostgreSQL store: %w", sanitize(err, dsn))
	}
	conn, err := pool.Acquire(ctx)
	if err != nil {
		pool.Close()
		return nil, fmt.Errorf("opening the PostgreSQL store: connecting: %w", sanitize(err, dsn))
	}
	err = migrate(ctx, conn.Conn(), opts.Schema)
	conn.Release()
	if err != nil {
		pool.Close()
		return nil, fmt.Errorf("opening the PostgreSQL store: %w", sanitize(err, dsn))
	}
	sctx, cancel := context.WithCancel(context.Background())
	s := &Store{
		pool: pool, connCfg: cfg.ConnConfig.Copy(), opts: opts, log: log, schema: opts.Schema,
		rtWait: opts.StatementTimeout + 10*time.Second, ctx: sctx, cancel: cancel,
		leaders: map[*Leadership]struct{}{}, notify: make(chan struct{}, 1),
	}
	s.bg.Add(1)
	go s.notifier()
	return s, nil
}

// setKeepalives sets TCP keepalive and user-timeout parameters the DSN leaves unset: the server
// then notices a peer that vanished (a host that died, a partition) in about
// keepaliveBound instead of the system default of hours, and ends its session, releasing its
// locks.
func setKeepalives(rp map[string]string) {
	for k, v := range map[string]string{
		"tcp_keepalives_idle":     "5",
		"tcp_keepalives_interval": "2",
		"tcp_keepalives_count":    "3",
		"tcp_user_timeout":        "10000",
	} {
		if _, ok := rp[k]; !ok {
			rp[k] = v
		}
	}
}

// keepaliveBound is how long, with setKeepalives' defaults, the server takes at most to notice
// that a peer vanished: 5s idle + 3 probes 2s apart, or 10s of unacknowledged data.
const keepaliveBound = 11 * time.Second

// sanitize returns err with the DSN taken out: pgx's parse errors quote the connection string
// (with the password redacted as well as pgx can, which it says is best effort).
func sanitize(err error, dsn string) error {
	if err == nil || dsn == "" {
		return err
	}
	var pe *pgconn.ParseConfigError
	if errors.As(err, &pe) {
		msg := pe.Error()
		if i := strings.LastIndex(msg, "`: "); i >= 0 {
			msg = msg[i+3:]
		} else {
			msg = "malformed"
		}
		msg = strings.ReplaceAll(msg, dsn, "<dsn>")
		if pe.ConnString != "" {
			msg = strings.ReplaceAll(msg, pe.ConnString, "<dsn>")
		}
		if strings.Contains(msg, "://") || strings.Contains(msg, "password") {
			msg = "malformed"
		}
		return fmt.Errorf("parsing the DSN (not shown: it may hold a password): %s", msg)
	}
	if msg := err.Error(); strings.Contains(msg, dsn) {
		return errors.New(strings.ReplaceAll(msg, dsn, "<dsn>"))
	}
	return err
}

// Pool returns the store's connection pool, for tools and tests that need SQL of their own.
func (s *Store) Pool() *pgxpool.Pool { return s.pool }

// Schema returns the schema the store's tables are in.
func (s *Store) Schema() string { return s.schema }

// Close stops the wake-up listener and every Leadership (releasing their locks), waits for the
// operations under way and closes the pool. Operations after Close fail with queue.ErrClosed.
func (s *Store) Close() error {
	s.cancel() // the listener and the leaders end; operations use their own contexts
	s.listenMu.Lock()
	leaders := make([]*Leadership, 0, len(s.leaders))
	for l := range s.leaders {
		leaders = append(leaders, l)
	}
	s.listenMu.Unlock()
	for _, l := range leaders {
		l.Close()
	}
	s.bg.Wait()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	s.pool.Close()
	return nil
}

// Update runs fn in one READ COMMITTED transaction and returns once it committed
// (synchronous_commit as the server is configured: on by default, durable on the server's disk
// and on synchronous standbys). It retries fn after deadlocks, serialization failures and
// unique violations.
func (s *Store) Update(fn func(queue.Tx) error) error { return s.run(kindUpdate, fn) }

// UpdateLazy is Update with synchronous_commit off for its transaction: the commit returns
// once the server has it in memory, before its WAL is flushed to disk. It survives a crash of
// this process; a crash of the PostgreSQL server or of its host within about three times
// wal_writer_delay (600ms by default) of the commit may lose it, as the interface allows.
func (s *Store) UpdateLazy(fn func(queue.Tx) error) error { return s.run(kindLazy, fn) }

// View runs fn in a REPEATABLE READ, READ ONLY transaction: every read sees one snapshot.
func (s *Store) View(fn func(queue.Tx) error) error { return s.run(kindView, fn) }

// maxTries bounds how often run retries one transaction.
const maxTries = 10

// run runs fn in transactions of kind until one commits, fn fails, or maxTries attempts met
// conflicts.
func (s *Store) run(kind txKind, fn func(queue.Tx) error) error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return queue.ErrClosed
	}
	var err error
	for try := 0; try < maxTries; try++ {
		if try > 0 {
			// Jittered backoff, so that transactions that deadlocked do not meet again.
			time.Sleep(time.Duration(rand.Int64N(int64(time.Millisecond) << min(try, 6))))
		}
		var again bool
		if again, err = s.attempt(kind, fn); !again {
			return err
		}
	}
	return fmt.Errorf("committing after %d attempts that met conflicts: %w", maxTries, err)
}

// attempt runs fn in one transaction and reports whether it should run again.
func (s *Store) attempt(kind txKind, fn func(queue.Tx) error) (again bool, err error) {
	ctx, cancel := context.WithTimeout(context.Background(), s.rtWait)
	conn, err := s.pool.Acquire(ctx)
	cancel()
	if err != nil {
		return pgconn.SafeToRetry(err), fmt.Errorf("acquiring a PostgreSQL connection: %w", err)
	}
	t := newTx(s, conn.Conn(), kind)
	ferr := fn(t)
	if ferr == nil && t.err == nil {
		t.commit()
	}
	t.end()
	conn.Release()
	if t.done && t.wake {
		select {
		case s.notify <- struct{}{}:
		default: // one is due to be sent already, after this commit: it covers this one
		}
	}
	switch {
	case retryable(t.err):
		return true, t.err
	case ferr != nil:
		return false, ferr
	}
	return false, t.err
}

// retryable reports whether err is a conflict that running the transaction again resolves:
// a serialization failure, a deadlock, a unique violation (a concurrent insert of the same
// key), or a connection error before anything was sent.
func retryable(err error) bool {
	if err == nil {
		return false
	}
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		switch pe.Code {
		case "40001", "40P01", "23505":
			return true
		}
		return false
	}
	return pgconn.SafeToRetry(err)
}
