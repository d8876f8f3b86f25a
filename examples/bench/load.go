package bench

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"slices"
	"sync"
	"time"
)

// target is one request the load generator repeats.
type target struct {
	method      string
	url         string
	contentType string
	body        []byte // nil for bodiless requests; reused by every request
	// check validates a response from its status, body length and first bytes.
	check func(status int, n int64, head []byte) error
}

// runResult is the outcome of one fixed-duration load run.
type runResult struct {
	cpu        time.Duration   // CPU time of the Caddy under test, measured window plus drain
	drain      time.Duration   // how long the Caddy stayed busy after the window
	dropped    int64           // observations faxhook dropped (backlog full) during window and drain
	gcCycles   int64           // GC cycles of the Caddy during window and drain, -1 if unknown
	allocBytes int64           // heap the Caddy allocated during window and drain, -1 if unknown
	requests   int64           // successful responses in the measured window
	errors     int64           // failed requests (transport errors, wrong status, wrong body)
	firstErr   string          // the first failure, for diagnosis
	elapsed    time.Duration   // measured window
	latencies  []time.Duration // of the successful requests, sorted
}

func (r runResult) throughput() float64 {
	if r.elapsed <= 0 {
		return 0
	}
	return float64(r.requests) / r.elapsed.Seconds()
}

func (r runResult) allocPerRequest() int64 {
	if r.requests == 0 || r.allocBytes < 0 {
		return -1
	}
	return r.allocBytes / r.requests
}

func (r runResult) cpuPerRequest() time.Duration {
	if r.requests == 0 {
		return 0
	}
	return r.cpu / time.Duration(r.requests)
}

// percentile returns the nearest-rank p-quantile (0 < p ≤ 1) of sorted latencies.
func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(float64(len(sorted))*p+0.999999) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}

// headSize is how many leading body bytes a check sees.
const headSize = 64

// worker is one closed-loop client.
type worker struct {
	client *http.Client
	tmpl   *http.Request
	t      *target
	buf    []byte
	head   [headSize]byte
	lat    []time.Duration
	ok     int64
	errs   int64
	first  string
	last   time.Time
}

// request returns a fresh request for the target: a shallow copy of the template (shared header
// map and URL, which the transport does not modify) with a new reader over the shared body.
func (w *worker) request() *http.Request {
	r := new(http.Request)
	*r = *w.tmpl
	if w.t.body != nil {
		r.Body = io.NopCloser(bytes.NewReader(w.t.body))
	}
	return r
}

// once performs one request and reports its latency and an error for failed requests.
func (w *worker) once() (time.Duration, error) {
	start := time.Now()
	resp, err := w.client.Do(w.request())
	if err != nil {
		return 0, err
	}
	var n int64
	nh := 0
	for {
		m, err := resp.Body.Read(w.buf)
		if nh < headSize {
			nh += copy(w.head[nh:], w.buf[:m])
		}
		n += int64(m)
		if err == io.EOF {
			break
		}
		if err != nil {
			resp.Body.Close()
			return 0, fmt.Errorf("reading response: %w", err)
		}
	}
	resp.Body.Close()
	d := time.Since(start)
	if err := w.t.check(resp.StatusCode, n, w.head[:nh]); err != nil {
		return 0, err
	}
	return d, nil
}

func (w *worker) fail(err error) {
	w.errs++
	if w.first == "" {
		w.first = err.Error()
	}
}

// load drives t with n closed-loop workers for d and records the latencies of the requests
// started within d.
func load(ctx context.Context, client *http.Client, t *target, n int, d time.Duration) (runResult, error) {
	rs, err := loadEach(ctx, client, []*target{t}, n, d)
	if err != nil {
		return runResult{}, err
	}
	return rs[0], nil
}

// loadEach drives the targets ts with n closed-loop workers for d, each worker taking the
// targets in turn, and records per target the latencies of the requests started within d. With
// one target per Caddy, both Caddys serve the same requests in the same window, so that other
// load on the machine falls on both alike.
func loadEach(ctx context.Context, client *http.Client, ts []*target, n int, d time.Duration) ([]runResult, error) {
	tmpls := make([]*http.Request, len(ts))
	for i, t := range ts {
		var err error
		if tmpls[i], err = templateRequest(ctx, t); err != nil {
			return nil, err
		}
	}

	measure := time.Now()
	end := measure.Add(d)
	// Preallocate for a generous per-worker rate so that appends rarely grow.
	prealloc := min(int(d/time.Millisecond)*8/len(ts), 1<<20)
	workers := make([][]*worker, n)
	var wg sync.WaitGroup
	for i := range workers {
		ws := make([]*worker, len(ts))
		for k, t := range ts {
			ws[k] = &worker{client: client, tmpl: tmpls[k], t: t, buf: make([]byte, 32<<10), lat: make([]time.Duration, 0, prealloc)}
		}
		workers[i] = ws
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := 0; ctx.Err() == nil; k++ {
				w := ws[k%len(ws)]
				start := time.Now()
				if !start.Before(end) {
					return
				}
				lat, err := w.once()
				w.last = time.Now()
				if err != nil {
					if ctx.Err() != nil {
						return
					}
					w.fail(err)
					time.Sleep(time.Millisecond) // no hot spin against a dead endpoint
					continue
				}
				w.ok++
				w.lat = append(w.lat, lat)
			}
		}()
	}
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	out := make([]runResult, len(ts))
	last := end
	for _, ws := range workers {
		for _, w := range ws {
			if w.last.After(last) {
				last = w.last
			}
		}
	}
	for k := range ts {
		res := &out[k]
		total := 0
		for _, ws := range workers {
			total += len(ws[k].lat)
		}
		res.latencies = make([]time.Duration, 0, total)
		for _, ws := range workers {
			w := ws[k]
			res.requests += w.ok
			res.errors += w.errs
			if res.firstErr == "" {
				res.firstErr = w.first
			}
			res.latencies = append(res.latencies, w.lat...)
		}
		res.elapsed = last.Sub(measure)
		slices.Sort(res.latencies)
	}
	return out, nil
}
