package handler_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"mime/multipart"
	"net/http"
	"net/url"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2/caddytest"
)

// goFaxService is a fax service written in Go: POST /v2.1/faxes reads callback_url the way Go
// services do (r.FormValue for forms and bodies it cannot parse, encoding/json for JSON bodies,
// falling back to the query string) and answers with a new fax id, like Phaxio's send.
type goFaxService struct {
	next atomic.Int64
	mu   sync.Mutex
	read map[int64]string // fax id → the callback_url the service took
}

func (s *goFaxService) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost || r.URL.Path != "/v2.1/faxes" {
		http.NotFound(w, r)
		return
	}
	var cb string
	if strings.HasPrefix(r.Header.Get("Content-Type"), "application/json") {
		var body struct {
			CallbackURL string `json:"callback_url"`
		}
		json.NewDecoder(r.Body).Decode(&body)
		cb = body.CallbackURL
		if cb == "" {
			cb = r.URL.Query().Get("callback_url")
		}
	} else {
		r.ParseMultipartForm(1 << 20)
		cb = r.FormValue("callback_url")
	}
	id := 1000 + s.next.Add(1)
	s.mu.Lock()
	s.read[id] = cb
	s.mu.Unlock()
	b := fmt.Appendf(nil, `{"success":true,"message":"Fax queued for sending","data":{"id":%d}}`, id)
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", fmt.Sprint(len(b)))
	w.Write(b)
}

// TestInProcessCallbackURLPrecedence sends faxes through Caddy with repeated, over-long and
// query-string callback_urls and reads, through the admin API, which callback URL faxhook
// recorded for each: the one the Go fax service behind it took, or none when that one is longer
// than faxhook's 4,096-byte limit (never a later value instead).
func TestInProcessCallbackURLPrecedence(t *testing.T) {
	svc := &goFaxService{read: map[int64]string{}}
	up := serve(t, svc)
	admin, site := adminPort(t), port(t)
	storage := filepath.Join(t.TempDir(), "store")
	unloadAtEnd(t, admin)
	tester := caddytest.NewTester(t).WithDefaultOverrides(caddytest.Config{AdminPort: admin})
	tester.InitServer(jsonConfig(admin, site, storage, "https://sent.example/hook", up), "json")

	long := "https://example.com/" + strings.Repeat("a", 4096)
	form := func(kv ...string) (string, []byte) {
		v := make([]string, 0, len(kv)/2)
		for i := 0; i < len(kv); i += 2 {
			v = append(v, url.QueryEscape(kv[i])+"="+url.QueryEscape(kv[i+1]))
		}
		return "application/x-www-form-urlencoded", []byte(strings.Join(v, "&"))
	}
	mp := func(kv ...string) (string, []byte) {
		var b bytes.Buffer
		mw := multipart.NewWriter(&b)
		for i := 0; i < len(kv); i += 2 {
			mw.WriteField(kv[i], kv[i+1])
		}
		fw, _ := mw.CreateFormFile("file", "document.pdf")
		fw.Write(bytes.Repeat([]byte("%PDF-1.4\n"), 1000))
		mw.Close()
		return mw.FormDataContentType(), b.Bytes()
	}
	js := func(body string) (string, []byte) { return "application/json", []byte(body) }
	q := "?callback_url=" + url.QueryEscape("https://query.example/hook")
	cases := []struct {
		name, query string
		ct          string
		body        []byte
		want        []string
	}{
		{"form over-long first", "", "", nil, nil},
		{"multipart over-long first", "", "", nil, nil},
		{"json repeated", "", "", nil, []string{"https://a.example/2"}},
		{"json over-long last", "", "", nil, nil},
		{"query, form without one", q, "", nil, []string{"https://query.example/hook"}},
		{"query, form with one", q, "", nil, []string{"https://a.example/1"}},
		{"query, json without one", q, "", nil, []string{"https://query.example/hook"}},
		{"query, multipart with one", q, "", nil, []string{"https://query.example/hook"}},
	}
	cases[0].ct, cases[0].body = form("callback_url", long, "callback_url", "https://a.example/2")
	cases[1].ct, cases[1].body = mp("to[]", "+15550100000", "callback_url", long, "callback_url", "https://a.example/2")
	cases[2].ct, cases[2].body = js(`{"to":["+15550100000"],"callback_url":"https://a.example/1","callback_url":"https://a.example/2"}`)
	cases[3].ct, cases[3].body = js(`{"callback_url":"https://a.example/1","callback_url":"` + long + `"}`)
	cases[4].ct, cases[4].body = form("to[]", "+15550100000")
	cases[5].ct, cases[5].body = form("callback_url", "https://a.example/1")
	cases[6].ct, cases[6].body = js(`{"to":["+15550100000"]}`)
	cases[7].ct, cases[7].body = mp("callback_url", "https://a.example/1")

	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			resp, err := http.Post(fmt.Sprintf("http://127.0.0.1:%d/v2.1/faxes%s", site, c.query), c.ct, bytes.NewReader(c.body))
			if err != nil {
				t.Fatal(err)
			}
			var env struct {
				Data struct{ ID int64 } `json:"data"`
			}
			json.NewDecoder(resp.Body).Decode(&env)
			resp.Body.Close()
			if env.Data.ID == 0 {
				t.Fatalf("send answered %s without a fax id", resp.Status)
			}
			svc.mu.Lock()
			read := svc.read[env.Data.ID]
			svc.mu.Unlock()
			if len(read) <= 4096 && !slices.Equal(c.want, []string{read}) || len(read) > 4096 && c.want != nil {
				t.Fatalf("bad case: the fax service took %.50q, the case wants %q", read, c.want)
			}
			if got := recordedCallbacks(t, admin, env.Data.ID); !slices.Equal(got, c.want) {
				t.Fatalf("faxhook recorded callback_urls %.80q, want %q (what the fax service took)", got, c.want)
			}
		})
	}
}

// recordedCallbacks waits until faxhook tracks fax id and returns its callback URLs, as the
// admin API shows them.
func recordedCallbacks(t *testing.T, admin int, id int64) []string {
	t.Helper()
	u := fmt.Sprintf("http://localhost:%d/faxhook/faxes/%d", admin, id)
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp, err := http.Get(u)
		if err != nil {
			t.Fatal(err)
		}
		var f struct {
			CallbackURLs []string `json:"callback_urls"`
		}
		err = json.NewDecoder(resp.Body).Decode(&f)
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK && err == nil {
			return f.CallbackURLs
		}
		if time.Now().After(deadline) {
			t.Fatalf("GET %s: %s after 10s", u, resp.Status)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
