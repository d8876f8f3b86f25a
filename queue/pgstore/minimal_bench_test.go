//go:build unix

package pgstore_test

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/faxhook/caddy-faxhook/queue"
	"github.com/faxhook/caddy-faxhook/queue/pgstore/pgtest"
)

// minimalSchema is the least a PostgreSQL work queue can be: a job's state, due time and claim
// token in columns, its body in a bytea, and the index of due pending jobs that a claim reads.
const minimalSchema = `
CREATE TABLE mq (id bigint PRIMARY KEY, state smallint NOT NULL, due_at bigint NOT NULL,
	lease bigint NOT NULL DEFAULT 0, body bytea NOT NULL);
CREATE INDEX mq_due ON mq (due_at, id) WHERE state = 0;
`

// BenchmarkPostgresDeliveries puts the store's dispatcher (the same as
// BenchmarkDeliveries/sender=http) beside the least a PostgreSQL queue must do to deliver the
// same jobs with the same signed HTTP sender, 16 workers and 4 loopback receivers, on the same
// server: claim up to 96 due jobs (as many as the dispatcher leases ahead) with one UPDATE …
// FOR UPDATE SKIP LOCKED … RETURNING, each claim its own commit; send each; and mark the sent
// ones delivered with one UPDATE per batch of outcomes. No per-fax order, attempt log, counts
// or retries. The ratio faxhook/minimal says what the store's features cost over any
// PostgreSQL queue on this machine; each iteration runs both, in alternating order, on fresh
// databases, with fsync on as in production:
//
//	PGTEST_FSYNC=on go test ./queue/pgstore -run '^$' -bench PostgresDeliveries -benchtime 4x
func BenchmarkPostgresDeliveries(b *testing.B) {
	const n = 20000
	urls, sender := httpDeliveries(b)
	var faxhook, minimal time.Duration
	b.StopTimer()
	for i := range b.N {
		if i%2 == 0 {
			minimal += minimalOnce(b, n, sender, urls)
			faxhook += faxhookOnce(b, n, sender, urls)
		} else {
			faxhook += faxhookOnce(b, n, sender, urls)
			minimal += minimalOnce(b, n, sender, urls)
		}
	}
	jobs := float64(n * b.N)
	b.ReportMetric(0, "ns/op")
	b.ReportMetric(jobs/faxhook.Seconds(), "faxhook-deliveries/s")
	b.ReportMetric(jobs/minimal.Seconds(), "minimal-deliveries/s")
	b.ReportMetric(minimal.Seconds()/faxhook.Seconds(), "faxhook/minimal")
}

// faxhookOnce delivers n jobs through the store's dispatcher and returns how long it took.
func faxhookOnce(b *testing.B, n int, sender queue.Sender, urls []string) time.Duration {
	var s deliveryStats
	deliverOnce(b, &s, "f", n, sender, urls)
	return s.wall
}

// minimalOnce delivers n jobs through the minimal queue and returns how long it took.
func minimalOnce(b *testing.B, n int, sender queue.Sender, urls []string) time.Duration {
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, pgtest.Start(b))
	if err != nil {
		b.Fatal(err)
	}
	defer pool.Close()
	if _, err := pool.Exec(ctx, minimalSchema); err != nil {
		b.Fatal(err)
	}
	now := time.Now()
	jobs := make([]*queue.Job, n)
	rows := make([][]any, n)
	for k := range n {
		j := benchJob(fmt.Sprint("m-", k), now)
		j.URL = urls[k%len(urls)]
		jobs[k] = j
		body := queue.EncodePayload(j)
		rows[k] = []any{int64(k), int16(0), now.UnixNano(), body}
	}
	for start := 0; start < n; start += 64 {
		_, err := pool.CopyFrom(ctx, pgx.Identifier{"mq"}, []string{"id", "state", "due_at", "body"},
			pgx.CopyFromRows(rows[start:min(start+64, n)]))
		if err != nil {
			b.Fatal(err)
		}
	}
	if _, err := pool.Exec(ctx, "VACUUM ANALYZE mq"); err != nil {
		b.Fatal(err)
	}
	// As the dispatcher over a Shared store: 16 workers, and up to 16 × 16 jobs claimed and
	// unfinished (queue's sharedAhead).
	const workers, ahead = 16, 16 * 16
	work := make(chan int64, ahead)
	results := make(chan int64, ahead)
	var inFlight atomic.Int64 // claimed and not yet marked delivered
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for id := range work {
				if res := sender.Send(ctx, jobs[id]); res.Err != nil || res.Status != http.StatusOK {
					b.Errorf("delivery failed: %d %v", res.Status, res.Err)
				}
				results <- id
			}
		}()
	}
	freed := make(chan struct{}, 1)
	done := make(chan struct{})
	go func() { // the writer: marks every outcome that came in since its last commit
		defer close(done)
		left := n
		for left > 0 {
			ids := []int64{<-results}
		more:
			for {
				select {
				case id := <-results:
					ids = append(ids, id)
				default:
					break more
				}
			}
			if _, err := pool.Exec(ctx, "UPDATE mq SET state = 2 WHERE id = ANY($1) AND lease = 1", ids); err != nil {
				b.Error(err)
				return
			}
			left -= len(ids)
			inFlight.Add(-int64(len(ids)))
			select {
			case freed <- struct{}{}:
			default:
			}
		}
	}()
	b.StartTimer()
	t0 := time.Now()
	claimed := 0
	for claimed < n {
		want := ahead - int(inFlight.Load())
		if want <= 0 {
			<-freed
			continue
		}
		r, err := pool.Query(ctx, `UPDATE mq SET state = 1, lease = 1 WHERE id IN (
	SELECT id FROM mq WHERE state = 0 AND due_at <= $1 ORDER BY due_at, id LIMIT $2 FOR UPDATE SKIP LOCKED)
RETURNING id, body`, time.Now().UnixNano(), want)
		if err != nil {
			b.Fatal(err)
		}
		var got []int64
		for r.Next() {
			var id int64
			var body []byte
			if err := r.Scan(&id, &body); err != nil {
				b.Fatal(err)
			}
			got = append(got, id)
		}
		if err := r.Err(); err != nil {
			b.Fatal(err)
		}
		inFlight.Add(int64(len(got)))
		claimed += len(got)
		for _, id := range got {
			work <- id
		}
	}
	<-done
	wall := time.Since(t0)
	b.StopTimer()
	close(work)
	wg.Wait()
	return wall
}
