package module

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/maphash"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/caddyserver/caddy/v2"
	"go.uber.org/zap"

	"github.com/faxhook/caddy-faxhook/module/profile"
	"github.com/faxhook/caddy-faxhook/module/render"
	"github.com/faxhook/caddy-faxhook/queue"
)

// PollConfig tells faxhook how to call the fax service's API itself: to poll faxes still in
// flight (so webhooks fire even when no client asks about them), to discover received faxes, and
// to fetch received faxes' PDFs.
type PollConfig struct {
	// Upstream is the API root of the fax service, e.g. `http://127.0.0.1:8090/v2.1`.
	Upstream string `json:"upstream"`
	// APIKey is the HTTP Basic user name; placeholders such as `{env.FAX_API_KEY}` are replaced
	// at runtime.
	APIKey string `json:"api_key,omitempty"`
	// APISecret is the HTTP Basic password; placeholders are replaced at runtime.
	APISecret string `json:"api_secret,omitempty"`
	// Headers are HTTP headers set on every request faxhook makes to the upstream (polls and
	// PDF fetches), e.g. {"Authorization": "Bearer {env.FAX_TOKEN}"} for an API that does not
	// take HTTP Basic credentials. Placeholders are replaced at runtime; values are never logged.
	Headers map[string]string `json:"headers,omitempty"`
	// Interval is the time between two polls. Default 10s. On errors the poller backs off, up to
	// 5 minutes.
	Interval caddy.Duration `json:"interval,omitempty"`
	// Concurrency is how many requests the poller makes at once: 1 to MaxPollConcurrency (256).
	// Default 4.
	Concurrency int `json:"concurrency,omitempty"`
	// MaxRate caps the status requests the poller makes, all faxes together, per second: 1 to
	// MaxPollRate (10000). Default 20. With more faxes in flight than the cap allows at their
	// pace, each is asked about less often (oldest due first), never the service more often.
	MaxRate int `json:"max_rate,omitempty"`
	// Disabled keeps the upstream for fetching files but does not poll.
	Disabled bool `json:"disabled,omitempty"`
}

// pollSettings is a resolved PollConfig.
type pollSettings struct {
	upstream    string
	key, secret string
	// account is the id of the account whose credentials these are (see accountSettings), ""
	// for the poll block's: what the faxes its listings find belong to.
	account     string
	headers     map[string]string // resolved PollConfig.Headers
	interval    time.Duration
	concurrency int
	disabled    bool
	// rate caps the status requests per second (PollConfig.MaxRate); 0 means the default.
	rate int
}

// maxRate is the cap on status requests per second.
func (p *pollSettings) maxRate() float64 { return float64(cmp.Or(p.rate, DefaultPollMaxRate)) }

// apiDo makes an upstream request that a profile built (its path is relative to the API root)
// and returns the body of a 200 answer, reading at most limit bytes (an error when larger).
func (p *pollSettings) apiDo(ctx context.Context, client *http.Client, r profile.Request, limit int64) ([]byte, int, error) {
	u := p.upstream + "/" + strings.TrimPrefix(r.Path, "/")
	req, err := http.NewRequestWithContext(ctx, cmp.Or(r.Method, http.MethodGet), u, nil)
	if err != nil {
		return nil, 0, fmt.Errorf("building request for %s: %w", r.Path, err)
	}
	if p.key != "" || p.secret != "" {
		req.SetBasicAuth(p.key, p.secret)
	}
	for name, v := range p.headers {
		req.Header.Set(name, v)
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, 0, fmt.Errorf("%s %s: %w", req.Method, r.Path, err)
	}
	return readAnswer(resp, req.Method, r.Path, limit)
}

// readAnswer reads and closes the body of resp, the answer to method path, and returns it when
// the status is 200, reading at most limit bytes (errTooLarge beyond).
func readAnswer(resp *http.Response, method, path string, limit int64) ([]byte, int, error) {
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
		return nil, resp.StatusCode, fmt.Errorf("%s %s: upstream answered %s", method, path, resp.Status)
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, limit+1))
	if err != nil {
		return nil, resp.StatusCode, fmt.Errorf("%s %s: reading body: %w", method, path, err)
	}
	if int64(len(b)) > limit {
		return nil, resp.StatusCode, fmt.Errorf("%s %s: %w (over %d bytes)", method, path, errTooLarge, limit)
	}
	return b, resp.StatusCode, nil
}

var errTooLarge = errors.New("response too large")

// maxPollBody bounds a poll response.
const maxPollBody = 16 << 20

