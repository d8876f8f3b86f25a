package httpsend

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/faxhook/caddy-faxhook/queue"
	"github.com/faxhook/caddy-faxhook/queue/sign"
)

const (
	testToken = "test-webhook-token"
	faxJSON   = `{"id":5678,"direction":"received","status":"success","is_test":true}`
)

var pdf = []byte("%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj <<>> endobj\n%%EOF\n")

// newJob returns a received-fax webhook job for rawURL.
func newJob(rawURL string) *queue.Job {
	return &queue.Job{
		ID:      "job-1",
		EventID: "evt-1",
		URL:     rawURL,
		Payload: queue.Payload{
			Fields: []queue.Field{
				{Name: "fax", Value: faxJSON},
				{Name: "event_type", Value: "fax_completed"},
			},
			Files: []queue.File{{Name: "file", Filename: "fax-5678.pdf", ContentType: "application/pdf", Data: pdf}},
		},
	}
}

// part is one decoded multipart part.
type part struct {
	name, filename, contentType string
	data                        []byte
}

// parseBody decodes a multipart/form-data body in order, as a receiver would.
func parseBody(t testing.TB, contentType string, body []byte) []part {
	t.Helper()
	mt, params, err := mime.ParseMediaType(contentType)
	if err != nil || mt != "multipart/form-data" {
		t.Fatalf("Content-Type %q: %v", contentType, err)
	}
	mr := multipart.NewReader(bytes.NewReader(body), params["boundary"])
	var parts []part
	for {
		p, err := mr.NextPart()
		if err == io.EOF {
			return parts
		}
		if err != nil {
			t.Fatalf("reading part %d: %v", len(parts), err)
		}
		data, err := io.ReadAll(p)
		if err != nil {
			t.Fatalf("reading part %d: %v", len(parts), err)
		}
		parts = append(parts, part{p.FormName(), p.FileName(), p.Header.Get("Content-Type"), data})
	}
}

// verify recomputes the signature from what the receiver got, the way a Phaxio receiver does.
func verify(token, signature, fullURL string, parts []part) bool {
	var fields []sign.Field
	var files []sign.File
	for _, p := range parts {
		if p.filename != "" {
			files = append(files, sign.FileOf(p.name, p.data))
		} else {
			fields = append(fields, sign.Field{Name: p.name, Value: string(p.data)})
		}
	}
	return sign.Verify(token, signature, fullURL, fields, files)
}

// request is what a recording receiver saw.
type request struct {
	method, requestURI, host string
	header                   http.Header
	body                     []byte
	user, pass               string
	basic                    bool
}

// fullURL rebuilds the URL the request was sent to, as Rails' request.original_url does.
func (r request) fullURL() string { return "http://" + r.host + r.requestURI }

// recorder is a loopback receiver that records requests and answers with status.
type recorder struct {
	srv    *httptest.Server
	mu     sync.Mutex
	got    []request
	status int
	header http.Header
	body   string
}

func newRecorder(t testing.TB, status int) *recorder {
	rec := &recorder{status: status, header: http.Header{}}
	rec.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			t.Errorf("receiver reading body: %v", err)
		}
		u, p, ok := r.BasicAuth()
		rec.mu.Lock()
		rec.got = append(rec.got, request{r.Method, r.RequestURI, r.Host, r.Header.Clone(), body, u, p, ok})
		status, body2 := rec.status, rec.body
		for k, v := range rec.header {
			w.Header()[k] = v
		}
		rec.mu.Unlock()
		w.WriteHeader(status)
		io.WriteString(w, body2)
	}))
	t.Cleanup(rec.srv.Close)
	return rec
}

func (rec *recorder) requests() []request {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	return append([]request(nil), rec.got...)
}

