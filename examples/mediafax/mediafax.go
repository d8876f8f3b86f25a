// Package mediafax simulates, for tests and demos, the two fax APIs that send a document fetched
// from a media URL and name a received fax's document by URL: Telnyx Programmable Fax (shape
// Telnyx) and the Twilio Fax resource as SignalWire's Compatibility API serves it (shape
// TwilioFax). It covers what faxhook's shipped profiles telnyx and twilio_fax use: sending a fax
// (the service fetches the media URL), a fax's state, the list of faxes, the received fax's
// document at its media_url, and (simulator only) a received fax. It sends neither service's
// own webhooks.
//
// Telnyx (telnyx-java docs/ProgrammableFaxCommandsApi.md, Fax.md): bearer API key; routes under
// /v2; POST /v2/faxes (JSON, or a form; connection_id, media_url, to, from, webhook_url) answers
// 202 {"data": fax}; GET /v2/faxes/{id} answers {"data": fax}; GET /v2/faxes
// (filter[direction][eq], filter[created_at][gte], page[size], page[number]; any other query
// parameter is refused) answers {"data": […], "meta": {…}}; ids are UUIDs; a sent fax goes
// queued, media.processed, originated, sending (one step per page), delivered; a fax to one of
// Config.FailTo goes queued, media.processed, originated, failed.
//
// TwilioFax (developer.signalwire.com compatibility-api: faxes, send, retrieve): HTTP Basic
// AccountSid:AuthToken; routes under /api/laml/2010-04-01/Accounts/{AccountSid}, with or without
// .json; POST …/Faxes (a form: To, From, MediaUrl, Quality, StatusCallback) answers 201 with the
// fax; GET …/Faxes/{sid} the fax; GET …/Faxes (From, To, DateCreatedAfter, PageSize, Page)
// {"faxes": […], …}; num_pages and price are strings; a sent fax goes queued, processing,
// sending (one step per page), delivered; a fax to one of Config.FailTo goes queued,
// processing, sending, busy.
//
// A received fax (POST /_sim/inbound, JSON {"from","to","file": base64 PDF}) is at once
// received; its media_url is an absolute URL on the simulator (/_media/{id}-{n}.pdf) that needs
// no credentials, as a pre-signed storage URL does not. With Config.StaleMedia that link has
// expired (403), and Telnyx's POST /v2/faxes/{id}/actions/refresh issues a working one.
package mediafax

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// countPages counts the page objects of a PDF ("/Type /Page", not "/Type /Pages").
func countPages(pdf []byte) int {
	return bytes.Count(pdf, []byte("/Type /Page")) - bytes.Count(pdf, []byte("/Type /Pages"))
}

// Shape is the API a Service speaks.
type Shape string

// The shapes, named as faxhook's shipped profiles.
const (
	Telnyx    Shape = "telnyx"
	TwilioFax Shape = "twilio_fax"
)

// Config configures a Service.
type Config struct {
	// Shape is the API spoken: Telnyx or TwilioFax.
	Shape Shape
	// APIKey is the bearer token every Telnyx request must carry; empty: no authentication.
	APIKey string
	// AccountSID and AuthToken are the HTTP Basic credentials of every TwilioFax request (both
	// empty: no authentication); AccountSID is also the {AccountSid} of the routes (default
	// "AC1").
	AccountSID, AuthToken string
	// Tick is how long a sent fax stays in each step. Default 200ms.
	Tick time.Duration
	// Now is the clock. Default time.Now.
	Now func() time.Time
	// FailTo lists numbers to which every fax fails (Telnyx: failed; TwilioFax: busy).
	FailTo []string
	// Client fetches the media URLs of sent faxes. Default: a client with a 10 s timeout.
	Client *http.Client
	// StaleMedia makes a received fax's first media_url an expired link (answered 403, as an
	// expired pre-signed storage URL is), as a client sees it when it looks hours after the
	// fax came in. Telnyx's POST /v2/faxes/{id}/actions/refresh issues a working one; the
	// Twilio resource has no such action.
	StaleMedia bool
}

// Service is the simulated fax API; it is an http.Handler.
type Service struct {
	cfg       Config
	mu        sync.Mutex
	faxes     map[string]*simFax
	order     []string // ids in creation order
	refreshes int      // refresh actions answered
}

