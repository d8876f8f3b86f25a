package module

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"go.uber.org/zap"

	"github.com/faxhook/caddy-faxhook/module/profile/fax"
	"github.com/faxhook/caddy-faxhook/module/render"
	"github.com/faxhook/caddy-faxhook/queue"
)

func init() {
	caddy.RegisterModule(adminAPI{})
}

// adminAPI is the `admin.api.faxhook` module: faxhook's endpoints on Caddy's admin API, under
// /faxhook/. Caddy provisions a fresh instance each time the admin server (re)starts, before
// the apps load, so the engine is looked up on every request in the package pool.
//
// Nothing it returns carries a secret: URLs lose their user:password (queue.RedactURL), and the
// webhook token and URL credentials are scrubbed from attempt errors and response bodies.
type adminAPI struct {
	log *zap.Logger
	// engines lists the running engines by storage directory; nil means the package pool.
	engines func() map[string]*engine
	// now tells the time of replays; nil means time.Now.
	now func() time.Time
}

// Interface guards.
var (
	_ caddy.Module      = (*adminAPI)(nil)
	_ caddy.Provisioner = (*adminAPI)(nil)
	_ caddy.AdminRouter = (*adminAPI)(nil)
)

// CaddyModule returns the Caddy module information.
func (adminAPI) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{ID: "admin.api.faxhook", New: func() caddy.Module { return new(adminAPI) }}
}

// Provision sets up the admin module.
func (a *adminAPI) Provision(ctx caddy.Context) error {
	a.log = ctx.Logger(a)
	return nil
}

// Routes returns the admin routes, all under /faxhook/.
func (a *adminAPI) Routes() []caddy.AdminRoute {
	return []caddy.AdminRoute{{Pattern: "/faxhook/", Handler: caddy.AdminHandlerFunc(a.serve)}}
}

// Paging limits.
const (
	defaultPageSize = 50
	maxPageSize     = 1000
)

// serve routes a request under /faxhook/.
func (a *adminAPI) serve(w http.ResponseWriter, r *http.Request) error {
	parts := strings.Split(strings.Trim(strings.TrimPrefix(r.URL.Path, "/faxhook/"), "/"), "/")
	switch {
	case len(parts) == 1 && parts[0] == "deliveries":
		return a.method(w, r, http.MethodGet, a.listDeliveries)
	case len(parts) == 2 && parts[0] == "deliveries" && parts[1] != "":
		return a.method(w, r, http.MethodGet, func(w http.ResponseWriter, r *http.Request) error { return a.getDelivery(w, r, parts[1]) })
	case len(parts) == 3 && parts[0] == "deliveries" && parts[1] != "" && parts[2] == "retry":
		return a.method(w, r, http.MethodPost, func(w http.ResponseWriter, r *http.Request) error { return a.retry(w, r, parts[1]) })
	case len(parts) == 1 && parts[0] == "replay":
		return a.method(w, r, http.MethodPost, a.replay)
	case len(parts) == 1 && parts[0] == "faxes":
		return a.method(w, r, http.MethodGet, a.listFaxes)
	case len(parts) == 2 && parts[0] == "faxes" && parts[1] != "":
		return a.method(w, r, http.MethodGet, func(w http.ResponseWriter, r *http.Request) error { return a.getFax(w, r, parts[1]) })
	case len(parts) == 1 && parts[0] == "stats":
		return a.method(w, r, http.MethodGet, a.stats)
	case len(parts) == 1 && parts[0] == "destinations":
		return a.method(w, r, http.MethodGet, a.destinations)
	case len(parts) == 1 && parts[0] == "settings":
		return a.method(w, r, http.MethodGet, a.settings)
	case len(parts) == 1 && parts[0] == "test-webhook":
		return a.method(w, r, http.MethodPost, a.testWebhook)
	}
	return apiErrorf(http.StatusNotFound, "no faxhook admin endpoint at %s; see GET /faxhook/deliveries, /faxhook/deliveries/{id}, "+
		"POST /faxhook/deliveries/{id}/retry, POST /faxhook/replay, GET /faxhook/faxes, /faxhook/faxes/{id}, /faxhook/stats, /faxhook/destinations, /faxhook/settings, POST /faxhook/test-webhook?url=", r.URL.Path)
}

