package pgstore

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/faxhook/caddy-faxhook/queue"
)

const (
	// Claims up to $4 pending jobs of destination $1 due by $2, but those in $3, in due order
	// (rows another transaction holds are passed over, not waited for): they get lease $7 and
	// are due at the claim's end, $5 and $6. It returns them with their due time before the
	// claim, the order of the claim.
	sqlClaim = `UPDATE jobs j SET due_at = $5, due_off = $6, lease = $7
FROM (SELECT id, due_at FROM jobs WHERE state = 'pending' AND dest = $1 AND due_at <= $2 AND NOT (id = ANY($3))
	ORDER BY due_at, id LIMIT $4 FOR NO KEY UPDATE SKIP LOCKED) c
WHERE j.id = c.id
RETURNING j.id, ` + jCols + `, j.body, c.due_at`
	// The heads of the jobs $1, locked in ID order.
	sqlPrefetch = `SELECT j.id, ` + jCols + ` FROM jobs j WHERE j.id = ANY($1) ORDER BY j.id FOR NO KEY UPDATE`
)

var (
	_ queue.Claimer       = (*pgTx)(nil)
	_ queue.Prefetcher    = (*pgTx)(nil)
	_ queue.BatchEnqueuer = (*pgTx)(nil)
)

// ClaimDue claims the due jobs of every claim in one round trip, one UPDATE per destination
// that picks its jobs with FOR NO KEY UPDATE SKIP LOCKED (jobs that another instance is
// claiming or settling at this moment are passed over, not waited for) and writes their lease
// and due time in the same statement.
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
		args := []any{[]byte(c.Dest), nanos(now), skipIDs, c.Limit, nanos(until), offset(until), c.Token}
		ops = append(ops, op{sql: sqlClaim, args: args, rows: func(rows pgx.Rows) error {
			type claimed struct {
				job *queue.Job
				due int64 // before the claim
			}
			var got []claimed
			for rows.Next() {
				var r jobRow
				var due int64
				if err := rows.Scan(append(r.targets(true, true), &due)...); err != nil {
					return err
				}
				j, err := r.job(true)
				if err != nil {
					return err
				}
				t.seen[j.ID] = &rowInfo{state: r.state, chain: string(r.chain), due: r.dueAt}
				got = append(got, claimed{j, due})
			}
			slices.SortFunc(got, func(a, b claimed) int {
				return cmp.Or(cmp.Compare(a.due, b.due), strings.Compare(a.job.ID, b.job.ID))
			})
			for _, g := range got {
				out[i] = append(out[i], g.job)
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
	var r jobRow
	if err := rows.Scan(r.targets(true, withBody)...); err != nil {
		return nil, err
	}
	j, err := r.job(withBody)
	if err != nil {
		return nil, err
	}
	t.seen[j.ID] = &rowInfo{state: r.state, chain: string(r.chain), due: r.dueAt}
	return j, nil
}
