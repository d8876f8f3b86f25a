package otherfax

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"go/parser"
	"go/token"
	"io"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/faxhook/caddy-faxhook/examples/faxapp"
	"github.com/faxhook/caddy-faxhook/module/profile"
)

const (
	testToken = "test-token"
	tick      = time.Second
)

// clock is a fake clock the tests advance by hand.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

var start = time.Date(2021, 11, 4, 16, 28, 30, 0, time.UTC) // 1636043310

type env struct {
	t   *testing.T
	svc *Service
	srv *httptest.Server
	clk *clock
}

func newEnv(t *testing.T, seed int64, clk *clock) *env {
	t.Helper()
	if clk == nil {
		clk = &clock{t: start}
	}
	svc := New(Config{Token: testToken, Tick: tick, Seed: seed, Now: clk.Now})
	srv := httptest.NewServer(svc)
	t.Cleanup(srv.Close)
	return &env{t: t, svc: svc, srv: srv, clk: clk}
}

// do calls the service; body is marshalled to JSON unless it is a string or nil.
func (e *env) do(method, path string, body any) (int, []byte) {
	e.t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	default:
		raw, err := json.Marshal(b)
		if err != nil {
			e.t.Fatal(err)
		}
		rd = bytes.NewReader(raw)
	}
	req, err := http.NewRequest(method, e.srv.URL+path, rd)
	if err != nil {
		e.t.Fatal(err)
	}
	if rd != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Authorization", "Bearer "+testToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		e.t.Fatal(err)
	}
	return resp.StatusCode, raw
}

// send creates a job and returns its id.
func (e *env) send(req map[string]any) int64 {
	e.t.Helper()
	code, raw := e.do("POST", "/api/fax/jobs", req)
	var a struct {
		Accepted bool  `json:"accepted"`
		JobID    int64 `json:"job_id"`
	}
	if err := json.Unmarshal(raw, &a); code != http.StatusCreated || err != nil || !a.Accepted || a.JobID == 0 {
		e.t.Fatalf("send: %d %s", code, raw)
	}
	return a.JobID
}

func (e *env) job(id int64) job {
	e.t.Helper()
	code, raw := e.do("GET", fmt.Sprintf("/api/fax/jobs/%d", id), nil)
	var body struct {
		Job job `json:"job"`
	}
	if err := json.Unmarshal(raw, &body); code != 200 || err != nil {
		e.t.Fatalf("get %d: %d %s", id, code, raw)
	}
	return body.Job
}

func doc(pages int) string { return base64.StdEncoding.EncodeToString(faxapp.PDF(pages)) }

func destLine(d destination) string { return fmt.Sprintf("%s/%d/%d", d.State, d.Retries, d.Page) }

func num(n *json.Number) string {
	if n == nil {
		return "<nil>"
	}
	return string(*n)
}

