package pgstore

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"math/rand/v2"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/faxhook/caddy-faxhook/queue"
)

// txKind is what a transaction may do and how it begins.
type txKind int

const (
	kindView   txKind = iota // REPEATABLE READ, READ ONLY: one snapshot
	kindUpdate               // READ COMMITTED with explicit locks
	kindLazy                 // kindUpdate with synchronous_commit off
)

// countSlots is how many rows of the counts table transactions spread their changes over.
const countSlots = 64

// Indexes of the per-state counts.
const (
	cWaiting = iota
	cPending
	cDelivered
	cDead
)

func countIndex(state string) int {
	switch state {
	case queue.StateWaiting:
		return cWaiting
	case queue.StatePending:
		return cPending
	case queue.StateDelivered:
		return cDelivered
	case queue.StateDead:
		return cDead
	}
	return -1
}

// notifyChannel is the channel of wake-ups; the payload is the schema, so that stores in other
// schemas of the database ignore them.
const notifyChannel = "faxhook_jobs"

// zeroNanosSQL is zeroNanos in SQL.
const zeroNanosSQL = "-9223372036854775808"

// SQL of the transactions. Every text is constant: pgx prepares each once per connection.
const (
	sqlLock    = `SELECT pg_advisory_xact_lock($1)`
	sqlLockAll = `SELECT pg_advisory_xact_lock(k) FROM (SELECT k FROM unnest($1::bigint[]) k ORDER BY k) s`

	sqlState       = `SELECT value FROM states WHERE key = $1`
	sqlPutState    = `INSERT INTO states (key, value) VALUES ($1, $2) ON CONFLICT (key) DO UPDATE SET value = excluded.value`
	sqlDeleteState = `DELETE FROM states WHERE key = $1`

	sqlEnqueue = `INSERT INTO jobs (id, state, dest, due_at, due_off, fin_at, fin_off, head, body)
VALUES ($1, 'pending', $2, $3, $4, ` + zeroNanosSQL + `, 0, $5, $6) ON CONFLICT (id) DO NOTHING RETURNING state`
	// A chained job waits when a job of its chain holds it (see the jobs table).
	sqlEnqueueChained = `INSERT INTO jobs (id, state, dest, due_at, due_off, fin_at, fin_off, head, body, chain, seq, hold)
SELECT $1::bytea, CASE WHEN EXISTS (SELECT 1 FROM jobs WHERE chain = $7::bytea AND hold) THEN 'waiting' ELSE 'pending' END,
	$2::bytea, $3::bigint, $4::integer, ` + zeroNanosSQL + `, 0, $5::bytea, $6::bytea, $7::bytea, nextval('chain_seq'), true
ON CONFLICT (id) DO NOTHING RETURNING state`

	headCols      = `state, due_at, due_off, fin_at, fin_off, chain, lease, head`
	sqlHead       = `SELECT ` + headCols + ` FROM jobs WHERE id = $1`
	sqlHeadLock   = sqlHead + ` FOR NO KEY UPDATE`
	sqlJob        = `SELECT ` + headCols + `, body FROM jobs WHERE id = $1`
	sqlJobLock    = sqlJob + ` FOR NO KEY UPDATE`
	sqlStoredLock = `SELECT state, due_at, chain FROM jobs WHERE id = $1 FOR NO KEY UPDATE`

	// $9 says what becomes of hold: 0 it stays, 1 the job leaves its chain's line (finished),
	// 2 it rejoins the line if no job of the chain holds (a finished job replayed).
	putSet = `state = $2, dest = $3, due_at = $4, due_off = $5, fin_at = $6, fin_off = $7, head = $8, lease = $10,
	hold = CASE $9::integer WHEN 0 THEN hold WHEN 1 THEN false
		ELSE NOT EXISTS (SELECT 1 FROM jobs o WHERE o.chain = jobs.chain AND o.hold AND o.id <> jobs.id) END`
	sqlPutHead = `UPDATE jobs SET ` + putSet + ` WHERE id = $1`
	sqlPutJob  = `UPDATE jobs SET ` + putSet + `, body = $11 WHERE id = $1`

	// The first waiting job of a chain becomes pending once no job of the chain holds pending
	// (a holding job is waiting or pending; "not waiting" keeps the planner on jobs_chain). The
	// statement books the promotion in count slot $4 itself, so that the commit need not wait
	// for its result to know the counts.
	sqlPromote = `WITH promoted AS (UPDATE jobs SET state = 'pending', due_at = $2, due_off = $3
WHERE id = (SELECT id FROM jobs WHERE chain = $1 AND hold AND state = 'waiting'
		AND NOT EXISTS (SELECT 1 FROM jobs WHERE chain = $1 AND hold AND state <> 'waiting')
		ORDER BY seq LIMIT 1)
	AND state = 'waiting'
RETURNING id, due_at), ` + promotedCount + `
SELECT id, due_at FROM promoted`

	sqlDelete = `DELETE FROM jobs WHERE id = $1`
	// Deletes a finished job; the second column tells a missing job from an unfinished one.
	sqlDeleteFinished = `WITH d AS (DELETE FROM jobs WHERE id = $1 AND state IN ('delivered', 'dead') RETURNING state)
SELECT (SELECT state FROM d), (SELECT state FROM jobs WHERE id = $1)`

	sqlCounts   = `SELECT coalesce(sum(waiting), 0)::bigint, coalesce(sum(pending), 0)::bigint, coalesce(sum(delivered), 0)::bigint, coalesce(sum(dead), 0)::bigint FROM counts`
	sqlAddCount = `INSERT INTO counts AS c (slot, waiting, pending, delivered, dead) VALUES ($1, $2, $3, $4, $5)
ON CONFLICT (slot) DO UPDATE SET waiting = c.waiting + excluded.waiting, pending = c.pending + excluded.pending,
	delivered = c.delivered + excluded.delivered, dead = c.dead + excluded.dead`
	sqlNotify = `SELECT pg_notify('` + notifyChannel + `', $1)`
)