// poller asks the fax service, through the profile, about the faxes still in flight and about
// new received faxes, and fetches received faxes' PDFs. What it learns goes to the tracker, like
// what the handler captures.
type poller struct {
	cfg     func() *settings   // the newest config's settings
	log     func() *zap.Logger // the newest config's logger
	tracker *tracker
	vias    *viaCache     // client requests that revealed received faxes (fetchPDFVia)
	leads   func() bool   // whether this instance polls: always, but in a fleet only its leader
	stop    chan struct{} // closed when the engine stops
	done    chan struct{} // closed when loop returns

	mu      sync.Mutex
	started bool // loop was started (start); wait then waits for done
}

// newPoller returns a poller that records what it learns with t until stop is closed; its loop
// runs once started (start).
func newPoller(cfg func() *settings, log func() *zap.Logger, t *tracker, vias *viaCache, leads func() bool, stop chan struct{}) *poller {
	return &poller{cfg: cfg, log: log, tracker: t, vias: vias, leads: leads, stop: stop, done: make(chan struct{})}
}

// start runs the loop unless it runs already: the first config to start starts it, and it
// reads the newest settings each round.
func (pl *poller) start() {
	pl.mu.Lock()
	defer pl.mu.Unlock()
	if !pl.started {
		pl.started = true
		go pl.loop()
	}
}

// wait waits, once stop is closed, for a started loop to return.
func (pl *poller) wait() {
	pl.mu.Lock()
	defer pl.mu.Unlock()
	if pl.started {
		<-pl.done
	}
}

// backoff is the wait after failures consecutive failures: interval doubled per failure, at
// most 5 minutes.
func backoff(interval time.Duration, failures int) time.Duration {
	wait := interval
	for i := 0; i < failures && wait < 5*time.Minute; i++ {
		wait *= 2
	}
	return min(wait, 5*time.Minute)
}

// loop polls until the engine stops, reading the newest settings each time round. Each fax in
// flight is asked about when pollSched says (soon after it is first seen, then at its own
// pace, at least every interval), the status requests of all faxes together capped at the poll
// block's max_rate per second; received faxes are listed every interval. When every status
// request of a round fails, the loop backs off (interval doubled per failing round, at most 5
// minutes); a failing listing (e.g. a 400 from an API that does not take the list query) backs
// off only the listing, so that faxes in flight are still asked about.
func (pl *poller) loop() {
	defer close(pl.done)
	client := &http.Client{Timeout: 30 * time.Second}
	sched := newPollSched(10 * time.Second)
	var bucket tokenBucket
	failures, listFailures := 0, 0
	var lastList, listNext, liveNext, pause time.Time
	wait := time.Duration(0)
	for {
		select {
		case <-pl.stop:
			return
		case <-time.After(wait):
		}
		wait = 5 * time.Second
		p := pl.cfg().poll
		if p == nil || p.disabled || !pl.leads() {
			sched.reset()
			liveNext = time.Time{}
			continue
		}
		cfg := pl.cfg()
		now := time.Now()
		sched.setInterval(p.interval)
		if !now.Before(liveNext) {
			live, err := pl.tracker.live()
			if errors.Is(err, queue.ErrClosed) {
				return
			}
			if err != nil {
				pl.log().Warn("polling the fax service: listing faxes in flight", zap.Error(err))
			} else {
				sched.sync(live, now)
			}
			// New faxes are looked for often enough that one is first asked about about
			// minPollGap after it was sent, but a listing of many faxes in flight (a pass over
			// their records in the store) is made less often: every 250 µs per fax.
			liveNext = now.Add(min(p.interval, max(minPollGap, time.Duration(len(live))*liveScanPerFax)))
		}
		var batch []*Observation
		if now.After(pause) {
			due := sched.take(now, bucket.take(now, p.maxRate(), sched.len()))
			if len(due) > 0 {
				var err error
				batch, err = pl.ask(cfg, client, sched, due)
				if errors.Is(err, queue.ErrClosed) {
					return
				}
				if err != nil {
					failures++
					metricPollerErrors.Inc()
					pause = time.Now().Add(backoff(p.interval, failures) - p.interval)
					pl.log().Warn("polling the fax service", zap.Error(err), zap.Int("consecutive_failures", failures))
				} else {
					failures = 0
				}
			}
		}
		if !now.Before(listNext) {
			after := pl.tracker.startedAt()
			if !lastList.IsZero() {
				after = lastList.Add(-2 * p.interval)
			}
			ctx, cancel := pl.context()
			listErr := errors.Join(pl.listReceived(ctx, cfg, client, after, &batch)...)
			cancel()
			switch {
			case errors.Is(listErr, queue.ErrClosed):
				return
			case listErr != nil:
				listFailures++
				listNext = now.Add(backoff(p.interval, listFailures))
				metricPollerErrors.Inc()
				pl.log().Warn("polling the fax service: listing received faxes", zap.Error(listErr),
					zap.Int("consecutive_failures", listFailures), zap.Time("next_listing", listNext))
			default:
				listFailures, lastList, listNext = 0, now, now.Add(p.interval)
			}
		}
		if err := pl.record(batch); errors.Is(err, queue.ErrClosed) {
			return
		} else if err != nil {
			pl.log().Warn("polling the fax service: recording what it answered", zap.Error(err))
		}
		// Sleep until the next fax is due, the next request may go out, the next look for new
		// faxes or the next listing, whichever comes first.
		now = time.Now()
		wait = min(liveNext.Sub(now), listNext.Sub(now))
		if at, ok := sched.next(); ok {
			wait = min(wait, max(at.Sub(now), bucket.wait()))
		}
		if pause.After(now) {
			wait = max(wait, min(pause.Sub(now), liveNext.Sub(now)))
		}
		wait = max(wait, 5*time.Millisecond)
	}
}

