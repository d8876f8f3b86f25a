package receiver

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime/multipart"
	"net"
	"net/http"
	"net/http/httptest"
	"net/textproto"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/faxhook/caddy-faxhook/queue/sign"
)

const (
	testToken = "test-webhook-token"
	faxF1     = `{"id":1234,"direction":"sent","status":"success","is_test":true}`
	faxF2     = `{"id":5678,"direction":"received","status":"success","is_test":true}`
	pdfD      = "%PDF-1.4\n"
	sha1D     = "95607b02d48a786cb786897d727114fc79814b1e"
	sigD      = "aeb1b4b7084aaa499db0cd9fe45b87e67cf656b9"
)

type filePart struct {
	name, filename, contentType string
	data                        []byte
}

// body builds a multipart/form-data body with fields then files, in order. Writing to a
// bytes.Buffer cannot fail.
func body(fields []sign.Field, files []filePart) (*bytes.Buffer, string) {
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	for _, f := range fields {
		mw.WriteField(f.Name, f.Value)
	}
	for _, f := range files {
		h := make(textproto.MIMEHeader)
		h.Set("Content-Disposition", fmt.Sprintf(`form-data; name=%q; filename=%q`, f.name, f.filename))
		h.Set("Content-Type", f.contentType)
		pw, _ := mw.CreatePart(h)
		pw.Write(f.data)
	}
	mw.Close()
	return &buf, mw.FormDataContentType()
}

// signFor signs fields and files for url under token.
func signFor(token, url string, fields []sign.Field, files []filePart) string {
	var fs []sign.File
	for _, f := range files {
		fs = append(fs, sign.FileOf(f.name, f.data))
	}
	return sign.Sign(token, url, fields, fs)
}

// post sends a signed multipart delivery to url and returns the status code.
func post(t *testing.T, url, signature string, fields []sign.Field, files []filePart) int {
	t.Helper()
	code, err := tryPost(url, signature, fields, files)
	if err != nil {
		t.Fatal(err)
	}
	return code
}

