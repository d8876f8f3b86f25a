package pgstore

import (
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"math"
	"time"

	"github.com/faxhook/caddy-faxhook/queue/internal/binrec"

	"github.com/jackc/pgx/v5"

	"github.com/faxhook/caddy-faxhook/queue"
)

// Listings read in pages (keyset pagination), never holding a result open while fn runs: fn
// may use the transaction, and the connection runs one statement at a time. In an Update
// (READ COMMITTED) each page is a snapshot of its own; in a View, all are one.
const (
	headPage  = 256 // jobs per page without bodies, state records per page
	bodyPage  = 32  // jobs per page with bodies, which may hold files
	firstPage = 16  // the first page of PendingJobs, whose callers mostly stop early
)

// destCTE lists each destination with a pending job and its earliest due time, one index
// probe per destination however long its backlog (a loose index scan of jobs_due).
const destCTE = `WITH RECURSIVE d (dest, due_at) AS (
	(SELECT dest, due_at FROM jobs WHERE state = 'pending' ORDER BY dest, due_at LIMIT 1)
	UNION ALL
	SELECT n.dest, n.due_at FROM d CROSS JOIN LATERAL (
		SELECT dest, due_at FROM jobs WHERE state = 'pending' AND dest > d.dest ORDER BY dest, due_at LIMIT 1) n
) `

const (
	sqlDestinations = destCTE + `SELECT dest, due_at FROM d`
	sqlNextDue      = destCTE + `SELECT min(due_at) FROM d`
	// Up to $2 due jobs of each destination due by $1, then the $2 earliest of them.
	sqlDue = destCTE + `SELECT j.id, ` + jCols + `, j.body FROM (
	SELECT x.id, x.due_at FROM d CROSS JOIN LATERAL (
		SELECT id, due_at FROM jobs WHERE state = 'pending' AND dest = d.dest AND due_at <= $1 ORDER BY due_at, id LIMIT $2) x
	WHERE d.due_at <= $1
	ORDER BY x.due_at, x.id LIMIT $2) s
JOIN jobs j ON j.id = s.id ORDER BY s.due_at, s.id`
	sqlPendingJobs = `SELECT id, due_at FROM jobs WHERE state = 'pending' AND dest = $1 AND (due_at, id) > ($2, $3)
ORDER BY due_at, id LIMIT $4`

	jCols = `j.state, j.due_at, j.due_off, j.fin_at, j.fin_off, j.chain, j.lease, j.head`

	sqlJobsAfter  = `SELECT j.id, ` + jCols + ` FROM jobs j WHERE j.id > $1 ORDER BY j.id LIMIT $2`
	sqlJobsAfterB = `SELECT j.id, ` + jCols + `, j.body FROM jobs j WHERE j.id > $1 ORDER BY j.id LIMIT $2`

	sqlPendingAfter = `SELECT j.id, ` + jCols + `, j.dest, j.due_at FROM jobs j
WHERE j.state = 'pending' AND (j.dest, j.due_at, j.id) > ($1, $2, $3) ORDER BY j.dest, j.due_at, j.id LIMIT $4`
	sqlWaitingAfter = `SELECT j.id, ` + jCols + `, j.chain, j.seq FROM jobs j
WHERE j.state = 'waiting' AND (j.chain, j.seq) > ($1, $2) ORDER BY j.chain, j.seq LIMIT $3`

	sqlStates     = `SELECT key, value FROM states WHERE key >= $1 AND key > $2 ORDER BY key LIMIT $3`
	sqlStatesUpTo = `SELECT key, value FROM states WHERE key >= $1 AND key > $2 AND key < $4 ORDER BY key LIMIT $3`
)

// sqlFinished returns the statements that page through the finished jobs of a final state, by
// finish time, with and without their bodies. The state is a literal, not a parameter, so that
// the planner matches the partial index jobs_finished in a generic plan too.
func sqlFinished(state string) (heads, bodies string) {
	q := `SELECT j.id, ` + jCols + `%s FROM jobs j WHERE j.state = '` + state + `' AND j.fin_at >= $1 AND (j.fin_at, j.id) > ($2, $3)
ORDER BY j.fin_at, j.id LIMIT $4`
	return fmt.Sprintf(q, ""), fmt.Sprintf(q, ", j.body")
}

var (
	sqlDeliveredHeads, sqlDeliveredJobs = sqlFinished(queue.StateDelivered)
	sqlDeadHeads, sqlDeadJobs           = sqlFinished(queue.StateDead)
)

