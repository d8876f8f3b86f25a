package faxapp

import (
	"bytes"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/faxhook/caddy-faxhook/module/profile/fax"
)

const (
	testKey    = "key"
	testSecret = "secret"
	tick       = time.Second
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

type env struct {
	t   *testing.T
	svc *Service
	srv *httptest.Server
	clk *clock
}

func newEnv(t *testing.T, seed int64) *env {
	t.Helper()
	clk := &clock{t: time.Date(2021, 11, 4, 16, 28, 30, 0, time.FixedZone("CDT", -5*3600))}
	svc := New(Config{APIKey: testKey, APISecret: testSecret, Tick: tick, Seed: seed, Now: clk.Now})
	srv := httptest.NewServer(svc)
	t.Cleanup(srv.Close)
	return &env{t: t, svc: svc, srv: srv, clk: clk}
}

// response is a decoded envelope plus the raw body.
type response struct {
	Code    int
	Raw     []byte
	Success bool            `json:"success"`
	Message string          `json:"message"`
	Data    json.RawMessage `json:"data"`
	Paging  *paging         `json:"paging"`
}

func (e *env) do(method, path, contentType string, body io.Reader) response {
	e.t.Helper()
	req, err := http.NewRequest(method, e.srv.URL+path, body)
	if err != nil {
		e.t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	req.SetBasicAuth(testKey, testSecret)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		e.t.Fatal(err)
	}
	r := response{Code: resp.StatusCode, Raw: raw}
	if strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
		if err := json.Unmarshal(raw, &r); err != nil {
			e.t.Fatalf("%s %s: bad JSON %q: %v", method, path, raw, err)
		}
	}
	return r
}

func (e *env) get(path string) response { return e.do(http.MethodGet, path, "", nil) }

func (e *env) form(method, path string, v url.Values) response {
	return e.do(method, path, "application/x-www-form-urlencoded", strings.NewReader(v.Encode()))
}

// multipartBody builds a multipart body from fields (repeatable keys) and file parts.
func multipartBody(t *testing.T, fields [][2]string, files map[string][][]byte) (string, *bytes.Buffer) {
	t.Helper()
	var b bytes.Buffer
	mw := multipart.NewWriter(&b)
	for _, f := range fields {
		mw.WriteField(f[0], f[1])
	}
	for name, contents := range files {
		for i, c := range contents {
			fw, err := mw.CreateFormFile(name, fmt.Sprintf("doc%d.pdf", i))
			if err != nil {
				t.Fatal(err)
			}
			fw.Write(c)
		}
	}
	mw.Close()
	return mw.FormDataContentType(), &b
}

func (e *env) multipart(path string, fields [][2]string, files map[string][][]byte) response {
	e.t.Helper()
	ct, body := multipartBody(e.t, fields, files)
	return e.do(http.MethodPost, path, ct, body)
}

func (e *env) id(r response) int64 {
	e.t.Helper()
	if r.Code != http.StatusOK || !r.Success {
		e.t.Fatalf("want success, got %d %s", r.Code, r.Raw)
	}
	var d struct {
		ID int64 `json:"id"`
	}
	if err := json.Unmarshal(r.Data, &d); err != nil || d.ID == 0 {
		e.t.Fatalf("no id in %s", r.Raw)
	}
	return d.ID
}

// wireRecipient is a recipient as the API returns it, extension included.
type wireRecipient struct {
	fax.Recipient
	CurrentPage int `json:"x_current_page"`
}

type wireFax struct {
	fax.Fax
	Recipients []wireRecipient `json:"recipients"`
}

var extRE = regexp.MustCompile(`,"` + fax.ExtCurrentPage + `":\d+`)

// fax fetches a fax and checks that its JSON is exactly the v2.1 encoding of Service.Fax plus
// the extension field.
func (e *env) fax(id int64) wireFax {
	e.t.Helper()
	r := e.get(fmt.Sprintf("/v2.1/faxes/%d", id))
	if r.Code != 200 || r.Message != "Metadata for fax" {
		e.t.Fatalf("get fax %d: %d %s", id, r.Code, r.Raw)
	}
	var f wireFax
	if err := json.Unmarshal(r.Data, &f); err != nil {
		e.t.Fatal(err)
	}
	plain, found := e.svc.Fax(id)
	if !found {
		e.t.Fatalf("Service.Fax(%d) not found", id)
	}
	want, _ := plain.JSON()
	if got := extRE.ReplaceAll(r.Data, nil); !bytes.Equal(got, want) {
		e.t.Fatalf("wire JSON minus extension\n got %s\nwant %s", got, want)
	}
	if n := len(extRE.FindAll(r.Data, -1)); n != len(f.Recipients) {
		e.t.Fatalf("%d extension fields for %d recipients", n, len(f.Recipients))
	}
	return f
}

