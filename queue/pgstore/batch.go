package pgstore

import (
	"github.com/faxhook/caddy-faxhook/queue"
)

const (
	// Head changes of several jobs in one statement; hold as in putSet ($9 of sqlPutHead), but
	// for holdRejoin, which is never batched: its NOT EXISTS would not see the other rows of
	// the same statement.
	sqlPutHeads = `UPDATE jobs SET state = u.state, dest = u.dest, due_at = u.due_at, due_off = u.due_off,
	fin_at = u.fin_at, fin_off = u.fin_off, head = u.head, lease = u.lease,
	hold = CASE u.hold WHEN 0 THEN jobs.hold ELSE false END
FROM unnest($1::bytea[], $2::text[], $3::bytea[], $4::bigint[], $5::integer[], $6::bigint[], $7::integer[],
	$8::bytea[], $9::integer[], $10::text[]) AS u (id, state, dest, due_at, due_off, fin_at, fin_off, head, hold, lease)
WHERE jobs.id = u.id`

	// sqlPromote for several chains, each at most once: the first waiting job of each chain
	// becomes pending, due at that chain's due time, once no job of the chain holds pending.
	sqlPromoteAll = `WITH promoted AS (UPDATE jobs SET state = 'pending', due_at = p.due, due_off = p.off
FROM (SELECT w.id, c.due, c.off FROM unnest($1::bytea[], $2::bigint[], $3::integer[]) AS c (chain, due, off)
	CROSS JOIN LATERAL (SELECT id FROM jobs WHERE chain = c.chain AND hold AND state = 'waiting'
		AND NOT EXISTS (SELECT 1 FROM jobs WHERE chain = c.chain AND hold AND state <> 'waiting')
		ORDER BY seq LIMIT 1) w) p
WHERE jobs.id = p.id AND jobs.state = 'waiting'
RETURNING jobs.id, jobs.due_at), ` + promotedCount + `
SELECT id, due_at FROM promoted`
)

// putBatch collects head changes (PutJobHead) so that a transaction that stores many of them,
// as a dispatcher's round does with its attempt outcomes, sends one statement for all instead
// of one each: a statement costs the server about as much as the row it changes.
type putBatch struct {
	ids, dests, heads [][]byte
	states, leases    []string
	dues, fins        []int64
	dueOffs, finOffs  []int32
	holds             []int32
	locks             []int64 // chain locks to take before the changes
	pChains           [][]byte
	pDues             []int64
	pOffs             []int32
	index             map[string]int // position of a job in the batch
}

// add batches job's head change; promote asks for its chain's promotion after it.
func (b *putBatch) add(job *queue.Job, due int64, hold int, promote bool) {
	if i, ok := b.index[job.ID]; ok { // changed twice: the last change wins
		b.set(i, job, due, hold)
	} else {
		if b.index == nil {
			b.index = map[string]int{}
		}
		b.index[job.ID] = len(b.ids)
		b.ids = append(b.ids, []byte(job.ID))
		b.states, b.dests, b.heads, b.leases = append(b.states, ""), append(b.dests, nil), append(b.heads, nil), append(b.leases, "")
		b.dues, b.fins, b.dueOffs, b.finOffs, b.holds = append(b.dues, 0), append(b.fins, 0), append(b.dueOffs, 0), append(b.finOffs, 0), append(b.holds, 0)
		b.set(len(b.ids)-1, job, due, hold)
	}
	if promote {
		b.pChains = append(b.pChains, []byte(job.Chain))
		b.pDues = append(b.pDues, due)
		b.pOffs = append(b.pOffs, offset(job.DueAt))
	}
}

func (b *putBatch) set(i int, job *queue.Job, due int64, hold int) {
	b.states[i], b.dests[i], b.heads[i], b.leases[i] = job.State, []byte(queue.Destination(job.URL)), encodeHead(job), job.Lease
	b.dues[i], b.dueOffs[i] = due, offset(job.DueAt)
	b.fins[i], b.finOffs[i] = nanos(job.FinishedAt), offset(job.FinishedAt)
	if hold != holdKeep { // a job that left its chain's line does not rejoin by a later change
		b.holds[i] = int32(hold)
	}
}

// promotes reports whether the batch promotes chain already: a second promotion of one chain
// must see the first, so it is not batched.
func (b *putBatch) promotes(chain string) bool {
	for _, c := range b.pChains {
		if string(c) == chain {
			return true
		}
	}
	return false
}

// flushBatch queues the batched head changes: the chain locks they need, one statement for the
// changes, one for the promotions.
func (t *pgTx) flushBatch() {
	b := t.batch
	if len(b.ids) == 0 {
		return
	}
	t.batch = putBatch{}
	t.lockAll(b.locks)
	t.q = append(t.q, op{sql: sqlPutHeads, args: []any{b.ids, b.states, b.dests, b.dues, b.dueOffs, b.fins, b.finOffs, b.heads, b.holds, b.leases}})
	if len(b.pChains) > 0 {
		t.q = append(t.q, op{sql: sqlPromoteAll, args: []any{b.pChains, b.pDues, b.pOffs, t.slot}, rows: t.promoted()})
	}
}