func (t *pgTx) Destinations(now time.Time, fn func(dest string, oldest time.Time) bool) (time.Time, error) {
	type destDue struct {
		dest string
		due  int64
	}
	var ds []destDue
	err := t.send(op{sql: sqlDestinations, rows: func(rows pgx.Rows) error {
		for rows.Next() {
			var d []byte
			var due int64
			if err := rows.Scan(&d, &due); err != nil {
				return err
			}
			ds = append(ds, destDue{string(d), due})
		}
		return rows.Err()
	}})
	if err != nil {
		return time.Time{}, fmt.Errorf("listing the destinations with pending jobs: %w", err)
	}
	end := nanos(now)
	next := int64(math.MaxInt64)
	for _, d := range ds {
		if d.due > end {
			next = min(next, d.due)
			continue
		}
		if !fn(d.dest, fromColumns(d.due, 0)) {
			return time.Time{}, nil
		}
	}
	if next == math.MaxInt64 {
		return time.Time{}, nil
	}
	return fromColumns(next, 0), nil
}

func (t *pgTx) PendingJobs(dest string, fn func(id string, dueAt time.Time) bool) error {
	afterDue, afterID := int64(zeroNanos), []byte{}
	for limit := firstPage; ; limit = min(limit*4, headPage) {
		n := 0
		type ref struct {
			id  []byte
			due int64
		}
		var refs []ref
		err := t.send(op{sql: sqlPendingJobs, args: []any{[]byte(dest), afterDue, afterID, limit}, rows: func(rows pgx.Rows) error {
			for rows.Next() {
				var r ref
				if err := rows.Scan(&r.id, &r.due); err != nil {
					return err
				}
				refs = append(refs, r)
			}
			return rows.Err()
		}})
		if err != nil {
			return fmt.Errorf("listing the pending jobs of %s: %w", queue.RedactURL(dest), err)
		}
		for _, r := range refs {
			n++
			if !fn(string(r.id), fromColumns(r.due, 0)) {
				return nil
			}
			afterDue, afterID = r.due, r.id
		}
		if n < limit {
			return nil
		}
	}
}

// scanJobs returns a rows handler that reads jobs (id, the head columns, then the body if
// withBody, then extra columns into extra's targets) and passes each to add.
func scanJobs(withBody bool, add func(j *queue.Job) error, extra ...any) func(pgx.Rows) error {
	return func(rows pgx.Rows) error {
		for rows.Next() {
			var r jobRow
			if err := rows.Scan(append(r.targets(true, withBody), extra...)...); err != nil {
				return err
			}
			j, err := r.job(withBody)
			if err != nil {
				return err
			}
			if err := add(j); err != nil {
				return err
			}
		}
		return rows.Err()
	}
}

func (t *pgTx) Due(now time.Time, limit int) ([]*queue.Job, error) {
	if limit <= 0 {
		return nil, nil
	}
	var jobs []*queue.Job
	err := t.send(op{sql: sqlDue, args: []any{nanos(now), limit}, rows: scanJobs(true, func(j *queue.Job) error {
		jobs = append(jobs, j)
		return nil
	})})
	if err != nil {
		return nil, fmt.Errorf("loading the due jobs: %w", err)
	}
	return jobs, nil
}

func (t *pgTx) NextDue() (time.Time, bool, error) {
	var due *int64
	found := false
	if err := t.send(op{sql: sqlNextDue, rows: one(&found, &due)}); err != nil {
		return time.Time{}, false, fmt.Errorf("reading the next due time: %w", err)
	}
	if due == nil {
		return time.Time{}, false, nil
	}
	return fromColumns(*due, 0), true, nil
}

func (t *pgTx) Jobs(fn func(*queue.Job) bool) error { return t.jobs(true, fn) }

func (t *pgTx) JobHeads(fn func(*queue.Job) bool) error { return t.jobs(false, fn) }

// jobs walks every job in ID order, in pages.
func (t *pgTx) jobs(withBody bool, fn func(*queue.Job) bool) error {
	sql, limit := sqlJobsAfter, headPage
	if withBody {
		sql, limit = sqlJobsAfterB, bodyPage
	}
	after := []byte{}
	for {
		var page []*queue.Job
		err := t.send(op{sql: sql, args: []any{after, limit}, rows: scanJobs(withBody, func(j *queue.Job) error {
			page = append(page, j)
			return nil
		})})
		if err != nil {
			return fmt.Errorf("listing jobs: %w", err)
		}
		for _, j := range page {
			if !fn(j) {
				return nil
			}
		}
		if len(page) < limit {
			return nil
		}
		after = []byte(page[len(page)-1].ID)
	}
}

