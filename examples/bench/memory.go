package bench

// The memory mode: peak RSS of Caddy with faxhook (inflight on, poller every second) while it
// handles one fax that implies very many inflight events. Each case runs in a fresh
// Caddy, so that its VmHWM is its own; the baseline case, a 1-recipient fax through the same
// configuration, runs first and the others are reported as multiples of it.

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"text/tabwriter"
	"time"

	"github.com/faxhook/caddy-faxhook/examples/faxapp"
	"github.com/faxhook/caddy-faxhook/examples/harness"
)

// MemCase is one case of the memory mode.
type MemCase string

// The memory cases, in report order.
const (
	// MemBaseline is one fax to one recipient, 3 pages, sent through Caddy to the simulated
	// fax service and followed by the poller.
	MemBaseline MemCase = "baseline"
	// MemInflight is one fax to MemOptions.InflightRecipients recipients (default 1,000),
	// 3 pages, sent and followed like the baseline.
	MemInflight MemCase = "inflight"
	// MemSend is one urlencoded send with MemOptions.SendRecipients `to` values (default
	// 6,000, about 100 KB), a content_url and a callback_url, followed by the poller.
	MemSend MemCase = "send"
	// MemResponse is a fax whose status answer, fetched through Caddy from a small static
	// upstream, lists MemOptions.ResponseRecipients tiny recipients (default 21,000, about
	// 1 MB): first with page 1 of 2 on the wire to each, then completed.
	MemResponse MemCase = "response"
)

// AllMemCases are the memory cases in report order.
var AllMemCases = []MemCase{MemBaseline, MemInflight, MemSend, MemResponse}

// ParseMemCases parses a comma-separated list of memory cases such as "inflight,send". The
// baseline is always run, first.
func ParseMemCases(s string) ([]MemCase, error) {
	out := []MemCase{MemBaseline}
	for _, f := range strings.Split(s, ",") {
		c := MemCase(strings.TrimSpace(f))
		if c == "" {
			continue
		}
		if !slices.Contains(AllMemCases, c) {
			return nil, fmt.Errorf("unknown memory case %q (want baseline, inflight, send or response)", c)
		}
		if !slices.Contains(out, c) {
			out = append(out, c)
		}
	}
	return out, nil
}

// MemOptions configures RunMemory. Zero fields take the defaults.
type MemOptions struct {
	// CaddyBinary is the Caddy with the faxhook plugin. Default: harness.CaddyBinary().
	CaddyBinary string
	// Cases are the cases to run; the baseline is always run, first. Default AllMemCases.
	Cases []MemCase
	// InflightRecipients, SendRecipients and ResponseRecipients size the three cases. Defaults
	// 1,000, 6,000 and 21,000.
	InflightRecipients, SendRecipients, ResponseRecipients int
	// Timeout bounds each case: from the send until its fax_completed webhook arrived and Caddy
	// went idle. Default 60s.
	Timeout time.Duration
	// MaxRSS stops a case (SIGKILL) once its Caddy's resident memory exceeds it, so that a
	// faxhook without bounds cannot take the machine down; the case is then reported as over
	// the limit. Default 4 GiB.
	MaxRSS int64
	// FaxhookOptions are extra lines for the faxhook global option block (e.g.
	// "max_recipients 500").
	FaxhookOptions []string
	// Keep keeps the work directory (Caddyfiles, logs, storages).
	Keep bool
	// Progress, if not nil, receives a line per case as the benchmark goes.
	Progress io.Writer
}