func str(p *string) string {
	if p == nil {
		return "<nil>"
	}
	return *p
}

func num(p *int) string {
	if p == nil {
		return "<nil>"
	}
	return fmt.Sprint(*p)
}

// recipientLine summarises a recipient as "status/retries/page".
func recipientLine(r wireRecipient) string {
	return fmt.Sprintf("%s/%d/%d", str(r.Status), r.RetryCount, r.CurrentPage)
}

func TestSendProgression(t *testing.T) {
	e := newEnv(t, 1)
	pdf := PDF(3)
	r := e.multipart("/v2.1/faxes", [][2]string{
		{"to[]", "+15550000000"}, {"to[]", "+15550000001"}, {"tag[order]", "42"},
		{"caller_id", "+15551110000"}, {"callback_url", "https://example.com/cb"}, {"batch_delay", "10"},
	}, map[string][][]byte{"file": {pdf}})
	if r.Message != "Fax queued for sending" {
		t.Fatalf("message %q", r.Message)
	}
	id := e.id(r)
	if id != 101000 {
		t.Fatalf("first id %d, want 101000", id)
	}
	created := e.clk.Now()

	steps := []struct {
		status, r0, r1 string
		pages, cost    int
	}{
		{"queued", "<nil>/0/0", "<nil>/0/0", 0, 0},
		{"inprogress", "ringing/0/0", "ringing/0/0", 3, 0},
		{"inprogress", "callactive/0/1", "willretry/1/0", 3, 0},
		{"inprogress", "callactive/0/2", "willretry/1/0", 3, 0},
		{"inprogress", "callactive/0/3", "ringing/1/0", 3, 0},
		{"inprogress", "success/0/3", "callactive/1/1", 3, 21},
		{"inprogress", "success/0/3", "callactive/1/2", 3, 21},
		{"inprogress", "success/0/3", "callactive/1/3", 3, 21},
		{"success", "success/0/3", "success/1/3", 3, 42},
		{"success", "success/0/3", "success/1/3", 3, 42},
	}
	for i, st := range steps {
		f := e.fax(id)
		got := fmt.Sprintf("%s %s %s %d %d", f.Status, recipientLine(f.Recipients[0]), recipientLine(f.Recipients[1]), f.NumPages, f.Cost)
		want := fmt.Sprintf("%s %s %s %d %d", st.status, st.r0, st.r1, st.pages, st.cost)
		if got != want {
			t.Fatalf("tick %d: got %q, want %q", i, got, want)
		}
		e.clk.Advance(tick)
	}
	f := e.fax(id)
	at := func(ticks int) string { return created.Add(time.Duration(ticks) * tick).Format(timeLayout) }
	if str(f.CompletedAt) != at(8) || str(f.Recipients[0].CompletedAt) != at(5) || str(f.Recipients[1].CompletedAt) != at(8) {
		t.Fatalf("completed_at fax %s r0 %s r1 %s", str(f.CompletedAt), str(f.Recipients[0].CompletedAt), str(f.Recipients[1].CompletedAt))
	}
	if f.CreatedAt != "2021-11-04T16:28:30.000-05:00" || !f.IsTest || f.Direction != "sent" ||
		str(f.CallerID) != "+15551110000" || f.Tags["order"] != "42" || f.ErrorType != nil {
		t.Fatalf("fields: %+v", f.Fax)
	}
	if num(f.Recipients[1].Bitrate) != "14400" || num(f.Recipients[1].Resolution) != "8040" {
		t.Fatalf("bitrate/resolution %s %s", num(f.Recipients[1].Bitrate), num(f.Recipients[1].Resolution))
	}
	if file, _ := e.svc.File(id); !bytes.Equal(file, pdf) {
		t.Fatal("stored file differs from upload")
	}
}

