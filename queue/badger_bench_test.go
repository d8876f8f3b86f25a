package queue

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"
)

// benchFax is a fax object of about 800 bytes.
var benchFax = `{"id":123456789,"direction":"sent","status":"success",` + strings.Repeat(`"x":"yyyyyyyyyy",`, 44) + `"num_pages":3}`

// benchID is the ID of the ith job: spread over the key space, as the tracker's IDs (hashes)
// are.
func benchID(i int) string {
	x := uint64(i) + 0x9e3779b97f4a7c15
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9
	x = (x ^ (x >> 27)) * 0x94d049bb133111eb
	x ^= x >> 31
	return fmt.Sprintf("%016x%08x", x, uint32(i))
}

// benchEnqueueJob is a fax_completed job of the size the tracker enqueues (a fax object of about
// 800 bytes), in a chain of its own.
func benchEnqueueJob(i int, now time.Time) *Job {
	const url = "https://hooks.example.com/fax"
	return &Job{ID: benchID(i), EventID: fmt.Sprintf("%d.fax_completed", i),
		Meta: Labels{{Name: "fax_id", Value: fmt.Sprint(i)}, {Name: "event_type", Value: "fax_completed"}},
		URL:  url, Chain: fmt.Sprintf("%d\x00%s", i, url),
		Payload:   Payload{Fields: []Field{{Name: "fax", Value: benchFax}, {Name: "event_type", Value: "fax_completed"}}},
		CreatedAt: now, DueAt: now}
}

// BenchmarkEnqueue measures jobs/s through Tx.Enqueue without sync_writes, one job and 64 jobs
// per transaction, and the same through raw Badger transactions that write one key per job with
// the job's JSON as its value (what examples/qbench compares against). cpu-ns/job is the
// process's CPU time from before the open to after the close (Badger's flushes and compactions
// included), per job: on a busy machine it varies less than jobs/s.
func BenchmarkEnqueue(b *testing.B) {
	for _, batch := range []int{1, 64} {
		b.Run(fmt.Sprintf("queue/batch=%d", batch), func(b *testing.B) {
			c0 := cpuTime()
			st, err := OpenBadger(b.TempDir(), BadgerOptions{})
			if err != nil {
				b.Fatal(err)
			}
			b.ResetTimer()
			for i := 0; i < b.N; i += batch {
				err := st.Update(func(tx Tx) error {
					now := time.Now()
					for k := i; k < i+batch; k++ {
						if _, err := tx.Enqueue(benchEnqueueJob(k, now)); err != nil {
							return err
						}
					}
					return nil
				})
				if err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			if err := st.Close(); err != nil {
				b.Fatal(err)
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "jobs/s")
			b.ReportMetric(float64((cpuTime()-c0).Nanoseconds())/float64(b.N), "cpu-ns/job")
		})
		b.Run(fmt.Sprintf("raw/batch=%d", batch), func(b *testing.B) {
			value, err := json.Marshal(benchEnqueueJob(0, time.Now()))
			if err != nil {
				b.Fatal(err)
			}
			c0 := cpuTime()
			db, err := badger.Open(badger.DefaultOptions(b.TempDir()).WithLogger(nil).WithMemTableSize(16 << 20).
				WithNumMemtables(2).WithBlockCacheSize(16 << 20).WithIndexCacheSize(16 << 20).
				WithValueLogFileSize(vlogFileSize).WithValueThreshold(valueThreshold).WithNumCompactors(2).WithMetricsEnabled(false))
			if err != nil {
				b.Fatal(err)
			}
			b.ResetTimer()
			for i := 0; i < b.N; i += batch {
				err := db.Update(func(txn *badger.Txn) error {
					for k := i; k < i+batch; k++ {
						if err := txn.Set([]byte("j/"+benchID(k)), value); err != nil {
							return err
						}
					}
					return nil
				})
				if err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			if err := db.Close(); err != nil {
				b.Fatal(err)
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "jobs/s")
			b.ReportMetric(float64((cpuTime()-c0).Nanoseconds())/float64(b.N), "cpu-ns/job")
		})
	}
}
