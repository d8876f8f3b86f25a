// Package faxapp is a simulated fax service that speaks the Phaxio REST API v2.1 (the subset that
// faxhook observes: faxes, their files and phone numbers), for tests and demos of faxhook without a
// Phaxio account.
//
// The service never sends webhooks: callback_url parameters are accepted and ignored (phone
// numbers echo theirs). That is faxhook's job; this service only produces the API traffic and the
// fax states faxhook observes.
//
// # Simulation
//
// A fax's state is a pure function of the clock: it is computed on every read from the time
// elapsed since the fax was created, counted in ticks of Config.Tick, and a plan drawn once per
// recipient at creation from (Config.Seed, fax id, recipient number). No goroutines run; two
// services with the same seed and clock give byte-identical answers to the same calls.
//
// A sent fax is queued (num_pages 0, recipient status null) during tick 0 and in progress from
// tick 1, when its page count becomes known. Each recipient then makes attempts: ringing for one
// tick, then either busy (willretry for two ticks, retry_count+1) or answered (callactive for one
// tick per page), ending in success (bitrate 14400, resolution 8040) or failure. The last four
// digits of a recipient number choose its behaviour:
//
//	0000  success at the first attempt
//	0001  busy once, then success
//	0002  busy at every attempt; after 2 retries fails with lineError 17 "Busy"
//	0003  fails with faxError 6 "Error communicating with far side" during page 2
//	other seeded: ~70% success, ~20% busy once then success, ~10% a lineError after ringing
//
// The send parameter test_fail=<error type> makes every recipient fail with that type right after
// its first ringing tick (ids: lineError 121, documentConversionError 122, faxError 123,
// fatalError 124, generalError 125). A fax is final when all its recipients are: success,
// partialsuccess or failure, with completed_at of the last recipient and the error fields of the
// first failed one. Cost is 7 cents per page per successful recipient (per page for a received
// fax). A cancelled fax fails at once with generalError 126 "Fax cancelled".
//
// Every recipient object carries one extension after the v2.1 fields, named by
// fax.ExtCurrentPage ("x_current_page"): the 1-based page now (or last) on the wire to that
// recipient, 0 before the first page. All faxes are test faxes (is_test true).
//
// Page counts: each uploaded file counts its "/Type /Page" (or "/Type/Page") objects, at least 1;
// each content_url counts 1.
//
// A test receive (POST /v2.1/faxes with direction=received) answers, beyond Phaxio's message,
// "data":{"id":N} so that clients can find the fax it created. The received fax is inprogress for
// one tick, then success.
package faxapp

import (
	"crypto/subtle"
	"encoding/json"
	"errors"
	"mime"
	"mime/multipart"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/faxhook/caddy-faxhook/module/profile/fax"
)

// Default configuration values.
const (
	// DefaultTick is the duration of one simulation step when Config.Tick is zero.
	DefaultTick = 200 * time.Millisecond
	// DefaultMaxUpload is the largest accepted request body (200 MiB) when Config.MaxUpload is zero.
	DefaultMaxUpload = 200 << 20
)

// multipartMemory is the part of a multipart body kept in memory; larger files go to temporary
// files that are removed when the request ends.
const multipartMemory = 1 << 20

// Config configures a Service.
type Config struct {
	APIKey, APISecret string            // HTTP Basic credentials required on every call (401 otherwise)
	Accounts          map[string]string // more accounts: API key → API secret; with any, each account sees only the faxes it sent or received
	Bearer            map[string]string // bearer tokens: token → the API key (APIKey or one of Accounts) a request with `Authorization: Bearer TOKEN` acts as
	Tick              time.Duration     // duration of one simulation step; default DefaultTick
	Seed              int64             // seed for ids, phone numbers and random recipient behaviour
	Now               func() time.Time  // clock; default time.Now
	MaxUpload         int64             // largest accepted request body in bytes; default DefaultMaxUpload
}

// Service is the simulated fax service. It implements http.Handler with all routes under
// /v2.1/; it is safe for concurrent use.
type Service struct {
	cfg Config

	mu         sync.Mutex
	nextID     int64
	faxes      map[int64]*record
	order      []int64 // creation order
	numbers    map[string]*phoneNumber
	numOrder   []string
	numCounter uint64
}

// record is everything the service keeps about one fax; its state is derived from it.
type record struct {
	id        int64
	direction string
	created   time.Time
	spec      sendSpec
	plans     []plan
	from, to  string // received faxes
	file      []byte // GET /file content; nil when none or deleted
	cancelled bool
	cancelAt  time.Time
	owner     string // the API key that sent or received it
}

