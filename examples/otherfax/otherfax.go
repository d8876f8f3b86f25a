// Package otherfax is a second simulated fax service, for tests and demos of faxhook in front of a
// fax API that is not shaped like Phaxio's. Its faxes live and die exactly like those of package
// faxapp (it runs a faxapp.Service inside and translates every call), but its REST API looks
// nothing like Phaxio v2.1: JSON requests instead of forms, a bearer token instead of HTTP Basic,
// "jobs" with their own field names, upper-case states, Unix timestamps, nested failure objects
// and cursor paging. faxhook fronts it with configuration alone: the mapping below makes faxhook
// see the same v2.1 fax objects, and so send the same webhooks, as for faxapp.
//
// The service never sends webhooks: notify_url is accepted and ignored; that is faxhook's job.
//
// # API
//
// Every call needs "Authorization: Bearer <Config.Token>" (401 otherwise). Errors are
// {"error":{"code":"not_found","detail":"Job not found"}} with the HTTP status.
//
//	POST /api/fax/jobs                 send: {"recipients":["+15550000000"],"document_base64":"JVBERi0…",
//	                                   "document_url":"https://…","labels":{"order":"42"},"caller_id":"+1…",
//	                                   "notify_url":"https://…","simulate_failure":"line"}
//	                                   → 201 {"accepted":true,"job_id":101000}
//	GET  /api/fax/jobs/{job_id}        → {"job":{…}}
//	GET  /api/fax/jobs                 ?limit=25&cursor=…&kind=outbound&state=DELIVERED
//	                                   → {"items":[{…},…],"next":"p2"|null,"total":N}, newest first
//	POST /api/fax/jobs/{job_id}/retry  send again as a new job; optional body {"notify_url":"…"}
//	                                   → 201 {"accepted":true,"job_id":101001}
//	POST /api/fax/jobs/{job_id}/cancel → {"job":{…}}
//	GET  /api/fax/jobs/{job_id}/document → the PDF
//	POST /api/fax/inbound              simulate a received fax: {"from":"+1…","to":"+1…","document_base64":"…"}
//	                                   → 201 {"accepted":true,"job_id":N}
//
// One of document_base64 and document_url is required; simulate_failure is one of line,
// document, protocol, fatal, general (faxapp's test_fail). A job:
//
//	{"job_id":101000,"kind":"outbound","state":"PARTIAL","sandbox":true,"page_count":3,
//	 "submitted":1636043310.000,"finished":1636043318.000,"caller_id":"+15551110000","remote":null,
//	 "line_number":null,"price_cents":21,"labels":{"order":"42"},
//	 "failure":{"category":"protocol","code":6,"text":"Error communicating with far side"},
//	 "destinations":[
//	  {"number":"+15550000000","state":"DONE","retries":0,"page":3,"finished":1636043315.000,
//	   "line":{"bps":14400,"ppm":8040},"failure":null},
//	  {"number":"+15550000003","state":"ERROR","retries":0,"page":2,"finished":1636043314.000,
//	   "line":null,"failure":{"category":"protocol","code":6,"text":"Error communicating with far side"}}]}
//
// kind is outbound or inbound; state is PENDING, BATCHED, ACTIVE, DELIVERED, PARTIAL or FAILED; a
// destination's state is WAITING, DIALING, BUSY_RETRY, TRANSMITTING, DONE or ERROR; page is the
// page now (or last) on the wire; times are seconds since 1970 with milliseconds; remote
// ({"number","name"}) and line_number describe the far end and the receiving line of an inbound
// job. Failure categories are line, document, protocol, fatal and general.
//
// # Mapping
//
// ExampleMapping returns the mapping; this is its JSON (ExampleMappingJSON), the value of the
// faxhook app's "mapping" option in Caddy's JSON config:
//
//	{
//	  "send": "POST /api/fax/jobs",
//	  "resend": "POST /api/fax/jobs/{id}/retry",
//	  "cancel": "POST /api/fax/jobs/{id}/cancel",
//	  "status": "GET /api/fax/jobs/{id}",
//	  "list": "GET /api/fax/jobs",
//	  "file": "GET /api/fax/jobs/{id}/document",
//	  "object": "job",
//	  "list_objects": "items",
//	  "send_id": "job_id",
//	  "list_received": "kind=inbound&limit=100",
//	  "fields": {
//	    "id": "job_id",
//	    "direction": "kind",
//	    "status": "state",
//	    "is_test": "sandbox",
//	    "num_pages": "page_count",
//	    "created_at": "submitted",
//	    "completed_at": "finished",
//	    "caller_id": "caller_id",
//	    "from_number": "remote.number",
//	    "to_number": "line_number",
//	    "caller_name": "remote.name",
//	    "cost": "price_cents",
//	    "tags": "labels",
//	    "error_type": "failure.category",
//	    "error_id": "failure.code",
//	    "error_message": "failure.text",
//	    "recipients": "destinations"
//	  },
//	  "recipient": {
//	    "phone_number": "number",
//	    "status": "state",
//	    "retry_count": "retries",
//	    "completed_at": "finished",
//	    "current_page": "page",
//	    "bitrate": "line.bps",
//	    "resolution": "line.ppm",
//	    "error_type": "failure.category",
//	    "error_id": "failure.code",
//	    "error_message": "failure.text"
//	  },
//	  "status_map": {
//	    "PENDING": "queued",
//	    "BATCHED": "pendingbatch",
//	    "ACTIVE": "inprogress",
//	    "DELIVERED": "success",
//	    "PARTIAL": "partialsuccess",
//	    "FAILED": "failure"
//	  },
//	  "recipient_status_map": {
//	    "WAITING": "",
//	    "DIALING": "ringing",
//	    "BUSY_RETRY": "willretry",
//	    "TRANSMITTING": "callactive",
//	    "DONE": "success",
//	    "ERROR": "failure"
//	  },
//	  "direction_map": {
//	    "outbound": "sent",
//	    "inbound": "received"
//	  },
//	  "error_type_map": {
//	    "line": "lineError",
//	    "document": "documentConversionError",
//	    "protocol": "faxError",
//	    "fatal": "fatalError",
//	    "general": "generalError"
//	  },
//	  "time_format": "unix",
//	  "callback_field": "notify_url"
//	}
//
// Times come out in UTC; set "time_zone" (e.g. "America/Chicago") to write them in another zone.
package otherfax

