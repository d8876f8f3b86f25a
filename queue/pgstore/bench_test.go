//go:build unix

package pgstore_test

import (
	"context"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/faxhook/caddy-faxhook/queue"
	"github.com/faxhook/caddy-faxhook/queue/pgstore"
)

// benchJob is a job the size of a fax_completed webhook: a fax object of about 1 KB, a few
// fields, metadata, one chain per fax.
func benchJob(id string, now time.Time) *queue.Job {
	fax := `{"id":` + id + `,"direction":"sent","num_pages":3,"status":"success","is_test":false,` +
		`"created_at":"2026-03-01T12:00:00.000000Z","caller_id":"+15551230000","from_number":null,` +
		`"completed_at":"2026-03-01T12:01:00.000000Z","cost":21,"tags":{"order":"A-1234"},` +
		`"recipients":[{"phone_number":"+15559876543","status":"success","retry_count":0,` +
		`"completed_at":"2026-03-01T12:01:00.000000Z","bitrate":14400,"resolution":8040,"error_type":null,` +
		`"error_id":null,"error_message":null}],"to_number":null,"error_id":null,"error_type":null,` +
		`"error_message":null,"barcodes":[]}` + strings.Repeat(" ", 400)
	url := "https://hooks.example.com/fax?token=abc"
	return &queue.Job{
		ID: "job-" + id, EventID: "ev-" + id, URL: url, CreatedAt: now, DueAt: now,
		Meta:  queue.Labels{{Name: "event_type", Value: "fax_completed"}, {Name: "fax_id", Value: id}},
		Chain: id + "\x00" + url,
		Payload: queue.Payload{Fields: []queue.Field{
			{Name: "fax", Value: fax}, {Name: "event_type", Value: "fax_completed"},
			{Name: "success", Value: "true"}, {Name: "is_test", Value: "false"},
		}},
	}
}

// rawSchema is the jobs table of the store's schema, copied: the same columns and indexes.
const rawSchema = `
CREATE TABLE raw_jobs (LIKE jobs INCLUDING ALL);
`

// BenchmarkEnqueue compares enqueueing through the store (one Update per transaction, with
// Enqueue per job or EnqueueAll) with what pgx does on its own: the same rows (as the store
// encodes them) inserted in a batch into a table of the same shape, in a transaction of its
// own (Begin, SendBatch, Commit). Each iteration runs both, one after the other, so that both
// see the same machine; ratio is raw time / store time (1 = as fast as raw pgx).
func BenchmarkEnqueue(b *testing.B) {
	st := open(b, pgstore.Options{})
	ctx := context.Background()
	if _, err := st.Pool().Exec(ctx, rawSchema); err != nil {
		b.Fatal(err)
	}
	for _, perTx := range []int{1, 64} {
		for _, mode := range []string{"Enqueue", "EnqueueAll"} {
			if perTx == 1 && mode == "EnqueueAll" {
				continue
			}
			b.Run(fmt.Sprintf("%s/%d-per-tx", mode, perTx), func(b *testing.B) {
				var storeTime, rawTime time.Duration
				seq := 0
				now := time.Now()
				for b.Loop() {
					jobs := make([]*queue.Job, perTx)
					for i := range jobs {
						seq++
						jobs[i] = benchJob(fmt.Sprintf("%s%d-%d", mode, perTx, seq), now)
					}
					start := time.Now()
					err := st.Update(func(tx queue.Tx) error {
						if mode == "EnqueueAll" {
							_, err := queue.EnqueueAll(tx, jobs)
							return err
						}
						for _, j := range jobs {
							if _, err := tx.Enqueue(j); err != nil {
								return err
							}
						}
						return nil
					})
					if err != nil {
						b.Fatal(err)
					}
					storeTime += time.Since(start)
					rows := pgstore.RowsForBench(jobs)
					start = time.Now()
					tx, err := st.Pool().Begin(ctx)
					if err != nil {
						b.Fatal(err)
					}
					batch := &pgx.Batch{}
					for _, r := range rows {
						batch.Queue(`INSERT INTO raw_jobs (id, state, dest, due_at, due_off, fin_at, fin_off, head, body, chain, seq, hold)
VALUES ($1, 'pending', $2, $3, $4, $5, $6, $7, $8, $9, $10, true)`, r...)
					}
					if err := tx.SendBatch(ctx, batch).Close(); err != nil {
						b.Fatal(err)
					}
					if err := tx.Commit(ctx); err != nil {
						b.Fatal(err)
					}
					rawTime += time.Since(start)
				}
				n := float64(b.N * perTx)
				b.ReportMetric(float64(storeTime.Microseconds())/n, "store-µs/job")
				b.ReportMetric(float64(rawTime.Microseconds())/n, "raw-µs/job")
				b.ReportMetric(float64(rawTime)/float64(storeTime), "ratio")
			})
		}
	}
}

// BenchmarkConcurrentEnqueue measures commits of one-job transactions from many goroutines at
// once (8 per CPU): what the count slots and the wake-ups sent after the commit are for (see
// Store.notifier). Run it with PGTEST_FSYNC=on to see durable commits.
func BenchmarkConcurrentEnqueue(b *testing.B) {
	st := open(b, pgstore.Options{MaxConns: 32})
	b.SetParallelism(8)
	var n atomic.Int64
	b.RunParallel(func(pb *testing.PB) {
		now := time.Now()
		for pb.Next() {
			id := fmt.Sprint("p", n.Add(1))
			err := st.Update(func(tx queue.Tx) error { _, err := tx.Enqueue(benchJob(id, now)); return err })
			if err != nil {
				b.Error(err)
				return
			}
		}
	})
}