func TestQueuedShape(t *testing.T) {
	e := newEnv(t, 1)
	id := e.id(e.form("POST", "/v2.1/faxes", url.Values{"to": {"+15558675309"}, "content_url": {"https://example.com/a.pdf"}}))
	r := e.get(fmt.Sprintf("/v2.1/faxes/%d", id))
	want := `{"id":101000,"direction":"sent","num_pages":0,"status":"queued","is_test":true,` +
		`"created_at":"2021-11-04T16:28:30.000-05:00","caller_id":null,"from_number":null,"completed_at":null,` +
		`"caller_name":null,"cost":0,"tags":{},"recipients":[{"phone_number":"+15558675309","status":null,` +
		`"retry_count":0,"completed_at":null,"bitrate":null,"resolution":null,"error_type":null,"error_id":null,` +
		`"error_message":null,"x_current_page":0}],"to_number":null,"error_id":null,"error_type":null,"error_message":null,"barcodes":[]}`
	if string(r.Data) != want {
		t.Fatalf("queued fax\n got %s\nwant %s", r.Data, want)
	}
}

func TestNumberBehaviours(t *testing.T) {
	e := newEnv(t, 1)
	pdf := [][]byte{PDF(3)}
	failing := e.id(e.multipart("/v2.1/faxes", [][2]string{{"to", "+15550000002"}, {"to", "+15550000003"}}, map[string][][]byte{"file": pdf}))
	partial := e.id(e.multipart("/v2.1/faxes", [][2]string{{"to", "+15550000000"}, {"to", "+15550000003"}}, map[string][][]byte{"file": pdf}))
	testFail := e.id(e.multipart("/v2.1/faxes", [][2]string{{"to", "+15550000000"}, {"test_fail", "faxError"}}, map[string][][]byte{"file": pdf}))

	e.clk.Advance(3 * tick)
	if f := e.fax(failing); recipientLine(f.Recipients[1]) != "callactive/0/2" {
		t.Fatalf("0003 at tick 3: %s", recipientLine(f.Recipients[1]))
	}
	if f := e.fax(testFail); f.Status != "failure" || str(f.ErrorType) != "faxError" || num(f.ErrorID) != "123" ||
		recipientLine(f.Recipients[0]) != "failure/0/0" {
		t.Fatalf("test_fail: %s %s %s %s", f.Status, str(f.ErrorType), num(f.ErrorID), recipientLine(f.Recipients[0]))
	}
	e.clk.Advance(4 * tick) // tick 7: 0002 rings a third time
	if f := e.fax(failing); f.Status != "inprogress" || recipientLine(f.Recipients[0]) != "ringing/2/0" {
		t.Fatalf("0002 at tick 7: %s %s", f.Status, recipientLine(f.Recipients[0]))
	}
	e.clk.Advance(tick)
	f := e.fax(failing)
	r0, r1 := f.Recipients[0], f.Recipients[1]
	if f.Status != "failure" || recipientLine(r0) != "failure/2/0" || str(r0.ErrorType) != "lineError" ||
		num(r0.ErrorID) != "17" || str(r0.ErrorMessage) != "Busy" {
		t.Fatalf("0002: %s %s %s %s %s", f.Status, recipientLine(r0), str(r0.ErrorType), num(r0.ErrorID), str(r0.ErrorMessage))
	}
	if recipientLine(r1) != "failure/0/2" || str(r1.ErrorType) != "faxError" || num(r1.ErrorID) != "6" ||
		str(r1.ErrorMessage) != "Error communicating with far side" {
		t.Fatalf("0003: %s %s %s", recipientLine(r1), str(r1.ErrorType), str(r1.ErrorMessage))
	}
	if str(f.ErrorType) != "lineError" || num(f.ErrorID) != "17" || f.Cost != 0 {
		t.Fatalf("fax error fields %s %s cost %d", str(f.ErrorType), num(f.ErrorID), f.Cost)
	}
	if str(f.CompletedAt) != str(r0.CompletedAt) {
		t.Fatalf("fax completed_at %s, last recipient %s", str(f.CompletedAt), str(r0.CompletedAt))
	}
	p := e.fax(partial)
	if p.Status != "partialsuccess" || str(p.ErrorType) != "faxError" || p.Cost != 21 {
		t.Fatalf("partial: %s %s %d", p.Status, str(p.ErrorType), p.Cost)
	}
}