// Refreshes returns how many refresh actions (Telnyx) the service answered.
func (s *Service) Refreshes() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.refreshes
}

type simFax struct {
	id, direction, from, to string
	pages                   int
	created                 time.Time
	callbackURL, mediaURL   string
	pdf                     []byte
	fails                   bool
	// link is the current media link of a received fax (/_media/{id}-{link}.pdf on mediaHost,
	// the host its inbound request named); the others are expired.
	link      int
	mediaHost string
}

// New returns a Service, or an error for an unknown shape.
func New(cfg Config) (*Service, error) {
	switch cfg.Shape {
	case Telnyx, TwilioFax:
	default:
		return nil, fmt.Errorf("shape %q is neither %s nor %s", cfg.Shape, Telnyx, TwilioFax)
	}
	if cfg.AccountSID == "" {
		cfg.AccountSID = "AC1"
	}
	if cfg.Tick <= 0 {
		cfg.Tick = 200 * time.Millisecond
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Client == nil {
		cfg.Client = &http.Client{Timeout: 10 * time.Second}
	}
	return &Service{cfg: cfg, faxes: map[string]*simFax{}}, nil
}

// Prefix is the path under which the fax routes live: /v2 (Telnyx) or
// /api/laml/2010-04-01/Accounts/{AccountSid} (TwilioFax). It is the API root of faxhook's poll
// upstream.
func (s *Service) Prefix() string {
	if s.cfg.Shape == Telnyx {
		return "/v2"
	}
	return "/api/laml/2010-04-01/Accounts/" + s.cfg.AccountSID
}

// collection is the name of the fax collection under Prefix.
func (s *Service) collection() string {
	if s.cfg.Shape == Telnyx {
		return "/faxes"
	}
	return "/Faxes"
}

// newID returns a random UUID (version 4), the id form of both APIs.
func newID() string {
	var b [16]byte
	rand.Read(b[:])
	b[6], b[8] = b[6]&0x0f|0x40, b[8]&0x3f|0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:])
}

