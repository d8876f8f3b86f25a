package pgstore

import (
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/faxhook/caddy-faxhook/queue"
)

const (
	// Up to $4 pending jobs of destination $1 due by $2, but those in $3, in due order, locked;
	// rows another transaction holds are passed over, not waited for.
	sqlClaim = `SELECT j.id, ` + jCols + `, j.body FROM jobs j
WHERE j.state = 'pending' AND j.dest = $1 AND j.due_at <= $2 AND NOT (j.id = ANY($3))
ORDER BY j.due_at, j.id LIMIT $4 FOR NO KEY UPDATE SKIP LOCKED`
	// The heads of the jobs $1, locked in ID order.
	sqlPrefetch = `SELECT j.id, ` + jCols + ` FROM jobs j WHERE j.id = ANY($1) ORDER BY j.id FOR NO KEY UPDATE`
)

var (
	_ queue.Claimer       = (*pgTx)(nil)
	_ queue.Prefetcher    = (*pgTx)(nil)
	_ queue.BatchEnqueuer = (*pgTx)(nil)
)

// ClaimDue claims the due jobs of every claim in one round trip, one statement per
// destination (FOR NO KEY UPDATE SKIP LOCKED: jobs that another instance is claiming or
// settling at this moment are passed over, not waited for). The claimed heads go out with the
// transaction's next round trip.
func (t *pgTx) ClaimDue(claims []queue.Claim, now time.Time, skip map[string]bool, until time.Time) ([][]*queue.Job, error) {
	if err := t.writable(); err != nil {
		return nil, err
	}
	skipIDs := make([][]byte, 0, len(skip))
	for id := range skip {
		skipIDs = append(skipIDs, []byte(id))
	}
	out := make([][]*queue.Job, len(claims))
	ops := make([]op, 0, len(claims))
	for i, c := range claims {
		if c.Limit <= 0 {
			continue
		}
		ops = append(ops, op{sql: sqlClaim, args: []any{[]byte(c.Dest), nanos(now), skipIDs, c.Limit}, rows: func(rows pgx.Rows) error {
			for rows.Next() {
				j, err := t.scanLocked(rows, true)
				if err != nil {
					return err
				}
				out[i] = append(out[i], j)
			}
			return rows.Err()
		}})
	}
	if len(ops) == 0 {
		return out, nil
	}
	if err := t.send(ops...); err != nil {
		return nil, fmt.Errorf("claiming due jobs: %w", err)
	}
	for i, jobs := range out {
		for _, j := range jobs {
			j.Lease, j.DueAt = claims[i].Token, until
			if err := t.put(j, false); err != nil {
				return nil, fmt.Errorf("claiming job %s: %w", j.ID, err)
			}
		}
	}
	return out, nil
}

// Prefetch queues the reading (and locking) of the heads of ids for the transaction's next
// round trip, which the dispatcher's round spends on its next read anyway; the JobHead calls
// for them that follow in this transaction read nothing more. The dispatcher prefetches the
// jobs whose attempt outcomes a round stores.
func (t *pgTx) Prefetch(ids []string) error {
	if t.kind == kindView || len(ids) < 2 {
		return nil
	}
	want := make([][]byte, 0, len(ids))
	for _, id := range ids {
		if _, ok := t.seen[id]; !ok {
			want = append(want, []byte(id))
		}
	}
	if len(want) == 0 {
		return nil
	}
	if t.heads == nil {
		t.heads = map[string]*queue.Job{}
	}
	for _, id := range want {
		t.heads[string(id)] = nil // read with the next round trip
	}
	t.prefetching = true
	t.queue(op{sql: sqlPrefetch, args: []any{want}, rows: func(rows pgx.Rows) error {
		t.prefetching = false
		for rows.Next() {
			j, err := t.scanLocked(rows, false)
			if err != nil {
				return err
			}
			t.heads[j.ID] = j
		}
		return rows.Err()
	}}, true)
	return nil
}

// scanLocked reads a job row (id, jCols, then the body if withBody) that the transaction has
// locked, and records it in seen.
func (t *pgTx) scanLocked(rows pgx.Rows, withBody bool) (*queue.Job, error) {
	var (
		id, chain, head, body []byte
		state                 string
		dueAt, finAt          int64
		dueOff, finOff        int32
	)
	dest := []any{&id, &state, &dueAt, &dueOff, &finAt, &finOff, &chain, &head}
	if withBody {
		dest = append(dest, &body)
	}
	if err := rows.Scan(dest...); err != nil {
		return nil, err
	}
	j, err := toJob(string(id), state, dueAt, dueOff, finAt, finOff, chain, head, body, withBody)
	if err != nil {
		return nil, err
	}
	t.seen[j.ID] = &rowInfo{state: state, chain: string(chain), due: dueAt}
	return j, nil
}