// tryPost is post for use outside the test goroutine.
func tryPost(url, signature string, fields []sign.Field, files []filePart) (int, error) {
	b, ct := body(fields, files)
	req, err := http.NewRequest(http.MethodPost, url, b)
	if err != nil {
		return 0, err
	}
	req.Header.Set("Content-Type", ct)
	if signature != "" {
		req.Header.Set(sign.Header, signature)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode, nil
}

func fieldsA() []sign.Field {
	return []sign.Field{{Name: "fax", Value: faxF1}, {Name: "event_type", Value: "fax_completed"}}
}

func newServer(t *testing.T, cfg Config) (*Receiver, *httptest.Server) {
	t.Helper()
	r := New(cfg)
	srv := httptest.NewServer(r)
	t.Cleanup(srv.Close)
	return r, srv
}

func TestValidSignatureRecorded(t *testing.T) {
	r, srv := newServer(t, Config{Token: testToken})
	url := srv.URL + "/phaxio/received"
	fields := []sign.Field{{Name: "fax", Value: faxF2}, {Name: "event_type", Value: "fax_completed"}}
	files := []filePart{{name: "file", filename: "fax-5678.pdf", contentType: "application/pdf", data: []byte(pdfD)}}
	sig := signFor(testToken, url, fields, files)

	if got := post(t, url, sig, fields, files); got != http.StatusOK {
		t.Fatalf("status = %d, want 200", got)
	}
	ds := r.Deliveries()
	if len(ds) != 1 || r.Count() != 1 {
		t.Fatalf("got %d deliveries (Count %d), want 1", len(ds), r.Count())
	}
	d := ds[0]
	if !d.Verified || d.Status != 200 || d.Error != "" || d.Seq != 1 {
		t.Errorf("delivery = %+v, want verified, status 200, seq 1, no error", d)
	}
	if d.URL != url || d.Signature != sig {
		t.Errorf("URL/Signature = %q/%q, want %q/%q", d.URL, d.Signature, url, sig)
	}
	if d.Fields["fax"] != faxF2 || d.Fields["event_type"] != "fax_completed" || len(d.Fields) != 2 {
		t.Errorf("Fields = %v", d.Fields)
	}
	if len(d.Files) != 1 {
		t.Fatalf("Files = %+v", d.Files)
	}
	f := d.Files[0]
	if f.Name != "file" || f.Filename != "fax-5678.pdf" || f.ContentType != "application/pdf" ||
		f.SHA1 != sha1D || f.Size != len(pdfD) || string(f.Data) != pdfD {
		t.Errorf("file = %+v", f)
	}
	if time.Since(d.Time) > time.Minute || d.Time.IsZero() {
		t.Errorf("Time = %v", d.Time)
	}
}

func TestWrongToken(t *testing.T) {
	r, srv := newServer(t, Config{Token: testToken})
	url := srv.URL + "/hook"
	sig := signFor("some-other-token", url, fieldsA(), nil)
	if got := post(t, url, sig, fieldsA(), nil); got != http.StatusUnauthorized {
		t.Fatalf("status = %d, want 401", got)
	}
	// Missing header is also 401.
	if got := post(t, url, "", fieldsA(), nil); got != http.StatusUnauthorized {
		t.Fatalf("status without signature = %d, want 401", got)
	}
	ds := r.Deliveries()
	if len(ds) != 2 {
		t.Fatalf("got %d deliveries, want 2 (invalid ones are recorded too)", len(ds))
	}
	for _, d := range ds {
		if d.Verified || d.Status != 401 || d.Error == "" {
			t.Errorf("delivery %d = %+v, want unverified 401 with error", d.Seq, d)
		}
		if d.Fields["event_type"] != "fax_completed" {
			t.Errorf("fields not recorded: %v", d.Fields)
		}
	}
}

func TestNoTokenAcceptsUnverified(t *testing.T) {
	r, srv := newServer(t, Config{})
	if got := post(t, srv.URL+"/", "deadbeef", fieldsA(), nil); got != http.StatusOK {
		t.Fatalf("status = %d, want 200", got)
	}
	if d := r.Deliveries()[0]; d.Verified || d.Status != 200 || d.Error != "" {
		t.Errorf("delivery = %+v, want unverified 200", d)
	}
}

func TestQueryStringIsSigned(t *testing.T) {
	r, srv := newServer(t, Config{Token: testToken})
	url := srv.URL + "/phaxio/webhook?account=42"
	if got := post(t, url, signFor(testToken, url, fieldsA(), nil), fieldsA(), nil); got != 200 {
		t.Fatalf("signed with query: status = %d, want 200", got)
	}
	// Signed without the query string but delivered with it: must fail.
	noQuery := srv.URL + "/phaxio/webhook"
	if got := post(t, url, signFor(testToken, noQuery, fieldsA(), nil), fieldsA(), nil); got != 401 {
		t.Fatalf("signed without query: status = %d, want 401", got)
	}
	ds := r.Deliveries()
	if ds[0].URL != url || ds[1].URL != url {
		t.Errorf("URLs = %q, %q, want %q", ds[0].URL, ds[1].URL, url)
	}
}

func TestVectorDWithBaseURL(t *testing.T) {
	const want = "https://example.com/phaxio/received"
	fields := []sign.Field{{Name: "event_type", Value: "fax_completed"}, {Name: "fax", Value: faxF2}}
	files := []filePart{{name: "file", filename: "fax-5678.pdf", contentType: "application/pdf", data: []byte(pdfD)}}
	if got := signFor(testToken, want, fields, files); got != sigD {
		t.Fatalf("sign.Sign(vector D) = %s, want %s", got, sigD)
	}

	r, srv := newServer(t, Config{Token: testToken, BaseURL: "https://example.com/"})
	if got := post(t, srv.URL+"/phaxio/received", sigD, fields, files); got != 200 {
		t.Fatalf("status = %d, want 200", got)
	}
	d := r.Deliveries()[0]
	if d.URL != want || !d.Verified || d.Signature != sigD {
		t.Errorf("delivery = %+v, want verified URL %q", d, want)
	}
	if d.Files[0].SHA1 != sha1D || d.Files[0].Size != 9 {
		t.Errorf("file = %+v", d.Files[0])
	}
}

func TestRepeatedFieldsAllSigned(t *testing.T) {
	r, srv := newServer(t, Config{Token: testToken})
	url := srv.URL + "/x"
	fields := []sign.Field{{Name: "tag", Value: "b"}, {Name: "event_type", Value: "fax_completed"}, {Name: "tag", Value: "a"}}
	sig := signFor(testToken, url, fields, nil)
	if got := post(t, url, sig, fields, nil); got != 200 {
		t.Fatalf("status = %d, want 200", got)
	}
	// The same values in another order within the name sign differently.
	swapped := []sign.Field{{Name: "tag", Value: "a"}, {Name: "event_type", Value: "fax_completed"}, {Name: "tag", Value: "b"}}
	if got := post(t, url, sig, swapped, nil); got != 401 {
		t.Fatalf("reordered repeat: status = %d, want 401", got)
	}
	if d := r.Deliveries()[0]; d.Fields["tag"] != "b" {
		t.Errorf("Fields[tag] = %q, want first value b", d.Fields["tag"])
	}
}

func TestRespondHook(t *testing.T) {
	var mu sync.Mutex
	var seen []Delivery
	r, srv := newServer(t, Config{
		Token: testToken,
		Respond: func(d Delivery) int {
			mu.Lock()
			seen = append(seen, d)
			mu.Unlock()
			switch d.Seq {
			case 1:
				return http.StatusServiceUnavailable
			case 2:
				return 0 // keep default
			case 3:
				return http.StatusAccepted
			default:
				return 42 // out of range: keep default
			}
		},
	})
	url := srv.URL + "/hook"
	good := signFor(testToken, url, fieldsA(), nil)
	want := []int{503, 200, 202, 401}
	sigs := []string{good, good, "bad", "bad"}
	for i, w := range want {
		if got := post(t, url, sigs[i], fieldsA(), nil); got != w {
			t.Errorf("delivery %d: status = %d, want %d", i+1, got, w)
		}
	}
	ds := r.Deliveries()
	for i, d := range ds {
		if d.Status != want[i] {
			t.Errorf("recorded status %d = %d, want %d", i+1, d.Status, want[i])
		}
	}
	mu.Lock()
	defer mu.Unlock()
	// The hook sees the verification result and the default status.
	if !seen[0].Verified || seen[0].Status != 200 || seen[2].Verified || seen[2].Status != 401 {
		t.Errorf("hook saw %+v", seen)
	}
}

func TestWait(t *testing.T) {
	r, srv := newServer(t, Config{})
	errc := make(chan error, 1)
	go func() {
		defer close(errc)
		for i := 0; i < 3; i++ {
			time.Sleep(10 * time.Millisecond)
			if _, err := tryPost(srv.URL+fmt.Sprintf("/n/%d", i), "", fieldsA(), nil); err != nil {
				errc <- err
				return
			}
		}
	}()
	defer func() {
		if err := <-errc; err != nil {
			t.Error(err)
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ds, err := r.Wait(ctx, 3)
	if err != nil {
		t.Fatal(err)
	}
	if len(ds) < 3 {
		t.Fatalf("Wait returned %d deliveries", len(ds))
	}
	for i, d := range ds {
		if d.Seq != i+1 {
			t.Errorf("ds[%d].Seq = %d", i, d.Seq)
		}
	}
	// Already satisfied: returns at once.
	if ds, err := r.Wait(context.Background(), 2); err != nil || len(ds) != 3 {
		t.Errorf("Wait(2) = %d, %v", len(ds), err)
	}

	// Timeout.
	tctx, tcancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer tcancel()
	start := time.Now()
	ds, err = r.Wait(tctx, 10)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want DeadlineExceeded", err)
	}
	if el := time.Since(start); el < 40*time.Millisecond || el > 5*time.Second {
		t.Errorf("Wait took %v", el)
	}
	if len(ds) != 3 {
		t.Errorf("on timeout got %d deliveries, want the 3 so far", len(ds))
	}
}

// lockedBuffer is a bytes.Buffer safe for concurrent use.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func TestJSONLines(t *testing.T) {
	var out lockedBuffer
	r, srv := newServer(t, Config{Token: testToken, Out: &out})
	url := srv.URL + "/phaxio/received"
	fields := []sign.Field{{Name: "event_type", Value: "fax_completed"}, {Name: "fax", Value: faxF2}}
	files := []filePart{{name: "file", filename: "f.pdf", contentType: "application/pdf", data: []byte(pdfD)}}
	post(t, url, signFor(testToken, url, fields, files), fields, files)
	post(t, url, "bad", fields, files)
	if _, err := r.Wait(context.Background(), 2); err != nil {
		t.Fatal(err)
	}

	text := out.String()
	if strings.Contains(text, "JVBERi0") { // base64 of "%PDF-"
		t.Error("file data leaked into JSON output")
	}
	var got []Delivery
	sc := bufio.NewScanner(strings.NewReader(text))
	for sc.Scan() {
		var d Delivery
		if err := json.Unmarshal(sc.Bytes(), &d); err != nil {
			t.Fatalf("line %q: %v", sc.Text(), err)
		}
		got = append(got, d)
	}
	if len(got) != 2 {
		t.Fatalf("got %d JSON lines, want 2:\n%s", len(got), text)
	}
	want := r.Deliveries()
	for i := range got {
		g, w := got[i], want[i]
		if g.Seq != w.Seq || g.URL != w.URL || g.Verified != w.Verified || g.Status != w.Status ||
			g.Error != w.Error || g.Signature != w.Signature || !g.Time.Equal(w.Time) ||
			g.Fields["fax"] != faxF2 || len(g.Files) != 1 || g.Files[0].SHA1 != sha1D ||
			g.Files[0].Size != 9 || g.Files[0].Data != nil {
			t.Errorf("line %d = %+v\nwant %+v", i, g, w)
		}
	}
	if !got[0].Verified || got[1].Verified || got[1].Error == "" {
		t.Errorf("verified flags wrong: %+v", got)
	}
}

func TestNotMultipart(t *testing.T) {
	r, srv := newServer(t, Config{Token: testToken})
	for _, ct := range []string{"application/x-www-form-urlencoded", "application/json", "", "multipart/form-data"} {
		req, _ := http.NewRequest(http.MethodPost, srv.URL+"/hook", strings.NewReader("event_type=fax_completed"))
		if ct != "" {
			req.Header.Set("Content-Type", ct)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest {
			t.Errorf("Content-Type %q: status = %d, want 400", ct, resp.StatusCode)
		}
	}
	// Truncated multipart body.
	b, ct := body(fieldsA(), nil)
	req, _ := http.NewRequest(http.MethodPost, srv.URL+"/hook", bytes.NewReader(b.Bytes()[:b.Len()-10]))
	req.Header.Set("Content-Type", ct)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest {
		t.Errorf("truncated multipart: status = %d, want 400", resp.StatusCode)
	}

	ds := r.Deliveries()
	if len(ds) != 5 {
		t.Fatalf("got %d deliveries, want 5", len(ds))
	}
	for _, d := range ds {
		if d.Status != 400 || d.Verified || d.Error == "" {
			t.Errorf("delivery = %+v, want 400 with error", d)
		}
	}
}

func TestMethodNotAllowed(t *testing.T) {
	r, srv := newServer(t, Config{})
	resp, err := http.Get(srv.URL + "/hook")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed || r.Count() != 0 {
		t.Errorf("GET: status %d, count %d; want 405, 0", resp.StatusCode, r.Count())
	}
}

// bigBody returns a multipart body whose file part makes it larger than MaxBodySize.
func bigBody(t *testing.T) (io.Reader, string) {
	t.Helper()
	var head bytes.Buffer
	mw := multipart.NewWriter(&head)
	mw.WriteField("event_type", "fax_completed")
	if _, err := mw.CreateFormFile("file", "big.pdf"); err != nil {
		t.Fatal(err)
	}
	filler := io.LimitReader(zeros{}, MaxBodySize+1024)
	tail := "\r\n--" + mw.Boundary() + "--\r\n"
	return io.MultiReader(&head, filler, strings.NewReader(tail)), mw.FormDataContentType()
}

type zeros struct{}

func (zeros) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}

func TestTooLarge(t *testing.T) {
	r, srv := newServer(t, Config{Token: testToken})

	// Declared length over the limit: answered from the headers alone, without reading the body.
	conn, err := net.Dial("tcp", srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "POST /big HTTP/1.1\r\nHost: %s\r\nContent-Type: multipart/form-data; boundary=xyz\r\n"+
		"Content-Length: %d\r\n\r\n", srv.Listener.Addr(), MaxBodySize+1)
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestEntityTooLarge {
		t.Errorf("sized body: status = %d, want 413", resp.StatusCode)
	}

	// Chunked: no declared length, cut off while reading.
	rd, ct := bigBody(t)
	req, _ := http.NewRequest(http.MethodPost, srv.URL+"/big", io.NopCloser(rd))
	req.Header.Set("Content-Type", ct)
	if resp, err := http.DefaultClient.Do(req); err == nil {
		resp.Body.Close()
		if resp.StatusCode != http.StatusRequestEntityTooLarge {
			t.Errorf("chunked body: status = %d, want 413", resp.StatusCode)
		}
	} // The server may close the connection mid-upload; the recorded delivery is what matters.

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ds, err := r.Wait(ctx, 2)
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range ds {
		if d.Status != http.StatusRequestEntityTooLarge || d.Error == "" || d.Verified {
			t.Errorf("delivery = %+v, want 413 with error", d)
		}
	}
}

func TestDeliveriesIsACopy(t *testing.T) {
	r, srv := newServer(t, Config{})
	post(t, srv.URL+"/", "", fieldsA(), []filePart{{name: "file", filename: "a", data: []byte("x")}})
	ds := r.Deliveries()
	ds[0].Fields["fax"] = "changed"
	ds[0].Files[0].Name = "changed"
	ds[0].Status = 999
	d := r.Deliveries()[0]
	if d.Fields["fax"] != faxF1 || d.Files[0].Name != "file" || d.Status != 200 {
		t.Errorf("mutating the copy changed the record: %+v", d)
	}
}

// TestHandlerDirect covers a request that did not come through a server (no RequestURI).
func TestHandlerDirect(t *testing.T) {
	r := New(Config{Token: testToken})
	b, ct := body(fieldsA(), nil)
	req := httptest.NewRequest(http.MethodPost, "http://example.com/hook?a=1", b)
	req.RequestURI = ""
	req.Header.Set("Content-Type", ct)
	req.Header.Set(sign.Header, signFor(testToken, "http://example.com/hook?a=1", fieldsA(), nil))
	w := httptest.NewRecorder()
	r.ServeHTTP(w, req)
	if w.Code != 200 {
		t.Fatalf("status = %d, body %q", w.Code, w.Body.String())
	}
}