func TestSendDeliversSignedMultipart(t *testing.T) {
	rec := newRecorder(t, http.StatusOK)
	rec.body = "thanks"
	job := newJob(rec.srv.URL + "/phaxio/received?account=42")
	s := New(Options{Token: testToken})
	defer s.CloseIdleConnections()

	res := s.Send(context.Background(), job)
	if res.Err != nil || res.Status != 200 || res.Permanent || res.Body != "thanks" {
		t.Fatalf("Send = %+v", res)
	}
	reqs := rec.requests()
	if len(reqs) != 1 {
		t.Fatalf("receiver got %d requests", len(reqs))
	}
	r := reqs[0]
	if r.method != http.MethodPost || r.requestURI != "/phaxio/received?account=42" {
		t.Errorf("request line %s %s", r.method, r.requestURI)
	}
	for name, want := range map[string]string{
		"User-Agent":    "faxhook",
		HeaderEventID:   "evt-1",
		HeaderAttempt:   "1",
		"Authorization": "",
	} {
		if got := r.header.Get(name); got != want {
			t.Errorf("%s = %q, want %q", name, got, want)
		}
	}
	parts := parseBody(t, r.header.Get("Content-Type"), r.body)
	want := []part{
		{"fax", "", "", []byte(faxJSON)},
		{"event_type", "", "", []byte("fax_completed")},
		{"file", "fax-5678.pdf", "application/pdf", pdf},
	}
	if len(parts) != len(want) {
		t.Fatalf("got %d parts, want %d", len(parts), len(want))
	}
	for i, w := range want {
		p := parts[i]
		if p.name != w.name || p.filename != w.filename || p.contentType != w.contentType || !bytes.Equal(p.data, w.data) {
			t.Errorf("part %d = %+v, want %+v", i, p, w)
		}
	}
	sig := r.header.Get(sign.Header)
	if !verify(testToken, sig, r.fullURL(), parts) {
		t.Errorf("signature %q does not verify for %s", sig, r.fullURL())
	}
	if sig != Signature(testToken, job) {
		t.Errorf("header signature %q != Signature() %q", sig, Signature(testToken, job))
	}
}

func TestSendIdenticalAcrossAttempts(t *testing.T) {
	rec := newRecorder(t, http.StatusNoContent)
	job := newJob(rec.srv.URL + "/hook")
	s := New(Options{Token: testToken})
	defer s.CloseIdleConnections()

	if res := s.Send(context.Background(), job); res.Err != nil {
		t.Fatalf("attempt 1: %v", res.Err)
	}
	job.Attempts = append(job.Attempts, queue.Attempt{At: time.Now(), Status: 500, Error: "x"})
	if res := s.Send(context.Background(), job); res.Err != nil || res.Status != 204 {
		t.Fatalf("attempt 2: %+v", res)
	}
	reqs := rec.requests()
	if len(reqs) != 2 {
		t.Fatalf("receiver got %d requests", len(reqs))
	}
	a, b := reqs[0], reqs[1]
	if !bytes.Equal(a.body, b.body) {
		t.Error("bodies differ between attempts")
	}
	for _, h := range []string{"Content-Type", sign.Header, HeaderEventID} {
		if a.header.Get(h) != b.header.Get(h) || a.header.Get(h) == "" {
			t.Errorf("%s: %q then %q", h, a.header.Get(h), b.header.Get(h))
		}
	}
	if a.header.Get(HeaderAttempt) != "1" || b.header.Get(HeaderAttempt) != "2" {
		t.Errorf("attempt headers %q, %q", a.header.Get(HeaderAttempt), b.header.Get(HeaderAttempt))
	}
}

func TestSendNoTokenNoSignature(t *testing.T) {
	rec := newRecorder(t, http.StatusOK)
	s := New(Options{UserAgent: "faxhook-test/1"})
	defer s.CloseIdleConnections()
	if res := s.Send(context.Background(), newJob(rec.srv.URL)); res.Err != nil {
		t.Fatal(res.Err)
	}
	r := rec.requests()[0]
	if _, ok := r.header[sign.Header]; ok {
		t.Errorf("signature header sent without a token: %q", r.header.Get(sign.Header))
	}
	if ua := r.header.Get("User-Agent"); ua != "faxhook-test/1" {
		t.Errorf("User-Agent %q", ua)
	}
}

