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
	// Claims, for each destination $1[i], up to $2[i] of its pending jobs due by $5, but those
	// in $6, in due order (rows another transaction holds are passed over, not waited for): they
	// get lease $3[i] and are due at the claim's end, $4 and its offset $7. One statement for
	// every destination: a statement costs the server more than the few rows it claims. It
	// returns the jobs with their due time before the claim and the claim's ordinal (from 1).
	sqlClaim = `UPDATE jobs j SET due_at = $4, due_off = $7, lease = s.token
FROM (SELECT x.id, x.due_at, c.token, c.i FROM unnest($1::bytea[], $2::integer[], $3::text[]) WITH ORDINALITY AS c (dest, lim, token, i)
	CROSS JOIN LATERAL (SELECT id, due_at FROM jobs WHERE state = 'pending' AND dest = c.dest AND due_at <= $5 AND NOT (id = ANY($6))
		ORDER BY due_at, id LIMIT c.lim FOR NO KEY UPDATE SKIP LOCKED) x) s
WHERE j.id = s.id
RETURNING j.id, ` + jCols + `, j.body, s.due_at, s.i`
	// The heads of the jobs $1, locked in ID order.
	sqlPrefetch = `SELECT j.id, ` + jCols + ` FROM jobs j WHERE j.id = ANY($1) ORDER BY j.id FOR NO KEY UPDATE`
)

var (
	_ queue.Claimer       = (*pgTx)(nil)
	_ queue.Prefetcher    = (*pgTx)(nil)
	_ queue.BatchEnqueuer = (*pgTx)(nil)
)

// ClaimDue claims the due jobs of every claim with one UPDATE that picks each destination's
// jobs with FOR NO KEY UPDATE SKIP LOCKED (jobs that another instance is claiming or settling
// at this moment are passed over, not waited for) and writes their lease and due time.
func (t *pgTx) ClaimDue(claims []queue.Claim, now time.Time, skip map[string]bool, until time.Time) ([][]*queue.Job, error) {
	if err := t.writable(); err != nil {
		return nil, err
	}
	skipIDs := make([][]byte, 0, len(skip))
	for id := range skip {
		skipIDs = append(skipIDs, []byte(id))
	}
	out := make([][]*queue.Job, len(claims))
	var dests [][]byte
	var limits []int32
	var tokens []string
	var index []int // claims[index[k]] is the k-th claim sent
	for i, c := range claims {
		if c.Limit <= 0 {
			continue
		}
		dests, limits, tokens = append(dests, []byte(c.Dest)), append(limits, int32(c.Limit)), append(tokens, c.Token)
		index = append(index, i)
	}
	if len(index) == 0 {
		return out, nil
	}
	type claimed struct {
		job *queue.Job
		due int64 // before the claim
	}
	got := make([][]claimed, len(index))
	args := []any{dests, limits, tokens, nanos(until), nanos(now), skipIDs, offset(until)}
	err := t.send(op{sql: sqlClaim, args: args, rows: func(rows pgx.Rows) error {
		for rows.Next() {
			var r jobRow
			var due, k int64
			if err := rows.Scan(append(r.targets(true, true), &due, &k)...); err != nil {
				return err
			}
			if k < 1 || int(k) > len(got) {
				return fmt.Errorf("the claim's ordinal %d is out of range", k)
			}
			j, err := r.job(true)
			if err != nil {
				return err
			}
			t.seen[j.ID] = &rowInfo{state: r.state, chain: string(r.chain), due: r.dueAt}
			got[k-1] = append(got[k-1], claimed{j, due})
		}
		return rows.Err()
	}})
	if err != nil {
		return nil, fmt.Errorf("claiming due jobs: %w", err)
	}
	for k, g := range got {
		slices.SortFunc(g, func(a, b claimed) int {
			return cmp.Or(cmp.Compare(a.due, b.due), strings.Compare(a.job.ID, b.job.ID))
		})
		for _, c := range g {
			out[index[k]] = append(out[index[k]], c.job)
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
