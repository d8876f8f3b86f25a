// Package sinchfax simulates the part of the Sinch Fax API v3 that faxhook's sinch_v3 profile
// uses, for tests and demos: sending a fax (JSON or multipart, one fax per "to"), a fax's state,
// the list of faxes, a fax's PDF, and (simulator only) a received fax. Its JSON, statuses and auth
// follow Sinch's public SDK (sinch/sinch-sdk-node packages/fax: models/v3/fax/fax.ts, enums.ts,
// fax-money.ts, faxes-list.ts, rest/v3/faxes/faxes-api.ts): HTTP Basic keyId:keySecret, routes
// under /v3/projects/{projectId}, ids as strings (ULID-like), status QUEUED, IN_PROGRESS,
// COMPLETED or FAILURE, price {"amount":"0.0700","currencyCode":"USD"}, RFC 3339 times. It does
// not send Sinch's own (unsigned) webhooks.
//
// A sent fax moves on by one step every Config.Tick, read from Config.Now: QUEUED, then
// IN_PROGRESS with pagesSentSuccessfully 0, 1, … up to numberOfPages, then COMPLETED. A fax to
// one of Config.FailTo goes QUEUED, IN_PROGRESS (0 pages, then 1), then FAILURE with
// errorType CALL_ERROR after its first page.
package sinchfax