var beginSQL = map[txKind]string{
	kindView:   "BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY",
	kindUpdate: "BEGIN ISOLATION LEVEL READ COMMITTED",
	kindLazy:   "BEGIN ISOLATION LEVEL READ COMMITTED",
}

// op is a statement of a transaction, sent with the transaction's next round trip.
type op struct {
	sql  string
	args []any
	// rows reads the statement's rows; nil when the result is not needed.
	rows func(pgx.Rows) error
	// exec reads the command tag when rows is nil; nil when it is not needed.
	exec func(pgconn.CommandTag) error
}

// rowInfo is what a transaction knows of a job as stored: what writing it needs.
type rowInfo struct {
	state string
	chain string
	due   int64
}

// pgTx is a queue.Tx on one connection.
type pgTx struct {
	s    *Store
	conn *pgx.Conn
	kind txKind

	began bool // BEGIN was sent
	done  bool // committed
	q     []op // statements not sent yet
	// uncertain is set while q holds a statement whose outcome the commit must read first:
	// the counts of what it changed depend on it, or it may fail.
	uncertain bool
	// err is the first error of a round trip; the transaction is lost and every later call
	// returns it.
	err error
	// seen holds the jobs this transaction locked, wrote or enqueued.
	seen map[string]*rowInfo
	// locks holds the advisory locks taken (or queued).
	locks map[int64]struct{}
	// delta holds the transaction's changes of the per-state counts, written at commit.
	delta [4]int64
	slot  int32
	wake  bool // the commit is to send a wake-up
	// heads holds the heads Prefetch read, each for one JobHead call; nil while the read is
	// still queued, or when the job does not exist.
	heads       map[string]*queue.Job
	prefetching bool // a Prefetch is queued, not sent yet
	// batch holds head changes (PutJobHead) not queued yet: they go out as one statement, with
	// the chain locks they need before it and the promotions they make after it (see batchPut).
	batch putBatch
}

func newTx(s *Store, conn *pgx.Conn, kind txKind) *pgTx {
	return &pgTx{s: s, conn: conn, kind: kind, slot: rand.Int32N(countSlots),
		seen: map[string]*rowInfo{}, locks: map[int64]struct{}{}}
}

var (
	errReadOnly = errors.New("writing in a View")
	errDone     = errors.New("the transaction has ended")
)

// fail records the transaction's first error.
func (t *pgTx) fail(err error) {
	if t.err == nil {
		t.err = err
	}
}

