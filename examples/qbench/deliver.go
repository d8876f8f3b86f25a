package qbench

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/faxhook/caddy-faxhook/queue"
	"github.com/faxhook/caddy-faxhook/queue/httpsend"
	"github.com/faxhook/caddy-faxhook/queue/sign"
)

// deliveryJobs returns n jobs due now, spread round-robin over the receivers' URLs.
func deliveryJobs(n int, urls []string) []*queue.Job {
	now := time.Now()
	jobs := make([]*queue.Job, n)
	for i := range jobs {
		jobs[i] = makeJob(int64(1_000_000+i), urls[i%len(urls)], now, now)
	}
	return jobs
}

// deliverQueue stores jobs (untimed), then times a Dispatcher with the httpsend Sender from
// Start until every job was delivered, and returns deliveries per second and the process's CPU
// time per delivery over that span.
func deliverQueue(ctx context.Context, parent string, syncWrites bool, jobs []*queue.Job, workers, perHost int) (float64, time.Duration, error) {
	return deliverQueueOn(ctx, badgerStore(parent, "qbench-deliver-", syncWrites), jobs, workers, perHost)
}

// deliverQueueOn is deliverQueue on a fresh store that open returns.
func deliverQueueOn(ctx context.Context, open opener, jobs []*queue.Job, workers, perHost int) (float64, time.Duration, error) {
	st, cleanup, err := open()
	if err != nil {
		return 0, 0, err
	}
	defer cleanup()
	for start := 0; start < len(jobs); start += 64 {
		err := st.Update(func(tx queue.Tx) error {
			for _, j := range jobs[start:min(start+64, len(jobs))] {
				c := *j
				if _, err := tx.Enqueue(&c); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			return 0, 0, fmt.Errorf("storing jobs to deliver: %w", err)
		}
	}
	sender := httpsend.New(httpsend.Options{Token: benchToken})
	defer sender.CloseIdleConnections()
	var delivered, failed atomic.Int64
	done := make(chan struct{})
	d := queue.NewDispatcher(st, sender, queue.Options{Workers: workers, PerHost: perHost,
		OnOutcome: func(_ *queue.Job, res queue.Result) {
			if res.Err != nil {
				failed.Add(1)
			}
			if delivered.Add(1) == int64(len(jobs)) {
				close(done)
			}
		}})
	start, cpu0 := time.Now(), processCPU()
	if err := d.Start(); err != nil {
		return 0, 0, err
	}
	defer d.Stop()
	select {
	case <-done:
	case <-ctx.Done():
		return 0, 0, ctx.Err()
	case <-time.After(5 * time.Minute):
		return 0, 0, fmt.Errorf("only %d of %d jobs delivered after 5 minutes", delivered.Load(), len(jobs))
	}
	el, cpu := time.Since(start), processCPU()-cpu0
	if n := failed.Load(); n > 0 {
		return 0, 0, fmt.Errorf("%d of %d deliveries failed", n, len(jobs))
	}
	return float64(len(jobs)) / el.Seconds(), cpu / time.Duration(len(jobs)), nil
}

// request is one prepared POST of the plain-client baseline.
type request struct {
	url, contentType, signature, eventID string
	body                                 []byte
}

// deliverPlain posts the same bodies (encoded and signed beforehand, untimed) to the same URLs
// with a plain net/http client, perHost requests at once per receiver as the dispatcher does, and
// returns posts per second and the process's CPU time per post.
func deliverPlain(ctx context.Context, jobs []*queue.Job, urls []string, perHost int) (float64, time.Duration, error) {
	byURL := map[string][]request{}
	for _, j := range jobs {
		body, ct, err := httpsend.Encode(j)
		if err != nil {
			return 0, 0, fmt.Errorf("encoding job %s: %w", j.ID, err)
		}
		byURL[j.URL] = append(byURL[j.URL], request{url: j.URL, contentType: ct, body: body,
			signature: httpsend.Signature(benchToken, j), eventID: j.EventID})
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConns, tr.MaxIdleConnsPerHost = 100, 16
	client := &http.Client{Transport: tr, Timeout: 30 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	defer tr.CloseIdleConnections()

	var wg sync.WaitGroup
	var firstErr atomic.Pointer[error]
	start, cpu0 := time.Now(), processCPU()
	for _, u := range urls {
		reqs := byURL[u]
		var next atomic.Int64
		for range perHost {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for ctx.Err() == nil {
					i := int(next.Add(1)) - 1
					if i >= len(reqs) {
						return
					}
					if err := post(ctx, client, reqs[i]); err != nil {
						firstErr.CompareAndSwap(nil, &err)
						return
					}
				}
			}()
		}
	}
	wg.Wait()
	el, cpu := time.Since(start), processCPU()-cpu0
	if p := firstErr.Load(); p != nil {
		return 0, 0, *p
	}
	return float64(len(jobs)) / el.Seconds(), cpu / time.Duration(len(jobs)), ctx.Err()
}

// processCPU returns the CPU time (user and system) the process used so far.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func post(ctx context.Context, client *http.Client, r request) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, r.url, bytes.NewReader(r.body))
	if err != nil {
		return fmt.Errorf("building request: %w", err)
	}
	req.Header.Set("Content-Type", r.contentType)
	req.Header.Set("User-Agent", httpsend.DefaultUserAgent)
	req.Header.Set(httpsend.HeaderEventID, r.eventID)
	req.Header.Set(sign.Header, r.signature)
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("posting to %s: %w", r.url, err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("posting to %s: status %d", r.url, resp.StatusCode)
	}
	return nil
}