// liveScanPerFax is how much the time between two listings of the faxes in flight grows per
// fax listed, so that listing them costs a bounded part of the poller's time.
const liveScanPerFax = 250 * time.Microsecond

// context returns a context that ends when the engine stops, and its cancel function.
func (pl *poller) context() (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		select {
		case <-pl.stop:
			cancel()
		case <-ctx.Done():
		}
	}()
	return ctx, cancel
}

// record records what the poller learnt, every maxBatchBytes at most at once.
func (pl *poller) record(batch []*Observation) error {
	if len(batch) == 0 {
		return nil
	}
	return pl.tracker.record(batch)
}

// ask asks the fax service about the faxes due, at most the poll block's concurrency at once,
// each with its account's credentials, and puts each back in sched with what its answer shows.
// It returns the answers to record, and an error when every request failed (a fax the service
// no longer knows is forgotten, not a failure). Answers are recorded along the way every
// maxBatchBytes, so that many large answers are never all held parsed.
func (pl *poller) ask(cfg *settings, client *http.Client, sched *pollSched, due []*pollEntry) ([]*Observation, error) {
	p, prof := cfg.poll, cfg.fax()
	ctx, cancel := pl.context()
	defer cancel()
	var (
		mu        sync.Mutex
		batch     []*Observation
		batchSize int // bytes of the answers behind batch
		errs      []error
		failed    int
		wg        sync.WaitGroup
		sem       = make(chan struct{}, p.concurrency)
	)
	type answer struct {
		e   *pollEntry
		sum uint64
		ok  bool
	}
	answers := make([]answer, len(due))
	for i, e := range due {
		l := e.fax
		answers[i].e = e
		req, err := prof.StatusRequest(l.upstream)
		if err != nil {
			errs = append(errs, fmt.Errorf("asking about fax %s: %w", l.id, err))
			failed++
			continue
		}
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			pa := cmp.Or(cfg.forAccount(l.account).poll, p)
			body, status, err := pa.apiDo(ctx, client, req, maxPollBody)
			metricPollerRequests.Inc()
			mu.Lock()
			defer mu.Unlock()
			switch {
			case status == http.StatusNotFound:
				pl.log().Info("poller: fax no longer exists upstream; forgetting it", zap.String("fax_id", l.id))
				pl.forget(l.id)
				e.listed = false
			case err != nil:
				errs = append(errs, err)
				failed++
			default:
				objs, err := prof.Faxes(profile.RouteStatus, body)
				if err != nil {
					reportMappingError(pl.log(), "poller: fax status not (all) read", err,
						zap.String("path", req.Path))
				}
				answers[i].sum, answers[i].ok = answerSum(objs, body), true
				if len(objs) > 0 {
					batch = append(batch, &Observation{Faxes: objs, APIKey: l.account})
					if batchSize += len(body); batchSize >= maxBatchBytes {
						if err := pl.tracker.record(batch); err != nil {
							errs = append(errs, err)
						}
						batch, batchSize = nil, 0
					}
				}
			}
		}()
	}
	wg.Wait()
	now := time.Now()
	for _, a := range answers {
		sched.answered(a.e, now, a.sum, a.ok)
	}
	if failed < len(due) {
		for _, err := range errs {
			if errors.Is(err, queue.ErrClosed) {
				return batch, err
			}
		}
		if len(errs) > 0 {
			pl.log().Warn("polling the fax service: some status requests failed", zap.Error(errors.Join(errs...)))
		}
		return batch, nil
	}
	return batch, errors.Join(errs...)
}

