package jsontap

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/faxhook/caddy-faxhook/handler/formtap"
)

// chunkReader returns its data in pseudo-random chunks of 1..maxChunk bytes.
type chunkReader struct {
	data     []byte
	rng      *rand.Rand
	maxChunk int
}

func (c *chunkReader) Read(p []byte) (int, error) {
	if len(c.data) == 0 {
		return 0, io.EOF
	}
	n := min(len(p), len(c.data), 1+c.rng.IntN(c.maxChunk))
	copy(p, c.data[:n])
	c.data = c.data[n:]
	return n, nil
}

func jsonRequest(body []byte, seed uint64, maxChunk int) *http.Request {
	r := httptest.NewRequest("POST", "/api/fax/jobs", io.NopCloser(&chunkReader{data: body, rng: rand.New(rand.NewPCG(seed, 1)), maxChunk: maxChunk}))
	r.Header.Set("Content-Type", "application/json; charset=utf-8")
	r.ContentLength = -1
	return r
}

// tapJSON runs body through a JSONTap in random chunks and checks the bytes pass unchanged.
func tapJSON(t testing.TB, body []byte, paths []string, maxValue int, seed uint64) *JSONTap {
	t.Helper()
	r := jsonRequest(body, seed, 1+int(seed%97))
	tap := AttachJSON(r, paths, maxValue)
	if tap == nil {
		t.Fatal("no tap for a JSON body")
	}
	got, err := io.ReadAll(r.Body)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, body) {
		t.Fatal("body changed")
	}
	r.Body.Close()
	return tap
}

func TestJSONTap(t *testing.T) {
	body := `{"recipients":["+15550000000"],"document_base64":"JVBERi0=", "notify_url" : "https://example.com/cb?a=1&b=\u00e9\"",
	"nested":{"deep":{"url":"https://n.example/x"},"list":[{"u":"a"},{"u":"b"}],"n":5,"t":true,"z":null},
	"notify_url":"second", "escaped\u005fkey":"k", "long_key_beyond_any_wanted_path":"x", "arr":[[],{},[1,{"x":"y"}]]}`
	paths := []string{"notify_url", "nested.deep.url", "nested.list.1.u", "nested.n", "nested.t", "nested.z", "escaped_key", "arr.2.1.x", "missing"}
	for seed := range uint64(40) {
		tap := tapJSON(t, []byte(body), paths, 100, seed)
		got := tap.Fields()
		want := map[string][]string{
			"notify_url":      {"https://example.com/cb?a=1&b=é\"", "second"},
			"nested.deep.url": {"https://n.example/x"},
			"nested.list.1.u": {"b"},
			"nested.n":        {"5"},
			"nested.t":        {"true"},
			"escaped_key":     {"k"},
			"arr.2.1.x":       {"y"},
		}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("seed %d: got %v\nwant %v", seed, got, want)
		}
		if !tap.Complete() || len(tap.TruncatedNames()) != 0 {
			t.Fatalf("seed %d: complete %v truncated %v", seed, tap.Complete(), tap.TruncatedNames())
		}
	}
}