func iso(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05.000000Z") }

// state is a fax's status now, the time of its last change, and whether it is done.
func (s *Service) state(f *simFax, now time.Time) (status string, changed time.Time, done bool) {
	if f.direction == "inbound" {
		return "received", f.created, true
	}
	step := int(now.Sub(f.created) / s.cfg.Tick)
	at := func(n int) time.Time { return f.created.Add(time.Duration(n) * s.cfg.Tick) }
	var ladder []string // the statuses of steps 0, 1, …; the last one stays
	if s.cfg.Shape == Telnyx {
		ladder = []string{"queued", "media.processed", "originated"}
		if f.fails {
			ladder = append(ladder, "failed")
		} else {
			for range f.pages {
				ladder = append(ladder, "sending")
			}
			ladder = append(ladder, "delivered")
		}
	} else {
		ladder = []string{"queued", "processing"}
		if f.fails {
			ladder = append(ladder, "sending", "busy")
		} else {
			for range f.pages {
				ladder = append(ladder, "sending")
			}
			ladder = append(ladder, "delivered")
		}
	}
	step = max(0, min(step, len(ladder)-1))
	first := step // the step at which the current status began
	for first > 0 && ladder[first-1] == ladder[step] {
		first--
	}
	return ladder[step], at(first), step == len(ladder)-1
}

// object is the fax object of f now, in the Service's shape.
func (s *Service) object(f *simFax, now time.Time) map[string]any {
	status, changed, done := s.state(f, now)
	if s.cfg.Shape == Telnyx {
		o := map[string]any{
			"record_type": "fax", "id": f.id, "connection_id": "1293384261075731499", "direction": f.direction,
			"to": f.to, "from": f.from, "quality": "high", "status": status, "store_media": false,
			"created_at": iso(f.created), "updated_at": iso(changed), "media_url": f.mediaURL,
		}
		if f.callbackURL != "" {
			o["webhook_url"] = f.callbackURL
		}
		return o
	}
	url := s.Prefix() + "/Faxes/" + f.id
	o := map[string]any{
		"account_sid": s.cfg.AccountSID, "api_version": "v1", "sid": f.id, "direction": f.direction,
		"from": f.from, "to": f.to, "status": status, "quality": "fine", "media_url": f.mediaURL,
		"media_sid": "ME" + strings.ReplaceAll(f.id, "-", ""), "num_pages": nil, "price": nil, "price_unit": nil, "duration": nil,
		"date_created": iso(f.created), "date_updated": iso(changed),
		"links": map[string]string{"media": url + "/Media"}, "url": url,
	}
	if status != "queued" && status != "processing" {
		o["num_pages"] = strconv.Itoa(f.pages)
	}
	if done {
		sent := f.pages
		if f.fails {
			sent = 0
		}
		o["price"], o["price_unit"] = fmt.Sprintf("%d.%04d", sent*70/10000, sent*70%10000), "USD"
		o["duration"] = int(changed.Sub(f.created) / time.Second)
	}
	return o
}

// fail writes the shape's error body.
func (s *Service) fail(w http.ResponseWriter, code int, msg string) {
	if s.cfg.Shape == Telnyx {
		writeJSON(w, code, map[string]any{"errors": []map[string]string{{
			"code": strconv.Itoa(10000 + code), "title": http.StatusText(code), "detail": msg}}})
		return
	}
	writeJSON(w, code, map[string]any{"code": 20000 + code, "message": msg, "status": code,
		"more_info": "https://developer.signalwire.com/compatibility-api/rest/"})
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(v)
}

// authorized checks the shape's credentials.
func (s *Service) authorized(r *http.Request) bool {
	if s.cfg.Shape == Telnyx {
		return s.cfg.APIKey == "" || r.Header.Get("Authorization") == "Bearer "+s.cfg.APIKey
	}
	if s.cfg.AccountSID == "" && s.cfg.AuthToken == "" {
		return true
	}
	user, pass, ok := r.BasicAuth()
	return ok && user == s.cfg.AccountSID && pass == s.cfg.AuthToken
}

// ServeHTTP serves the routes under Prefix, GET /_media/{id}-{n}.pdf (a fax's document, without
// credentials) and POST /_sim/inbound (simulator only).
func (s *Service) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if name, ok := strings.CutPrefix(r.URL.Path, "/_media/"); ok && r.Method == http.MethodGet {
		s.media(w, strings.TrimSuffix(name, ".pdf"))
		return
	}
	if !s.authorized(r) {
		s.fail(w, http.StatusUnauthorized, "authentication failed")
		return
	}
	if r.URL.Path == "/_sim/inbound" && r.Method == http.MethodPost {
		s.inbound(w, r)
		return
	}
	rest, ok := strings.CutPrefix(r.URL.Path, s.Prefix()+s.collection())
	if !ok {
		s.fail(w, http.StatusNotFound, "no such route")
		return
	}
	if s.cfg.Shape == TwilioFax {
		rest = strings.TrimSuffix(rest, ".json")
	}
	segs := strings.Split(strings.Trim(rest, "/"), "/")
	switch {
	case rest == "" && r.Method == http.MethodPost:
		s.send(w, r)
	case rest == "" && r.Method == http.MethodGet:
		s.list(w, r)
	case len(segs) == 1 && segs[0] != "" && r.Method == http.MethodGet:
		s.get(w, segs[0])
	case s.cfg.Shape == Telnyx && len(segs) == 3 && segs[1] == "actions" && segs[2] == "refresh" && r.Method == http.MethodPost:
		s.refresh(w, r, segs[0])
	default:
		s.fail(w, http.StatusNotFound, "no such route")
	}
}