func (o *MemOptions) defaults() error {
	if len(o.Cases) == 0 {
		o.Cases = AllMemCases
	}
	if !slices.Contains(o.Cases, MemBaseline) {
		o.Cases = append([]MemCase{MemBaseline}, o.Cases...)
	}
	def := func(p *int, v int) {
		if *p == 0 {
			*p = v
		}
	}
	def(&o.InflightRecipients, 1000)
	def(&o.SendRecipients, 6000)
	def(&o.ResponseRecipients, 21000)
	if o.Timeout == 0 {
		o.Timeout = 60 * time.Second
	}
	if o.MaxRSS == 0 {
		o.MaxRSS = 4 << 30
	}
	switch {
	case o.InflightRecipients < 0 || o.SendRecipients < 0 || o.ResponseRecipients < 0:
		return errors.New("negative recipient count")
	case o.SendRecipients > 100_000 || o.ResponseRecipients > 100_000 || o.InflightRecipients > 100_000:
		return errors.New("more than 100,000 recipients")
	case o.Timeout < 0 || o.MaxRSS < 0:
		return errors.New("negative timeout or rss limit")
	}
	return nil
}

// Outcomes of a memory case.
const (
	OutcomeCompleted = "completed"  // the fax_completed webhook arrived
	OutcomeTimeout   = "timeout"    // it did not arrive within MemOptions.Timeout
	OutcomeRSSLimit  = "over limit" // Caddy's RSS exceeded MemOptions.MaxRSS; it was killed
)

// MemResult is one memory case.
type MemResult struct {
	// Case is the case and What describes it.
	Case MemCase
	What string
	// Recipients is the fax's number of recipients; Bytes is the size of the send body (send
	// case) or of the largest upstream answer (response case), 0 otherwise.
	Recipients, Bytes int
	// PeakRSS is the Caddy's VmHWM at the end of the case (bytes); Ratio is PeakRSS over the
	// baseline's.
	PeakRSS int64
	Ratio   float64
	// Completed and Inflight count the fax_completed and the inflight webhooks received.
	Completed, Inflight int64
	// Capped is faxhook_fax_events_capped_total by reason at the end of the case; nil when the
	// Caddy died or reported no such sample.
	Capped map[string]float64
	// Elapsed is the time from the send to the end of the case.
	Elapsed time.Duration
	// Outcome is OutcomeCompleted, OutcomeTimeout or OutcomeRSSLimit.
	Outcome string
	// Warnings counts faxhook's warnings that it left a fax's inflight events out.
	Warnings int
}

// MemReport is the outcome of RunMemory.
type MemReport struct {
	// Options are the effective options.
	Options MemOptions
	// Results are the cases in Options.Cases order, the baseline first.
	Results []MemResult
	// WorkDir is the work directory, when Options.Keep kept it.
	WorkDir string
}

// memKey and memSecret are the simulated fax services' credentials.
const (
	memKey, memSecret = "bench-key", "bench-secret"
	memPollInterval   = time.Second
	// cappedMessage is the warning faxhook logs when it leaves a fax's inflight events out.
	cappedMessage = "leaving out a fax's inflight events"
)

// RunMemory runs the memory cases one after the other, each in a fresh Caddy, and stops
// everything again.
func RunMemory(ctx context.Context, o MemOptions) (rep MemReport, err error) {
	if err := o.defaults(); err != nil {
		return MemReport{}, err
	}
	if o.CaddyBinary == "" {
		if o.CaddyBinary, err = harness.CaddyBinary(); err != nil {
			return MemReport{}, err
		}
	}
	rep.Options = o
	dir, err := os.MkdirTemp("", "faxhook-membench-")
	if err != nil {
		return MemReport{}, err
	}
	if o.Keep {
		rep.WorkDir = dir
	} else {
		defer os.RemoveAll(dir)
	}
	sink := &eventSink{}
	sinkURL, stopSink, err := harness.Serve(sink)
	if err != nil {
		return MemReport{}, err
	}
	defer stopSink()
	svc := faxapp.New(faxapp.Config{APIKey: memKey, APISecret: memSecret, Seed: 12})
	faxURL, stopFax, err := harness.Serve(withHealth(svc))
	if err != nil {
		return MemReport{}, err
	}
	defer stopFax()

	for i, c := range o.Cases {
		res, err := runMemCase(ctx, o, c, filepath.Join(dir, fmt.Sprintf("%d-%s", i, c)), faxURL, sinkURL, sink)
		if err != nil {
			return rep, fmt.Errorf("memory case %s: %w", c, err)
		}
		if base := rep.Results; len(base) > 0 && base[0].PeakRSS > 0 {
			res.Ratio = float64(res.PeakRSS) / float64(base[0].PeakRSS)
		} else if c == MemBaseline {
			res.Ratio = 1
		}
		rep.Results = append(rep.Results, res)
		if o.Progress != nil {
			fmt.Fprintf(o.Progress, "%-8s %-60s peak RSS %-10s x%.2f  webhooks %d inflight, %d completed  %s after %s\n",
				c, res.What, describeSize(int(res.PeakRSS)), res.Ratio, res.Inflight, res.Completed, res.Outcome, res.Elapsed.Round(10*time.Millisecond))
		}
	}
	return rep, nil
}