func TestSendServerError(t *testing.T) {
	rec := newRecorder(t, http.StatusInternalServerError)
	rec.body = "boom"
	rec.header.Set("Retry-After", "60") // ignored: not 429/503
	s := New(Options{Token: testToken})
	defer s.CloseIdleConnections()
	res := s.Send(context.Background(), newJob(rec.srv.URL))
	if res.Err == nil || res.Permanent || res.Status != 500 || res.Body != "boom" || res.RetryAfter != 0 {
		t.Fatalf("Send = %+v", res)
	}
	if got, want := res.Err.Error(), "receiver answered 500 Internal Server Error"; got != want {
		t.Errorf("Err = %q, want %q", got, want)
	}
}

func TestSendRedirectNotFollowed(t *testing.T) {
	var hits atomic.Int32
	target := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { hits.Add(1) }))
	defer target.Close()
	rec := newRecorder(t, http.StatusFound)
	rec.header.Set("Location", target.URL+"/elsewhere")
	s := New(Options{Token: testToken})
	defer s.CloseIdleConnections()

	res := s.Send(context.Background(), newJob(rec.srv.URL+"/hook"))
	if res.Err == nil || res.Status != http.StatusFound || res.Permanent {
		t.Fatalf("Send = %+v", res)
	}
	if want := "redirect to " + target.URL + "/elsewhere not followed"; !strings.Contains(res.Err.Error(), want) {
		t.Errorf("Err = %q, want it to contain %q", res.Err, want)
	}
	if n := hits.Load(); n != 0 {
		t.Errorf("redirect target got %d requests", n)
	}

	// A relative Location is resolved; credentials in it are not echoed.
	rec.mu.Lock()
	rec.status = http.StatusPermanentRedirect
	rec.header.Set("Location", "http://bob:hunter2@example.net/x")
	rec.mu.Unlock()
	res = s.Send(context.Background(), newJob(rec.srv.URL+"/hook"))
	if res.Err == nil || strings.Contains(res.Err.Error(), "hunter2") || strings.Contains(res.Err.Error(), "bob") {
		t.Errorf("Err = %v", res.Err)
	}
}

// hangingServer accepts requests and never answers until the client goes away.
func hangingServer(t *testing.T) *httptest.Server {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-release:
		}
	}))
	t.Cleanup(func() { close(release); srv.Close() })
	return srv
}

func TestSendTimeout(t *testing.T) {
	srv := hangingServer(t)
	s := New(Options{Timeout: 200 * time.Millisecond})
	defer s.CloseIdleConnections()
	start := time.Now()
	res := s.Send(context.Background(), newJob(srv.URL))
	if el := time.Since(start); el > 5*time.Second {
		t.Errorf("Send took %v", el)
	}
	if res.Err == nil || res.Permanent || res.Status != 0 {
		t.Fatalf("Send = %+v", res)
	}
	if !strings.Contains(res.Err.Error(), "timed out after 200ms") {
		t.Errorf("Err = %q", res.Err)
	}
	if !errors.Is(res.Err, context.DeadlineExceeded) {
		t.Errorf("Err does not wrap context.DeadlineExceeded: %v", res.Err)
	}
}

func TestSendHonoursContext(t *testing.T) {
	srv := hangingServer(t)
	s := New(Options{Timeout: time.Minute})
	defer s.CloseIdleConnections()
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(100*time.Millisecond, cancel)
	start := time.Now()
	res := s.Send(ctx, newJob(srv.URL))
	if el := time.Since(start); el > 5*time.Second {
		t.Errorf("Send took %v after cancellation", el)
	}
	if res.Err == nil || !errors.Is(res.Err, context.Canceled) || strings.Contains(res.Err.Error(), "timed out") {
		t.Errorf("Send = %+v", res)
	}
}

func TestSendConnectionRefused(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	s := New(Options{Token: testToken})
	res := s.Send(context.Background(), newJob("http://user:pa55@"+addr+"/hook"))
	if res.Err == nil || res.Permanent || res.Status != 0 {
		t.Fatalf("Send = %+v", res)
	}
	msg := res.Err.Error()
	if !strings.Contains(msg, "refused") || !strings.Contains(msg, "http://"+addr+"/hook") {
		t.Errorf("Err = %q", msg)
	}
	if strings.Contains(msg, "pa55") || strings.Contains(msg, "user") || strings.Contains(msg, testToken) {
		t.Errorf("Err leaks credentials: %q", msg)
	}
}