func TestSendProgression(t *testing.T) {
	e := newEnv(t, 1, nil)
	id := e.send(map[string]any{
		"recipients": []string{"+15550000000", "+15550000001"}, "document_base64": doc(3),
		"labels": map[string]string{"order": "42"}, "caller_id": "+15551110000", "notify_url": "https://example.com/cb",
	})
	if id != 101000 {
		t.Fatalf("first id %d, want faxapp's 101000", id)
	}
	steps := []struct {
		state, d0, d1 string
		pages, price  int
	}{
		{"PENDING", "WAITING/0/0", "WAITING/0/0", 0, 0},
		{"ACTIVE", "DIALING/0/0", "DIALING/0/0", 3, 0},
		{"ACTIVE", "TRANSMITTING/0/1", "BUSY_RETRY/1/0", 3, 0},
		{"ACTIVE", "TRANSMITTING/0/2", "BUSY_RETRY/1/0", 3, 0},
		{"ACTIVE", "TRANSMITTING/0/3", "DIALING/1/0", 3, 0},
		{"ACTIVE", "DONE/0/3", "TRANSMITTING/1/1", 3, 21},
		{"ACTIVE", "DONE/0/3", "TRANSMITTING/1/2", 3, 21},
		{"ACTIVE", "DONE/0/3", "TRANSMITTING/1/3", 3, 21},
		{"DELIVERED", "DONE/0/3", "DONE/1/3", 3, 42},
		{"DELIVERED", "DONE/0/3", "DONE/1/3", 3, 42},
	}
	for i, st := range steps {
		j := e.job(id)
		got := fmt.Sprintf("%s %s %s %d %d", j.State, destLine(j.Destinations[0]), destLine(j.Destinations[1]), j.PageCount, j.PriceCents)
		want := fmt.Sprintf("%s %s %s %d %d", st.state, st.d0, st.d1, st.pages, st.price)
		if got != want {
			t.Fatalf("tick %d: got %q, want %q", i, got, want)
		}
		e.clk.Advance(tick)
	}
	j := e.job(id)
	if j.Submitted != "1636043310.000" || num(j.Finished) != "1636043318.000" || num(j.Destinations[0].Finished) != "1636043315.000" {
		t.Fatalf("times %s %s %s", j.Submitted, num(j.Finished), num(j.Destinations[0].Finished))
	}
	if j.Kind != "outbound" || !j.Sandbox || *j.CallerID != "+15551110000" || j.Labels["order"] != "42" ||
		j.Failure != nil || j.Remote != nil || j.LineNumber != nil {
		t.Fatalf("job %+v", j)
	}
	if l := j.Destinations[1].Line; l == nil || *l.BPS != 14400 || *l.PPM != 8040 {
		t.Fatalf("line %+v", l)
	}
}

func TestFailures(t *testing.T) {
	e := newEnv(t, 1, nil)
	failing := e.send(map[string]any{"recipients": []string{"+15550000002", "+15550000003"}, "document_base64": doc(3)})
	simulated := e.send(map[string]any{"recipients": []string{"+15550000000"}, "document_url": "https://example.com/a.pdf", "simulate_failure": "protocol"})
	e.clk.Advance(8 * tick)
	j := e.job(failing)
	if j.State != "FAILED" || j.Failure == nil || *j.Failure.Category != "line" || *j.Failure.Code != 17 || *j.Failure.Text != "Busy" {
		t.Fatalf("failing job %+v %+v", j, j.Failure)
	}
	if d := j.Destinations[1]; destLine(d) != "ERROR/0/2" || *d.Failure.Category != "protocol" || *d.Failure.Code != 6 {
		t.Fatalf("0003 %s %+v", destLine(d), d.Failure)
	}
	if j := e.job(simulated); j.State != "FAILED" || *j.Failure.Category != "protocol" || *j.Failure.Code != 123 || j.PageCount != 1 {
		t.Fatalf("simulated failure %+v", j)
	}
}

func TestAuth(t *testing.T) {
	e := newEnv(t, 1, nil)
	for _, auth := range []string{"", "Bearer wrong", "Basic " + base64.StdEncoding.EncodeToString([]byte("a:b")), testToken} {
		req, _ := http.NewRequest("GET", e.srv.URL+"/api/fax/jobs", nil)
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		raw, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 401 || resp.Header.Get("WWW-Authenticate") != `Bearer realm="otherfax"` ||
			!strings.Contains(string(raw), `"code":"unauthorized"`) {
			t.Fatalf("auth %q: %d %s", auth, resp.StatusCode, raw)
		}
	}
	// A service without a token accepts no one.
	open := httptest.NewServer(New(Config{}))
	defer open.Close()
	req, _ := http.NewRequest("GET", open.URL+"/api/fax/jobs", nil)
	req.Header.Set("Authorization", "Bearer ")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 401 {
		t.Fatalf("empty token: %d", resp.StatusCode)
	}
}