// withHealth answers GET /health with 200 (startCaddy waits for it) and passes the rest to h.
func withHealth(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/health" {
			io.WriteString(w, "ok\n")
			return
		}
		h.ServeHTTP(w, r)
	})
}

// runMemCase runs one case in a fresh Caddy under dir.
func runMemCase(ctx context.Context, o MemOptions, c MemCase, dir, faxURL, sinkURL string, sink *eventSink) (MemResult, error) {
	res := MemResult{Case: c}
	upstream := faxURL
	var big *bigFaxUpstream
	if c == MemResponse {
		big = newBigFaxUpstream(o.ResponseRecipients)
		u, stop, err := harness.Serve(withHealth(big))
		if err != nil {
			return res, err
		}
		defer stop()
		upstream = u
	}
	opts := append([]string{
		"inflight on",
		"allow_private 127.0.0.0/8",
		fmt.Sprintf("poll {\n\t\t\tupstream %s/v2.1\n\t\t\tcredentials %s %s\n\t\t\tinterval %s\n\t\t}", upstream, memKey, memSecret, memPollInterval),
	}, o.FaxhookOptions...)
	cp, err := startCaddy(o.CaddyBinary, dir, Faxhook, upstream, sinkURL, opts, nil)
	if err != nil {
		return res, err
	}
	stopped := false
	defer func() {
		if !stopped {
			cp.Stop()
		}
	}()
	if cp.pid == 0 {
		return res, errors.New("cannot find the caddy process to measure")
	}

	// Watch the resident memory; past the limit the Caddy is killed and the case ends.
	var over atomic.Bool
	var peak atomic.Int64
	watchCtx, stopWatch := context.WithCancel(ctx)
	defer stopWatch()
	watched := make(chan struct{})
	go func() {
		defer close(watched)
		for watchCtx.Err() == nil {
			if m, err := readMemory(cp.pid); err == nil {
				peak.Store(max(peak.Load(), m.PeakRSS))
				if m.RSS > o.MaxRSS {
					over.Store(true)
					cp.Kill()
					return
				}
			}
			select {
			case <-watchCtx.Done():
			case <-time.After(20 * time.Millisecond):
			}
		}
	}()

	sinkPath := fmt.Sprintf("/case/%s", c)
	callback := sinkURL + sinkPath
	site := cp.site + "/v2.1"
	cctx, cancel := context.WithTimeout(ctx, o.Timeout)
	defer cancel()
	start := time.Now()
	var driveErr error
	switch c {
	case MemBaseline, MemInflight:
		res.Recipients = 1
		if c == MemInflight {
			res.Recipients = o.InflightRecipients
		}
		res.What = fmt.Sprintf("1 fax to %d recipient(s), 3 pages, followed by the poller", res.Recipients)
		// urlencoded, because Go's multipart reader (the simulated service's) takes at most
		// 1,000 parts; each content_url is a page.
		pages := []string{"https://example.com/1.pdf", "https://example.com/2.pdf", "https://example.com/3.pdf"}
		form := url.Values{"to": numbers(res.Recipients), "content_url": pages, "callback_url": {callback}}
		driveErr = postForm(cctx, site+"/faxes", form.Encode())
	case MemSend:
		res.Recipients = o.SendRecipients
		form := url.Values{"to": numbers(res.Recipients), "content_url": {"https://example.com/fax.pdf"}, "callback_url": {callback}}
		body := form.Encode()
		res.Bytes = len(body)
		res.What = fmt.Sprintf("urlencoded send, %d to values (%s), followed by the poller", res.Recipients, describeSize(len(body)))
		driveErr = postForm(cctx, site+"/faxes", body)
	case MemResponse:
		res.Recipients = o.ResponseRecipients
		res.Bytes = big.largest()
		res.What = fmt.Sprintf("GET through caddy: %s answer, %d tiny recipients", describeSize(res.Bytes), res.Recipients)
		driveErr = big.drive(cctx, site, callback, func() bool { return sink.count(sinkPath, "fax_completed") > 0 || over.Load() })
	}
	if driveErr != nil && !over.Load() {
		return res, fmt.Errorf("driving the case: %w; log:\n%s", driveErr, cp.Tail(20))
	}

	// The case ends when its fax_completed arrived and the Caddy is idle again (the deliveries
	// of any inflight events done), or at the timeout, or when the Caddy went over the limit.
	res.Outcome = OutcomeTimeout
	for cctx.Err() == nil && !over.Load() {
		if sink.count(sinkPath, "fax_completed") > 0 {
			settle(cctx, []int{cp.pid}, time.Until(start.Add(o.Timeout)))
			res.Outcome = OutcomeCompleted
			break
		}
		select {
		case <-cctx.Done():
		case <-time.After(20 * time.Millisecond):
		}
	}
	res.Elapsed = time.Since(start)
	stopWatch()
	<-watched
	if over.Load() {
		res.Outcome = OutcomeRSSLimit
	}
	if m, err := readMemory(cp.pid); err == nil {
		peak.Store(max(peak.Load(), m.PeakRSS))
		res.Capped = cappedCounters(cp.Admin)
	}
	res.PeakRSS = peak.Load()
	res.Completed, res.Inflight = sink.count(sinkPath, "fax_completed"), sink.count(sinkPath, "")-sink.count(sinkPath, "fax_completed")
	stopped = true
	if over.Load() {
		cp.Kill()
	} else if err := cp.Stop(); err != nil {
		return res, fmt.Errorf("stopping caddy: %w", err)
	}
	if b, err := os.ReadFile(cp.warnLog); err == nil {
		res.Warnings = strings.Count(string(b), cappedMessage)
	}
	return res, nil
}