// method answers 405 unless r uses the allowed method.
func (a *adminAPI) method(w http.ResponseWriter, r *http.Request, allowed string, h caddy.AdminHandlerFunc) error {
	if r.Method != allowed {
		w.Header().Set("Allow", allowed)
		return apiErrorf(http.StatusMethodNotAllowed, "method %s not allowed on %s; use %s", r.Method, r.URL.Path, allowed)
	}
	return h(w, r)
}

// apiErrorf returns a caddy.APIError with a formatted message.
func apiErrorf(status int, format string, args ...any) error {
	err := fmt.Errorf(format, args...)
	return caddy.APIError{HTTPStatus: status, Err: err, Message: err.Error()}
}

// storeError maps a store error to an APIError: a closed store (the app stopped meanwhile) is
// 503, a missing record 404, a job under attempt 409, anything else 500.
func storeError(what string, err error) error {
	status := http.StatusInternalServerError
	switch {
	case errors.Is(err, queue.ErrClosed):
		status = http.StatusServiceUnavailable
	case errors.Is(err, queue.ErrNotFound):
		status = http.StatusNotFound
	case errors.Is(err, queue.ErrBusy):
		status = http.StatusConflict
	}
	return apiErrorf(status, "%s: %w", what, err)
}

// engine finds the engine a request is about: the one whose storage is ?storage=, else the only
// one running.
func (a *adminAPI) engine(r *http.Request) (*engine, error) {
	source := a.engines
	if source == nil {
		source = runningEngines
	}
	all := source()
	dirs := make([]string, 0, len(all))
	for d := range all {
		dirs = append(dirs, d)
	}
	slices.Sort(dirs)
	if s := r.URL.Query().Get("storage"); s != "" {
		abs, err := filepath.Abs(filepath.Clean(s))
		if err != nil {
			return nil, apiErrorf(http.StatusBadRequest, "storage %q: %w", s, err)
		}
		if e, ok := all[abs]; ok {
			return e, nil
		}
		return nil, apiErrorf(http.StatusNotFound, "no running faxhook app uses storage %s (open: %s)", abs, strings.Join(dirs, ", "))
	}
	switch len(all) {
	case 0:
		return nil, apiErrorf(http.StatusServiceUnavailable, "faxhook is not running: the active config has no faxhook app")
	case 1:
		return all[dirs[0]], nil
	}
	return nil, apiErrorf(http.StatusBadRequest, "several faxhook storages are open (%s); choose one with ?storage=", strings.Join(dirs, ", "))
}

func (a *adminAPI) clock() time.Time {
	if a.now != nil {
		return a.now()
	}
	return time.Now()
}

// writeJSON writes v as a JSON response.
func writeJSON(w http.ResponseWriter, status int, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return apiErrorf(http.StatusInternalServerError, "encoding the response: %w", err)
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, err = w.Write(append(b, '\n'))
	return err
}

// Views of deliveries. They never hold a secret: see adminAPI.

// deliverySummary is one delivery in a listing.
type deliverySummary struct {
	ID          string       `json:"id"`
	EventID     string       `json:"event_id"`
	EventType   string       `json:"event_type"`
	FaxID       int64        `json:"fax_id"`
	Account     string       `json:"account,omitempty"` // the API key of the fax's account, if one is configured
	URL         string       `json:"url"`
	State       string       `json:"state"`
	CreatedAt   time.Time    `json:"created_at"`
	DueAt       *time.Time   `json:"due_at,omitempty"`      // pending: when the next attempt is due
	LeaseUntil  *time.Time   `json:"lease_until,omitempty"` // leased: when the lease ends
	LeasedBy    string       `json:"leased_by,omitempty"`   // leased in a fleet: the claim's token (instance/n)
	FinishedAt  *time.Time   `json:"finished_at,omitempty"` // delivered or dead
	Attempts    int          `json:"attempts"`
	LastAttempt *attemptView `json:"last_attempt,omitempty"`
}