func TestSendTLS(t *testing.T) {
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	defer srv.Close()

	// The default transport does not trust the test certificate: a TLS failure, retryable.
	s := New(Options{})
	defer s.CloseIdleConnections()
	res := s.Send(context.Background(), newJob(srv.URL))
	if res.Err == nil || res.Permanent || !strings.Contains(res.Err.Error(), "certificate") {
		t.Errorf("untrusted TLS: %+v", res)
	}

	s = New(Options{Transport: srv.Client().Transport})
	if res := s.Send(context.Background(), newJob(srv.URL)); res.Err != nil || res.Status != 200 {
		t.Errorf("trusted TLS: %+v", res)
	}
}

// roundTripFunc lets a test see whether any request was attempted.
type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

func TestSendBadURLsPermanent(t *testing.T) {
	var calls atomic.Int32
	s := New(Options{Token: testToken, Transport: roundTripFunc(func(*http.Request) (*http.Response, error) {
		calls.Add(1)
		return nil, errors.New("no network expected")
	})})
	for _, u := range []string{
		"ftp://example.com/hook",
		"ftp://user:secretpw@example.com/hook",
		"::bad",
		"http://",
		"https://",
		"http:///path",
		"http://:8080/x",
		"http:example.com",
		"mailto:fax@example.com",
		"example.com/hook",
		"",
		"http://example.com:99999/",
		"http://exa mple.com/",
		"http://user:sec/retpw@example.com/",
		"http://user:secretpw@exa mple.com/",
	} {
		res := s.Send(context.Background(), newJob(u))
		if res.Err == nil || !res.Permanent || res.Status != 0 {
			t.Errorf("%q: Send = %+v, want a permanent failure", u, res)
			continue
		}
		if msg := res.Err.Error(); strings.Contains(msg, "secretpw") || strings.Contains(msg, "retpw") {
			t.Errorf("%q: Err leaks the password: %q", u, msg)
		}
	}
	if n := calls.Load(); n != 0 {
		t.Errorf("%d requests attempted for bad URLs", n)
	}
	if _, err := ParseURL("HTTPS://Example.COM/Hook"); err != nil {
		t.Errorf("ParseURL of an upper-case scheme: %v", err)
	}
}

func TestSendUnencodableJobPermanent(t *testing.T) {
	rec := newRecorder(t, http.StatusOK)
	job := newJob(rec.srv.URL)
	job.Fields = append(job.Fields, queue.Field{Name: "bad\r\nX-Injected: 1", Value: "v"})
	res := New(Options{}).Send(context.Background(), job)
	if res.Err == nil || !res.Permanent {
		t.Fatalf("Send = %+v", res)
	}
	if n := len(rec.requests()); n != 0 {
		t.Errorf("receiver got %d requests", n)
	}
}