// numbers returns n distinct recipient numbers of the simulated fax service (seeded behaviour:
// most succeed, some are busy once, a few fail).
func numbers(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("+1555%07d", 1_000_000+i)
	}
	return out
}

// postForm POSTs an urlencoded send and checks the fax service queued it.
func postForm(ctx context.Context, u, body string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, strings.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(memKey, memSecret)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	head, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	return sendQueued(resp.StatusCode, 0, head)
}

// cappedCounters reads faxhook_fax_events_capped_total by reason from Caddy's admin /metrics;
// nil if the metrics cannot be read or have no such sample.
func cappedCounters(admin string) map[string]float64 {
	resp, err := http.Get("http://" + admin + "/metrics")
	if err != nil {
		return nil
	}
	defer resp.Body.Close()
	out := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	const prefix = `faxhook_fax_events_capped_total{reason="`
	for sc.Scan() {
		rest, ok := strings.CutPrefix(sc.Text(), prefix)
		if !ok {
			continue
		}
		reason, val, ok := strings.Cut(rest, `"} `)
		if !ok {
			continue
		}
		if v, err := strconv.ParseFloat(strings.TrimSpace(val), 64); err == nil {
			out[reason] = v
		}
	}
	if len(out) == 0 {
		return nil // a faxhook without the counter, or one that never counted
	}
	return out
}