func (t *pgTx) Finished(state string, since time.Time, fn func(*queue.Job) bool) error {
	return t.finished(state, since, true, fn)
}

func (t *pgTx) FinishedHeads(state string, since time.Time, fn func(*queue.Job) bool) error {
	return t.finished(state, since, false, fn)
}

// finishedSQL returns the statement that pages through the jobs finished in state.
func finishedSQL(state string, withBody bool) (string, error) {
	switch {
	case state == queue.StateDelivered && withBody:
		return sqlDeliveredJobs, nil
	case state == queue.StateDelivered:
		return sqlDeliveredHeads, nil
	case state == queue.StateDead && withBody:
		return sqlDeadJobs, nil
	case state == queue.StateDead:
		return sqlDeadHeads, nil
	}
	return "", fmt.Errorf("%q is not a final state", state)
}

// finished walks the jobs finished in state from since on, oldest first, in pages.
func (t *pgTx) finished(state string, since time.Time, withBody bool, fn func(*queue.Job) bool) error {
	sql, err := finishedSQL(state, withBody)
	if err != nil {
		return fmt.Errorf("listing finished jobs: %w", err)
	}
	limit := headPage
	if withBody {
		limit = bodyPage
	}
	from := nanos(since)
	afterFin, afterID := int64(zeroNanos), []byte{}
	for {
		var page []*queue.Job
		var fins []int64
		err := t.send(op{sql: sql, args: []any{from, afterFin, afterID, limit}, rows: scanJobs(withBody, func(j *queue.Job) error {
			page = append(page, j)
			fins = append(fins, nanos(j.FinishedAt))
			return nil
		})})
		if err != nil {
			return fmt.Errorf("listing %s jobs: %w", state, err)
		}
		for _, j := range page {
			if !fn(j) {
				return nil
			}
		}
		if len(page) < limit {
			return nil
		}
		afterFin, afterID = fins[len(fins)-1], []byte(page[len(page)-1].ID)
	}
}

func (t *pgTx) States(prefix string, fn func(key string, value []byte) bool) error {
	upTo := successor([]byte(prefix))
	after := []byte{}
	for {
		type kv struct{ k, v []byte }
		var page []kv
		o := op{sql: sqlStates, args: []any{[]byte(prefix), after, headPage}, rows: func(rows pgx.Rows) error {
			for rows.Next() {
				var e kv
				if err := rows.Scan(&e.k, &e.v); err != nil {
					return err
				}
				page = append(page, e)
			}
			return rows.Err()
		}}
		if upTo != nil {
			o.sql, o.args = sqlStatesUpTo, append(o.args, upTo)
		}
		if err := t.send(o); err != nil {
			return fmt.Errorf("listing states %q: %w", prefix, err)
		}
		for _, e := range page {
			v := e.v
			if v == nil {
				v = []byte{}
			}
			if !fn(string(e.k), v) {
				return nil
			}
		}
		if len(page) < headPage {
			return nil
		}
		after = page[len(page)-1].k
	}
}

// successor returns the smallest byte string greater than every string that starts with p; nil
// when there is none (p empty or all 0xff).
func successor(p []byte) []byte {
	s := bytes.Clone(p)
	for len(s) > 0 {
		if s[len(s)-1] < 0xff {
			s[len(s)-1]++
			return s
		}
		s = s[:len(s)-1]
	}
	return nil
}

// Cursors of List: base64url of a kind byte and the sort key of the last job listed, each part
// with its length. The kind ties a cursor to its listing.
const (
	cursorAll     byte = 'a'
	cursorPending byte = 'p'
	cursorWaiting byte = 'w'
	cursorFin     byte = 'f'
)