// deliveryDetail is one delivery with its event and attempt log.
type deliveryDetail struct {
	deliverySummary
	Fields      []queue.Field `json:"fields"`
	Files       []fileView    `json:"files,omitempty"`
	FilePending bool          `json:"file_pending,omitempty"` // the received fax's PDF is fetched before the next attempt
	LadderBase  int           `json:"ladder_base,omitempty"`
	ReplayedAt  []time.Time   `json:"replayed_at,omitempty"`
	AttemptLog  []attemptView `json:"attempt_log"`
}

// attemptView is one delivery attempt.
type attemptView struct {
	N          int       `json:"n"`
	At         time.Time `json:"at"`
	DurationMS float64   `json:"duration_ms"`
	Status     int       `json:"status,omitempty"`
	Error      string    `json:"error,omitempty"`
	Body       string    `json:"body,omitempty"`
}

// fileView describes a file part without its bytes.
type fileView struct {
	Name        string `json:"name"`
	Filename    string `json:"filename"`
	ContentType string `json:"content_type"`
	Size        int    `json:"size"`
}

func timePtr(t time.Time) *time.Time { return &t }

// summaryOf shows job j in a listing, its last attempt's texts scrubbed by red.
func summaryOf(j *queue.Job, red redactor) deliverySummary {
	faxID, eventType := render.FaxOf(j.Meta)
	s := deliverySummary{
		ID: j.ID, EventID: j.EventID, EventType: eventType, FaxID: faxID, Account: j.Meta.Get(labelAccount),
		URL: queue.RedactURL(j.URL), State: j.State, CreatedAt: j.CreatedAt, Attempts: len(j.Attempts),
	}
	switch j.State {
	case queue.StatePending:
		s.DueAt = timePtr(j.DueAt)
	case queue.StateLeased:
		s.LeaseUntil, s.LeasedBy = timePtr(j.DueAt), j.Lease
	case queue.StateDelivered, queue.StateDead:
		s.FinishedAt = timePtr(j.FinishedAt)
	}
	if n := len(j.Attempts); n > 0 {
		v := attempt(n, j.Attempts[n-1], red)
		s.LastAttempt = &v
	}
	return s
}

func attempt(n int, a queue.Attempt, red redactor) attemptView {
	return attemptView{
		N: n, At: a.At, DurationMS: float64(a.Duration) / float64(time.Millisecond),
		Status: a.Status, Error: red.text(a.Error), Body: red.text(a.Body),
	}
}

// detailOf shows job j whole, its fields and attempts scrubbed of the secrets that cfg and the
// job's URL hold.
func detailOf(j *queue.Job, cfg *settings) deliveryDetail {
	red := jobRedactor(cfg, j)
	d := deliveryDetail{
		deliverySummary: summaryOf(j, red),
		Fields:          make([]queue.Field, len(j.Fields)),
		FilePending:     j.NeedsPrepare(),
		LadderBase:      j.LadderBase, ReplayedAt: j.ReplayedAt,
		AttemptLog: make([]attemptView, len(j.Attempts)),
	}
	for i, f := range j.Fields {
		d.Fields[i] = queue.Field{Name: f.Name, Value: red.text(f.Value)}
	}
	for _, f := range j.Files {
		d.Files = append(d.Files, fileView{Name: f.Name, Filename: f.Filename, ContentType: f.ContentType, Size: len(f.Data)})
	}
	for i, a := range j.Attempts {
		d.AttemptLog[i] = attempt(i+1, a, red)
	}
	return d
}

// deliveryFilter selects deliveries of a listing.
type deliveryFilter struct {
	state     string
	faxID     int64
	hasFaxID  bool
	eventType string
	host      string
	account   string // the job label labelAccount
}