func TestJSONTapTruncatedAndMalformed(t *testing.T) {
	tap := tapJSON(t, []byte(`{"notify_url":"`+strings.Repeat("x", 300)+`","b":"ok"}`), []string{"notify_url", "b"}, 100, 1)
	if got := tap.Fields(); len(got["notify_url"]) != 0 || got["b"][0] != "ok" {
		t.Fatalf("fields %v", got)
	}
	if tn := tap.TruncatedNames(); !slices.Equal(tn, []string{"notify_url"}) {
		t.Fatalf("truncated %v", tn)
	}
	// 100 decoded bytes written as \u escapes (600 raw bytes) still fit.
	tap = tapJSON(t, []byte(`{"notify_url":"`+strings.Repeat(`\u0041`, 100)+`"}`), []string{"notify_url"}, 100, 2)
	if got := tap.Fields()["notify_url"]; len(got) != 1 || got[0] != strings.Repeat("A", 100) {
		t.Fatalf("escaped value %v", got)
	}
	for _, body := range []string{
		`{"notify_url":"a"`, `{"notify_url" "a"}`, `{"notify_url":"a",}`, `{"a":1]`, `[1,]x`, `{} {}`, `{"a":"b"}x`, `{1:2}`, `}`, ``,
	} {
		tap := tapJSON(t, []byte(body), []string{"notify_url"}, 100, 3)
		if tap.Complete() {
			t.Errorf("%q: complete", body)
		}
	}
	for _, body := range []string{`{}`, ` [ ] `, `5`, `"s"`, `{"a":[{"b":[]}]}`, "{\"notify_url\":null}\n"} {
		if tap := tapJSON(t, []byte(body), []string{"notify_url"}, 100, 4); !tap.Complete() || len(tap.Fields()) != 0 {
			t.Errorf("%q: complete %v fields %v", body, tap.Complete(), tap.Fields())
		}
	}
}

func TestJSONTapOtherTypes(t *testing.T) {
	r := httptest.NewRequest("POST", "/", strings.NewReader(`{"notify_url":"x"}`))
	r.Header.Set("Content-Type", "text/plain")
	body := r.Body
	if tap := AttachJSON(r, []string{"notify_url"}, 100); tap != nil || r.Body != body {
		t.Fatal("tapped a text/plain body")
	}
	var nilTap *JSONTap
	nilTap.Finish()
	if nilTap.Fields() != nil || nilTap.Complete() || nilTap.TruncatedNames() != nil {
		t.Fatal("nil tap")
	}
	r.Header.Set("Content-Type", "application/vnd.api+json")
	if tap := AttachJSON(r, []string{"notify_url"}, 100); tap == nil {
		t.Fatal("+json not tapped")
	}
	r = httptest.NewRequest("POST", "/", http.NoBody)
	r.Header.Set("Content-Type", "application/json")
	if tap := AttachJSON(r, []string{"notify_url"}, 100); tap == nil || tap.Complete() || len(tap.Fields()) != 0 {
		t.Fatal("empty body")
	}
}

func TestJSONTapFinishEarly(t *testing.T) {
	r := jsonRequest([]byte(`{"notify_url":"https://a.example","doc":"`+strings.Repeat("A", 10000)+`"}`), 1, 64)
	tap := AttachJSON(r, []string{"notify_url"}, 100)
	buf := make([]byte, 256)
	for range 3 {
		if _, err := r.Body.Read(buf); err != nil {
			t.Fatal(err)
		}
	}
	tap.Finish()
	if got := tap.Fields()["notify_url"]; len(got) != 1 || tap.Complete() {
		t.Fatalf("after Finish: %v complete %v", got, tap.Complete())
	}
	// Reading on after Finish passes the bytes through.
	if _, err := io.ReadAll(r.Body); err != nil {
		t.Fatal(err)
	}
}

func TestJSONTapContentLength(t *testing.T) {
	body := []byte(`{"notify_url":"u"}`)
	r := httptest.NewRequest("POST", "/", bytes.NewReader(body))
	r.Header.Set("Content-Type", "application/json")
	tap := AttachJSON(r, []string{"notify_url"}, 100)
	// A consumer that stops after exactly ContentLength bytes, without reading io.EOF.
	buf := make([]byte, len(body))
	if _, err := io.ReadFull(r.Body, buf); err != nil {
		t.Fatal(err)
	}
	if !tap.Complete() || tap.Fields()["notify_url"][0] != "u" {
		t.Fatalf("complete %v fields %v", tap.Complete(), tap.Fields())
	}
}