// eventSink is the webhook receiver of the memory mode: it reads the event_type of each
// delivery and counts it per URL path, discarding the rest (fax objects of megabytes) as it
// streams, so that the benchmark's own memory stays small.
type eventSink struct {
	mu     sync.Mutex
	counts map[string]map[string]int64 // path → event type → count
}

// ServeHTTP counts one delivery and answers 200.
func (s *eventSink) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	event := "?"
	if _, params, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err == nil && params["boundary"] != "" {
		mr := multipart.NewReader(r.Body, params["boundary"])
		for {
			p, err := mr.NextPart()
			if err != nil {
				break
			}
			if p.FormName() == "event_type" {
				b, _ := io.ReadAll(io.LimitReader(p, 64))
				event = string(b)
			} else {
				io.Copy(io.Discard, p)
			}
		}
	}
	io.Copy(io.Discard, r.Body)
	s.mu.Lock()
	if s.counts == nil {
		s.counts = map[string]map[string]int64{}
	}
	if s.counts[r.URL.Path] == nil {
		s.counts[r.URL.Path] = map[string]int64{}
	}
	s.counts[r.URL.Path][event]++
	s.mu.Unlock()
	w.WriteHeader(http.StatusOK)
}

// count returns how many deliveries of event type event (all types when empty) came to path.
func (s *eventSink) count(path, event string) int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	if event != "" {
		return s.counts[path][event]
	}
	var n int64
	for _, c := range s.counts[path] {
		n += c
	}
	return n
}

// bigFaxUpstream is a fax API that knows one sent fax with many tiny recipients (a phone
// number and the current page or a status, nothing else): POST /v2.1/faxes answers its id, GET
// /v2.1/faxes/{id} its state, which drive moves from page 1 of 2 on the wire to every recipient
// to completed. Lists of received faxes are empty.
type bigFaxUpstream struct {
	inProgress, completed []byte
	phase                 atomic.Int32 // 0: in progress, 1: completed
}

// bigFaxID is the id of bigFaxUpstream's fax.
const bigFaxID = 7_000_001

func newBigFaxUpstream(n int) *bigFaxUpstream {
	created := time.Now().UTC()
	body := func(done bool) []byte {
		var b strings.Builder
		b.Grow(48*n + 512)
		status, completedAt := "inprogress", "null"
		if done {
			status, completedAt = "success", `"`+created.Add(time.Minute).Format(time.RFC3339)+`"`
		}
		fmt.Fprintf(&b, `{"success":true,"message":"Metadata for fax","data":{"id":%d,"direction":"sent","num_pages":2,"status":"%s","is_test":true,"created_at":"%s","completed_at":%s,"recipients":[`,
			bigFaxID, status, created.Format(time.RFC3339), completedAt)
		for i := range n {
			if i > 0 {
				b.WriteByte(',')
			}
			if done {
				fmt.Fprintf(&b, `{"phone_number":"+1%06d","status":"success"}`, i)
			} else {
				fmt.Fprintf(&b, `{"phone_number":"+1%06d","x_current_page":1}`, i)
			}
		}
		b.WriteString("]}}\n")
		return []byte(b.String())
	}
	return &bigFaxUpstream{inProgress: body(false), completed: body(true)}
}

// largest is the size of the larger of the two answers.
func (u *bigFaxUpstream) largest() int { return max(len(u.inProgress), len(u.completed)) }