func TestErrors(t *testing.T) {
	e := newEnv(t, 1, nil)
	for _, tc := range []struct {
		method, path string
		body         any
		code         int
		want         string
	}{
		{"POST", "/api/fax/jobs", "{", 400, `"code":"bad_request"`},
		{"POST", "/api/fax/jobs", `{"to":["+15550000000"]}`, 400, `unknown field \"to\"`},
		{"POST", "/api/fax/jobs", map[string]any{"document_base64": doc(1)}, 422, "recipients: at least one number"},
		{"POST", "/api/fax/jobs", map[string]any{"recipients": []string{"+15550000000"}}, 422, "document_base64 or document_url is required"},
		{"POST", "/api/fax/jobs", map[string]any{"recipients": []string{"+15550000000"}, "document_base64": "!!"}, 422, "not base64"},
		{"POST", "/api/fax/jobs", map[string]any{"recipients": []string{"nope"}, "document_base64": doc(1)}, 422, "Invalid recipient phone number: nope"},
		{"POST", "/api/fax/jobs", map[string]any{"recipients": []string{"+15550000000"}, "document_base64": doc(1), "simulate_failure": "lineError"}, 422, "simulate_failure must be"},
		{"GET", "/api/fax/jobs/999", nil, 404, `{"error":{"code":"not_found","detail":"Job not found"}}`},
		{"GET", "/api/fax/jobs/abc", nil, 404, "Job not found"},
		{"GET", "/api/fax/jobs/999/document", nil, 404, "Job not found"},
		{"POST", "/api/fax/jobs/999/retry", nil, 404, "Job not found"},
		{"POST", "/api/fax/jobs/999/cancel", nil, 404, "Job not found"},
		{"DELETE", "/api/fax/jobs/1", nil, 405, "method_not_allowed"},
		{"PUT", "/api/fax/jobs", nil, 405, "method_not_allowed"},
		{"GET", "/api/fax/other", nil, 404, "No such endpoint"},
		{"GET", "/v2.1/faxes", nil, 404, "No such endpoint"},
		{"GET", "/api/fax/jobs?limit=0", nil, 400, "limit must be"},
		{"GET", "/api/fax/jobs?cursor=zz", nil, 400, "cursor is not"},
		{"GET", "/api/fax/jobs?kind=sent", nil, 400, "kind must be"},
		{"GET", "/api/fax/jobs?state=success", nil, 400, "state must be"},
		{"POST", "/api/fax/inbound", map[string]any{"from": "+15551234567"}, 422, "document_base64 is required"},
	} {
		code, raw := e.do(tc.method, tc.path, tc.body)
		if code != tc.code || !strings.Contains(string(raw), tc.want) {
			t.Errorf("%s %s: %d %s, want %d %q", tc.method, tc.path, code, raw, tc.code, tc.want)
		}
	}
	small := httptest.NewServer(New(Config{Token: testToken, MaxUpload: 1024}))
	defer small.Close()
	req, _ := http.NewRequest("POST", small.URL+"/api/fax/jobs", strings.NewReader(`{"recipients":["+15550000000"],"document_base64":"`+doc(40)+`"}`))
	req.Header.Set("Authorization", "Bearer "+testToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestEntityTooLarge {
		t.Fatalf("oversized: %d", resp.StatusCode)
	}
}

func TestListRetryCancelDocumentInbound(t *testing.T) {
	e := newEnv(t, 1, nil)
	pdf := faxapp.PDF(2)
	first := e.send(map[string]any{"recipients": []string{"+15550000000"}, "document_base64": base64.StdEncoding.EncodeToString(pdf)})
	second := e.send(map[string]any{"recipients": []string{"+15550000001"}, "document_url": "https://example.com/x"})
	code, raw := e.do("POST", "/api/fax/inbound", map[string]any{"from": "+15551234567", "document_base64": doc(2)})
	if code != 201 {
		t.Fatalf("inbound: %d %s", code, raw)
	}
	var in struct {
		JobID int64 `json:"job_id"`
	}
	json.Unmarshal(raw, &in)

	code, raw = e.do("POST", fmt.Sprintf("/api/fax/jobs/%d/cancel", second), nil)
	var cancelled struct {
		Job job `json:"job"`
	}
	if err := json.Unmarshal(raw, &cancelled); code != 200 || err != nil || cancelled.Job.State != "FAILED" ||
		*cancelled.Job.Failure.Category != "general" || *cancelled.Job.Failure.Code != 126 {
		t.Fatalf("cancel: %d %s", code, raw)
	}
	if code, raw := e.do("POST", fmt.Sprintf("/api/fax/jobs/%d/cancel", second), nil); code != 409 || !strings.Contains(string(raw), "Job has already completed") {
		t.Fatalf("second cancel: %d %s", code, raw)
	}
	code, raw = e.do("POST", fmt.Sprintf("/api/fax/jobs/%d/retry", first), `{"notify_url":"https://example.com/again"}`)
	var retried struct {
		JobID int64 `json:"job_id"`
	}
	if err := json.Unmarshal(raw, &retried); code != 201 || err != nil || retried.JobID != in.JobID+1 {
		t.Fatalf("retry: %d %s", code, raw)
	}
	if code, raw := e.do("POST", fmt.Sprintf("/api/fax/jobs/%d/retry", in.JobID), nil); code != 422 {
		t.Fatalf("retry inbound: %d %s", code, raw)
	}

	e.clk.Advance(tick)
	j := e.job(in.JobID)
	if j.Kind != "inbound" || j.State != "DELIVERED" || *j.Remote.Number != "+15551234567" || j.Remote.Name != nil ||
		*j.LineNumber != "+18773346654" || j.PageCount != 2 || len(j.Destinations) != 0 || j.CallerID != nil {
		t.Fatalf("inbound job %+v", j)
	}

	code, raw = e.do("GET", fmt.Sprintf("/api/fax/jobs/%d/document", first), nil)
	if code != 200 || !bytes.Equal(raw, pdf) {
		t.Fatalf("document: %d, %d bytes", code, len(raw))
	}

	var page struct {
		Items []job   `json:"items"`
		Next  *string `json:"next"`
		Total int     `json:"total"`
	}
	var ids []int64
	cursor := ""
	for range 10 {
		code, raw := e.do("GET", "/api/fax/jobs?limit=3"+cursor, nil)
		page.Next = nil
		if err := json.Unmarshal(raw, &page); code != 200 || err != nil || page.Total != 4 {
			t.Fatalf("list: %d %s", code, raw)
		}
		for _, j := range page.Items {
			ids = append(ids, j.JobID)
		}
		if page.Next == nil {
			break
		}
		cursor = "&cursor=" + *page.Next
	}
	if want := []int64{retried.JobID, in.JobID, second, first}; !reflect.DeepEqual(ids, want) {
		t.Fatalf("listed %v, want %v", ids, want)
	}
	code, raw = e.do("GET", "/api/fax/jobs?kind=inbound&state=DELIVERED", nil)
	if err := json.Unmarshal(raw, &page); code != 200 || err != nil || page.Total != 1 || page.Items[0].JobID != in.JobID || page.Next != nil {
		t.Fatalf("filtered list: %d %s", code, raw)
	}
}

// TestDocMapping checks that the mapping in the package doc, ExampleMappingJSON and
// ExampleMapping agree and validate.
func TestDocMapping(t *testing.T) {
	f, err := parser.ParseFile(token.NewFileSet(), "otherfax.go", nil, parser.ParseComments|parser.PackageClauseOnly)
	if err != nil {
		t.Fatal(err)
	}
	text := f.Doc.Text()
	i := strings.Index(text, "\n\t{\n")
	j := strings.Index(text, "\n\t}\n")
	if i < 0 || j < i {
		t.Fatal("no mapping JSON block in the package doc")
	}
	var fromDoc, fromConst profile.Mapping
	if err := json.Unmarshal([]byte(text[i:j+3]), &fromDoc); err != nil {
		t.Fatalf("doc JSON: %v", err)
	}
	dec := json.NewDecoder(strings.NewReader(ExampleMappingJSON))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&fromConst); err != nil {
		t.Fatalf("ExampleMappingJSON: %v", err)
	}
	want := ExampleMapping()
	if !reflect.DeepEqual(fromDoc, want) || !reflect.DeepEqual(fromConst, want) {
		t.Fatalf("mappings differ:\ndoc   %+v\nconst %+v\nfunc  %+v", fromDoc, fromConst, want)
	}
	if err := want.Validate(); err != nil {
		t.Fatal(err)
	}
}