func encodeCursor(kind byte, parts ...[]byte) string {
	b := []byte{kind}
	for _, p := range parts {
		b = binary.AppendUvarint(b, uint64(len(p)))
		b = append(b, p...)
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

func decodeCursor(s string, kind byte, n int) ([][]byte, error) {
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil || len(b) == 0 || b[0] != kind {
		return nil, fmt.Errorf("listing jobs: %w: cursor %q", queue.ErrBadCursor, s)
	}
	r := &binrec.Reader{B: b, Off: 1, Corrupt: errCorrupt}
	parts := make([][]byte, n)
	for i := range parts {
		start, end := r.Span()
		parts[i] = b[start:end:end] // empty, not nil: a nil []byte is NULL to PostgreSQL
	}
	if r.End() != nil {
		return nil, fmt.Errorf("listing jobs: %w: cursor %q", queue.ErrBadCursor, s)
	}
	return parts, nil
}

func int64Bytes(v int64) []byte { return binary.BigEndian.AppendUint64(nil, uint64(v)) }

func bytesInt64(b []byte) (int64, bool) {
	if len(b) != 8 {
		return 0, false
	}
	return int64(binary.BigEndian.Uint64(b)), true
}

// List pages through the jobs of one state (or all) in the order ListQuery documents; the
// cursor is the sort key of the page's last job, so it survives changes to the jobs before it.
func (t *pgTx) List(q queue.ListQuery) (queue.Page, error) {
	limit := q.Limit
	if limit <= 0 {
		limit = queue.DefaultPageSize
	}
	var (
		o    op
		kind byte
		n    int
	)
	// Every listing reads limit+1 jobs: the one more tells whether a next page exists.
	var jobs []*queue.Job
	var keys [][][]byte
	add := func(j *queue.Job) error { jobs = append(jobs, j); return nil }
	switch q.State {
	case "":
		kind, n = cursorAll, 1
		after := []byte{}
		if q.After != "" {
			p, err := decodeCursor(q.After, kind, n)
			if err != nil {
				return queue.Page{}, err
			}
			after = p[0]
		}
		o = op{sql: sqlJobsAfter, args: []any{after, limit + 1}, rows: scanJobs(false, func(j *queue.Job) error {
			keys = append(keys, [][]byte{[]byte(j.ID)})
			return add(j)
		})}
	case queue.StatePending:
		kind, n = cursorPending, 3
		dest, due, id := []byte{}, int64(zeroNanos), []byte{}
		if q.After != "" {
			p, err := decodeCursor(q.After, kind, n)
			if err != nil {
				return queue.Page{}, err
			}
			var ok bool
			if due, ok = bytesInt64(p[1]); !ok {
				return queue.Page{}, fmt.Errorf("listing jobs: %w: cursor %q", queue.ErrBadCursor, q.After)
			}
			dest, id = p[0], p[2]
		}
		var kd []byte
		var kdue int64
		o = op{sql: sqlPendingAfter, args: []any{dest, due, id, limit + 1}}
		o.rows = scanJobs(false, func(j *queue.Job) error {
			keys = append(keys, [][]byte{bytes.Clone(kd), int64Bytes(kdue), []byte(j.ID)})
			return add(j)
		}, &kd, &kdue)
	case queue.StateWaiting:
		kind, n = cursorWaiting, 2
		chain, seq := []byte{}, int64(math.MinInt64)
		if q.After != "" {
			p, err := decodeCursor(q.After, kind, n)
			if err != nil {
				return queue.Page{}, err
			}
			var ok bool
			if seq, ok = bytesInt64(p[1]); !ok {
				return queue.Page{}, fmt.Errorf("listing jobs: %w: cursor %q", queue.ErrBadCursor, q.After)
			}
			chain = p[0]
		}
		var kc []byte
		var kseq int64
		o = op{sql: sqlWaitingAfter, args: []any{chain, seq, limit + 1}}
		o.rows = scanJobs(false, func(j *queue.Job) error {
			keys = append(keys, [][]byte{bytes.Clone(kc), int64Bytes(kseq)})
			return add(j)
		}, &kc, &kseq)
	case queue.StateDelivered, queue.StateDead:
		kind, n = cursorFin, 3
		fin, id := int64(zeroNanos), []byte{}
		if q.After != "" {
			p, err := decodeCursor(q.After, kind, n)
			if err != nil {
				return queue.Page{}, err
			}
			var ok bool
			if fin, ok = bytesInt64(p[0]); !ok || string(p[2]) != q.State {
				return queue.Page{}, fmt.Errorf("listing jobs: %w: cursor %q", queue.ErrBadCursor, q.After)
			}
			id = p[1]
		}
		sql, _ := finishedSQL(q.State, false)
		o = op{sql: sql, args: []any{nanos(q.Since), fin, id, limit + 1}, rows: scanJobs(false, func(j *queue.Job) error {
			keys = append(keys, [][]byte{int64Bytes(nanos(j.FinishedAt)), []byte(j.ID), []byte(q.State)})
			return add(j)
		})}
	default:
		return queue.Page{}, fmt.Errorf("listing jobs: unknown state %q", q.State)
	}
	if err := t.send(o); err != nil {
		return queue.Page{}, fmt.Errorf("listing jobs: %w", err)
	}
	page := queue.Page{Jobs: jobs}
	if len(jobs) > limit {
		page.Jobs = jobs[:limit]
		page.Next = encodeCursor(kind, keys[limit-1]...)
	}
	return page, nil
}