func TestSeededNumbersMix(t *testing.T) {
	e := newEnv(t, 7)
	v := url.Values{"content_url": {"https://example.com/x"}}
	for i := range 60 {
		v.Add("to[]", fmt.Sprintf("+1555123%04d", 1000+i))
	}
	id := e.id(e.form("POST", "/v2.1/faxes", v))
	e.clk.Advance(20 * tick)
	f := e.fax(id)
	counts := map[string]int{}
	for _, r := range f.Recipients {
		counts[fmt.Sprintf("%s/%d", str(r.Status), r.RetryCount)]++
		if str(r.Status) == "failure" && str(r.ErrorType) != "lineError" {
			t.Fatalf("random failure of type %s", str(r.ErrorType))
		}
	}
	if counts["success/0"] == 0 || counts["success/1"] == 0 || counts["failure/0"] == 0 || f.Status != "partialsuccess" {
		t.Fatalf("expected a mix of outcomes, got %v (%s)", counts, f.Status)
	}
}

func TestURLEncodedSend(t *testing.T) {
	e := newEnv(t, 1)
	id := e.id(e.form("POST", "/v2.1/faxes", url.Values{
		"to[]": {"+15550000000"}, "content_url[]": {"https://example.com/a", "https://example.com/b"},
		"tag[customer]": {"acme"}, "header_text": {"hello"},
	}))
	e.clk.Advance(tick)
	f := e.fax(id)
	if f.NumPages != 2 || f.Tags["customer"] != "acme" || f.CallerID != nil {
		t.Fatalf("got %+v", f.Fax)
	}
	if r := e.get(fmt.Sprintf("/v2.1/faxes/%d/file", id)); r.Code != 404 || r.Success {
		t.Fatalf("file of a content_url fax: %d %s", r.Code, r.Raw)
	}
}

func TestPageCounting(t *testing.T) {
	e := newEnv(t, 1)
	id := e.id(e.multipart("/v2.1/faxes", [][2]string{{"to", "+15550000000"}, {"content_url", "https://example.com"}},
		map[string][][]byte{
			"file":   {PDF(2)},
			"file[]": {[]byte("no pages here"), []byte("<< /Type/Page >> << /Type /Pages >> << /Type /Page")},
		}))
	e.clk.Advance(tick)
	if n := e.fax(id).NumPages; n != 2+1+2+1 {
		t.Fatalf("num_pages %d, want 6", n)
	}
}

func TestPageCounterChunking(t *testing.T) {
	doc := []byte("x/Type /Page\n/Type /Pages/Type/Page/Type/Pages /Type /Pag /Type /Page")
	for size := 1; size <= len(doc); size++ {
		var c pageCounter
		for i := 0; i < len(doc); i += size {
			c.Write(doc[i:min(len(doc), i+size)])
		}
		if n := c.Count(); n != 3 {
			t.Fatalf("chunk size %d: %d pages, want 3", size, n)
		}
	}
}

func TestAuth(t *testing.T) {
	e := newEnv(t, 1)
	for _, auth := range []func(*http.Request){
		func(*http.Request) {},
		func(r *http.Request) { r.SetBasicAuth(testKey, "wrong") },
		func(r *http.Request) { r.SetBasicAuth("wrong", testSecret) },
	} {
		req, _ := http.NewRequest("GET", e.srv.URL+"/v2.1/faxes", nil)
		auth(req)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 401 || string(body) != `{"success":false,"message":"Invalid API key or secret"}`+"\n" {
			t.Fatalf("got %d %s", resp.StatusCode, body)
		}
	}
}