func (f *deliveryFilter) match(j *queue.Job) bool {
	if f.state != "" && j.State != f.state {
		return false
	}
	faxID, eventType := render.FaxOf(j.Meta)
	if f.hasFaxID && faxID != f.faxID {
		return false
	}
	if f.eventType != "" && eventType != f.eventType {
		return false
	}
	if f.account != "" && j.Meta.Get(labelAccount) != f.account {
		return false
	}
	return f.host == "" || slices.ContainsFunc(urlHosts(j.URL), func(h string) bool { return strings.EqualFold(h, f.host) })
}

// urlHosts returns the names a host filter matches for a webhook URL: host and host:port of an
// http(s) URL, the domains of the To addresses of a mailto: URL; none for an invalid URL.
func urlHosts(raw string) []string {
	t, err := queue.ParseTarget(raw)
	switch {
	case err != nil:
		return nil
	case t.Mail != nil:
		hosts := make([]string, 0, len(t.Mail.To))
		for _, a := range t.Mail.To {
			hosts = append(hosts, a[strings.LastIndexByte(a, '@')+1:])
		}
		return hosts
	}
	return []string{t.Hostname, t.Host}
}

// pageParams reads limit and cursor.
func pageParams(q url.Values) (int, string, error) {
	limit := defaultPageSize
	if s := q.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > maxPageSize {
			return 0, "", apiErrorf(http.StatusBadRequest, "limit %q: want an integer from 1 to %d", s, maxPageSize)
		}
		limit = n
	}
	return limit, q.Get("cursor"), nil
}

// Cursors are opaque to clients: base64url of "s|<state>|<the store's cursor>" for deliveries
// and "x|<fax id>" for faxes.
func encodeCursor(parts ...string) string {
	return base64.RawURLEncoding.EncodeToString([]byte(strings.Join(parts, "|")))
}

func decodeCursor(c string, kind string, n int) ([]string, error) {
	b, err := base64.RawURLEncoding.DecodeString(c)
	parts := strings.SplitN(string(b), "|", n)
	if err != nil || len(parts) != n || parts[0] != kind {
		return nil, apiErrorf(http.StatusBadRequest, "cursor %q is not a cursor of this listing; pass next_cursor of the previous page unchanged", c)
	}
	return parts[1:], nil
}

// deliveryList is the answer of GET /faxhook/deliveries.
type deliveryList struct {
	Deliveries []deliverySummary `json:"deliveries"`
	NextCursor string            `json:"next_cursor,omitempty"`
}

var listableStates = []string{queue.StatePending, queue.StateWaiting, queue.StateLeased, queue.StateDead, queue.StateDelivered}

// listDeliveries answers GET /faxhook/deliveries?state=&fax_id=&event_type=&host=&since=&limit=&cursor=.
func (a *adminAPI) listDeliveries(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	f := deliveryFilter{state: q.Get("state"), eventType: q.Get("event_type"), host: q.Get("host"), account: q.Get("account")}
	if f.state != "" && !slices.Contains(listableStates, f.state) {
		return apiErrorf(http.StatusBadRequest, "state %q: want one of %s", f.state, strings.Join(listableStates, ", "))
	}
	if s := q.Get("fax_id"); s != "" {
		id, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return apiErrorf(http.StatusBadRequest, "fax_id %q: want an integer fax id", s)
		}
		f.faxID, f.hasFaxID = id, true
	}
	if f.eventType != "" && !slices.Contains(eventTypeLabels, f.eventType) {
		return apiErrorf(http.StatusBadRequest, "event_type %q: want one of %s", f.eventType, strings.Join(eventTypeLabels, ", "))
	}
	var since time.Time
	if s := q.Get("since"); s != "" {
		if !queue.Finished(f.state) {
			return apiErrorf(http.StatusBadRequest, "since applies to state=dead and state=delivered only")
		}
		t, err := time.Parse(time.RFC3339, s)
		if err != nil {
			return apiErrorf(http.StatusBadRequest, "since %q: want an RFC 3339 time such as 2026-01-02T15:04:05Z", s)
		}
		since = t
	}
	limit, cursor, err := pageParams(q)
	if err != nil {
		return err
	}
	e, err := a.engine(r)
	if err != nil {
		return err
	}
	page, next, err := e.delivery.page(f, since, limit, cursor)
	if err != nil {
		return err
	}
	cfg := e.cfg.Load()
	out := deliveryList{Deliveries: make([]deliverySummary, 0, len(page)), NextCursor: next}
	for _, j := range page {
		out.Deliveries = append(out.Deliveries, summaryOf(j, jobRedactor(cfg, j)))
	}
	return writeJSON(w, http.StatusOK, out)
}