// send sends the queued statements and extra, in order, in one round trip (beginning the
// transaction first if it has not begun), and runs their result handlers.
func (t *pgTx) send(extra ...op) error {
	if t.err != nil {
		return t.err
	}
	if t.done {
		return errDone
	}
	t.flushBatch()
	b := &pgx.Batch{}
	if !t.began {
		b.Queue(beginSQL[t.kind])
		if t.kind == kindLazy {
			b.Queue("SET LOCAL synchronous_commit = off")
		}
		t.began = true
	}
	ops := append(t.q, extra...)
	t.q, t.uncertain = nil, false
	for _, o := range ops {
		qq := b.Queue(o.sql, o.args...)
		switch {
		case o.rows != nil:
			qq.Query(o.rows)
		case o.exec != nil:
			qq.Exec(o.exec)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), t.s.rtWait)
	defer cancel()
	if err := t.conn.SendBatch(ctx, b).Close(); err != nil {
		t.fail(err)
	}
	return t.err
}

// queue adds a statement to send with the next round trip, after the batched head changes.
func (t *pgTx) queue(o op, uncertain bool) {
	t.flushBatch()
	t.q = append(t.q, o)
	t.uncertain = t.uncertain || uncertain
}

// lock queues taking the advisory lock key, once per transaction.
func (t *pgTx) lock(key int64) {
	if _, ok := t.locks[key]; ok {
		return
	}
	t.locks[key] = struct{}{}
	t.queue(op{sql: sqlLock, args: []any{key}}, false)
}

// lockAll queues taking the advisory locks keys, those not taken yet, in one statement and in
// key order: transactions that lock several keys at once then never deadlock on them.
func (t *pgTx) lockAll(keys []int64) {
	slices.Sort(keys)
	keys = slices.Compact(keys)
	keys = slices.DeleteFunc(keys, func(k int64) bool { _, ok := t.locks[k]; return ok })
	switch len(keys) {
	case 0:
		return
	case 1:
		t.lock(keys[0])
		return
	}
	for _, k := range keys {
		t.locks[k] = struct{}{}
	}
	t.queue(op{sql: sqlLockAll, args: []any{keys}}, false)
}

// commit sends what is queued, then the count changes and COMMIT. The wake-up, if any, is
// the caller's to send once the commit is done (see Store.notifier).
func (t *pgTx) commit() {
	if !t.began && len(t.q) == 0 {
		t.done = true // nothing was read or written
		return
	}
	t.flushBatch()
	if t.uncertain && t.send() != nil {
		return
	}
	var fin []op
	if t.delta != [4]int64{} {
		fin = append(fin, op{sql: sqlAddCount, args: []any{t.slot, t.delta[cWaiting], t.delta[cPending], t.delta[cDelivered], t.delta[cDead]}})
	}
	fin = append(fin, op{sql: "COMMIT", exec: func(ct pgconn.CommandTag) error {
		if ct.String() != "COMMIT" {
			return fmt.Errorf("committing: the server answered %s", ct)
		}
		return nil
	}})
	if t.send(fin...) == nil {
		t.done = true
	}
}

// end rolls back a transaction that did not commit, so that its connection goes back to the
// pool clean.
func (t *pgTx) end() {
	if t.done || !t.began || t.conn.IsClosed() || t.conn.PgConn().TxStatus() == 'I' {
		t.done = true
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), t.s.rtWait)
	defer cancel()
	t.conn.Exec(ctx, "ROLLBACK") // a failure closes the connection, which the pool then drops
	t.done = true
}

// writable returns the error that stops a write: the transaction's, or errReadOnly in a View.
func (t *pgTx) writable() error {
	if t.err != nil {
		return t.err
	}
	if t.kind == kindView {
		return errReadOnly
	}
	return nil
}

// Advisory lock keys: 64-bit FNV-1a of the kind of thing locked, the schema and its name, so
// that stores in different schemas of one database do not contend.
func (t *pgTx) advisoryKey(kind, name string) int64 { return advisoryKey(t.s.schema, kind, name) }

func advisoryKey(schema, kind, name string) int64 {
	h := fnv.New64a()
	h.Write([]byte("faxhook\x00"))
	h.Write([]byte(kind))
	h.Write([]byte{0})
	h.Write([]byte(schema))
	h.Write([]byte{0})
	h.Write([]byte(name))
	return int64(h.Sum64())
}

// one returns a rows handler that scans the first row into dest and reports in found whether
// there was one.
func one(found *bool, dest ...any) func(pgx.Rows) error {
	return func(rows pgx.Rows) error {
		if rows.Next() {
			*found = true
			return rows.Scan(dest...)
		}
		return rows.Err()
	}
}

func (t *pgTx) State(key string) ([]byte, error) {
	if t.kind != kindView {
		t.lock(t.advisoryKey("state", key))
	}
	var v []byte
	found := false
	if err := t.send(op{sql: sqlState, args: []any{[]byte(key)}, rows: one(&found, &v)}); err != nil {
		return nil, fmt.Errorf("reading state %q: %w", key, err)
	}
	if !found {
		return nil, queue.ErrNotFound
	}
	if v == nil {
		v = []byte{}
	}
	return v, nil
}