// TestJSONTapLargeDocument streams a large base64 document with the callback after it, in
// memory that does not grow with the document.
func TestJSONTapLargeDocument(t *testing.T) {
	doc := make([]byte, 8<<20)
	for i := range doc {
		doc[i] = byte(i * 7)
	}
	body := []byte(`{"recipients":["+15550000000"],"document_base64":"` + base64.StdEncoding.EncodeToString(doc) + `","notify_url":"https://cb.example/x"}`)
	r := jsonRequest(body, 1, 32<<10)
	tap := AttachJSON(r, []string{"notify_url"}, 4096)
	n, err := io.Copy(io.Discard, r.Body)
	if err != nil || n != int64(len(body)) {
		t.Fatal(n, err)
	}
	if got := tap.Fields()["notify_url"]; len(got) != 1 || got[0] != "https://cb.example/x" || !tap.Complete() {
		t.Fatalf("fields %v", tap.Fields())
	}
	allocs := testing.AllocsPerRun(5, func() {
		r := jsonRequest(body, 1, 32<<10)
		AttachJSON(r, []string{"notify_url"}, 4096)
		buf := make([]byte, 32<<10)
		for {
			if _, err := r.Body.Read(buf); err != nil {
				break
			}
		}
	})
	if allocs > 60 {
		t.Fatalf("%v allocations for an 11 MB body", allocs)
	}
}

func TestAttachRequest(t *testing.T) {
	form := httptest.NewRequest("POST", "/", strings.NewReader(url.Values{"notify_url": {"f"}}.Encode()))
	form.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	tap := AttachRequest(form, []string{"notify_url"}, 100)
	if _, ok := tap.(*formtap.Tap); !ok {
		t.Fatalf("form tap is %T", tap)
	}
	io.ReadAll(form.Body)
	if tap.Fields()["notify_url"][0] != "f" {
		t.Fatal("form field")
	}
	js := httptest.NewRequest("POST", "/", strings.NewReader(`{"notify_url":"j"}`))
	js.Header.Set("Content-Type", "application/json")
	tap = AttachRequest(js, []string{"notify_url"}, 100)
	if _, ok := tap.(*JSONTap); !ok {
		t.Fatalf("JSON tap is %T", tap)
	}
	io.ReadAll(js.Body)
	if tap.Fields()["notify_url"][0] != "j" {
		t.Fatal("JSON field")
	}
	other := httptest.NewRequest("POST", "/", strings.NewReader("x"))
	other.Header.Set("Content-Type", "application/pdf")
	if tap := AttachRequest(other, []string{"notify_url"}, 100); tap != nil {
		t.Fatalf("tap %T for a PDF", tap)
	}
}

// goValues returns what encoding/json finds at path in a valid JSON document: the last value of
// a repeated key, as the tap reports it (strings decoded, numbers and booleans as text).
func goValues(body []byte, p string) (string, bool) {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	var v any
	if dec.Decode(&v) != nil {
		return "", false
	}
	for _, seg := range strings.Split(p, ".") {
		switch c := v.(type) {
		case map[string]any:
			v = c[seg]
		case []any:
			i, err := strconv.Atoi(seg)
			if err != nil || i < 0 || i >= len(c) {
				return "", false
			}
			v = c[i]
		default:
			return "", false
		}
	}
	switch c := v.(type) {
	case string:
		return c, true
	case json.Number:
		return string(c), true
	case bool:
		return strconv.FormatBool(c), true
	}
	return "", false
}