// answerSum is a hash of a status answer, to tell whether the fax changed since the last one:
// of the fax objects read from it (what faxhook makes events of), so that fields the answer
// changes on every request (a request id, the time of the answer) do not make every answer
// look new and keep the fax polled at the fastest pace; of the body itself when nothing could
// be read from it.
func answerSum(objs []profile.Object, body []byte) uint64 {
	if len(objs) == 0 {
		return maphash.Bytes(answerSeed, body) | 1
	}
	b, err := json.Marshal(objs) // maps in key order: the same objects, the same bytes
	if err != nil {
		return maphash.Bytes(answerSeed, body) | 1
	}
	return maphash.Bytes(answerSeed, b) | 1
}

// answerSeed seeds answerSum.
var answerSeed = maphash.MakeSeed()

// listReceived lists the received faxes created after after, with the poll block's credentials
// and each account's own, and appends what it finds to batch; it returns the listings' errors.
func (pl *poller) listReceived(ctx context.Context, cfg *settings, client *http.Client, after time.Time, batch *[]*Observation) []error {
	prof := cfg.fax()
	req, err := prof.ReceivedRequest(after)
	if err != nil {
		return []error{fmt.Errorf("listing received faxes: %w", err)}
	}
	var errs []error
	for _, pa := range listers(cfg) {
		body, _, err := pa.apiDo(ctx, client, req, maxPollBody)
		if err != nil {
			errs = append(errs, fmt.Errorf("listing received faxes: %w", err))
			continue
		}
		objs, err := prof.Faxes(profile.RouteList, body)
		if err != nil {
			reportMappingError(pl.log(), "poller: not every received fax was read", err, zap.String("path", req.Path))
		}
		if len(objs) > 0 {
			// The listing's API key makes the faxes its account's, if it names one.
			*batch = append(*batch, &Observation{Faxes: objs, APIKey: cmp.Or(pa.account, pa.key)})
		}
	}
	return errs
}