// page returns up to limit jobs matching f, in the order of the store's listing of
// f.state (queue.ListQuery), after the position the cursor names, and the cursor of the next
// page: empty when no further job matches.
//
// Cost: in proportion to the jobs of that state the filter passes over; the state itself is an
// index of the store, so no listing reads jobs of another state.
func (d *delivery) page(f deliveryFilter, since time.Time, limit int, cursor string) ([]*queue.Job, string, error) {
	q := queue.ListQuery{State: f.state, Since: since, Limit: limit}
	if f.state == queue.StateLeased {
		q.State = queue.StatePending // leases are the dispatcher's, over pending jobs
	}
	if cursor != "" {
		p, err := decodeCursor(cursor, "s", 3)
		if err != nil {
			return nil, "", err
		}
		if p[0] != f.state {
			return nil, "", apiErrorf(http.StatusBadRequest, "cursor %q is not a cursor of this listing (state=%s); pass next_cursor of the previous page unchanged", cursor, f.state)
		}
		q.After = p[1]
	}
	leases := d.leases()
	var page []*queue.Job
	next := ""
	err := d.store.View(func(tx queue.Tx) error {
		page, next = page[:0], ""
		// fullAt is where the page filled: the store page's cursor and the index in it of the
		// page's last job, from which the cursor after that job is asked once a further match
		// shows that a next page exists.
		fullAfter, fullIndex := "", -1
		for {
			pg, err := tx.List(q)
			if err != nil {
				return err
			}
			for i, j := range pg.Jobs {
				asLeased(j, leases)
				if !f.match(j) {
					continue
				}
				if len(page) == limit {
					end, err := tx.List(queue.ListQuery{State: q.State, Since: since, After: fullAfter, Limit: fullIndex + 1})
					if err != nil {
						return err
					}
					next = encodeCursor("s", f.state, end.Next)
					return nil
				}
				page = append(page, j)
				if len(page) == limit {
					fullAfter, fullIndex = q.After, i
				}
			}
			if pg.Next == "" {
				return nil
			}
			q.After = pg.Next
		}
	})
	if errors.Is(err, queue.ErrBadCursor) {
		return nil, "", apiErrorf(http.StatusBadRequest, "cursor %q is not a cursor of this listing; pass next_cursor of the previous page unchanged", cursor)
	}
	if err != nil {
		return nil, "", storeError("listing deliveries", err)
	}
	return page, next, nil
}

// getDelivery answers GET /faxhook/deliveries/{id}.
func (a *adminAPI) getDelivery(w http.ResponseWriter, r *http.Request, id string) error {
	e, err := a.engine(r)
	if err != nil {
		return err
	}
	var j *queue.Job
	err = e.store.View(func(tx queue.Tx) (err error) {
		j, err = tx.Job(id)
		return err
	})
	if err != nil {
		return storeError("delivery "+id, err)
	}
	asLeased(j, e.delivery.leases())
	return writeJSON(w, http.StatusOK, detailOf(j, e.cfg.Load()))
}