// sendSpec is what a send (or resend) asked for.
type sendSpec struct {
	to       []string
	pages    int
	file     []byte // first uploaded file, nil if none
	tags     map[string]string
	callerID string
	testFail string
	owner    string // the API key that sent it (a resend keeps it)
}

// New returns a Service with cfg's zero values replaced by defaults. Fax ids start at
// 100000 + 1000*Seed and increase by one per created fax.
func New(cfg Config) *Service {
	if cfg.Tick <= 0 {
		cfg.Tick = DefaultTick
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.MaxUpload <= 0 {
		cfg.MaxUpload = DefaultMaxUpload
	}
	return &Service{
		cfg:     cfg,
		nextID:  100000 + cfg.Seed*1000,
		faxes:   map[int64]*record{},
		numbers: map[string]*phoneNumber{},
	}
}

// Fax returns the current state of fax id in v2.1 form (without extension fields).
func (s *Service) Fax(id int64) (fax.Fax, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	rec, ok := s.faxes[id]
	if !ok {
		return fax.Fax{}, false
	}
	return s.state(rec, s.cfg.Now()).fax, true
}

// File returns the stored file of fax id: the first uploaded file of a sent fax, the file of a
// received fax. It reports false when the fax is unknown or has no (more) file.
func (s *Service) File(id int64) ([]byte, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	rec, ok := s.faxes[id]
	if !ok || rec.file == nil {
		return nil, false
	}
	return rec.file, true
}

// envelope is the v2.1 response envelope.
type envelope struct {
	Success bool    `json:"success"`
	Message string  `json:"message"`
	Data    any     `json:"data,omitempty"`
	Paging  *paging `json:"paging,omitempty"`
}

type paging struct {
	Total   int `json:"total"`
	PerPage int `json:"per_page"`
	Page    int `json:"page"`
}

type idData struct {
	ID int64 `json:"id"`
}

func writeJSON(w http.ResponseWriter, code int, env envelope) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(env)
}

func success(w http.ResponseWriter, msg string, data any) {
	writeJSON(w, http.StatusOK, envelope{Success: true, Message: msg, Data: data})
}

func fail(w http.ResponseWriter, code int, msg string) {
	writeJSON(w, code, envelope{Message: msg})
}

// ServeHTTP authenticates the request with HTTP Basic (or a bearer token of Config.Bearer) and dispatches it to the v2.1 routes.
func (s *Service) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	key, secret, hasAuth := r.BasicAuth()
	if token, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer "); ok && len(s.cfg.Bearer) > 0 {
		key, hasAuth = s.cfg.Bearer[token]
		secret = s.cfg.Accounts[key]
		if key == s.cfg.APIKey {
			secret = s.cfg.APISecret
		}
	}
	if !hasAuth || !s.authentic(key, secret) {
		w.Header().Set("WWW-Authenticate", `Basic realm="faxapp"`)
		fail(w, http.StatusUnauthorized, "Invalid API key or secret")
		return
	}
	rest, found := strings.CutPrefix(r.URL.Path, "/v2.1/")
	if !found {
		fail(w, http.StatusNotFound, "Not found")
		return
	}
	seg := strings.Split(strings.Trim(rest, "/"), "/")
	route := func(methods map[string]func()) {
		if h, ok := methods[r.Method]; ok {
			h()
			return
		}
		allow := make([]string, 0, len(methods))
		for _, m := range []string{http.MethodGet, http.MethodPost, http.MethodDelete} {
			if methods[m] != nil {
				allow = append(allow, m)
			}
		}
		w.Header().Set("Allow", strings.Join(allow, ", "))
		fail(w, http.StatusMethodNotAllowed, "Method not allowed")
	}
	switch {
	case len(seg) == 1 && seg[0] == "faxes":
		route(map[string]func(){
			http.MethodGet:  func() { s.listFaxes(w, r) },
			http.MethodPost: func() { s.createFax(w, r) },
		})
	case len(seg) == 2 && seg[0] == "faxes":
		route(map[string]func(){
			http.MethodGet:    func() { s.getFax(w, key, seg[1]) },
			http.MethodDelete: func() { s.deleteFax(w, key, seg[1]) },
		})
	case len(seg) == 3 && seg[0] == "faxes" && seg[2] == "cancel":
		route(map[string]func(){http.MethodPost: func() { s.cancelFax(w, key, seg[1]) }})
	case len(seg) == 3 && seg[0] == "faxes" && seg[2] == "resend":
		route(map[string]func(){http.MethodPost: func() { s.resendFax(w, key, seg[1]) }})
	case len(seg) == 3 && seg[0] == "faxes" && seg[2] == "file":
		route(map[string]func(){
			http.MethodGet:    func() { s.getFile(w, r, key, seg[1]) },
			http.MethodDelete: func() { s.deleteFile(w, key, seg[1]) },
		})
	case len(seg) == 1 && seg[0] == "phone_numbers":
		route(map[string]func(){
			http.MethodGet:  func() { s.listNumbers(w, r) },
			http.MethodPost: func() { s.createNumber(w, r) },
		})
	case len(seg) == 2 && seg[0] == "phone_numbers":
		route(map[string]func(){
			http.MethodGet:    func() { s.getNumber(w, seg[1]) },
			http.MethodDelete: func() { s.deleteNumber(w, seg[1]) },
		})
	default:
		fail(w, http.StatusNotFound, "Not found")
	}
}