import (
	"bytes"
	"crypto/rand"
	"encoding/base32"
	"encoding/base64"
	"encoding/json"
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

// Config configures a Service.
type Config struct {
	// KeyID and KeySecret are the HTTP Basic credentials every request must carry; both empty:
	// no authentication.
	KeyID, KeySecret string
	// ProjectID is the {projectId} of the routes, /v3/projects/{projectId}/faxes. Default "p1".
	ProjectID string
	// Tick is how long a sent fax stays in each step. Default 200ms.
	Tick time.Duration
	// Now is the clock. Default time.Now.
	Now func() time.Time
	// FailTo lists numbers to which every fax fails after its first page (CALL_ERROR).
	FailTo []string
	// NoPageCount leaves pagesSentSuccessfully out of fax objects, as the SDK's older Fax
	// model does: faxhook then sends no page events, only fax_completed.
	NoPageCount bool
}

// Service is the simulated Sinch Fax API; it is an http.Handler.
type Service struct {
	cfg   Config
	mu    sync.Mutex
	faxes map[string]*simFax
	order []string // ids in creation order
}

type simFax struct {
	id, direction, from, to string
	pages                   int
	created                 time.Time
	callbackURL             string
	labels                  map[string]string
	pdf                     []byte
	fails                   bool
}

// New returns a Service.
func New(cfg Config) *Service {
	if cfg.ProjectID == "" {
		cfg.ProjectID = "p1"
	}
	if cfg.Tick <= 0 {
		cfg.Tick = 200 * time.Millisecond
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Service{cfg: cfg, faxes: map[string]*simFax{}}
}

// Prefix is the path under which the service's fax routes live, /v3/projects/{projectId}.
func (s *Service) Prefix() string { return "/v3/projects/" + s.cfg.ProjectID }

// crockford is the base32 alphabet of ULIDs.
var crockford = base32.NewEncoding("0123456789ABCDEFGHJKMNPQRSTVWXYZ").WithPadding(base32.NoPadding)

func newID() string {
	var b [16]byte
	rand.Read(b[:])
	return crockford.EncodeToString(b[:])[:26]
}

// countPages counts the page objects of a PDF ("/Type /Page", not "/Type /Pages").
func countPages(pdf []byte) int {
	return bytes.Count(pdf, []byte("/Type /Page")) - bytes.Count(pdf, []byte("/Type /Pages"))
}

func rfc3339(t time.Time) string { return t.UTC().Format(time.RFC3339) }

// money is Sinch's FaxMoney.
type money struct {
	Amount       string `json:"amount"`
	CurrencyCode string `json:"currencyCode"`
}

// object is the Sinch Fax object of f now.
func (s *Service) object(f *simFax, now time.Time) map[string]any {
	o := map[string]any{
		"id": f.id, "direction": f.direction, "from": f.from, "to": f.to, "numberOfPages": f.pages,
		"createTime": rfc3339(f.created), "retryCount": 0, "projectId": s.cfg.ProjectID,
		"hasFile": "true", "labels": f.labels,
	}
	if f.callbackURL != "" {
		o["callbackUrl"] = f.callbackURL
	}
	status, done, end := "COMPLETED", f.pages, f.created
	if f.direction == "OUTBOUND" {
		step := int(now.Sub(f.created) / s.cfg.Tick)
		switch {
		case step <= 0:
			status, done = "QUEUED", 0
		case f.fails && step >= 3:
			status, done = "FAILURE", min(1, f.pages)
			end = f.created.Add(3 * s.cfg.Tick)
			o["errorType"], o["errorCode"], o["errorMessage"] = "CALL_ERROR", 41, "The line was busy (simulated)"
		case f.fails:
			status, done = "IN_PROGRESS", min(step-1, 1, f.pages)
		case step-1 > f.pages:
			end = f.created.Add(time.Duration(f.pages+2) * s.cfg.Tick)
		default:
			status, done = "IN_PROGRESS", step-1
		}
	}
	o["status"] = status
	if !s.cfg.NoPageCount && f.direction == "OUTBOUND" {
		o["pagesSentSuccessfully"] = done
	}
	if status == "COMPLETED" || status == "FAILURE" {
		o["completedTime"] = rfc3339(end)
		o["price"] = money{Amount: fmt.Sprintf("%d.%04d", done*700/10000, done*700%10000), CurrencyCode: "USD"}
	}
	return o
}

// sinchError writes Sinch's error shape.
func sinchError(w http.ResponseWriter, code int, status, msg string) {
	writeJSON(w, code, map[string]any{"code": code, "status": status, "message": msg})
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(v)
}

// ServeHTTP serves the routes under Prefix, and POST /_sim/inbound (simulator only: a fax is
// received, JSON {"from","to","file": base64 PDF}).
func (s *Service) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if s.cfg.KeyID != "" || s.cfg.KeySecret != "" {
		user, pass, ok := r.BasicAuth()
		if !ok || user != s.cfg.KeyID || pass != s.cfg.KeySecret {
			sinchError(w, http.StatusUnauthorized, "UNAUTHENTICATED", "invalid credentials")
			return
		}
	}
	if r.URL.Path == "/_sim/inbound" && r.Method == http.MethodPost {
		s.inbound(w, r)
		return
	}
	rest, ok := strings.CutPrefix(r.URL.Path, s.Prefix()+"/faxes")
	if !ok {
		sinchError(w, http.StatusNotFound, "NOT_FOUND", "no such route")
		return
	}
	segs := strings.Split(strings.Trim(rest, "/"), "/")
	switch {
	case rest == "" && r.Method == http.MethodPost:
		s.send(w, r)
	case rest == "" && r.Method == http.MethodGet:
		s.list(w, r)
	case len(segs) == 1 && r.Method == http.MethodGet:
		s.get(w, segs[0])
	case len(segs) == 2 && segs[1] == "file.pdf" && r.Method == http.MethodGet:
		s.file(w, segs[0])
	default:
		sinchError(w, http.StatusNotFound, "NOT_FOUND", "no such route")
	}
}

// sendRequest is the JSON send body (FaxRequestJson): "to" is a number or a list of them.
type sendRequest struct {
	To          json.RawMessage   `json:"to"`
	From        string            `json:"from"`
	Files       []base64File      `json:"files"`
	CallbackURL string            `json:"callbackUrl"`
	Labels      map[string]string `json:"labels"`
}

type base64File struct {
	File     string `json:"file"`
	FileType string `json:"fileType"`
}

func (s *Service) send(w http.ResponseWriter, r *http.Request) {
	var (
		to          []string
		list        bool
		pdf         []byte
		from, cb    string
		labels      = map[string]string{}
		contentType string
	)
	contentType, _, _ = mime.ParseMediaType(r.Header.Get("Content-Type"))
	switch contentType {
	case "application/json":
		var req sendRequest
		if err := json.NewDecoder(io.LimitReader(r.Body, 64<<20)).Decode(&req); err != nil {
			sinchError(w, http.StatusBadRequest, "INVALID_ARGUMENT", "body: "+err.Error())
			return
		}
		if err := json.Unmarshal(req.To, &to); err == nil {
			list = true
		} else {
			var one string
			if err := json.Unmarshal(req.To, &one); err != nil || one == "" {
				sinchError(w, http.StatusBadRequest, "INVALID_ARGUMENT", "to: a number or a list of numbers")
				return
			}
			to = []string{one}
		}
		for _, f := range req.Files {
			b, err := base64.StdEncoding.DecodeString(f.File)
			if err != nil || f.FileType != "PDF" {
				sinchError(w, http.StatusBadRequest, "INVALID_ARGUMENT", "files: base64 PDF files only")
				return
			}
			pdf = append(pdf, b...)
		}
		from, cb = req.From, req.CallbackURL
		for k, v := range req.Labels {
			labels[k] = v
		}
	case "multipart/form-data":
		if err := r.ParseMultipartForm(64 << 20); err != nil {
			sinchError(w, http.StatusBadRequest, "INVALID_ARGUMENT", "form: "+err.Error())
			return
		}
		to, list = r.MultipartForm.Value["to"], len(r.MultipartForm.Value["to"]) > 1
		from, cb = r.FormValue("from"), r.FormValue("callbackUrl")
		for _, fh := range r.MultipartForm.File["file"] {
			f, err := fh.Open()
			if err != nil {
				sinchError(w, http.StatusBadRequest, "INVALID_ARGUMENT", "file: "+err.Error())
				return
			}
			b, _ := io.ReadAll(f)
			f.Close()
			pdf = append(pdf, b...)
		}
	default:
		sinchError(w, http.StatusUnsupportedMediaType, "INVALID_ARGUMENT", "JSON or multipart/form-data")
		return
	}
	if len(to) == 0 || len(pdf) == 0 {
		sinchError(w, http.StatusBadRequest, "INVALID_ARGUMENT", "to and a file are required")
		return
	}
	now := s.cfg.Now()
	s.mu.Lock()
	var objs []map[string]any
	for _, num := range to {
		f := &simFax{id: newID(), direction: "OUTBOUND", from: from, to: num, pages: max(1, countPages(pdf)),
			created: now, callbackURL: cb, labels: labels, pdf: pdf, fails: slices.Contains(s.cfg.FailTo, num)}
		s.faxes[f.id] = f
		s.order = append(s.order, f.id)
		objs = append(objs, s.object(f, now))
	}
	s.mu.Unlock()
	// Several recipients answer a FaxesList; one answers the fax itself (faxes-api.ts).
	if list && len(objs) > 1 {
		writeJSON(w, http.StatusOK, map[string]any{"faxes": objs})
		return
	}
	writeJSON(w, http.StatusOK, objs[0])
}

func (s *Service) inbound(w http.ResponseWriter, r *http.Request) {
	var req struct{ From, To, File string }
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		sinchError(w, http.StatusBadRequest, "INVALID_ARGUMENT", "body: "+err.Error())
		return
	}
	pdf, err := base64.StdEncoding.DecodeString(req.File)
	if err != nil || len(pdf) == 0 {
		sinchError(w, http.StatusBadRequest, "INVALID_ARGUMENT", "file: base64 PDF")
		return
	}
	now := s.cfg.Now()
	s.mu.Lock()
	f := &simFax{id: newID(), direction: "INBOUND", from: req.From, to: req.To, pages: max(1, countPages(pdf)),
		created: now, labels: map[string]string{}, pdf: pdf}
	s.faxes[f.id] = f
	s.order = append(s.order, f.id)
	o := s.object(f, now)
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, o)
}