// send creates one fax to "to" from the document at the media URL.
func (s *Service) send(w http.ResponseWriter, r *http.Request) {
	var to, from, mediaURL, cb string
	ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	switch {
	case s.cfg.Shape == Telnyx && ct == "application/json":
		var req struct {
			ConnectionID string `json:"connection_id"`
			MediaURL     string `json:"media_url"`
			To, From     string
			WebhookURL   string `json:"webhook_url"`
		}
		if err := json.NewDecoder(io.LimitReader(r.Body, 1<<20)).Decode(&req); err != nil {
			s.fail(w, http.StatusBadRequest, "body: "+err.Error())
			return
		}
		if req.ConnectionID == "" {
			s.fail(w, http.StatusUnprocessableEntity, "connection_id is required")
			return
		}
		to, from, mediaURL, cb = req.To, req.From, req.MediaURL, req.WebhookURL
	case ct == "application/x-www-form-urlencoded" || ct == "multipart/form-data":
		if err := r.ParseMultipartForm(1 << 20); err != nil && !errors.Is(err, http.ErrNotMultipart) {
			s.fail(w, http.StatusBadRequest, "form: "+err.Error())
			return
		}
		if s.cfg.Shape == Telnyx {
			to, from, mediaURL, cb = r.FormValue("to"), r.FormValue("from"), r.FormValue("media_url"), r.FormValue("webhook_url")
		} else {
			to, from, mediaURL, cb = r.FormValue("To"), r.FormValue("From"), r.FormValue("MediaUrl"), r.FormValue("StatusCallback")
		}
	default:
		s.fail(w, http.StatusUnsupportedMediaType, "unsupported content type "+strconv.Quote(ct))
		return
	}
	if to == "" || from == "" || mediaURL == "" {
		s.fail(w, http.StatusUnprocessableEntity, "to, from and a media URL are required")
		return
	}
	pdf, err := s.fetch(r, mediaURL)
	if err != nil {
		s.fail(w, http.StatusUnprocessableEntity, "media: "+err.Error())
		return
	}
	now := s.cfg.Now()
	f := &simFax{id: newID(), direction: "outbound", from: from, to: to, pages: max(1, countPages(pdf)),
		created: now, callbackURL: cb, mediaURL: mediaURL, pdf: pdf, fails: slices.Contains(s.cfg.FailTo, to)}
	s.mu.Lock()
	s.faxes[f.id] = f
	s.order = append(s.order, f.id)
	o := s.object(f, now)
	s.mu.Unlock()
	if s.cfg.Shape == Telnyx {
		writeJSON(w, http.StatusAccepted, map[string]any{"data": o})
		return
	}
	writeJSON(w, http.StatusCreated, o)
}

// fetch gets a sent fax's document, as the service does before it dials.
func (s *Service) fetch(r *http.Request, mediaURL string) ([]byte, error) {
	req, err := http.NewRequestWithContext(r.Context(), http.MethodGet, mediaURL, nil)
	if err != nil {
		return nil, fmt.Errorf("building the request: %w", err)
	}
	resp, err := s.cfg.Client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("fetching %s: %w", mediaURL, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("fetching %s: %s", mediaURL, resp.Status)
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, 50<<20))
	if err != nil || len(b) == 0 {
		return nil, fmt.Errorf("reading %s: empty or %v", mediaURL, err)
	}
	return b, nil
}

// inbound receives a fax: JSON {"from","to","file": base64 PDF}; its document is served at
// /_media/{id}-{n}.pdf on the host the request named.
func (s *Service) inbound(w http.ResponseWriter, r *http.Request) {
	var req struct{ From, To, File string }
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		s.fail(w, http.StatusBadRequest, "body: "+err.Error())
		return
	}
	pdf, err := base64.StdEncoding.DecodeString(req.File)
	if err != nil || len(pdf) == 0 {
		s.fail(w, http.StatusBadRequest, "file: base64 PDF")
		return
	}
	now := s.cfg.Now()
	f := &simFax{id: newID(), direction: "inbound", from: req.From, to: req.To, pages: max(1, countPages(pdf)),
		created: now, pdf: pdf}
	f.mediaHost = r.Host
	f.mediaURL = s.mediaURL(f)
	if s.cfg.StaleMedia {
		f.link = 1 // the link just handed out has expired
	}
	s.mu.Lock()
	s.faxes[f.id] = f
	s.order = append(s.order, f.id)
	o := s.object(f, now)
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, o)
}

// mediaURL is the URL of a received fax's current media link: absolute, and needing no
// credentials.
func (s *Service) mediaURL(f *simFax) string {
	return "http://" + f.mediaHost + "/_media/" + f.id + "-" + strconv.Itoa(f.link) + ".pdf"
}