func (t *pgTx) PutState(key string, value []byte) error {
	if err := t.writable(); err != nil {
		return fmt.Errorf("storing state %q: %w", key, err)
	}
	if value == nil {
		value = []byte{}
	}
	t.queue(op{sql: sqlPutState, args: []any{[]byte(key), value}}, false)
	return nil
}

func (t *pgTx) DeleteState(key string) error {
	if err := t.writable(); err != nil {
		return fmt.Errorf("deleting state %q: %w", key, err)
	}
	t.queue(op{sql: sqlDeleteState, args: []any{[]byte(key)}}, false)
	return nil
}

// Enqueue inserts the job if its ID is new. It waits for the server's answer, which it must
// report; the statements queued before it travel in the same round trip. EnqueueAll enqueues
// many jobs in one round trip.
func (t *pgTx) Enqueue(job *queue.Job) (bool, error) {
	ok, err := t.EnqueueAll([]*queue.Job{job})
	if err != nil {
		return false, err
	}
	return ok[0], nil
}

// EnqueueAll is Enqueue for each of jobs, in order, in one round trip: it reports for each job
// whether it was new. Chains are locked first, in key order, so that concurrent EnqueueAll
// calls never deadlock on them.
func (t *pgTx) EnqueueAll(jobs []*queue.Job) ([]bool, error) {
	for _, job := range jobs {
		if job.ID == "" {
			return nil, errors.New("enqueueing a job without an ID")
		}
	}
	if err := t.writable(); err != nil {
		return nil, fmt.Errorf("enqueueing jobs: %w", err)
	}
	var keys []int64
	for _, job := range jobs {
		if job.Chain != "" {
			keys = append(keys, t.advisoryKey("chain", job.Chain))
		}
	}
	t.lockAll(keys)
	ok := make([]bool, len(jobs))
	states := make([]string, len(jobs))
	ops := make([]op, 0, len(jobs))
	for i, job := range jobs {
		if _, seen := t.seen[job.ID]; seen {
			continue // this transaction read or wrote it: it exists
		}
		args := []any{[]byte(job.ID), []byte(queue.Destination(job.URL)), nanos(job.DueAt), offset(job.DueAt), encodeHead(job), queue.EncodePayload(job)}
		sql := sqlEnqueue
		if job.Chain != "" {
			sql, args = sqlEnqueueChained, append(args, []byte(job.Chain))
		}
		ops = append(ops, op{sql: sql, args: args, rows: func(rows pgx.Rows) error {
			if rows.Next() {
				ok[i] = true
				return rows.Scan(&states[i])
			}
			return rows.Err()
		}})
	}
	if len(ops) == 0 {
		return ok, nil
	}
	if err := t.send(ops...); err != nil {
		return nil, fmt.Errorf("enqueueing jobs: %w", err)
	}
	for i, job := range jobs {
		if !ok[i] {
			continue
		}
		job.State, job.FinishedAt = states[i], time.Time{}
		t.seen[job.ID] = &rowInfo{state: states[i], chain: job.Chain, due: nanos(job.DueAt)}
		t.delta[countIndex(states[i])]++
		t.wake = t.wake || states[i] == queue.StatePending
	}
	return ok, nil
}

// readJob reads a job, with its body or not; in an Update it locks the job's row and records
// what it read in seen.
func (t *pgTx) readJob(id string, withBody bool) (*queue.Job, error) {
	sql := sqlHead
	switch {
	case withBody && t.kind == kindView:
		sql = sqlJob
	case withBody:
		sql = sqlJobLock
	case t.kind != kindView:
		sql = sqlHeadLock
	}
	r := jobRow{id: []byte(id)}
	var found bool
	if err := t.send(op{sql: sql, args: []any{[]byte(id)}, rows: one(&found, r.targets(false, withBody)...)}); err != nil {
		return nil, fmt.Errorf("reading job %s: %w", id, err)
	}
	if !found {
		return nil, queue.ErrNotFound
	}
	j, err := r.job(withBody)
	if err != nil {
		return nil, err
	}
	if t.kind != kindView {
		t.seen[id] = &rowInfo{state: r.state, chain: string(r.chain), due: r.dueAt}
	}
	return j, nil
}