import (
	"bytes"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/faxhook/caddy-faxhook/examples/faxapp"
	"github.com/faxhook/caddy-faxhook/module/profile/fax"
)

// DefaultMaxUpload is the largest accepted request body (300 MiB, a 200 MiB document in base64)
// when Config.MaxUpload is zero.
const DefaultMaxUpload = 300 << 20

// Credentials of the inner faxapp.Service; they never leave the process.
const (
	innerKey    = "otherfax"
	innerSecret = "inner"
)

// Config configures a Service.
type Config struct {
	Token     string           // bearer token required on every call (401 otherwise)
	Tick      time.Duration    // duration of one simulation step; default faxapp.DefaultTick
	Seed      int64            // seed for ids and simulated outcomes, as for faxapp
	Now       func() time.Time // clock; default time.Now
	MaxUpload int64            // largest accepted request body in bytes; default DefaultMaxUpload
}

// Service is the simulated fax service. It implements http.Handler with all routes under
// /api/fax/; it is safe for concurrent use. Job ids are those of a faxapp.Service with the same
// seed: a faxapp and an otherfax given the same calls at the same instants have the same faxes
// under the same ids.
type Service struct {
	cfg   Config
	inner *faxapp.Service
}

// New returns a Service with cfg's zero values replaced by defaults.
func New(cfg Config) *Service {
	if cfg.Tick <= 0 {
		cfg.Tick = faxapp.DefaultTick
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.MaxUpload <= 0 {
		cfg.MaxUpload = DefaultMaxUpload
	}
	inner := faxapp.New(faxapp.Config{
		APIKey: innerKey, APISecret: innerSecret, Tick: cfg.Tick, Seed: cfg.Seed, Now: cfg.Now,
		MaxUpload: cfg.MaxUpload,
	})
	return &Service{cfg: cfg, inner: inner}
}

// Vocabularies: v2.1 value → otherfax value.
var (
	jobStates = map[string]string{
		fax.StatusQueued: "PENDING", fax.StatusPendingBatch: "BATCHED", fax.StatusInProgress: "ACTIVE",
		fax.StatusSuccess: "DELIVERED", fax.StatusPartialSuccess: "PARTIAL", fax.StatusFailure: "FAILED",
	}
	destinationStates = map[string]string{
		"": "WAITING", fax.StatusQueued: "WAITING", fax.RecipientRinging: "DIALING",
		fax.RecipientWillRetry: "BUSY_RETRY", fax.RecipientCallActive: "TRANSMITTING",
		fax.StatusSuccess: "DONE", fax.StatusFailure: "ERROR",
	}
	kinds      = map[string]string{fax.DirectionSent: "outbound", fax.DirectionReceived: "inbound"}
	categories = map[string]string{
		"lineError": "line", "documentConversionError": "document", "faxError": "protocol",
		"fatalError": "fatal", "generalError": "general",
	}
)

// translate looks v up in vocab; unknown values pass unchanged.
func translate(vocab map[string]string, v string) string {
	if t, ok := vocab[v]; ok {
		return t
	}
	return v
}

// untranslate finds the v2.1 value of an otherfax value.
func untranslate(vocab map[string]string, v string) (string, bool) {
	for k, t := range vocab {
		if t == v && k != "" {
			return k, true
		}
	}
	return "", false
}

// job is a fax as otherfax shows it.
type job struct {
	JobID        int64             `json:"job_id"`
	Kind         string            `json:"kind"`
	State        string            `json:"state"`
	Sandbox      bool              `json:"sandbox"`
	PageCount    int               `json:"page_count"`
	Submitted    json.Number       `json:"submitted"`
	Finished     *json.Number      `json:"finished"`
	CallerID     *string           `json:"caller_id"`
	Remote       *remote           `json:"remote"`
	LineNumber   *string           `json:"line_number"`
	PriceCents   int               `json:"price_cents"`
	Labels       map[string]string `json:"labels"`
	Failure      *failure          `json:"failure"`
	Destinations []destination     `json:"destinations"`
}

type remote struct {
	Number *string `json:"number"`
	Name   *string `json:"name"`
}

type failure struct {
	Category *string `json:"category"`
	Code     *int    `json:"code"`
	Text     *string `json:"text"`
}

type destination struct {
	Number   string       `json:"number"`
	State    string       `json:"state"`
	Retries  int          `json:"retries"`
	Page     int          `json:"page"`
	Finished *json.Number `json:"finished"`
	Line     *line        `json:"line"`
	Failure  *failure     `json:"failure"`
}

type line struct {
	BPS *int `json:"bps"`
	PPM *int `json:"ppm"`
}

// innerFax is a fax as the inner faxapp returns it, recipients with their x_current_page.
type innerFax struct {
	fax.Fax
	Recipients []innerRecipient `json:"recipients"`
}

type innerRecipient struct {
	fax.Recipient
	CurrentPage int `json:"x_current_page"`
}

// epoch turns a v2.1 time into seconds since 1970 with milliseconds.
func epoch(s string) (json.Number, error) {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return "", fmt.Errorf("parsing time %q: %w", s, err)
	}
	ms := t.UnixMilli()
	sign := ""
	if ms < 0 {
		sign, ms = "-", -ms
	}
	return json.Number(fmt.Sprintf("%s%d.%03d", sign, ms/1000, ms%1000)), nil
}