// refresh issues a received fax's media link anew (Telnyx: "refreshes the inbound fax's
// media_url when it has expired") and answers {"data":{"result":"ok"}}.
func (s *Service) refresh(w http.ResponseWriter, r *http.Request, id string) {
	s.mu.Lock()
	f := s.faxes[id]
	if f == nil || f.direction != "inbound" {
		s.mu.Unlock()
		s.fail(w, http.StatusNotFound, "inbound fax "+id+" not found")
		return
	}
	f.link++
	f.mediaURL = s.mediaURL(f)
	s.refreshes++
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, map[string]any{"data": map[string]string{"result": "ok"}})
}

func (s *Service) get(w http.ResponseWriter, id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	f := s.faxes[id]
	if f == nil {
		s.fail(w, http.StatusNotFound, "fax "+id+" not found")
		return
	}
	o := s.object(f, s.cfg.Now())
	if s.cfg.Shape == Telnyx {
		writeJSON(w, http.StatusOK, map[string]any{"data": o})
		return
	}
	writeJSON(w, http.StatusOK, o)
}

// media serves a received fax's document at its current link, name "{id}-{link}"; an older
// link is expired (403).
func (s *Service) media(w http.ResponseWriter, name string) {
	i := strings.LastIndexByte(name, '-')
	if i < 0 {
		http.Error(w, "no such media", http.StatusNotFound)
		return
	}
	id, link := name[:i], name[i+1:]
	s.mu.Lock()
	f := s.faxes[id]
	current := f != nil && strconv.Itoa(f.link) == link
	s.mu.Unlock()
	if f == nil || f.direction != "inbound" {
		http.Error(w, "no such media", http.StatusNotFound)
		return
	}
	if !current {
		http.Error(w, "<Error><Code>AccessDenied</Code><Message>Request has expired</Message></Error>", http.StatusForbidden)
		return
	}
	w.Header().Set("Content-Type", "application/pdf")
	w.Write(f.pdf)
}

// list answers the list route, newest first, with the shape's filters and paging; unknown query
// parameters are refused with 400, as a strict API does.
func (s *Service) list(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	known := []string{"From", "To", "DateCreatedAfter", "DateCreatedOnOrBefore", "PageSize", "Page", "PageToken"}
	dirKey, sizeKey, maxSize := "", "PageSize", 1000
	if s.cfg.Shape == Telnyx {
		known = []string{"filter[created_at][gte]", "filter[created_at][gt]", "filter[created_at][lte]", "filter[created_at][lt]",
			"filter[direction][eq]", "filter[from][eq]", "filter[to][eq]", "page[size]", "page[number]"}
		dirKey, sizeKey, maxSize = "filter[direction][eq]", "page[size]", 250
	}
	for k := range q {
		if !slices.Contains(known, k) {
			s.fail(w, http.StatusBadRequest, "unknown query parameter "+strconv.Quote(k))
			return
		}
	}
	dir := ""
	if dirKey != "" {
		dir = q.Get(dirKey)
		if dir != "" && dir != "inbound" && dir != "outbound" {
			s.fail(w, http.StatusBadRequest, dirKey+": inbound or outbound")
			return
		}
	}
	size := 20
	if v := q.Get(sizeKey); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > maxSize {
			s.fail(w, http.StatusBadRequest, fmt.Sprintf("%s: 1 to %d", sizeKey, maxSize))
			return
		}
		size = n
	}
	now := s.cfg.Now()
	s.mu.Lock()
	objs := []map[string]any{}
	for i := len(s.order) - 1; i >= 0 && len(objs) < size; i-- {
		f := s.faxes[s.order[i]]
		if dir != "" && f.direction != dir {
			continue
		}
		objs = append(objs, s.object(f, now))
	}
	s.mu.Unlock()
	if s.cfg.Shape == Telnyx {
		writeJSON(w, http.StatusOK, map[string]any{"data": objs, "meta": map[string]int{
			"page_number": 1, "page_size": size, "total_pages": 1, "total_results": len(objs)}})
		return
	}
	uri := r.URL.Path + "?PageSize=" + strconv.Itoa(size)
	writeJSON(w, http.StatusOK, map[string]any{"faxes": objs, "page": 0, "page_size": size,
		"uri": uri, "first_page_uri": uri + "&Page=0", "next_page_uri": nil, "previous_page_uri": nil})
}