func TestSendBasicAuthFromUserinfo(t *testing.T) {
	rec := newRecorder(t, http.StatusOK)
	hostport := strings.TrimPrefix(rec.srv.URL, "http://")
	job := newJob("http://alice:s3cr%40t@" + hostport + "/phaxio/callbacks?x=1")
	s := New(Options{Token: testToken})
	defer s.CloseIdleConnections()
	if res := s.Send(context.Background(), job); res.Err != nil {
		t.Fatal(res.Err)
	}
	r := rec.requests()[0]
	if !r.basic || r.user != "alice" || r.pass != "s3cr@t" {
		t.Errorf("basic auth = %v %q %q", r.basic, r.user, r.pass)
	}
	if strings.Contains(r.requestURI, "alice") || r.requestURI != "/phaxio/callbacks?x=1" {
		t.Errorf("request URI %q", r.requestURI)
	}
	parts := parseBody(t, r.header.Get("Content-Type"), r.body)
	sig := r.header.Get(sign.Header)
	if r.fullURL() != "http://"+hostport+"/phaxio/callbacks?x=1" || !verify(testToken, sig, r.fullURL(), parts) {
		t.Errorf("signature does not verify over the URL without userinfo (%s)", r.fullURL())
	}
	if verify(testToken, sig, job.URL, parts) {
		t.Error("signature covers the userinfo")
	}

	// Failures never echo the credentials.
	rec.mu.Lock()
	rec.status = http.StatusBadGateway
	rec.mu.Unlock()
	res := s.Send(context.Background(), job)
	if res.Err == nil || strings.Contains(res.Err.Error(), "s3cr") || strings.Contains(res.Err.Error(), "alice") {
		t.Errorf("Err = %v", res.Err)
	}
}

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	for _, c := range []struct {
		in   string
		want time.Duration
	}{
		{"", 0},
		{"0", 0},
		{"120", 2 * time.Minute},
		{" 5 ", 5 * time.Second},
		{"21600", 6 * time.Hour},
		{"21601", 6 * time.Hour},
		{"99999999999999999999999", 6 * time.Hour},
		{"-5", 0},
		{"1.5", 0},
		{"soon", 0},
		{now.Add(90 * time.Second).Format(http.TimeFormat), 90 * time.Second},
		{now.Add(-time.Hour).Format(http.TimeFormat), 0},
		{now.Add(48 * time.Hour).Format(http.TimeFormat), 6 * time.Hour},
		{now.Add(time.Hour).Format(time.RFC850), time.Hour},
	} {
		if got := parseRetryAfter(c.in, now); got != c.want {
			t.Errorf("parseRetryAfter(%q) = %v, want %v", c.in, got, c.want)
		}
	}
}

func TestSendRetryAfter(t *testing.T) {
	rec := newRecorder(t, http.StatusTooManyRequests)
	rec.header.Set("Retry-After", "120")
	s := New(Options{})
	defer s.CloseIdleConnections()
	res := s.Send(context.Background(), newJob(rec.srv.URL))
	if res.Err == nil || res.Status != 429 || res.RetryAfter != 2*time.Minute {
		t.Errorf("429: %+v", res)
	}

	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	s.now = func() time.Time { return now }
	rec.mu.Lock()
	rec.status = http.StatusServiceUnavailable
	rec.header.Set("Retry-After", now.Add(10*time.Minute).Format(http.TimeFormat))
	rec.mu.Unlock()
	res = s.Send(context.Background(), newJob(rec.srv.URL))
	if res.Err == nil || res.Status != 503 || res.RetryAfter != 10*time.Minute {
		t.Errorf("503: %+v", res)
	}
	if want := "receiver answered 503 Service Unavailable"; res.Err.Error() != want {
		t.Errorf("Err = %q, want %q", res.Err, want)
	}
}

func TestSendBodyLimitAndReuse(t *testing.T) {
	var conns atomic.Int32
	big := strings.Repeat("0123456789", 2000) // 20000 bytes: beyond the limit, within the drain
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Length", strconv.Itoa(len(big)))
		io.WriteString(w, big)
	}))
	srv.Config.ConnState = func(_ net.Conn, st http.ConnState) {
		if st == http.StateNew {
			conns.Add(1)
		}
	}
	srv.Start()
	defer srv.Close()

	s := New(Options{BodyLimit: 100})
	defer s.CloseIdleConnections()
	for i := range 3 {
		res := s.Send(context.Background(), newJob(srv.URL))
		if res.Err != nil || res.Body != big[:100] {
			t.Fatalf("attempt %d: err %v, body %d bytes", i, res.Err, len(res.Body))
		}
	}
	if n := conns.Load(); n != 1 {
		t.Errorf("%d connections for 3 sequential attempts, want 1 (body not drained?)", n)
	}

	res := New(Options{}).Send(context.Background(), newJob(srv.URL))
	if len(res.Body) != DefaultBodyLimit {
		t.Errorf("default limit kept %d bytes", len(res.Body))
	}
}

