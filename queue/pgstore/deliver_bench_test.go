//go:build unix

package pgstore_test

import (
	"context"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/faxhook/caddy-faxhook/queue"
	"github.com/faxhook/caddy-faxhook/queue/pgstore"
)

// okSender accepts every webhook at once: the benchmark measures the store, not HTTP.
type okSender struct{}

func (okSender) Send(context.Context, *queue.Job) queue.Result { return queue.Result{Status: 200} }

// BenchmarkDeliveries runs one dispatcher (16 workers, 4 per host) over the store until 4,000
// jobs to 4 destinations are delivered, with a sender that accepts every webhook at once, and
// reports deliveries per second. When the test server runs pg_stat_statements
// (PGTEST_SETTINGS=shared_preload_libraries=pg_stat_statements), it also reports the server's
// execution time of the claim (claim-µs/call, claim-µs/job), of storing the outcomes
// (outcome-µs/job) and of all statements (server-µs/job), and the jobs per claim:
//
//	PGTEST_SETTINGS=shared_preload_libraries=pg_stat_statements \
//		go test ./queue/pgstore -run '^$' -bench Deliveries -benchtime 3x
func BenchmarkDeliveries(b *testing.B) {
	const n, dests = 4000, 4
	ctx := context.Background()
	var wall time.Duration
	var claimCalls, claimRows, claimMs, outcomeRows, outcomeMs, allMs float64
	stats := true
	b.StopTimer()
	for i := range b.N { // not b.Loop: go1.26.8 fails to compile this body in one (internal compiler error)
		st := open(b, pgstore.Options{})
		if stats {
			if _, err := st.Pool().Exec(ctx, "CREATE EXTENSION IF NOT EXISTS pg_stat_statements"); err != nil {
				stats = false
				b.Logf("no pg_stat_statements (%v): deliveries/s only", err)
			}
		}
		now := time.Now()
		for start := 0; start < n; start += 64 {
			err := st.Update(func(tx queue.Tx) error {
				var jobs []*queue.Job
				for k := start; k < min(start+64, n); k++ {
					j := benchJob(fmt.Sprint(i, "-", k), now)
					j.URL = fmt.Sprintf("https://hooks%d.example.com/fax", k%dests)
					j.Chain = fmt.Sprint(k, "\x00", j.URL)
					jobs = append(jobs, j)
				}
				_, err := queue.EnqueueAll(tx, jobs)
				return err
			})
			if err != nil {
				b.Fatal(err)
			}
		}
		if _, err := st.Pool().Exec(ctx, "VACUUM ANALYZE jobs"); err != nil {
			b.Fatal(err)
		}
		if stats {
			if _, err := st.Pool().Exec(ctx, "SELECT pg_stat_statements_reset()"); err != nil {
				b.Fatal(err)
			}
		}
		var left atomic.Int64
		left.Store(n)
		done := make(chan struct{})
		d := queue.NewDispatcher(st, okSender{}, queue.Options{Workers: 16, PerHost: 4,
			OnOutcome: func(*queue.Job, queue.Result) {
				if left.Add(-1) == 0 {
					close(done)
				}
			}})
		t0 := time.Now()
		if err := d.Start(); err != nil {
			b.Fatal(err)
		}
		select {
		case <-done:
		case <-time.After(5 * time.Minute):
			b.Fatalf("%d of %d jobs left after 5 minutes", left.Load(), n)
		}
		wall += time.Since(t0)
		d.Stop()
		if !stats {
			continue
		}
		rows, err := st.Pool().Query(ctx, `SELECT query, calls, rows, total_exec_time FROM pg_stat_statements
WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())`)
		if err != nil {
			b.Fatal(err)
		}
		for rows.Next() {
			var q string
			var calls, nrows int64
			var ms float64
			if err := rows.Scan(&q, &calls, &nrows, &ms); err != nil {
				b.Fatal(err)
			}
			allMs += ms
			switch {
			case strings.Contains(q, "SKIP LOCKED"):
				claimCalls, claimRows, claimMs = claimCalls+float64(calls), claimRows+float64(nrows), claimMs+ms
			case strings.HasPrefix(q, "UPDATE jobs SET state = u.state"):
				outcomeRows, outcomeMs = outcomeRows+float64(nrows), outcomeMs+ms
			}
		}
		if err := rows.Err(); err != nil {
			b.Fatal(err)
		}
	}
	total := float64(b.N * n)
	b.ReportMetric(total/wall.Seconds(), "deliveries/s")
	b.ReportMetric(0, "ns/op")
	if stats && claimCalls > 0 && claimRows > 0 && outcomeRows > 0 {
		b.ReportMetric(1000*claimMs/claimCalls, "claim-µs/call")
		b.ReportMetric(1000*claimMs/claimRows, "claim-µs/job")
		b.ReportMetric(claimRows/claimCalls, "jobs/claim")
		b.ReportMetric(1000*outcomeMs/outcomeRows, "outcome-µs/job")
		b.ReportMetric(1000*allMs/total, "server-µs/job")
	}
}