// retry answers POST /faxhook/deliveries/{id}/retry: the job is due now (a dead or delivered
// job gets a fresh retry ladder), and the dispatcher is woken. A leased job (attempt under way)
// and a waiting job (behind an earlier job of its chain) are refused with 409.
func (a *adminAPI) retry(w http.ResponseWriter, r *http.Request, id string) error {
	e, err := a.engine(r)
	if err != nil {
		return err
	}
	now := a.clock()
	var j *queue.Job
	leases := e.delivery.leases()
	err = e.store.Update(func(tx queue.Tx) error {
		cur, err := tx.Job(id)
		if err != nil {
			return err
		}
		if cur.State == queue.StateWaiting {
			return errWaiting
		}
		if _, ok := leases[id]; ok {
			return queue.ErrBusy
		}
		j, err = queue.Replay(tx, id, now)
		return err
	})
	if errors.Is(err, errWaiting) {
		return apiErrorf(http.StatusConflict, "retrying delivery %s: it waits behind an earlier delivery of the same fax to the same URL, "+
			"which goes first (retry that one)", id)
	}
	if err != nil {
		return storeError("retrying delivery "+id, err)
	}
	e.delivery.wake()
	faxID, eventType := render.FaxOf(j.Meta)
	e.log.Load().Info("delivery retried by an operator", zap.String("job", j.ID), zap.Int64("fax_id", faxID),
		zap.String("event_type", eventType), zap.String("url", queue.RedactURL(j.URL)))
	return writeJSON(w, http.StatusOK, detailOf(j, e.cfg.Load()))
}

// errWaiting refuses to retry a waiting job: it would overtake its chain's earlier jobs.
var errWaiting = errors.New("waiting behind an earlier job of its chain")

// replayResult is the answer of POST /faxhook/replay.
type replayResult struct {
	Replayed int       `json:"replayed"`
	Since    time.Time `json:"since"`
}

// replay answers POST /faxhook/replay?since=RFC3339: every job that died at or after since is
// due now, with a fresh retry ladder.
func (a *adminAPI) replay(w http.ResponseWriter, r *http.Request) error {
	s := r.URL.Query().Get("since")
	if s == "" {
		return apiErrorf(http.StatusBadRequest, "since is required: the RFC 3339 time from which dead deliveries are replayed (e.g. ?since=2026-01-02T15:04:05Z; 1970-01-01T00:00:00Z for all)")
	}
	since, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return apiErrorf(http.StatusBadRequest, "since %q: want an RFC 3339 time such as 2026-01-02T15:04:05Z", s)
	}
	e, err := a.engine(r)
	if err != nil {
		return err
	}
	n, err := queue.ReplayDead(e.store, since, a.clock())
	if n > 0 {
		e.delivery.wake()
		e.log.Load().Info("dead deliveries replayed by an operator", zap.Int("jobs", n), zap.Time("since", since))
	}
	if err != nil {
		return storeError(fmt.Sprintf("replaying dead deliveries (%d replayed before the error)", n), err)
	}
	return writeJSON(w, http.StatusOK, replayResult{Replayed: n, Since: since})
}

// faxSummary is one tracked fax in a listing.
type faxSummary struct {
	ID           int64     `json:"id"`
	Direction    string    `json:"direction,omitempty"`
	Status       string    `json:"status,omitempty"`
	Known        bool      `json:"known"`     // a complete fax object was seen
	Completed    bool      `json:"completed"` // fax_completed was enqueued (or there was no URL)
	FirstSeen    time.Time `json:"first_seen"`
	CompletedAt  *string   `json:"completed_at,omitempty"`
	CallbackURLs []string  `json:"callback_urls,omitempty"`
}

// faxDetail is one tracked fax with its last known fax object.
type faxDetail struct {
	faxSummary
	SeenInFlight bool           `json:"seen_in_flight"`
	InFlight     bool           `json:"in_flight"` // not complete yet: on the poller's work list
	Pages        map[string]int `json:"pages,omitempty"`
	Retries      map[string]int `json:"retries,omitempty"`
	Fax          *fax.Fax       `json:"fax,omitempty"`
}

// faxList is the answer of GET /faxhook/faxes.
type faxList struct {
	Faxes      []faxSummary `json:"faxes"`
	NextCursor string       `json:"next_cursor,omitempty"`
}

func faxSummaryOf(rec *trackedFax) faxSummary {
	s := faxSummary{
		ID: rec.Fax.ID, Known: rec.Known, Completed: rec.Completed, FirstSeen: rec.FirstSeen,
		CompletedAt: rec.Fax.CompletedAt,
	}
	if rec.Known {
		s.Direction, s.Status = rec.Fax.Direction, rec.Fax.Status
	}
	for _, u := range rec.CallbackURLs {
		s.CallbackURLs = append(s.CallbackURLs, queue.RedactURL(u))
	}
	return s
}