// goldenJob is a fixed job whose encoding must never change: receivers and stored jobs depend on
// every attempt being byte-identical.
func goldenJob() *queue.Job {
	return &queue.Job{
		ID:  "golden-job",
		URL: "https://example.com/hook",
		Payload: queue.Payload{
			Fields: []queue.Field{
				{Name: "fax", Value: `{"id":42}`},
				{Name: "event_type", Value: "fax_completed"},
				{Name: "a\"b", Value: "line1\r\nline2"},
			},
			Files: []queue.File{
				{Name: "file", Filename: "fax-42.pdf", Data: []byte("%PDF-1.4\n")},
				{Name: "extra", Filename: "n\"ame.txt", ContentType: "text/plain", Data: []byte("hi")},
			},
		},
	}
}

const goldenBody = "--fcbd9da9e1ab0365a8107474d5025e\r\n" +
	"Content-Disposition: form-data; name=\"fax\"\r\n" +
	"\r\n" +
	"{\"id\":42}\r\n" +
	"--fcbd9da9e1ab0365a8107474d5025e\r\n" +
	"Content-Disposition: form-data; name=\"event_type\"\r\n" +
	"\r\n" +
	"fax_completed\r\n" +
	"--fcbd9da9e1ab0365a8107474d5025e\r\n" +
	"Content-Disposition: form-data; name=\"a\\\"b\"\r\n" +
	"\r\n" +
	"line1\r\nline2\r\n" +
	"--fcbd9da9e1ab0365a8107474d5025e\r\n" +
	"Content-Disposition: form-data; name=\"file\"; filename=\"fax-42.pdf\"\r\n" +
	"Content-Type: application/pdf\r\n" +
	"\r\n" +
	"%PDF-1.4\n\r\n" +
	"--fcbd9da9e1ab0365a8107474d5025e\r\n" +
	"Content-Disposition: form-data; name=\"extra\"; filename=\"n\\\"ame.txt\"\r\n" +
	"Content-Type: text/plain\r\n" +
	"\r\n" +
	"hi\r\n" +
	"--fcbd9da9e1ab0365a8107474d5025e--\r\n"

func TestEncodeGolden(t *testing.T) {
	body, ct, err := Encode(goldenJob())
	if err != nil {
		t.Fatal(err)
	}
	if ct != "multipart/form-data; boundary=fcbd9da9e1ab0365a8107474d5025e" {
		t.Errorf("content type %q", ct)
	}
	if string(body) != goldenBody {
		t.Errorf("body changed:\n%q\nwant\n%q", body, goldenBody)
	}
	parts := parseBody(t, ct, body)
	want := []part{
		{"fax", "", "", []byte(`{"id":42}`)},
		{"event_type", "", "", []byte("fax_completed")},
		{`a"b`, "", "", []byte("line1\r\nline2")},
		{"file", "fax-42.pdf", "application/pdf", []byte("%PDF-1.4\n")},
		{"extra", `n"ame.txt`, "text/plain", []byte("hi")},
	}
	if len(parts) != len(want) {
		t.Fatalf("%d parts, want %d", len(parts), len(want))
	}
	for i, w := range want {
		p := parts[i]
		if p.name != w.name || p.filename != w.filename || p.contentType != w.contentType || !bytes.Equal(p.data, w.data) {
			t.Errorf("part %d = %+v, want %+v", i, p, w)
		}
	}

	// The standard library's writer produces the same bytes for the same parts.
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	if err := mw.SetBoundary("fcbd9da9e1ab0365a8107474d5025e"); err != nil {
		t.Fatal(err)
	}
	for _, f := range goldenJob().Fields {
		mw.WriteField(f.Name, f.Value)
	}
	for _, f := range []struct{ name, filename, ct, data string }{
		{"file", "fax-42.pdf", "application/pdf", "%PDF-1.4\n"},
		{"extra", `n"ame.txt`, "text/plain", "hi"},
	} {
		w, _ := mw.CreatePart(map[string][]string{
			"Content-Disposition": {multipart.FileContentDisposition(f.name, f.filename)},
			"Content-Type":        {f.ct},
		})
		io.WriteString(w, f.data)
	}
	mw.Close()
	if buf.String() != goldenBody {
		t.Errorf("mime/multipart disagrees:\n%q", buf.String())
	}
}