// jobRow is a job's row as the queries read it: its id (unless the caller knows it), the head
// columns (headCols, jCols), then its body if asked for.
type jobRow struct {
	id, chain, head, body []byte
	state, lease          string
	dueAt, finAt          int64
	dueOff, finOff        int32
}

// targets returns the scan targets of the row's columns.
func (r *jobRow) targets(withID, withBody bool) []any {
	dest := []any{&r.state, &r.dueAt, &r.dueOff, &r.finAt, &r.finOff, &r.chain, &r.lease, &r.head}
	if withID {
		dest = append([]any{&r.id}, dest...)
	}
	if withBody {
		dest = append(dest, &r.body)
	}
	return dest
}

// job builds the job of the row.
func (r *jobRow) job(withBody bool) (*queue.Job, error) {
	id := string(r.id)
	j := &queue.Job{ID: id, State: r.state, Chain: string(r.chain), Lease: r.lease,
		DueAt: fromColumns(r.dueAt, r.dueOff), FinishedAt: fromColumns(r.finAt, r.finOff)}
	if err := decodeHead(r.head, j); err != nil {
		return nil, fmt.Errorf("decoding job %s: %w", id, err)
	}
	if withBody {
		if err := queue.DecodePayload(r.body, j); err != nil {
			return nil, fmt.Errorf("decoding the body of job %s: %w", id, err)
		}
	}
	return j, nil
}

func (t *pgTx) Job(id string) (*queue.Job, error) { return t.readJob(id, true) }

func (t *pgTx) JobHead(id string) (*queue.Job, error) {
	if _, ok := t.heads[id]; ok {
		if t.prefetching && t.send() != nil { // the prefetch is still queued
			return nil, t.err
		}
		j := t.heads[id]
		delete(t.heads, id) // the caller may change it; a second call reads the row again
		if j == nil {
			return nil, queue.ErrNotFound
		}
		return j, nil
	}
	return t.readJob(id, false)
}

// stored returns what the transaction knows of job id as stored, reading (and locking) its
// row if it knows nothing yet.
func (t *pgTx) stored(id string) (*rowInfo, error) {
	if ri, ok := t.seen[id]; ok {
		return ri, nil
	}
	var (
		state string
		due   int64
		chain []byte
		found bool
	)
	if err := t.send(op{sql: sqlStoredLock, args: []any{[]byte(id)}, rows: one(&found, &state, &due, &chain)}); err != nil {
		return nil, err
	}
	if !found {
		return nil, queue.ErrNotFound
	}
	ri := &rowInfo{state: state, chain: string(chain), due: due}
	t.seen[id] = ri
	return ri, nil
}

func (t *pgTx) PutJob(job *queue.Job) error {
	if err := t.put(job, true); err != nil {
		return fmt.Errorf("storing job %s: %w", job.ID, err)
	}
	return nil
}

func (t *pgTx) PutJobHead(job *queue.Job) error {
	if err := t.put(job, false); err != nil {
		return fmt.Errorf("storing the state of job %s: %w", job.ID, err)
	}
	return nil
}

// Hold changes of a put (putSet's $9).
const (
	holdKeep   = 0
	holdLeave  = 1
	holdRejoin = 2
)