// listFaxes answers GET /faxhook/faxes?limit=&cursor=: tracked faxes in storage order.
func (a *adminAPI) listFaxes(w http.ResponseWriter, r *http.Request) error {
	limit, cursor, err := pageParams(r.URL.Query())
	if err != nil {
		return err
	}
	after := ""
	if cursor != "" {
		p, err := decodeCursor(cursor, "x", 2)
		if err != nil {
			return err
		}
		after = p[0]
	}
	e, err := a.engine(r)
	if err != nil {
		return err
	}
	recs, next, err := e.tracker.faxPage(after, limit)
	if err != nil {
		return storeError("listing tracked faxes", err)
	}
	out := faxList{Faxes: make([]faxSummary, 0, len(recs))}
	for i := range recs {
		out.Faxes = append(out.Faxes, faxSummaryOf(&recs[i]))
	}
	if next != "" {
		out.NextCursor = encodeCursor("x", next)
	}
	return writeJSON(w, http.StatusOK, out)
}

// getFax answers GET /faxhook/faxes/{id}.
func (a *adminAPI) getFax(w http.ResponseWriter, r *http.Request, idText string) error {
	id, err := strconv.ParseInt(idText, 10, 64)
	if err != nil {
		return apiErrorf(http.StatusBadRequest, "fax id %q: want an integer", idText)
	}
	e, err := a.engine(r)
	if err != nil {
		return err
	}
	rec, inFlight, err := e.tracker.fax(id)
	if err != nil {
		return storeError(fmt.Sprintf("tracked fax %d", id), err)
	}
	d := faxDetail{
		faxSummary: faxSummaryOf(&rec), SeenInFlight: rec.SeenInFlight, InFlight: inFlight,
		Pages: rec.Pages, Retries: rec.Retries,
	}
	if rec.Known {
		d.Fax = &rec.Fax
	}
	return writeJSON(w, http.StatusOK, d)
}

// statsView is the answer of GET /faxhook/stats.
type statsView struct {
	Storage                    string         `json:"storage"`
	DispatcherRunning          bool           `json:"dispatcher_running"`
	Jobs                       map[string]int `json:"jobs"`
	OldestUnfinishedAgeSeconds float64        `json:"oldest_unfinished_age_seconds"`
	TrackedFaxes               int            `json:"tracked_faxes"`
	FaxesInFlight              int            `json:"faxes_in_flight"`
	TrackingSince              time.Time      `json:"tracking_since"`
	// StorageDegraded is true while faxhook records nothing because its storage is short of
	// free space (min_free_space); the counts are then absent if the storage could not be
	// opened yet.
	StorageDegraded bool `json:"storage_degraded"`
	// StorageFreeBytes is the free space of the storage's file system at the last check.
	StorageFreeBytes int64 `json:"storage_free_bytes"`
}

// stats answers GET /faxhook/stats with counts per job state, freshly counted.
func (a *adminAPI) stats(w http.ResponseWriter, r *http.Request) error {
	e, err := a.engine(r)
	if err != nil {
		return err
	}
	out := statsView{Storage: e.dir, StorageDegraded: e.space.degraded(), StorageFreeBytes: e.store.Space().Free,
		DispatcherRunning: e.delivery.running()}
	js, err := e.delivery.jobStats()
	if errors.Is(err, queue.ErrNoSpace) {
		return writeJSON(w, http.StatusOK, out) // the storage waits for space to open
	}
	if err != nil {
		return storeError("counting jobs in "+e.dir, err)
	}
	out.Jobs, out.TrackingSince = js.Counts, e.tracker.startedAt()
	if !js.OldestUnfinished.IsZero() {
		out.OldestUnfinishedAgeSeconds = max(0, a.clock().Sub(js.OldestUnfinished).Seconds())
	}
	out.TrackedFaxes, out.FaxesInFlight, err = e.tracker.counts()
	if err != nil {
		return storeError("counting tracked faxes", err)
	}
	return writeJSON(w, http.StatusOK, out)
}