func FuzzJSONTap(f *testing.F) {
	f.Add([]byte(`{"notify_url":"https://x","a":{"b":[1,{"c":"d"}]}}`), uint64(1))
	f.Add([]byte(`{"notify_url":"\u00e9\ud83d\ude00\\\"","notify_url":2}`), uint64(2))
	f.Add([]byte(`[{"a":{"b":[true,null,-1.5e3]}}]`), uint64(3))
	f.Add([]byte(`{"a":{"b":["x","y"]},"notify_url":null}`), uint64(4))
	f.Add([]byte(`{"notify_url":"a"`), uint64(5))
	paths := []string{"notify_url", "a.b.1", "a.b.1.c", "0.a.b.2"}
	f.Fuzz(func(t *testing.T, body []byte, seed uint64) {
		tap := tapJSON(t, body, paths, 64, seed)
		got := tap.Fields()
		complete := tap.Complete()
		var v any
		if json.Unmarshal(body, &v) != nil {
			return // the tap checks structure only; it need not reject what encoding/json rejects
		}
		if !complete {
			t.Fatalf("incomplete for valid JSON %q", body)
		}
		truncated := tap.TruncatedNames()
		for _, p := range paths {
			want, ok := goValues(body, p)
			vals := got[p]
			switch {
			case slices.Contains(truncated, p):
			case !ok: // a repeated key may hide an earlier value from encoding/json
			case ok && len(want) <= 64 && (len(vals) == 0 || vals[len(vals)-1] != want):
				t.Fatalf("%s: tap %q, encoding/json %q (%q)", p, vals, want, body)
			}
		}
		// AttachRequest's tap keeps the value encoding/json decodes, the last one, or none
		// (truncated) when that one is too long.
		r := jsonRequest(body, seed, 1+int(seed%97))
		last := attachJSON(r, paths, 64, true)
		io.ReadAll(r.Body)
		lastGot := last.Fields()
		for _, p := range paths {
			want, ok := goValues(body, p)
			vals, n := lastGot[p], last.TruncatedLength(p)
			switch {
			case len(vals) > 1 || len(vals) == 1 && n > 0:
				t.Fatalf("%s: last-value tap %q, truncated length %d (%q)", p, vals, n, body)
			case ok && len(want) <= 64 && (len(vals) != 1 || vals[0] != want):
				t.Fatalf("%s: last-value tap %q, encoding/json %q (%q)", p, vals, want, body)
			case ok && len(want) > 64 && (len(vals) != 0 || n <= 64):
				t.Fatalf("%s: last-value tap %q (truncated length %d), encoding/json %d bytes (%q)", p, vals, n, len(want), body)
			}
		}
	})
}

// AttachRequest keeps the last value of a repeated JSON key, the one encoding/json (and Ruby's
// JSON) decode; when that last value is too long, the key has none, even if an earlier one was
// short enough.
func TestAttachRequestJSONKeepsLastValue(t *testing.T) {
	long := "https://example.com/" + strings.Repeat("a", 5000)
	cases := []struct {
		body string
		want []string
		over bool
	}{
		{`{"callback_url":"https://a/1","callback_url":"https://a/2"}`, []string{"https://a/2"}, false},
		{`{"callback_url":"https://a/1","x":{"callback_url":"no"},"callback_url":"https://a/3","y":1}`, []string{"https://a/3"}, false},
		{`{"callback_url":"https://a/1","callback_url":"` + long + `"}`, nil, true},
		{`{"callback_url":"` + long + `","callback_url":"https://a/2"}`, []string{"https://a/2"}, false},
	}
	for _, c := range cases {
		r := jsonRequest([]byte(c.body), 3, 100)
		tap := AttachRequest(r, []string{"callback_url"}, 4096)
		io.ReadAll(r.Body)
		var goBody struct {
			CallbackURL string `json:"callback_url"`
		}
		if err := json.Unmarshal([]byte(c.body), &goBody); err != nil {
			t.Fatal(err)
		}
		got := tap.Fields()["callback_url"]
		if !slices.Equal(got, c.want) || (tap.TruncatedLength("callback_url") > 0) != c.over {
			t.Errorf("%.80s: callback_url %q, truncated length %d; want %q, over-long %v", c.body, got, tap.TruncatedLength("callback_url"), c.want, c.over)
		}
		if !c.over && goBody.CallbackURL != c.want[0] || c.over && goBody.CallbackURL != long {
			t.Errorf("%.80s: encoding/json decodes %.60q, the case expects otherwise", c.body, goBody.CallbackURL)
		}
	}
	// AttachJSON still reports every value.
	r := jsonRequest([]byte(cases[0].body), 4, 7)
	all := AttachJSON(r, []string{"callback_url"}, 4096)
	io.ReadAll(r.Body)
	if got := all.Fields()["callback_url"]; !slices.Equal(got, []string{"https://a/1", "https://a/2"}) {
		t.Errorf("AttachJSON: %q", got)
	}
}
