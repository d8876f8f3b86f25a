package pgstore

import (
	"github.com/faxhook/caddy-faxhook/queue"
)

// RowsForBench returns the column values the store inserts for jobs (id, dest, due_at,
// due_off, fin_at, fin_off, head, body, chain, seq), for the benchmark's raw inserts.
func RowsForBench(jobs []*queue.Job) [][]any {
	rows := make([][]any, len(jobs))
	for i, j := range jobs {
		rows[i] = []any{[]byte(j.ID + "-raw"), []byte(queue.Destination(j.URL)), nanos(j.DueAt), offset(j.DueAt),
			int64(zeroNanos), int32(0), encodeHead(j), queue.EncodePayload(j), []byte(j.Chain), int64(i)}
	}
	return rows
}

// Setting returns the value of a server setting as the transaction tx sees it.
func Setting(tx queue.Tx, name string) (string, error) {
	var v string
	found := false
	err := tx.(*pgTx).send(op{sql: "SELECT current_setting($1)", args: []any{name}, rows: one(&found, &v)})
	return v, err
}

// LeaderPID returns the server pid of l's connection, 0 while it has none.
func LeaderPID(l *Leadership) uint32 { return l.pid.Load() }