// parseBody parses a urlencoded or multipart body (plus the query string) within MaxUpload. The
// returned cleanup removes the temporary files of multipart uploads; it is never nil. On error it
// has already answered the request.
func (s *Service) parseBody(w http.ResponseWriter, r *http.Request) (form url.Values, files []*multipart.FileHeader, cleanup func(), ok bool) {
	cleanup = func() {}
	r.Body = http.MaxBytesReader(w, r.Body, s.cfg.MaxUpload)
	var err error
	mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if mt == "multipart/form-data" {
		err = r.ParseMultipartForm(multipartMemory)
		if r.MultipartForm != nil {
			mf := r.MultipartForm
			cleanup = func() { _ = mf.RemoveAll() }
			files = append(files, mf.File["file"]...)
			files = append(files, mf.File["file[]"]...)
		}
	} else {
		err = r.ParseForm()
	}
	if err != nil {
		cleanup()
		if _, tooBig := errors.AsType[*http.MaxBytesError](err); tooBig {
			fail(w, http.StatusRequestEntityTooLarge, "Request body too large")
		} else {
			fail(w, http.StatusUnprocessableEntity, "Could not parse request body: "+err.Error())
		}
		return nil, nil, func() {}, false
	}
	return r.Form, files, cleanup, true
}

// values returns the values of name and name[] in that order, skipping empty ones.
func values(form url.Values, name string) []string {
	var out []string
	for _, v := range append(append([]string(nil), form[name]...), form[name+"[]"]...) {
		if v = strings.TrimSpace(v); v != "" {
			out = append(out, v)
		}
	}
	return out
}

// tags returns the tag[NAME]=value parameters.
func tags(form url.Values) map[string]string {
	t := map[string]string{}
	for k, v := range form {
		if name, ok := strings.CutPrefix(k, "tag["); ok && strings.HasSuffix(name, "]") && len(v) > 0 {
			t[strings.TrimSuffix(name, "]")] = v[0]
		}
	}
	return t
}

// normalizeNumber turns a phone number into E.164: separators are removed, ten digits get +1, 11
// digits starting with 1 get +. It reports false if the result is not +[1-9] and 7-15 digits.
func normalizeNumber(s string) (string, bool) {
	var b strings.Builder
	for i, c := range strings.TrimSpace(s) {
		switch {
		case c >= '0' && c <= '9', c == '+' && i == 0:
			b.WriteRune(c)
		case c == ' ', c == '-', c == '(', c == ')', c == '.':
		default:
			return s, false
		}
	}
	n := b.String()
	if !strings.HasPrefix(n, "+") {
		switch {
		case len(n) == 10:
			n = "+1" + n
		case len(n) == 11 && n[0] == '1':
			n = "+" + n
		default:
			return s, false
		}
	}
	if d := len(n) - 1; d < 7 || d > 15 || n[1] == '0' {
		return s, false
	}
	return n, true
}

// keyOf returns the API key a request (already authenticated) acts as: its HTTP Basic user, or
// the key of its bearer token (Config.Bearer).
func (s *Service) keyOf(r *http.Request) string {
	if token, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer "); ok {
		return s.cfg.Bearer[token]
	}
	key, _, _ := r.BasicAuth()
	return key
}

// authentic reports whether key and secret are the credentials of an account: Config.APIKey's
// or one of Config.Accounts.
func (s *Service) authentic(key, secret string) bool {
	want, ok := s.cfg.Accounts[key]
	if !ok {
		want = s.cfg.APISecret
		if subtle.ConstantTimeCompare([]byte(key), []byte(s.cfg.APIKey)) != 1 {
			return false
		}
	}
	return subtle.ConstantTimeCompare([]byte(secret), []byte(want)) == 1
}

// owns reports whether the account with API key owner sees rec: always when the service has
// one account, else when it sent or received the fax.
func (s *Service) owns(owner string, rec *record) bool {
	return len(s.cfg.Accounts) == 0 || rec.owner == owner
}