func epochPtr(s *string) (*json.Number, error) {
	if s == nil {
		return nil, nil
	}
	n, err := epoch(*s)
	return &n, err
}

func failureOf(typ *string, id *int, msg *string) *failure {
	if typ == nil && id == nil && msg == nil {
		return nil
	}
	f := &failure{Code: id, Text: msg}
	if typ != nil {
		c := translate(categories, *typ)
		f.Category = &c
	}
	return f
}

// jobOf translates a faxapp fax.
func jobOf(f *innerFax) (*job, error) {
	j := &job{
		JobID: f.ID, Kind: translate(kinds, f.Direction), State: translate(jobStates, f.Status),
		Sandbox: f.IsTest, PageCount: f.NumPages, CallerID: f.CallerID, LineNumber: f.ToNumber,
		PriceCents: f.Cost, Labels: f.Tags, Failure: failureOf(f.ErrorType, f.ErrorID, f.ErrorMessage),
		Destinations: make([]destination, 0, len(f.Recipients)),
	}
	if j.Labels == nil {
		j.Labels = map[string]string{}
	}
	var err error
	if j.Submitted, err = epoch(f.CreatedAt); err != nil {
		return nil, err
	}
	if j.Finished, err = epochPtr(f.CompletedAt); err != nil {
		return nil, err
	}
	if f.FromNumber != nil || f.CallerName != nil {
		j.Remote = &remote{Number: f.FromNumber, Name: f.CallerName}
	}
	for _, r := range f.Recipients {
		status := ""
		if r.Status != nil {
			status = *r.Status
		}
		d := destination{
			Number: r.PhoneNumber, State: translate(destinationStates, status), Retries: r.RetryCount,
			Page: r.CurrentPage, Failure: failureOf(r.ErrorType, r.ErrorID, r.ErrorMessage),
		}
		if d.Finished, err = epochPtr(r.CompletedAt); err != nil {
			return nil, err
		}
		if r.Bitrate != nil || r.Resolution != nil {
			d.Line = &line{BPS: r.Bitrate, PPM: r.Resolution}
		}
		j.Destinations = append(j.Destinations, d)
	}
	return j, nil
}