func (s *Service) get(w http.ResponseWriter, id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	f := s.faxes[id]
	if f == nil {
		sinchError(w, http.StatusNotFound, "NOT_FOUND", "fax "+id+" not found")
		return
	}
	writeJSON(w, http.StatusOK, s.object(f, s.cfg.Now()))
}

func (s *Service) file(w http.ResponseWriter, id string) {
	s.mu.Lock()
	f := s.faxes[id]
	s.mu.Unlock()
	if f == nil {
		sinchError(w, http.StatusNotFound, "NOT_FOUND", "fax "+id+" not found")
		return
	}
	w.Header().Set("Content-Type", "application/pdf")
	w.Write(f.pdf)
}

// list answers GET /faxes?direction=&status=&pageSize=&page=; any other query parameter (such
// as Phaxio's per_page) is refused with 400, as a strict API does.
func (s *Service) list(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	for k := range q {
		if !slices.Contains([]string{"direction", "status", "pageSize", "page", "createTime", "to", "from"}, k) {
			sinchError(w, http.StatusBadRequest, "INVALID_ARGUMENT", "unknown query parameter "+strconv.Quote(k))
			return
		}
	}
	dir := q.Get("direction")
	if dir != "" && dir != "OUTBOUND" && dir != "INBOUND" {
		sinchError(w, http.StatusBadRequest, "INVALID_ARGUMENT", "direction: OUTBOUND or INBOUND")
		return
	}
	pageSize := 100
	if v := q.Get("pageSize"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 1000 {
			sinchError(w, http.StatusBadRequest, "INVALID_ARGUMENT", "pageSize: 1 to 1000")
			return
		}
		pageSize = n
	}
	now := s.cfg.Now()
	s.mu.Lock()
	objs := []map[string]any{}
	for i := len(s.order) - 1; i >= 0 && len(objs) < pageSize; i-- { // newest first
		f := s.faxes[s.order[i]]
		if dir != "" && f.direction != dir {
			continue
		}
		o := s.object(f, now)
		if st := q.Get("status"); st != "" && o["status"] != st {
			continue
		}
		objs = append(objs, o)
	}
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, map[string]any{"faxes": objs, "page": 1, "pageSize": pageSize, "totalItems": len(objs)})
}
