package sinchfax

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/faxhook/caddy-faxhook/examples/faxapp"
	"github.com/faxhook/caddy-faxhook/module/profile"
)

// clock is a settable clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func call(t *testing.T, srv *httptest.Server, method, path string, body any, user string) (int, []byte) {
	t.Helper()
	var rd *bytes.Reader
	b, _ := json.Marshal(body)
	rd = bytes.NewReader(b)
	if body == nil {
		rd = bytes.NewReader(nil)
	}
	req, _ := http.NewRequest(method, srv.URL+path, rd)
	req.Header.Set("Content-Type", "application/json")
	req.SetBasicAuth(user, "secret")
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out bytes.Buffer
	out.ReadFrom(resp.Body)
	return resp.StatusCode, out.Bytes()
}

// The simulator's faxes progress as documented, and the shipped sinch_v3 mapping reads every
// answer.
func TestSimulatorThroughShippedMapping(t *testing.T) {
	clk := &clock{t: time.Date(2026, 12, 5, 3, 0, 0, 0, time.UTC)}
	const tick = time.Second
	s := New(Config{KeyID: "key", KeySecret: "secret", Tick: tick, Now: clk.Now, FailTo: []string{"+15550000002"}})
	srv := httptest.NewServer(s)
	defer srv.Close()
	m, err := profile.Shipped("sinch_v3")
	if err != nil {
		t.Fatal(err)
	}
	if code, _ := call(t, srv, "GET", s.Prefix()+"/faxes", nil, "nobody"); code != http.StatusUnauthorized {
		t.Fatalf("wrong credentials: %d", code)
	}
	if code, _ := call(t, srv, "GET", s.Prefix()+"/faxes?direction=received&per_page=1000", nil, "key"); code != http.StatusBadRequest {
		t.Fatalf("Phaxio's list query: %d, want 400", code)
	}
	doc := base64.StdEncoding.EncodeToString(faxapp.PDF(3))
	code, body := call(t, srv, "POST", s.Prefix()+"/faxes", map[string]any{
		"to": []string{"+15550000001", "+15550000002"}, "files": []map[string]string{{"file": doc, "fileType": "PDF"}},
		"callbackUrl": "https://example.com/cb"}, "key")
	if code != http.StatusOK {
		t.Fatalf("send: %d %s", code, body)
	}
	found, err := m.ExtractWithIDs(profile.RouteSend, body)
	if err != nil || len(found) != 2 {
		t.Fatalf("send answer: %v %v", found, err)
	}
	ok, bad := found[0].UpstreamID, found[1].UpstreamID
	state := func(id string) (string, int) {
		code, body := call(t, srv, "GET", s.Prefix()+"/faxes/"+id, nil, "key")
		objs, err := m.Extract(profile.RouteStatus, body)
		if code != http.StatusOK || err != nil || len(objs) != 1 {
			t.Fatalf("status: %d %s %v", code, body, err)
		}
		o := objs[0]
		return o.Fax.Status, o.CurrentPage[o.Fax.Recipients[0].PhoneNumber]
	}
	var got []string
	for range 6 {
		st, page := state(ok)
		st2, page2 := state(bad)
		got = append(got, st+"/"+string(rune('0'+page))+" "+st2+"/"+string(rune('0'+page2)))
		clk.Advance(tick)
	}
	want := []string{"queued/0 queued/0", "inprogress/1 inprogress/1", "inprogress/2 inprogress/2",
		"inprogress/3 failure/1", "inprogress/3 failure/1", "success/3 failure/1"}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("progression %q, want %q", got, want)
		}
	}
	code, body = call(t, srv, "POST", "/_sim/inbound", map[string]string{"from": "+15550000009", "to": "+15550000001",
		"file": base64.StdEncoding.EncodeToString(faxapp.PDF(2))}, "key")
	if code != http.StatusOK {
		t.Fatalf("inbound: %d %s", code, body)
	}
	code, body = call(t, srv, "GET", s.Prefix()+"/faxes?"+m.ListReceived, nil, "key")
	objs, err := m.Extract(profile.RouteList, body)
	if code != http.StatusOK || err != nil || len(objs) != 1 || objs[0].Fax.Direction != "received" ||
		*objs[0].Fax.FromNumber != "+15550000009" || objs[0].Fax.NumPages != 2 {
		t.Fatalf("received list: %d %s %v", code, body, err)
	}
	if code, pdf := call(t, srv, "GET", s.Prefix()+"/faxes/"+objs[0].UpstreamID+"/file.pdf", nil, "key"); code != 200 ||
		!bytes.Equal(pdf, faxapp.PDF(2)) {
		t.Fatalf("file: %d", code)
	}
}