// apiError is the error body.
type apiError struct {
	Error struct {
		Code   string `json:"code"`
		Detail string `json:"detail"`
	} `json:"error"`
}

// errorCodes name the HTTP statuses the service answers with.
var errorCodes = map[int]string{
	http.StatusBadRequest:            "bad_request",
	http.StatusUnauthorized:          "unauthorized",
	http.StatusNotFound:              "not_found",
	http.StatusMethodNotAllowed:      "method_not_allowed",
	http.StatusConflict:              "conflict",
	http.StatusRequestEntityTooLarge: "too_large",
	http.StatusUnprocessableEntity:   "invalid",
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(v)
}

func fail(w http.ResponseWriter, code int, detail string) {
	var e apiError
	e.Error.Code, e.Error.Detail = errorCodes[code], detail
	if e.Error.Code == "" {
		e.Error.Code = "error"
	}
	writeJSON(w, code, e)
}

// accepted answers a created job.
func accepted(w http.ResponseWriter, id int64) {
	writeJSON(w, http.StatusCreated, struct {
		Accepted bool  `json:"accepted"`
		JobID    int64 `json:"job_id"`
	}{true, id})
}

// ServeHTTP authenticates the request with its bearer token and dispatches it.
func (s *Service) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	token, hasToken := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !hasToken || s.cfg.Token == "" || subtle.ConstantTimeCompare([]byte(token), []byte(s.cfg.Token)) != 1 {
		w.Header().Set("WWW-Authenticate", `Bearer realm="otherfax"`)
		fail(w, http.StatusUnauthorized, "Missing or invalid bearer token")
		return
	}
	rest, found := strings.CutPrefix(r.URL.Path, "/api/fax/")
	if !found {
		fail(w, http.StatusNotFound, "No such endpoint")
		return
	}
	seg := strings.Split(strings.Trim(rest, "/"), "/")
	route := func(method string, h func()) {
		if r.Method != method {
			w.Header().Set("Allow", method)
			fail(w, http.StatusMethodNotAllowed, "Method not allowed")
			return
		}
		h()
	}
	switch {
	case len(seg) == 1 && seg[0] == "jobs":
		switch r.Method {
		case http.MethodGet:
			s.list(w, r)
		case http.MethodPost:
			s.create(w, r)
		default:
			w.Header().Set("Allow", "GET, POST")
			fail(w, http.StatusMethodNotAllowed, "Method not allowed")
		}
	case len(seg) == 2 && seg[0] == "jobs":
		route(http.MethodGet, func() { s.get(w, seg[1]) })
	case len(seg) == 3 && seg[0] == "jobs" && seg[2] == "retry":
		route(http.MethodPost, func() { s.retry(w, r, seg[1]) })
	case len(seg) == 3 && seg[0] == "jobs" && seg[2] == "cancel":
		route(http.MethodPost, func() { s.cancel(w, seg[1]) })
	case len(seg) == 3 && seg[0] == "jobs" && seg[2] == "document":
		route(http.MethodGet, func() { s.document(w, seg[1]) })
	case len(seg) == 1 && seg[0] == "inbound":
		route(http.MethodPost, func() { s.inbound(w, r) })
	default:
		fail(w, http.StatusNotFound, "No such endpoint")
	}
}

// recorder captures the inner service's answer.
type recorder struct {
	header http.Header
	code   int
	body   bytes.Buffer
}

// Header implements http.ResponseWriter.
func (rec *recorder) Header() http.Header { return rec.header }