func TestUnprocessable(t *testing.T) {
	e := newEnv(t, 1)
	pdf := map[string][][]byte{"file": {PDF(1)}}
	cases := []response{
		e.multipart("/v2.1/faxes", nil, pdf),
		e.multipart("/v2.1/faxes", [][2]string{{"to", "+15550000000"}}, nil),
		e.form("POST", "/v2.1/faxes", url.Values{"to": {"+15550000000"}}),
		e.form("POST", "/v2.1/faxes", url.Values{"to": {"not a number"}, "content_url": {"https://x"}}),
		e.form("POST", "/v2.1/faxes", url.Values{"to": {"+15550000000"}, "content_url": {"https://x"}, "test_fail": {"oops"}}),
		e.form("POST", "/v2.1/faxes", url.Values{"direction": {"received"}}),
		e.get("/v2.1/faxes?per_page=0"),
		e.get("/v2.1/faxes?per_page=1001"),
		e.get("/v2.1/faxes?page=0"),
		e.get("/v2.1/faxes?created_before=yesterday"),
		e.form("POST", "/v2.1/phone_numbers", url.Values{"country_code": {"1"}, "area_code": {"12"}}),
	}
	for i, r := range cases {
		if r.Code != 422 || r.Success || r.Message == "" {
			t.Errorf("case %d: got %d %s", i, r.Code, r.Raw)
		}
	}
	if r := e.get("/v2.1/faxes?per_page=1000"); r.Code != 200 {
		t.Errorf("per_page=1000: %d", r.Code)
	}
	if r := e.get("/v2.1/faxes/999"); r.Code != 404 || r.Success {
		t.Errorf("unknown fax: %d %s", r.Code, r.Raw)
	}
	if r := e.get("/v2.1/nothing"); r.Code != 404 {
		t.Errorf("unknown route: %d", r.Code)
	}
	if r := e.do("PUT", "/v2.1/faxes", "", nil); r.Code != 405 || r.Success {
		t.Errorf("PUT: %d %s", r.Code, r.Raw)
	}
}

func TestListFiltersAndPaging(t *testing.T) {
	e := newEnv(t, 1)
	start := e.clk.Now()
	var ids []int64
	for i := range 5 {
		to := "+15550000000"
		if i%2 == 1 {
			to = "+15550000002"
		}
		ids = append(ids, e.id(e.form("POST", "/v2.1/faxes", url.Values{
			"to": {to}, "content_url": {"https://x"}, "tag[n]": {fmt.Sprint(i)}, "tag[group]": {"g"},
		})))
		e.clk.Advance(tick)
	}
	rcv := e.id(e.multipart("/v2.1/faxes", [][2]string{{"direction", "received"}, {"from_number", "+15557770000"}},
		map[string][][]byte{"file": {PDF(1)}}))
	// Now at tick 9: the 0000 faxes (ages 9, 7, 5) and the received one are done; 0002 fails at
	// age 8, so fax 1 has failed and fax 3 (age 6) is still in progress.
	e.clk.Advance(4 * tick)

	list := func(query string) ([]int64, paging) {
		t.Helper()
		r := e.get("/v2.1/faxes" + query)
		if r.Code != 200 || r.Message != "Retrieved faxes successfully" || r.Paging == nil {
			t.Fatalf("list %s: %d %s", query, r.Code, r.Raw)
		}
		var fs []wireFax
		if err := json.Unmarshal(r.Data, &fs); err != nil {
			t.Fatal(err)
		}
		out := []int64{}
		for _, f := range fs {
			out = append(out, f.ID)
		}
		return out, *r.Paging
	}
	check := func(query string, want ...int64) {
		t.Helper()
		got, _ := list(query)
		if fmt.Sprint(got) != fmt.Sprint(append([]int64{}, want...)) {
			t.Errorf("%s: got %v, want %v", query, got, want)
		}
	}
	check("", rcv, ids[4], ids[3], ids[2], ids[1], ids[0])
	check("?direction=received", rcv)
	check("?direction=sent&status=success", ids[4], ids[2], ids[0])
	check("?status=inprogress", ids[3])
	check("?status=failure", ids[1])
	check("?phone_number=%2B15550000002", ids[3], ids[1])
	check("?phone_number=%2B15557770000", rcv)
	check("?phone_number=%2B18773346654", rcv)
	check("?tag[n]=3&tag[group]=g", ids[3])
	check("?tag[group]=nope")
	q := url.Values{
		"created_after":  {start.Add(tick).Format(time.RFC3339)},
		"created_before": {start.Add(3 * tick).Format(time.RFC3339)},
	}
	check("?"+q.Encode(), ids[2], ids[1])

	got, pg := list("?per_page=2&page=2")
	if fmt.Sprint(got) != fmt.Sprint([]int64{ids[3], ids[2]}) || pg != (paging{Total: 6, PerPage: 2, Page: 2}) {
		t.Errorf("page 2: %v %+v", got, pg)
	}
	got, pg = list("?per_page=4&page=9")
	if len(got) != 0 || pg != (paging{Total: 6, PerPage: 4, Page: 9}) {
		t.Errorf("page 9: %v %+v", got, pg)
	}
	if _, pg = list(""); pg.PerPage != 25 || pg.Page != 1 {
		t.Errorf("default paging %+v", pg)
	}
}