// listers returns the poll settings whose credentials list received faxes: the poll block's,
// then each account's with credentials of its own (Account.PollSecret), in API key order.
func listers(cfg *settings) []*pollSettings {
	out := []*pollSettings{cfg.poll}
	keys := make([]string, 0, len(cfg.accounts))
	for k, a := range cfg.accounts {
		if a.poll != nil && a.poll != cfg.poll {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	for _, k := range keys {
		out = append(out, cfg.accounts[k].poll)
	}
	return out
}

// forget drops a fax from the poller's work list.
func (pl *poller) forget(id string) {
	if err := pl.tracker.forgetLive(id); err != nil {
		pl.log().Warn("poller: forgetting a fax", zap.String("fax_id", id), zap.Error(err))
	}
}

// fetchFile fetches the PDF of the received fax of job j (its metadata names it; see
// render.Event.FileRef), for the dispatcher's preparation of the job (delivery.prepare): from
// the poll upstream when one is configured, else back through the route of the client request
// that revealed the fax (fetchPDFVia). The file is nil, without an error, when the webhook goes
// without it: the PDF is larger than max_file_size, or, without a poll upstream, no request is
// remembered for the fax or the fetch was refused, or a document URL named in the fax object
// was refused even after a refresh (each logged once). Other failures are errors: the attempt
// fails and the retry ladder tries again.
func (pl *poller) fetchFile(ctx context.Context, j *queue.Job) (*queue.File, error) {
	cfg := pl.cfg().forAccount(j.Meta.Get(labelAccount)) // its account's poll credentials, if any
	log := pl.log()
	faxID, _ := render.FaxOf(j.Meta)
	var body []byte
	var err error
	var skip bool
	if cfg.poll == nil {
		body, skip, err = pl.fetchPDFVia(ctx, cfg, faxID)
	} else {
		body, skip, err = pl.fetchPDF(ctx, cfg, faxID)
	}
	if skip {
		return nil, nil
	}
	switch {
	case errors.Is(err, errTooLarge):
		log.Error("received fax's PDF is larger than max_file_size; sending the webhook without it",
			zap.Int64("fax_id", faxID), zap.Int64("max_file_size", cfg.maxFileSize))
		return nil, nil
	case err != nil:
		return nil, fmt.Errorf("fetching the received fax's PDF: %w", err)
	}
	f := render.PDF(faxID, body)
	return &f, nil
}

// fetchPDF asks the fax service, through the profile's file request, for the PDF of the fax
// with faxhook's id faxID (the upstream's own spelling of the id comes from the tracker), reading
// at most max_file_size bytes (errTooLarge beyond). skip is true, logged, when a document URL
// named in the fax object is refused even after a refresh (see locateDocument).
func (pl *poller) fetchPDF(ctx context.Context, cfg *settings, faxID int64) (body []byte, skip bool, err error) {
	uid, err := pl.tracker.upstreamID(faxID)
	if err != nil {
		return nil, false, fmt.Errorf("looking up fax %d: %w", faxID, err)
	}
	req, err := cfg.fax().FileRequest(uid)
	if err != nil {
		return nil, false, fmt.Errorf("building the file request of fax %d: %w", faxID, err)
	}
	client := &http.Client{Timeout: 60 * time.Second}
	api := func(r profile.Request) ([]byte, int, error) { return cfg.poll.apiDo(ctx, client, r, cfg.maxFileSize) }
	body, _, err = api(req)
	if err != nil {
		return nil, false, err
	}
	if loc, ok := cfg.fax().(profile.FileLocator); ok {
		body, skip, err = locateDocument(loc, uid, req, body, api, func(fax []byte) ([]byte, int, error) {
			return cfg.poll.fetchFileURL(ctx, client, loc, fax, cfg.maxFileSize)
		})
		if skip {
			pl.log().Warn(msgDocumentRefused, zap.Int64("fax_id", faxID))
		}
	}
	return body, skip, err
}

// msgDocumentRefused is logged when a received fax's webhook goes without its PDF because the
// document URL in its fax object was refused; the README quotes it.
const msgDocumentRefused = "cannot fetch the received fax's PDF: the document URL in its fax object was refused or is gone " +
	"(an expired link?), and the fax service gave no working one; sending the webhook without it"

// refusedStatus reports whether an answer says the URL will not serve the document: 401, 403,
// 404 or 410 (what an expired pre-signed link answers).
func refusedStatus(status int) bool {
	switch status {
	case http.StatusUnauthorized, http.StatusForbidden, http.StatusNotFound, http.StatusGone:
		return true
	}
	return false
}

// locateDocument is the second step of a document fetch through a profile.FileLocator, whose
// FileRequest statusReq answered body (a fax object): fetch gets the document URL named in a
// fax object. When that URL is refused or gone (an expired link), it asks the fax API (api) to
// refresh the URL with the profile's RefreshRequest, reads the fax again and fetches its new
// URL, once. refused is true when no document could be had: the URL was refused and the
// profile cannot refresh it, the refresh was refused (4xx), or the new URL was refused too.
// Other failures are errors, for the retry ladder.
func locateDocument(loc profile.FileLocator, uid string, statusReq profile.Request, body []byte,
	api func(profile.Request) ([]byte, int, error), fetch func(fax []byte) ([]byte, int, error)) (doc []byte, refused bool, err error) {
	doc, status, err := fetch(body)
	if err == nil || !refusedStatus(status) {
		return doc, false, err
	}
	refresh, ok := loc.RefreshRequest(uid)
	if !ok {
		return nil, true, nil
	}
	if _, status, err := api(refresh); err != nil {
		if status >= 400 && status < 500 {
			return nil, true, nil
		}
		return nil, false, fmt.Errorf("refreshing the document URL: %w", err)
	}
	if body, _, err = api(statusReq); err != nil {
		return nil, false, fmt.Errorf("reading the fax after refreshing its document URL: %w", err)
	}
	doc, status, err = fetch(body)
	if err != nil && refusedStatus(status) {
		return nil, true, nil
	}
	return doc, false, err
}

// fetchFileURL is the second step of a document fetch through a profile.FileLocator: body is
// the fax object its FileRequest answered, which names the document's URL (absolute, or
// relative to the API's host). The poll credentials go with the request only when the URL is
// on the API's own scheme and host; a URL elsewhere (a storage service's pre-signed URL, which
// refuses a second authorization) is fetched without them, and so is a redirect elsewhere.
func (p *pollSettings) fetchFileURL(ctx context.Context, client *http.Client, loc profile.FileLocator, body []byte, limit int64) ([]byte, int, error) {
	raw, err := loc.FileURL(body)
	if err != nil {
		return nil, 0, fmt.Errorf("finding the document's URL: %w", err)
	}
	base, err := url.Parse(p.upstream)
	if err != nil {
		return nil, 0, fmt.Errorf("parsing the poll upstream: %w", err)
	}
	ref, err := url.Parse(raw)
	if err != nil {
		return nil, 0, fmt.Errorf("parsing the document's URL: %w", err)
	}
	u := base.ResolveReference(ref)
	if u.Scheme != "http" && u.Scheme != "https" {
		return nil, 0, fmt.Errorf("the document's URL %s is not http(s)", u.Redacted())
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return nil, 0, fmt.Errorf("building the document request: %w", err)
	}
	if u.Scheme == base.Scheme && u.Host == base.Host {
		if p.key != "" || p.secret != "" {
			req.SetBasicAuth(p.key, p.secret)
		}
		for name, v := range p.headers {
			req.Header.Set(name, v)
		}
		// A redirect elsewhere (the API handing out its storage's pre-signed URL) is followed
		// without the credentials: net/http would keep custom headers, and Authorization on
		// another port of the same host.
		c := *client
		c.CheckRedirect = func(next *http.Request, via []*http.Request) error {
			if len(via) >= 10 {
				return errors.New("stopped after 10 redirects")
			}
			if next.URL.Scheme != base.Scheme || next.URL.Host != base.Host {
				next.Header.Del("Authorization")
				for name := range p.headers {
					next.Header.Del(name)
				}
			}
			return nil
		}
		client = &c
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, 0, fmt.Errorf("GET %s: %w", u.Redacted(), err)
	}
	return readAnswer(resp, http.MethodGet, u.Redacted(), limit)
}

// Log messages of fetchPDFVia when a received fax's webhook goes without its PDF; the README
// quotes them.
const (
	msgNoVia = "cannot fetch the received fax's PDF: no poll upstream is configured and no client request that revealed the fax is remembered " +
		"(the fax was seen only by the poller, over 15 minutes ago, or before a restart); sending the webhook without it"
	msgViaRefused = "cannot fetch the received fax's PDF: the fax service refused the client's credentials or has no file " +
		"(fetched through the route of the client request that revealed the fax, as no poll upstream is configured); sending the webhook without it"
)

// fetchPDFVia fetches the PDF of the fax with faxhook's id faxID when no poll upstream is
// configured: through the Caddy site, route and credentials of the client request that
// revealed the fax (its Via, held in memory only). skip is true, logged, when the webhook goes
// without the PDF: no via is remembered, or the answer is 401, 403, 404 or 410. Other failures
// (connection refused, 5xx) are errors, for the retry ladder.
func (pl *poller) fetchPDFVia(ctx context.Context, cfg *settings, faxID int64) (body []byte, skip bool, err error) {
	log := pl.log()
	uid, err := pl.tracker.upstreamID(faxID)
	if err != nil {
		return nil, false, fmt.Errorf("looking up fax %d: %w", faxID, err)
	}
	v := pl.vias.get(uid)
	if v == nil {
		log.Warn(msgNoVia, zap.Int64("fax_id", faxID))
		return nil, true, nil
	}
	req, err := cfg.fax().FileRequest(uid)
	if err != nil {
		return nil, false, fmt.Errorf("building the file request of fax %d: %w", faxID, err)
	}
	body, status, err := v.fetch(ctx, req, cfg.maxFileSize)
	if refusedStatus(status) {
		log.Warn(msgViaRefused, zap.Int64("fax_id", faxID), zap.Int("status", status), zap.Object("via", v))
		return nil, true, nil
	}
	if loc, ok := cfg.fax().(profile.FileLocator); ok && err == nil {
		// The answer is the fax object; its document URL must be absolute here (there is no
		// API root to resolve it against), and is fetched without the client's credentials.
		// A refresh goes through the client's route and credentials, as the status request did.
		noCreds := &pollSettings{upstream: "faxhook-via:"}
		client := &http.Client{Timeout: 60 * time.Second}
		body, skip, err = locateDocument(loc, uid, req, body,
			func(r profile.Request) ([]byte, int, error) { return v.fetch(ctx, r, cfg.maxFileSize) },
			func(fax []byte) ([]byte, int, error) {
				return noCreds.fetchFileURL(ctx, client, loc, fax, cfg.maxFileSize)
			})
		if skip {
			log.Warn(msgDocumentRefused, zap.Int64("fax_id", faxID), zap.Object("via", v))
		}
	}
	return body, skip, err
}