// Write implements http.ResponseWriter.
func (rec *recorder) Write(b []byte) (int, error) { return rec.body.Write(b) }

// WriteHeader implements http.ResponseWriter; the first status counts.
func (rec *recorder) WriteHeader(code int) {
	if rec.code == 0 {
		rec.code = code
	}
}

// innerEnvelope is the inner service's v2.1 envelope.
type innerEnvelope struct {
	Success bool            `json:"success"`
	Message string          `json:"message"`
	Data    json.RawMessage `json:"data"`
	Paging  *struct {
		Total int `json:"total"`
	} `json:"paging"`
}

// call makes a v2.1 call on the inner service. For JSON answers env is decoded; a failed call
// is returned as an *innerError carrying the status and message to pass on.
func (s *Service) call(method, path, contentType string, body []byte) (*recorder, *innerEnvelope, error) {
	req, err := http.NewRequest(method, "http://faxapp.internal"+path, bytes.NewReader(body))
	if err != nil {
		return nil, nil, fmt.Errorf("building the inner request: %w", err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	req.SetBasicAuth(innerKey, innerSecret)
	rec := &recorder{header: http.Header{}}
	s.inner.ServeHTTP(rec, req)
	if rec.code == 0 {
		rec.code = http.StatusOK
	}
	if !strings.HasPrefix(rec.header.Get("Content-Type"), "application/json") {
		return rec, nil, nil
	}
	var env innerEnvelope
	if err := json.Unmarshal(rec.body.Bytes(), &env); err != nil {
		return nil, nil, fmt.Errorf("decoding the inner answer: %w", err)
	}
	if rec.code != http.StatusOK || !env.Success {
		return rec, &env, &innerError{code: rec.code, msg: env.Message}
	}
	return rec, &env, nil
}

// innerError is a failed inner call.
type innerError struct {
	code int
	msg  string
}

// Error implements error.
func (e *innerError) Error() string { return fmt.Sprintf("%d %s", e.code, e.msg) }

// answerError passes an inner failure on, or answers 500.
func answerError(w http.ResponseWriter, err error) {
	if ie, ok := errors.AsType[*innerError](err); ok {
		msg := strings.ReplaceAll(ie.msg, "Fax", "Job")
		fail(w, ie.code, msg)
		return
	}
	fail(w, http.StatusInternalServerError, err.Error())
}

// validID accepts the decimal job ids the service hands out.
func validID(id string) bool {
	_, err := strconv.ParseInt(id, 10, 64)
	return err == nil
}

// fetch returns one job.
func (s *Service) fetch(id string) (*job, error) {
	_, env, err := s.call(http.MethodGet, "/v2.1/faxes/"+id, "", nil)
	if err != nil {
		return nil, err
	}
	var f innerFax
	if err := json.Unmarshal(env.Data, &f); err != nil {
		return nil, fmt.Errorf("decoding fax %s: %w", id, err)
	}
	return jobOf(&f)
}

func (s *Service) get(w http.ResponseWriter, id string) {
	if !validID(id) {
		fail(w, http.StatusNotFound, "Job not found")
		return
	}
	j, err := s.fetch(id)
	if err != nil {
		answerError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, struct {
		Job *job `json:"job"`
	}{j})
}

// createRequest is the body of POST /api/fax/jobs.
type createRequest struct {
	Recipients      []string          `json:"recipients"`
	DocumentBase64  string            `json:"document_base64"`
	DocumentURL     string            `json:"document_url"`
	Labels          map[string]string `json:"labels"`
	CallerID        string            `json:"caller_id"`
	NotifyURL       string            `json:"notify_url"`
	SimulateFailure string            `json:"simulate_failure"`
}

// readJSON decodes a JSON request body within MaxUpload; on error it has answered. An empty
// body is accepted when optional.
func (s *Service) readJSON(w http.ResponseWriter, r *http.Request, v any, optional bool) bool {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, s.cfg.MaxUpload))
	if err != nil {
		if _, tooBig := errors.AsType[*http.MaxBytesError](err); tooBig {
			fail(w, http.StatusRequestEntityTooLarge, "Request body too large")
		} else {
			fail(w, http.StatusBadRequest, "Could not read request body: "+err.Error())
		}
		return false
	}
	if optional && len(bytes.TrimSpace(body)) == 0 {
		return true
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		fail(w, http.StatusBadRequest, "Request body is not a valid JSON job: "+err.Error())
		return false
	}
	return true
}