func TestCancel(t *testing.T) {
	e := newEnv(t, 1)
	id := e.id(e.multipart("/v2.1/faxes", [][2]string{{"to", "+15550000000"}, {"to", "+15550000001"}}, map[string][][]byte{"file": {PDF(3)}}))
	e.clk.Advance(3*tick + tick/2)
	cancelAt := e.clk.Now()
	r := e.do("POST", fmt.Sprintf("/v2.1/faxes/%d/cancel", id), "", nil)
	if r.Code != 200 || r.Message != "Fax cancellation scheduled successfully." || string(r.Data) != fmt.Sprintf(`{"id":%d}`, id) {
		t.Fatalf("cancel: %d %s", r.Code, r.Raw)
	}
	e.clk.Advance(10 * tick)
	f := e.fax(id)
	if f.Status != "failure" || str(f.ErrorType) != "generalError" || str(f.ErrorMessage) != "Fax cancelled" ||
		str(f.CompletedAt) != cancelAt.Format(timeLayout) || f.Cost != 0 || f.NumPages != 3 {
		t.Fatalf("cancelled fax: %+v", f.Fax)
	}
	for _, rc := range f.Recipients {
		if str(rc.Status) != "failure" || str(rc.ErrorType) != "generalError" || str(rc.CompletedAt) != cancelAt.Format(timeLayout) {
			t.Fatalf("recipient %+v", rc)
		}
	}
	if f.Recipients[0].CurrentPage != 2 || f.Recipients[1].RetryCount != 1 {
		t.Fatalf("state at cancel time lost: %s %s", recipientLine(f.Recipients[0]), recipientLine(f.Recipients[1]))
	}
	if r := e.do("POST", fmt.Sprintf("/v2.1/faxes/%d/cancel", id), "", nil); r.Code != 422 {
		t.Fatalf("second cancel: %d %s", r.Code, r.Raw)
	}
	if r := e.do("POST", "/v2.1/faxes/1/cancel", "", nil); r.Code != 404 {
		t.Fatalf("cancel unknown: %d", r.Code)
	}
}

func TestResend(t *testing.T) {
	e := newEnv(t, 1)
	pdf := PDF(2)
	id := e.id(e.multipart("/v2.1/faxes", [][2]string{{"to", "+15550000000"}, {"to", "+15550000003"}, {"tag[k]", "v"}}, map[string][][]byte{"file": {pdf}}))
	e.clk.Advance(10 * tick)
	r := e.form("POST", fmt.Sprintf("/v2.1/faxes/%d/resend", id), url.Values{"callback_url": {"https://example.com/x"}})
	if r.Message != "Fax queued for resending" {
		t.Fatalf("resend: %s", r.Raw)
	}
	nid := e.id(r)
	if nid != id+1 {
		t.Fatalf("new id %d after %d", nid, id)
	}
	if f := e.fax(nid); f.Status != "queued" || len(f.Recipients) != 2 || f.Tags["k"] != "v" {
		t.Fatalf("resent fax %+v", f.Fax)
	}
	e.clk.Advance(10 * tick)
	f := e.fax(nid)
	if f.NumPages != 2 || f.Status != "partialsuccess" || f.Recipients[1].PhoneNumber != "+15550000003" {
		t.Fatalf("resent fax %+v", f.Fax)
	}
	if file, _ := e.svc.File(nid); !bytes.Equal(file, pdf) {
		t.Fatal("resent fax lost its file")
	}
}