// put stores job's head, and its body if withBody, and keeps its chain: a chained job that
// finishes leaves its chain's line and makes the next waiting job pending once none holds; a
// finished one replayed rejoins the line if the chain is idle, else it is pending on its own.
func (t *pgTx) put(job *queue.Job, withBody bool) error {
	if err := t.writable(); err != nil {
		return err
	}
	old, err := t.stored(job.ID)
	if err != nil {
		return err
	}
	switch job.State {
	case queue.StateLeased:
		return errors.New("leases are held by the dispatcher, not stored")
	case queue.StateWaiting:
		if old.state != queue.StateWaiting {
			return errors.New("only the store makes a job wait, behind its chain")
		}
	case queue.StatePending, queue.StateDelivered, queue.StateDead:
	default:
		return fmt.Errorf("unknown state %q", job.State)
	}
	if job.Chain != old.chain {
		return fmt.Errorf("its chain is %q, it cannot change", old.chain)
	}
	hold, promote := holdKeep, false
	if job.Chain != "" {
		wasFin, isFin := queue.Finished(old.state), queue.Finished(job.State)
		switch {
		case !wasFin && isFin:
			hold, promote = holdLeave, true
		case wasFin && !isFin:
			hold = holdRejoin
		}
	}
	due := nanos(job.DueAt)
	if !withBody && hold != holdRejoin && !(promote && t.batch.promotes(job.Chain)) {
		if hold != holdKeep || old.state == queue.StateWaiting && job.State == queue.StatePending {
			t.batch.locks = append(t.batch.locks, t.advisoryKey("chain", job.Chain))
		}
		t.batch.add(job, due, hold, promote)
	} else {
		if hold != holdKeep || old.state == queue.StateWaiting && job.State == queue.StatePending {
			t.lock(t.advisoryKey("chain", job.Chain))
		}
		args := []any{[]byte(job.ID), job.State, []byte(queue.Destination(job.URL)), due, offset(job.DueAt),
			nanos(job.FinishedAt), offset(job.FinishedAt), encodeHead(job), hold, job.Lease}
		sql := sqlPutHead
		if withBody {
			sql = sqlPutJob
			args = append(args, queue.EncodePayload(job))
		}
		t.queue(op{sql: sql, args: args}, false)
		if promote {
			t.queue(op{sql: sqlPromote, args: []any{[]byte(job.Chain), due, offset(job.DueAt), t.slot}, rows: t.promoted()}, false)
		}
	}
	if old.state != job.State {
		t.delta[countIndex(old.state)]--
		t.delta[countIndex(job.State)]++
	}
	if job.State == queue.StatePending && (old.state != queue.StatePending || due < old.due) &&
		!job.DueAt.After(t.s.opts.Clock.Now().Add(t.s.opts.WakeWithin)) {
		t.wake = true
	}
	old.state, old.due = job.State, due
	return nil
}

// promotedCount is the part of sqlPromote and sqlPromoteAll that adds their promotions (the rows
// of promoted) to the count slot $4.
const promotedCount = `counted AS (INSERT INTO counts AS c (slot, waiting, pending)
	SELECT $4::integer, -count(*), count(*) FROM promoted HAVING count(*) > 0
	ON CONFLICT (slot) DO UPDATE SET waiting = c.waiting + excluded.waiting, pending = c.pending + excluded.pending)`

// promoted returns the handler of sqlPromote and sqlPromoteAll, which notes the promotion of
// the jobs they return (id, due_at); the statements count them themselves.
func (t *pgTx) promoted() func(pgx.Rows) error {
	return func(rows pgx.Rows) error {
		for rows.Next() {
			var id []byte
			var due int64
			if err := rows.Scan(&id, &due); err != nil {
				return err
			}
			t.wake = true
			if ri, ok := t.seen[string(id)]; ok {
				ri.state, ri.due = queue.StatePending, due
			}
		}
		return rows.Err()
	}
}

func (t *pgTx) DeleteJob(id string) error {
	if err := t.writable(); err != nil {
		return fmt.Errorf("deleting job %s: %w", id, err)
	}
	if ri, ok := t.seen[id]; ok {
		if !queue.Finished(ri.state) {
			return fmt.Errorf("deleting job %s: it is %s, not finished", id, ri.state)
		}
		t.queue(op{sql: sqlDelete, args: []any{[]byte(id)}}, false)
		t.delta[countIndex(ri.state)]--
		delete(t.seen, id)
		return nil
	}
	// Not read by this transaction: the statement checks the state, and the commit reads the
	// outcome, failing the transaction if the job is unfinished.
	t.queue(op{sql: sqlDeleteFinished, args: []any{[]byte(id)}, rows: func(rows pgx.Rows) error {
		if !rows.Next() {
			return rows.Err()
		}
		var deleted, current *string
		if err := rows.Scan(&deleted, &current); err != nil {
			return err
		}
		switch {
		case deleted != nil:
			t.delta[countIndex(*deleted)]--
		case current != nil:
			return fmt.Errorf("deleting job %s: it is %s, not finished", id, *current)
		}
		return nil
	}}, true)
	return nil
}

func (t *pgTx) Counts() (map[string]int64, error) {
	var c [4]int64
	found := false
	if err := t.send(op{sql: sqlCounts, rows: one(&found, &c[0], &c[1], &c[2], &c[3])}); err != nil {
		return nil, fmt.Errorf("reading the job counts: %w", err)
	}
	return map[string]int64{
		queue.StateWaiting:   c[cWaiting] + t.delta[cWaiting],
		queue.StatePending:   c[cPending] + t.delta[cPending],
		queue.StateDelivered: c[cDelivered] + t.delta[cDelivered],
		queue.StateDead:      c[cDead] + t.delta[cDead],
	}, nil
}