// multipartBody builds the inner request's form.
func multipartBody(fields [][2]string, file []byte) (contentType string, body []byte, err error) {
	var b bytes.Buffer
	mw := multipart.NewWriter(&b)
	for _, f := range fields {
		if err := mw.WriteField(f[0], f[1]); err != nil {
			return "", nil, fmt.Errorf("writing field %s: %w", f[0], err)
		}
	}
	if file != nil {
		fw, err := mw.CreateFormFile("file", "document.pdf")
		if err != nil {
			return "", nil, fmt.Errorf("writing the document: %w", err)
		}
		if _, err := fw.Write(file); err != nil {
			return "", nil, fmt.Errorf("writing the document: %w", err)
		}
	}
	if err := mw.Close(); err != nil {
		return "", nil, fmt.Errorf("closing the form: %w", err)
	}
	return mw.FormDataContentType(), b.Bytes(), nil
}

// document decodes document_base64; nil if empty.
func decodeDocument(s string) ([]byte, error) {
	if s == "" {
		return nil, nil
	}
	doc, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		return nil, fmt.Errorf("document_base64 is not base64: %w", err)
	}
	return doc, nil
}

func (s *Service) create(w http.ResponseWriter, r *http.Request) {
	var req createRequest
	if !s.readJSON(w, r, &req, false) {
		return
	}
	doc, err := decodeDocument(req.DocumentBase64)
	switch {
	case err != nil:
		fail(w, http.StatusUnprocessableEntity, err.Error())
		return
	case len(req.Recipients) == 0:
		fail(w, http.StatusUnprocessableEntity, "recipients: at least one number is required")
		return
	case doc == nil && req.DocumentURL == "":
		fail(w, http.StatusUnprocessableEntity, "document_base64 or document_url is required")
		return
	}
	var fields [][2]string
	for _, to := range req.Recipients {
		fields = append(fields, [2]string{"to[]", to})
	}
	if req.DocumentURL != "" {
		fields = append(fields, [2]string{"content_url", req.DocumentURL})
	}
	for k, v := range req.Labels {
		fields = append(fields, [2]string{"tag[" + k + "]", v})
	}
	if req.CallerID != "" {
		fields = append(fields, [2]string{"caller_id", req.CallerID})
	}
	if req.SimulateFailure != "" {
		typ, known := untranslate(categories, req.SimulateFailure)
		if !known {
			fail(w, http.StatusUnprocessableEntity, "simulate_failure must be one of line, document, protocol, fatal, general")
			return
		}
		fields = append(fields, [2]string{"test_fail", typ})
	}
	s.createInner(w, fields, doc)
}

// createInner sends a form to the inner POST /faxes and answers with the new job's id.
func (s *Service) createInner(w http.ResponseWriter, fields [][2]string, doc []byte) {
	ct, body, err := multipartBody(fields, doc)
	if err != nil {
		fail(w, http.StatusInternalServerError, err.Error())
		return
	}
	s.postForJob(w, "/v2.1/faxes", ct, body)
}

// postForJob posts to the Phaxio-shaped backend and answers with the job it created.
func (s *Service) postForJob(w http.ResponseWriter, path, ct string, body []byte) {
	_, env, err := s.call(http.MethodPost, path, ct, body)
	if err != nil {
		answerError(w, err)
		return
	}
	var d struct {
		ID int64 `json:"id"`
	}
	if err := json.Unmarshal(env.Data, &d); err != nil {
		fail(w, http.StatusInternalServerError, "decoding the new job id: "+err.Error())
		return
	}
	accepted(w, d.ID)
}

// inboundRequest is the body of POST /api/fax/inbound.
type inboundRequest struct {
	From           string `json:"from"`
	To             string `json:"to"`
	DocumentBase64 string `json:"document_base64"`
}

func (s *Service) inbound(w http.ResponseWriter, r *http.Request) {
	var req inboundRequest
	if !s.readJSON(w, r, &req, false) {
		return
	}
	doc, err := decodeDocument(req.DocumentBase64)
	switch {
	case err != nil:
		fail(w, http.StatusUnprocessableEntity, err.Error())
		return
	case doc == nil:
		fail(w, http.StatusUnprocessableEntity, "document_base64 is required")
		return
	}
	fields := [][2]string{{"direction", fax.DirectionReceived}}
	if req.From != "" {
		fields = append(fields, [2]string{"from_number", req.From})
	}
	if req.To != "" {
		fields = append(fields, [2]string{"to_number", req.To})
	}
	s.createInner(w, fields, doc)
}