func TestReceiveAndFile(t *testing.T) {
	e := newEnv(t, 1)
	pdf := PDF(2)
	r := e.multipart("/v2.1/faxes", [][2]string{{"direction", "received"}, {"from_number", "+15551234567"}}, map[string][][]byte{"file": {pdf}})
	if r.Message != "Test fax received from +15551234567 to +18773346654.  Calling back now..." {
		t.Fatalf("message %q", r.Message)
	}
	id := e.id(r)
	f := e.fax(id)
	if f.Direction != "received" || f.Status != "inprogress" || f.NumPages != 2 || len(f.Recipients) != 0 ||
		str(f.FromNumber) != "+15551234567" || str(f.ToNumber) != "+18773346654" || f.CompletedAt != nil {
		t.Fatalf("received fax %+v", f.Fax)
	}
	e.clk.Advance(tick)
	if f = e.fax(id); f.Status != "success" || f.CompletedAt == nil {
		t.Fatalf("received fax after a tick %+v", f.Fax)
	}

	path := fmt.Sprintf("/v2.1/faxes/%d/file", id)
	req, _ := http.NewRequest("GET", e.srv.URL+path, nil)
	req.SetBasicAuth(testKey, testSecret)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/pdf" || !bytes.Equal(body, pdf) {
		t.Fatalf("file download: %d %s, %d bytes", resp.StatusCode, resp.Header.Get("Content-Type"), len(body))
	}
	if r := e.do("DELETE", path, "", nil); r.Code != 200 || !r.Success {
		t.Fatalf("delete file: %s", r.Raw)
	}
	if r := e.get(path); r.Code != 404 {
		t.Fatalf("file after delete: %d", r.Code)
	}
	if r := e.do("DELETE", fmt.Sprintf("/v2.1/faxes/%d", id), "", nil); r.Message != "Deleted fax successfully!" || r.Data != nil {
		t.Fatalf("delete fax: %s", r.Raw)
	}
	if r := e.get(fmt.Sprintf("/v2.1/faxes/%d", id)); r.Code != 404 {
		t.Fatalf("fax after delete: %d", r.Code)
	}
}

func TestPhoneNumbers(t *testing.T) {
	e := newEnv(t, 1)
	r := e.form("POST", "/v2.1/phone_numbers", url.Values{"country_code": {"1"}, "area_code": {"205"}, "callback_url": {"https://example.com/rcv?a=1&b=2"}})
	if r.Message != "Number provisioned successfully!" {
		t.Fatalf("provision: %s", r.Raw)
	}
	var n struct {
		PhoneNumber string  `json:"phone_number"`
		City        string  `json:"city"`
		CallbackURL *string `json:"callback_url"`
	}
	json.Unmarshal(r.Data, &n)
	if !regexp.MustCompile(`^\+1205555\d{4}$`).MatchString(n.PhoneNumber) || str(n.CallbackURL) != "https://example.com/rcv?a=1&b=2" {
		t.Fatalf("number %s", r.Data)
	}
	keys := regexp.MustCompile(`"([a-z_]+)":`).FindAllStringSubmatch(string(r.Data), -1)
	var order []string
	for _, k := range keys {
		order = append(order, k[1])
	}
	if got := strings.Join(order, ","); got != "phone_number,city,state,country,cost,last_billed_at,provisioned_at,callback_url,ata_name" {
		t.Fatalf("field order %s", got)
	}
	other := e.form("POST", "/v2.1/phone_numbers", url.Values{"country_code": {"1"}, "area_code": {"415"}})
	if other.Code != 200 || !strings.Contains(string(other.Data), `"callback_url":null`) {
		t.Fatalf("second number: %s", other.Raw)
	}

	if r := e.get("/v2.1/phone_numbers"); r.Message != "Retrieved user phone numbers successfully" || r.Paging.Total != 2 {
		t.Fatalf("list: %s", r.Raw)
	}
	if r := e.get("/v2.1/phone_numbers?area_code=205"); r.Paging.Total != 1 {
		t.Fatalf("list by area: %s", r.Raw)
	}
	if r := e.get("/v2.1/phone_numbers/" + n.PhoneNumber); r.Code != 200 || !strings.Contains(string(r.Data), n.PhoneNumber) {
		t.Fatalf("get: %s", r.Raw)
	}
	if r := e.get("/v2.1/phone_numbers/" + url.PathEscape(n.PhoneNumber)); r.Code != 200 {
		t.Fatalf("get escaped: %s", r.Raw)
	}
	if r := e.do("DELETE", "/v2.1/phone_numbers/"+n.PhoneNumber, "", nil); r.Message != "Number released successfully!" {
		t.Fatalf("release: %s", r.Raw)
	}
	if r := e.get("/v2.1/phone_numbers/" + n.PhoneNumber); r.Code != 404 {
		t.Fatalf("get released: %d", r.Code)
	}
	if r := e.get("/v2.1/phone_numbers"); r.Paging.Total != 1 {
		t.Fatalf("list after release: %s", r.Raw)
	}
}

