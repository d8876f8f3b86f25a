//go:build unix

package pgstore_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/faxhook/caddy-faxhook/queue"
	"github.com/faxhook/caddy-faxhook/queue/httpsend"
	"github.com/faxhook/caddy-faxhook/queue/pgstore"
	"github.com/faxhook/caddy-faxhook/queue/pgstore/pgtest"
)

// okSender accepts every webhook at once.
type okSender struct{}

func (okSender) Send(context.Context, *queue.Job) queue.Result { return queue.Result{Status: 200} }

// deliveryStats adds up what BenchmarkDeliveries measures over its iterations.
type deliveryStats struct {
	jobs                           int
	wall                           time.Duration
	claimCalls, claimRows, claimMs float64
	outcomeRows, outcomeMs, allMs  float64
	updates, hotUpdates            int64
	statements                     bool // pg_stat_statements answered
	// cpu is the machine's busy CPU time during the deliveries (all processes: this one and
	// the server's), -1 when /proc/stat cannot tell.
	cpu time.Duration
}

// busyCPU returns the CPU time all processors of the machine spent busy since boot, as
// /proc/stat counts it (in ticks of 10 ms; steal excluded), or -1 where there is no /proc/stat.
func busyCPU() time.Duration {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return -1
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	if len(f) < 9 || f[0] != "cpu" {
		return -1
	}
	var busy int64
	for i, v := range f[1:9] {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return -1
		}
		if i != 3 && i != 4 && i != 7 { // idle, iowait, and steal (time the VM did not get)
			busy += n
		}
	}
	return time.Duration(busy) * 10 * time.Millisecond
}

// BenchmarkDeliveries runs one dispatcher (16 workers, 4 per host) over the store until its
// jobs to 4 destinations are delivered, and reports deliveries per second and the share of the
// jobs table's row updates that were HOT (written in place, without new index entries). Two
// senders: one that accepts every webhook at once (4,000 jobs), and signed HTTP posts to 4
// loopback receivers (20,000 jobs; what qbench's case (e) runs, with rounds of a similar size).
// When the test server runs pg_stat_statements
// (PGTEST_SETTINGS=shared_preload_libraries=pg_stat_statements), it also reports the server's
// execution time of the claim (claim-µs/call, claim-µs/job), of storing the outcomes
// (outcome-µs/job) and of all statements (server-µs/job), and the jobs per claim; -v lists
// every statement's share:
//
//	PGTEST_SETTINGS=shared_preload_libraries=pg_stat_statements \
//		go test ./queue/pgstore -run '^$' -bench '^BenchmarkDeliveries$' -benchtime 2x
func BenchmarkDeliveries(b *testing.B) {
	b.Run("sender=instant", func(b *testing.B) { benchDeliveries(b, 4000, okSender{}) })
	b.Run("sender=http", func(b *testing.B) {
		urls, sender := httpDeliveries(b)
		benchDeliveries(b, 20000, sender, urls...)
	})
}

// httpDeliveries starts 4 loopback receivers that accept every webhook and returns their URLs
// and a signing HTTP sender, all stopped when b ends.
func httpDeliveries(b *testing.B) ([]string, queue.Sender) {
	urls := make([]string, 4)
	for i := range urls {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			io.Copy(io.Discard, r.Body)
			w.WriteHeader(http.StatusOK)
		}))
		b.Cleanup(srv.Close)
		urls[i] = srv.URL + "/webhooks/fax"
	}
	sender := httpsend.New(httpsend.Options{Token: "bench-token"})
	b.Cleanup(sender.CloseIdleConnections)
	return urls, sender
}

func benchDeliveries(b *testing.B, n int, sender queue.Sender, urls ...string) {
	if len(urls) == 0 {
		urls = []string{"https://hooks0.example.com/fax", "https://hooks1.example.com/fax",
			"https://hooks2.example.com/fax", "https://hooks3.example.com/fax"}
	}
	var s deliveryStats
	s.statements = true
	b.StopTimer()
	for i := range b.N { // not b.Loop: go1.26.8 fails to compile this body in one (internal compiler error)
		deliverOnce(b, &s, fmt.Sprint(i), n, sender, urls)
	}
	total := float64(s.jobs)
	b.ReportMetric(total/s.wall.Seconds(), "deliveries/s")
	if s.cpu > 0 {
		b.ReportMetric(float64(s.cpu.Microseconds())/total, "cpu-µs/delivery")
	}
	b.ReportMetric(0, "ns/op")
	if s.updates > 0 {
		b.ReportMetric(100*float64(s.hotUpdates)/float64(s.updates), "%hot-updates")
	}
	if s.statements && s.claimCalls > 0 && s.claimRows > 0 && s.outcomeRows > 0 {
		b.ReportMetric(1000*s.claimMs/s.claimCalls, "claim-µs/call")
		b.ReportMetric(1000*s.claimMs/s.claimRows, "claim-µs/job")
		b.ReportMetric(s.claimRows/s.claimCalls, "jobs/claim")
		b.ReportMetric(1000*s.outcomeMs/s.outcomeRows, "outcome-µs/job")
		b.ReportMetric(1000*s.allMs/total, "server-µs/job")
	}
}