func (s *Service) retry(w http.ResponseWriter, r *http.Request, id string) {
	var req struct {
		NotifyURL string `json:"notify_url"`
	}
	if !s.readJSON(w, r, &req, true) {
		return
	}
	if !validID(id) {
		fail(w, http.StatusNotFound, "Job not found")
		return
	}
	s.postForJob(w, "/v2.1/faxes/"+id+"/resend", "", nil)
}

func (s *Service) cancel(w http.ResponseWriter, id string) {
	if !validID(id) {
		fail(w, http.StatusNotFound, "Job not found")
		return
	}
	if _, _, err := s.call(http.MethodPost, "/v2.1/faxes/"+id+"/cancel", "", nil); err != nil {
		if ie, ok := errors.AsType[*innerError](err); ok && ie.code == http.StatusUnprocessableEntity {
			fail(w, http.StatusConflict, strings.ReplaceAll(ie.msg, "Fax", "Job"))
			return
		}
		answerError(w, err)
		return
	}
	s.get(w, id)
}

func (s *Service) document(w http.ResponseWriter, id string) {
	if !validID(id) {
		fail(w, http.StatusNotFound, "Job not found")
		return
	}
	rec, _, err := s.call(http.MethodGet, "/v2.1/faxes/"+id+"/file", "", nil)
	if err != nil {
		answerError(w, err)
		return
	}
	w.Header().Set("Content-Type", "application/pdf")
	w.Header().Set("Content-Length", strconv.Itoa(rec.body.Len()))
	w.Header().Set("Content-Disposition", fmt.Sprintf(`attachment; filename="job-%s.pdf"`, id))
	_, _ = w.Write(rec.body.Bytes())
}

// list handles GET /api/fax/jobs: newest first, limit per page, an opaque cursor to the next.
func (s *Service) list(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	limit, page := 25, 1
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 1000 {
			fail(w, http.StatusBadRequest, "limit must be an integer between 1 and 1000")
			return
		}
		limit = n
	}
	if v := q.Get("cursor"); v != "" {
		n, err := strconv.Atoi(strings.TrimPrefix(v, "p"))
		if !strings.HasPrefix(v, "p") || err != nil || n < 1 {
			fail(w, http.StatusBadRequest, "cursor is not one this service handed out")
			return
		}
		page = n
	}
	iq := url.Values{"per_page": {strconv.Itoa(limit)}, "page": {strconv.Itoa(page)}}
	if v := q.Get("kind"); v != "" {
		d, ok := untranslate(kinds, v)
		if !ok {
			fail(w, http.StatusBadRequest, "kind must be outbound or inbound")
			return
		}
		iq.Set("direction", d)
	}
	if v := q.Get("state"); v != "" {
		st, ok := untranslate(jobStates, v)
		if !ok {
			fail(w, http.StatusBadRequest, "state must be one of PENDING, BATCHED, ACTIVE, DELIVERED, PARTIAL, FAILED")
			return
		}
		iq.Set("status", st)
	}
	_, env, err := s.call(http.MethodGet, "/v2.1/faxes?"+iq.Encode(), "", nil)
	if err != nil {
		answerError(w, err)
		return
	}
	var faxes []innerFax
	if err := json.Unmarshal(env.Data, &faxes); err != nil {
		fail(w, http.StatusInternalServerError, "decoding the inner list: "+err.Error())
		return
	}
	out := struct {
		Items []*job  `json:"items"`
		Next  *string `json:"next"`
		Total int     `json:"total"`
	}{Items: make([]*job, 0, len(faxes))}
	for i := range faxes {
		j, err := jobOf(&faxes[i])
		if err != nil {
			fail(w, http.StatusInternalServerError, err.Error())
			return
		}
		out.Items = append(out.Items, j)
	}
	if env.Paging != nil {
		out.Total = env.Paging.Total
		if page*limit < out.Total {
			next := "p" + strconv.Itoa(page+1)
			out.Next = &next
		}
	}
	writeJSON(w, http.StatusOK, out)
}