func TestLargeUpload(t *testing.T) {
	e := newEnv(t, 1)
	const size = 50 << 20
	const pages = 4
	pr, pw := io.Pipe()
	mw := multipart.NewWriter(pw)
	go func() {
		mw.WriteField("to", "+15550000000")
		fw, err := mw.CreateFormFile("file", "big.pdf")
		if err != nil {
			pw.CloseWithError(err)
			return
		}
		chunk := make([]byte, 1<<20)
		rand.Read(chunk)
		chunk = bytes.ReplaceAll(chunk, []byte("/"), []byte("x"))
		written := 0
		for i := 0; written < size; i++ {
			c := chunk
			if i < pages {
				c = append([]byte("<< /Type /Page >>"), chunk[17:]...)
			}
			c = c[:min(len(c), size-written)]
			fw.Write(c)
			written += len(c)
		}
		pw.CloseWithError(mw.Close())
	}()
	r := e.do("POST", "/v2.1/faxes", mw.FormDataContentType(), pr)
	id := e.id(r)
	e.clk.Advance(tick)
	if f := e.fax(id); f.NumPages != pages {
		t.Fatalf("num_pages %d, want %d", f.NumPages, pages)
	}
	if file, _ := e.svc.File(id); len(file) != size {
		t.Fatalf("stored %d bytes, want %d", len(file), size)
	}

	small := New(Config{APIKey: testKey, APISecret: testSecret, MaxUpload: 1 << 20})
	srv := httptest.NewServer(small)
	defer srv.Close()
	ct, body := multipartBody(t, [][2]string{{"to", "+15550000000"}}, map[string][][]byte{"file": {make([]byte, 2<<20)}})
	req, _ := http.NewRequest("POST", srv.URL+"/v2.1/faxes", body)
	req.Header.Set("Content-Type", ct)
	req.SetBasicAuth(testKey, testSecret)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestEntityTooLarge {
		t.Fatalf("oversized upload: %d", resp.StatusCode)
	}
}

// script runs the same operations against a service and returns every response body.
func script(t *testing.T, seed int64) []string {
	e := newEnv(t, seed)
	var out []string
	rec := func(r response) { out = append(out, string(r.Raw)) }
	pdf := map[string][][]byte{"file": {PDF(2)}}
	rec(e.multipart("/v2.1/faxes", [][2]string{{"to", "+15551230042"}, {"to", "+15559870007"}, {"to", "+15550000001"}}, pdf))
	rec(e.form("POST", "/v2.1/faxes", url.Values{"to[]": {"+14155550123", "+12125550199"}, "content_url": {"https://x"}}))
	rec(e.multipart("/v2.1/faxes", [][2]string{{"direction", "received"}}, pdf))
	rec(e.form("POST", "/v2.1/phone_numbers", url.Values{"country_code": {"1"}, "area_code": {"720"}}))
	for range 12 {
		rec(e.get("/v2.1/faxes"))
		e.clk.Advance(tick)
	}
	rec(e.get("/v2.1/phone_numbers"))
	return out
}

func TestDeterminism(t *testing.T) {
	a, b := script(t, 3), script(t, 3)
	if strings.Join(a, "") != strings.Join(b, "") {
		t.Fatal("same seed, different responses")
	}
	if c := script(t, 4); strings.Join(a, "") == strings.Join(c, "") {
		t.Fatal("different seeds, identical responses")
	}
}

func TestPDF(t *testing.T) {
	for _, n := range []int{0, 1, 5} {
		doc := PDF(n)
		var c pageCounter
		c.Write(doc)
		if got := c.Count(); got != max(n, 1) || !bytes.HasPrefix(doc, []byte("%PDF-1.4")) || !bytes.HasSuffix(doc, []byte("%%EOF\n")) {
			t.Fatalf("PDF(%d): %d pages", n, got)
		}
		i := bytes.LastIndex(doc, []byte("startxref\n"))
		var off int
		fmt.Sscan(string(doc[i+len("startxref\n"):]), &off)
		if !bytes.HasPrefix(doc[off:], []byte("xref\n")) {
			t.Fatalf("PDF(%d): startxref %d does not point at the xref table", n, off)
		}
	}
}