// ServeHTTP implements the fax API.
func (u *bigFaxUpstream) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if k, s, _ := r.BasicAuth(); k != memKey || s != memSecret {
		http.Error(w, `{"success":false,"message":"Invalid API key or secret"}`, http.StatusUnauthorized)
		return
	}
	switch {
	case r.Method == http.MethodPost && r.URL.Path == "/v2.1/faxes":
		io.Copy(io.Discard, r.Body)
		writeStatic(w, "application/json", fmt.Appendf(nil, `{"success":true,"message":"Fax queued for sending","data":{"id":%d}}`+"\n", bigFaxID))
	case r.Method == http.MethodGet && r.URL.Path == "/v2.1/faxes/"+strconv.Itoa(bigFaxID):
		body := u.inProgress
		if u.phase.Load() > 0 {
			body = u.completed
		}
		writeStatic(w, "application/json", body)
	case r.Method == http.MethodGet && r.URL.Path == "/v2.1/faxes":
		writeStatic(w, "application/json", []byte(`{"success":true,"message":"Retrieved faxes successfully","data":[],"paging":{"total":0,"per_page":1000,"page":1}}`+"\n"))
	default:
		http.Error(w, `{"success":false,"message":"Not found"}`, http.StatusNotFound)
	}
}

// drive sends the fax through Caddy (urlencoded, with callback_url), fetches its in-progress
// state through Caddy, then completes it and fetches it until done reports true or ctx ends.
func (u *bigFaxUpstream) drive(ctx context.Context, site, callback string, done func() bool) error {
	form := url.Values{"to": {"+15550000000"}, "content_url": {"https://example.com/fax.pdf"}, "callback_url": {callback}}
	if err := postForm(ctx, site+"/faxes", form.Encode()); err != nil {
		return err
	}
	get := func() error {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, site+"/faxes/"+strconv.Itoa(bigFaxID), nil)
		if err != nil {
			return err
		}
		req.SetBasicAuth(memKey, memSecret)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		io.Copy(io.Discard, resp.Body)
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("GET fax: status %d", resp.StatusCode)
		}
		return nil
	}
	if err := get(); err != nil {
		return err
	}
	u.phase.Store(1)
	for !done() {
		if err := get(); err != nil {
			return err
		}
		select {
		case <-ctx.Done():
			return nil // the caller reports the timeout
		case <-time.After(memPollInterval):
		}
	}
	return nil
}

// Print writes the memory report as a table.
func (r MemReport) Print(w io.Writer) error {
	o := r.Options
	var b strings.Builder
	fmt.Fprintf(&b, "faxhook memory benchmark: peak RSS (VmHWM from /proc/PID/status) of a fresh Caddy per case;\n")
	fmt.Fprintf(&b, "faxhook with inflight on and the poller every %s", memPollInterval)
	if len(o.FaxhookOptions) > 0 {
		fmt.Fprintf(&b, ", plus: %s", strings.Join(o.FaxhookOptions, "; "))
	}
	fmt.Fprintf(&b, ".\nx baseline = peak RSS / the baseline's. A case ends when its fax_completed webhook arrived and Caddy\n")
	fmt.Fprintf(&b, "went idle, after %s (timeout), or when Caddy's RSS passed %s (killed: over limit).\n", o.Timeout, describeSize(int(o.MaxRSS)))
	b.WriteString("GC: Caddy's own settings (GOGC and GOMEMLIMIT of the environment, else Go's and Caddy's defaults).\n")
	b.WriteString("capped = faxhook_fax_events_capped_total by reason (recipients/events/bytes) at the end of the case\n")
	b.WriteString("(-: Caddy killed, or no such metric).\n\n")
	tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
	fmt.Fprint(tw, "case\twhat\tpeak RSS\tx baseline\twebhooks inflight/completed\tcapped r/e/b\toutcome\ttime\t\n")
	for _, res := range r.Results {
		capped := "-"
		if res.Capped != nil {
			capped = fmt.Sprintf("%g/%g/%g", res.Capped["recipients"], res.Capped["events"], res.Capped["bytes"])
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%.2f\t%d/%d\t%s\t%s\t%s\t\n", res.Case, res.What, describeSize(int(res.PeakRSS)), res.Ratio,
			res.Inflight, res.Completed, capped, res.Outcome, res.Elapsed.Round(10*time.Millisecond))
	}
	tw.Flush()
	if r.WorkDir != "" {
		fmt.Fprintf(&b, "\nwork directory kept: %s\n", r.WorkDir)
	}
	_, err := io.WriteString(w, b.String())
	return err
}
