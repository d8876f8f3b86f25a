package queue

import (
	"context"
	"fmt"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// BenchmarkDispatcherBookkeeping measures what the dispatcher costs per delivery apart from the
// delivery itself: 3000 (or 30,000) due jobs of about 1.1 KB over 4 destinations, each in its own
// chain, to a sender that succeeds at once. It reports wall time and process CPU time per
// delivery; the cost per delivery should not grow much with the number of jobs.
func BenchmarkDispatcherBookkeeping(b *testing.B) {
	for _, c := range []struct {
		n    int
		sync bool
	}{{3000, false}, {3000, true}, {30000, false}} {
		b.Run(fmt.Sprintf("jobs=%d/sync=%v", c.n, c.sync), func(b *testing.B) {
			n, sync := c.n, c.sync
			fax := `{"id":123456789,"direction":"sent","status":"success",` + strings.Repeat(`"x":"yyyyyyyyyy",`, 50) + `"num_pages":3}`
			var wall, cpu time.Duration
			for range b.N {
				b.StopTimer()
				st, err := OpenBadger(b.TempDir(), BadgerOptions{SyncWrites: sync})
				if err != nil {
					b.Fatal(err)
				}
				now := time.Now()
				for start := 0; start < n; start += 64 {
					err := st.Update(func(tx Tx) error {
						for i := start; i < min(start+64, n); i++ {
							url := fmt.Sprintf("http://127.0.0.1:%d/webhooks/fax", 40000+i%4)
							_, err := tx.Enqueue(&Job{ID: fmt.Sprintf("%024x", i), EventID: fmt.Sprintf("%d.fax_completed", i),
								Meta: Labels{{Name: "fax_id", Value: fmt.Sprint(i)}, {Name: "event_type", Value: "fax_completed"}},
								URL:  url, Chain: fmt.Sprintf("%d\x00%s", i, url),
								Payload:   Payload{Fields: []Field{{Name: "fax", Value: fax}, {Name: "event_type", Value: "fax_completed"}}},
								CreatedAt: now, DueAt: now})
							if err != nil {
								return err
							}
						}
						return nil
					})
					if err != nil {
						b.Fatal(err)
					}
				}
				var left atomic.Int64
				left.Store(int64(n))
				done := make(chan struct{})
				d := NewDispatcher(st, senderFunc(func(context.Context, *Job) Result { return Result{Status: 200} }),
					Options{Workers: 16, PerHost: 4, OnOutcome: func(*Job, Result) {
						if left.Add(-1) == 0 {
							close(done)
						}
					}})
				b.StartTimer()
				c0, t0 := cpuTime(), time.Now()
				if err := d.Start(); err != nil {
					b.Fatal(err)
				}
				<-done
				wall += time.Since(t0)
				cpu += cpuTime() - c0
				b.StopTimer()
				d.Stop()
				st.Close()
			}
			b.ReportMetric(float64(wall.Nanoseconds())/float64(b.N*n), "ns/delivery")
			b.ReportMetric(float64(cpu.Nanoseconds())/float64(b.N*n), "cpu-ns/delivery")
		})
	}
}

// cpuTime returns the CPU time the process used so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkDestinationsManyWaiting measures what the dispatcher's round reads to find due work
// when many destinations hold only jobs waiting for a retry hours away (2,000 here) and a few
// have jobs due: Destinations answers the waiting ones from memory.
func BenchmarkDestinationsManyWaiting(b *testing.B) {
	st, err := OpenBadger(b.TempDir(), BadgerOptions{})
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	now := time.Now()
	for start := 0; start < 2000; start += 200 {
		err := st.Update(func(tx Tx) error {
			for i := start; i < start+200; i++ {
				if _, err := tx.Enqueue(&Job{ID: fmt.Sprintf("w%05d", i), URL: fmt.Sprintf("https://h%d.example/hook", i), DueAt: now.Add(6 * time.Hour)}); err != nil {
					return err
				}
			}
			for i := range 4 {
				if _, err := tx.Enqueue(&Job{ID: fmt.Sprintf("d%d-%05d", i, start), URL: fmt.Sprintf("https://due%d.example/hook", i), DueAt: now}); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			b.Fatal(err)
		}
	}
	b.ResetTimer()
	for range b.N {
		due := 0
		err := st.View(func(tx Tx) error {
			_, err := tx.Destinations(now, func(string, time.Time) bool { due++; return true })
			return err
		})
		if err != nil || due != 4 {
			b.Fatalf("%d destinations due, %v", due, err)
		}
	}
}