// deliverOnce enqueues n jobs (64 per transaction, as qbench does) on a new database, delivers
// them with one dispatcher, timed, and adds the server's figures to s.
func deliverOnce(b *testing.B, s *deliveryStats, run string, n int, sender queue.Sender, urls []string) {
	ctx := context.Background()
	dsn := pgtest.Start(b)
	st, err := pgstore.Open(ctx, dsn, pgstore.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	if s.statements {
		// The extension can be created without the library loaded, but then not read.
		_, err := st.Pool().Exec(ctx, "CREATE EXTENSION IF NOT EXISTS pg_stat_statements SCHEMA public")
		if err == nil {
			_, err = st.Pool().Exec(ctx, "SELECT public.pg_stat_statements_reset()")
		}
		if err != nil {
			s.statements = false
			b.Logf("no pg_stat_statements (%v): deliveries/s only", err)
		}
	}
	now := time.Now()
	for start := 0; start < n; start += 64 {
		var jobs []*queue.Job
		for k := start; k < min(start+64, n); k++ {
			j := benchJob(fmt.Sprint(run, "-", k), now)
			j.URL = urls[k%len(urls)]
			j.Chain = fmt.Sprint(k, "\x00", j.URL)
			jobs = append(jobs, j)
		}
		err := st.Update(func(tx queue.Tx) error { _, err := queue.EnqueueAll(tx, jobs); return err })
		if err != nil {
			b.Fatal(err)
		}
	}
	if s.statements {
		if _, err := st.Pool().Exec(ctx, "SELECT public.pg_stat_statements_reset()"); err != nil {
			b.Fatal(err)
		}
	}
	upd0, hot0, err := tableUpdates(ctx, st.Pool())
	if err != nil {
		b.Fatal(err)
	}
	var left atomic.Int64
	left.Store(int64(n))
	done := make(chan struct{})
	d := queue.NewDispatcher(st, sender, queue.Options{Workers: 16, PerHost: 4,
		OnOutcome: func(_ *queue.Job, res queue.Result) {
			if res.Err != nil {
				b.Errorf("a delivery failed: %v", res.Err)
			}
			if left.Add(-1) == 0 {
				close(done)
			}
		}})
	b.StartTimer()
	t0, busy0 := time.Now(), busyCPU()
	if err := d.Start(); err != nil {
		b.Fatal(err)
	}
	select {
	case <-done:
	case <-time.After(5 * time.Minute):
		b.Fatalf("%d of %d jobs left after 5 minutes", left.Load(), n)
	}
	s.wall += time.Since(t0)
	if busy0 >= 0 && s.cpu >= 0 {
		s.cpu += busyCPU() - busy0
	} else {
		s.cpu = -1
	}
	b.StopTimer()
	s.jobs += n
	d.Stop()
	// The server's sessions send their statistics when they end, or once a second at most.
	st.Close()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close(ctx)
	upd, hot, err := tableUpdates(ctx, conn)
	if err != nil {
		b.Fatal(err)
	}
	s.updates, s.hotUpdates = s.updates+upd-upd0, s.hotUpdates+hot-hot0
	if !s.statements {
		return
	}
	rows, err := conn.Query(ctx, `SELECT query, calls, rows, total_exec_time FROM public.pg_stat_statements
WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())`)
	if err != nil {
		b.Fatal(err)
	}
	defer rows.Close()
	for rows.Next() {
		var q string
		var calls, nrows int64
		var ms float64
		if err := rows.Scan(&q, &calls, &nrows, &ms); err != nil {
			b.Fatal(err)
		}
		s.allMs += ms
		if testing.Verbose() && ms > 1 {
			b.Logf("%6.1f µs/job %7d calls %7.1f µs/call %7d rows  %.90q", 1000*ms/float64(n), calls, 1000*ms/float64(calls), nrows, q)
		}
		switch {
		case strings.Contains(q, "SKIP LOCKED"):
			s.claimCalls, s.claimRows, s.claimMs = s.claimCalls+float64(calls), s.claimRows+float64(nrows), s.claimMs+ms
		case strings.HasPrefix(q, "UPDATE jobs SET state = u.state"):
			s.outcomeRows, s.outcomeMs = s.outcomeRows+float64(nrows), s.outcomeMs+ms
		}
	}
	if err := rows.Err(); err != nil {
		b.Fatal(err)
	}
}

// tableUpdates returns the row updates of the jobs table so far, and how many of them were HOT.
func tableUpdates(ctx context.Context, q interface {
	QueryRow(context.Context, string, ...any) pgx.Row
}) (updates, hot int64, err error) {
	err = q.QueryRow(ctx, `SELECT coalesce(sum(n_tup_upd), 0)::bigint, coalesce(sum(n_tup_hot_upd), 0)::bigint
FROM pg_stat_user_tables WHERE relname = 'jobs'`).Scan(&updates, &hot)
	return updates, hot, err
}