func TestEncodeBoundaryAvoidsContent(t *testing.T) {
	job := goldenJob()
	job.Files[0].Data = []byte("%PDF\r\n--fcbd9da9e1ab0365a8107474d5025e\r\nContent-Disposition: form-data; name=\"evil\"\r\n\r\nx")
	body, ct, err := Encode(job)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(ct, "fcbd9da9e1ab0365a8107474d5025e") {
		t.Fatalf("boundary found in content was kept: %s", ct)
	}
	parts := parseBody(t, ct, body)
	if len(parts) != 5 || !bytes.Equal(parts[3].data, job.Files[0].Data) {
		t.Errorf("parts = %+v", parts)
	}
	body2, ct2, _ := Encode(job)
	if ct2 != ct || !bytes.Equal(body, body2) {
		t.Error("fallback boundary is not deterministic")
	}
}

func TestEncodeErrors(t *testing.T) {
	for name, mod := range map[string]func(*queue.Job){
		"nil":              nil,
		"empty field name": func(j *queue.Job) { j.Fields[0].Name = "" },
		"CR in field name": func(j *queue.Job) { j.Fields[0].Name = "a\rb" },
		"LF in file name":  func(j *queue.Job) { j.Files[0].Name = "a\nb" },
		"empty file name":  func(j *queue.Job) { j.Files[0].Name = "" },
		"CRLF in type":     func(j *queue.Job) { j.Files[0].ContentType = "text/plain\r\nX: y" },
	} {
		var job *queue.Job
		if mod != nil {
			job = goldenJob()
			mod(job)
		}
		if _, _, err := Encode(job); err == nil {
			t.Errorf("%s: Encode succeeded", name)
		}
	}
	// A line break in a filename is escaped, not an error: filenames are not signed.
	job := goldenJob()
	job.Files[1].Filename = "a\r\nb.txt"
	body, ct, err := Encode(job)
	if err != nil {
		t.Fatal(err)
	}
	if parts := parseBody(t, ct, body); len(parts) != 5 || parts[4].filename != "a%0D%0Ab.txt" {
		t.Errorf("parts = %+v", parts)
	}
}

// A file without a Filename is named after its part: the queue knows no fax ids.
func TestEncodeUnnamedFile(t *testing.T) {
	job := goldenJob()
	job.Files[0].Filename, job.Files[1].Filename = "", ""
	body, ct, err := Encode(job)
	if err != nil {
		t.Fatal(err)
	}
	parts := parseBody(t, ct, body)
	if len(parts) != 5 || parts[3].filename != "file" || parts[3].contentType != DefaultContentType || parts[4].filename != "extra" {
		t.Errorf("parts = %+v", parts)
	}
}

func TestEncodeEmptyJob(t *testing.T) {
	body, ct, err := Encode(&queue.Job{ID: "x"})
	if err != nil {
		t.Fatal(err)
	}
	if parts := parseBody(t, ct, body); len(parts) != 0 {
		t.Errorf("parts = %+v", parts)
	}
}

func benchJob(url string) *queue.Job {
	job := newJob(url)
	job.Files[0].Data = bytes.Repeat([]byte("%PDF-1.4 page data "), 100<<10/19) // ~100 KiB
	return job
}

func BenchmarkEncode(b *testing.B) {
	job := benchJob("https://example.com/hook")
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := Encode(job); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkSend(b *testing.B) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.WriteHeader(http.StatusNoContent)
	}))
	defer srv.Close()
	s := New(Options{Token: testToken})
	defer s.CloseIdleConnections()
	job := benchJob(srv.URL + "/hook?account=42")
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if res := s.Send(ctx, job); res.Err != nil {
			b.Fatal(res.Err)
		}
	}
}

// ExampleEncode shows the deterministic Content-Type of a job.
func ExampleEncode() {
	_, ct, _ := Encode(&queue.Job{ID: "golden-job", Payload: queue.Payload{Fields: []queue.Field{{Name: "event_type", Value: "fax_completed"}}}})
	fmt.Println(ct)
	// Output: multipart/form-data; boundary=fcbd9da9e1ab0365a8107474d5025e
}
