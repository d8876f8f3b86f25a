package fleet

import (
	"bytes"
	"fmt"
	"io"
	"maps"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"os"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/faxhook/caddy-faxhook/examples/receiver"
	"github.com/faxhook/caddy-faxhook/queue/sign"
)

// completed is an accepted fax_completed of fax id at path with event id ev.
func completed(id int64, path, ev string) arrival {
	return arrival{faxID: id, path: path, eventID: ev, eventType: eventCompleted, status: 200}
}

func page(id int64, ev, to string, p int) arrival {
	return arrival{faxID: id, path: "/sent", eventID: ev, eventType: eventTransmitting, recipient: to, page: p, status: 200}
}

func retry(id int64, ev, to string, n int) arrival {
	return arrival{faxID: id, path: "/sent", eventID: ev, eventType: eventRetry, recipient: to, retry: n, status: 200}
}

func TestTally(t *testing.T) {
	t0 := time.Now()
	at := func(a arrival, sec float64, from string) arrival {
		a.at, a.from = t0.Add(time.Duration(sec*float64(time.Second))), from
		return a
	}
	kills := []killing{{name: "a", at: t0.Add(3 * time.Second)}, {name: "b", at: t0.Add(10 * time.Second)}}
	expected := map[int64]string{1: "/sent", 2: "/cb/0", 3: "/sent", 4: "/sent", 5: "/sent", 6: "/sent", 7: "/sent", 8: "/sent",
		10: "/sent", 11: "/sent", 12: "/sent", 13: "/sent"}
	as := []arrival{
		at(completed(1, "/sent", "e1"), 1, "a"),
		at(completed(2, "/sent", "e2"), 1, "a"), // misrouted
		at(completed(3, "/sent", "e3"), 2, "a"),
		at(completed(3, "/sent", "e3"), 4, "b"), // its sender a was killed at 3s: allowed
		at(completed(4, "/sent", "e4"), 4, "b"),
		at(completed(4, "/sent", "e4b"), 4, "c"), // another event for the same change: duplicate
		{faxID: 5, path: "/sent", eventID: "e5", eventType: eventCompleted, status: refusedStatus},
		{faxID: 6, path: "/sent", eventID: "e6", eventType: eventCompleted, status: http.StatusUnauthorized},
		at(completed(7, "/sent", "e7"), 6, "a"),
		at(completed(7, "/sent", "e7"), 7, "b"), // no kill since: duplicate
		at(completed(8, "/sent", "e8"), 11, "b"),
		at(completed(8, "/sent", "e8"), 13, "c"), // b was killed at 10s, within the slack before 11s
		at(completed(10, "/sent", "e10"), 2, "c"),
		at(completed(10, "/sent", "e10"), 4, "a"), // a was killed, but c sent the first: duplicate
		at(completed(11, "/sent", "e11"), 2, ""),
		at(completed(11, "/sent", "e11"), 4, "b"), // unknown sender, a kill since: allowed
		at(completed(12, "/sent", "e12"), 2.5, "a"),
		at(completed(12, "/sent", "e12"), 3.5, "a"), // a restarted at once and took its claim up again: allowed
		at(completed(13, "/sent", "e13"), 2.5, "a"),
		at(completed(13, "/sent", "e13"), 3.5, "b"), // a was killed, but b could not claim the job so soon: duplicate
		at(completed(9, "/sent", "e9"), 1, "c"),     // unexpected
		at(arrival{path: "/sent", eventType: eventCompleted, faxID: 1, status: 200}, 1, "c"),
	}
	rule := repeatRule{slack: 2 * time.Second, minGap: 1500 * time.Millisecond}
	got := tally(expected, as, kills, rule)
	check := func(name string, got, want []int64) {
		t.Helper()
		if !slices.Equal(got, want) {
			t.Errorf("%s = %v, want %v", name, got, want)
		}
	}
	check("Expected", got.Expected, []int64{1, 2, 3, 4, 5, 6, 7, 8, 10, 11, 12, 13})
	check("Delivered", got.Delivered, []int64{1, 2, 3, 4, 7, 8, 10, 11, 12, 13})
	check("Lost", got.Lost, []int64{5, 6})
	check("Misrouted", got.Misrouted, []int64{2})
	check("DuplicateEvents", got.DuplicateEvents, []int64{1, 4, 7, 10, 13}) // fax 1: an event without an id is another event
	check("RepeatedFaxes", got.RepeatedFaxes, []int64{3, 8, 11, 12})
	check("Unexpected", got.Unexpected, []int64{9})
	if got.Repeated != 4 || got.Unexplained != 3 || got.Refused != 1 || got.Unverified != 1 || got.NoEventID != 1 || got.Requests != len(as) {
		t.Errorf("Repeated %d Unexplained %d Refused %d Unverified %d NoEventID %d Requests %d, want 4 3 1 1 1 %d",
			got.Repeated, got.Unexplained, got.Refused, got.Unverified, got.NoEventID, got.Requests, len(as))
	}
	if want := map[string]int{"?": 1, "a": 8, "b": 6, "c": 5}; !maps.Equal(got.BySender, want) {
		t.Errorf("BySender = %v, want %v", got.BySender, want)
	}
	if got.OK() {
		t.Error("OK with lost faxes")
	}
	if ok := tally(map[int64]string{3: "/sent"}, as[2:4], kills, rule); !ok.OK() || ok.Repeated != 1 {
		t.Errorf("a repeated delivery after a kill alone: OK %v, Repeated %d; want true, 1", ok.OK(), ok.Repeated)
	}
}

func TestInOrder(t *testing.T) {
	const a, b = "+15550100000", "+15550100001"
	for _, tc := range []struct {
		name string
		as   []arrival
		want bool
	}{
		{"pages then completed", []arrival{page(1, "p1", a, 1), page(1, "p2", a, 2), completed(1, "/sent", "c")}, true},
		{"retries then pages", []arrival{retry(1, "r1", a, 1), retry(1, "r2", a, 2), page(1, "p1", a, 1), completed(1, "/sent", "c")}, true},
		{"repeat in place", []arrival{page(1, "p1", a, 1), page(1, "p1", a, 1), page(1, "p2", a, 2), completed(1, "/sent", "c"), completed(1, "/sent", "c")}, true},
		{"recipients interleave", []arrival{page(1, "a1", a, 1), page(1, "b1", b, 1), page(1, "a2", a, 2), page(1, "b2", b, 2)}, true},
		{"page after completed", []arrival{page(1, "p1", a, 1), completed(1, "/sent", "c"), page(1, "p2", a, 2)}, false},
		{"lower page later", []arrival{page(1, "p2", a, 2), page(1, "p1", a, 1)}, false},
		{"repeat after a later event", []arrival{page(1, "p1", a, 1), page(1, "p2", a, 2), page(1, "p1", a, 1)}, false},
		{"lower retry later", []arrival{retry(1, "r2", a, 2), retry(1, "r1", a, 1)}, false},
		{"retry after its pages", []arrival{retry(1, "r1", a, 1), page(1, "p1", a, 1), retry(1, "r1", a, 1)}, false},
	} {
		if got := inOrder(tc.as); got != tc.want {
			t.Errorf("%s: inOrder = %v, want %v", tc.name, got, tc.want)
		}
	}
}

func TestParseLeader(t *testing.T) {
	for _, tc := range []struct {
		text string
		want leadership
	}{
		{"# HELP faxhook_fleet_leader 1 on the leader\n# TYPE faxhook_fleet_leader gauge\nfaxhook_fleet_leader 1\n", leadYes},
		{"faxhook_fleet_leader 0\n", leadNo},
		{`faxhook_fleet_leader{instance="a"} 1` + "\n", leadYes},
		{"faxhook_fleet_leader_changes_total 3\nfaxhook_fleet_leader 0\n", leadNo},
		{"caddy_admin_http_requests_total 3\n", leadUnknown},
	} {
		if got := parseLeader(strings.NewReader(tc.text)); got != tc.want {
			t.Errorf("parseLeader(%q) = %v, want %v", tc.text, got, tc.want)
		}
	}
}

// TestRecorder sends a signed webhook, one with a bad signature and one the receiver refuses
// through the recorder, and checks what it keeps.
func TestRecorder(t *testing.T) {
	rcv := receiver.New(receiver.Config{Token: "tok", Respond: func(d receiver.Delivery) int {
		if d.Fields["event_type"] == eventRetry {
			return refusedStatus
		}
		return 0
	}})
	srv := httptest.NewServer(newRecorder(rcv))
	defer srv.Close()
	rec := srv.Config.Handler.(*recorder)

	post := func(token string, fields []sign.Field, ev string) {
		t.Helper()
		var body bytes.Buffer
		mw := multipart.NewWriter(&body)
		for _, f := range fields {
			mw.WriteField(f.Name, f.Value)
		}
		mw.Close()
		url := srv.URL + "/cb/4"
		req, _ := http.NewRequest(http.MethodPost, url, &body)
		req.Header.Set("Content-Type", mw.FormDataContentType())
		req.Header.Set(sign.Header, sign.Sign(token, url, fields, nil))
		req.Header.Set(headerEventID, ev)
		req.Header.Set(headerAttempt, "2")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	fax := fmt.Sprintf(`{"id":%d,"status":"success"}`, 77)
	post("tok", []sign.Field{{Name: "fax", Value: fax}, {Name: "event_type", Value: eventTransmitting},
		{Name: "page", Value: "2"}, {Name: "recipient_phone_number", Value: "+15550100000"}}, "ev1")
	post("wrong", []sign.Field{{Name: "fax", Value: fax}, {Name: "event_type", Value: eventCompleted}}, "ev2")
	post("tok", []sign.Field{{Name: "fax", Value: fax}, {Name: "event_type", Value: eventRetry},
		{Name: "retry_count", Value: "1"}, {Name: "recipient_phone_number", Value: "+15550100000"}}, "ev3")

	as := rec.arrivals()
	if len(as) != 3 {
		t.Fatalf("%d arrivals, want 3", len(as))
	}
	want := []arrival{
		{seq: 1, path: "/cb/4", eventID: "ev1", attempt: 2, eventType: eventTransmitting, faxID: 77, recipient: "+15550100000", page: 2, status: 200},
		{seq: 2, path: "/cb/4", eventID: "ev2", attempt: 2, eventType: eventCompleted, faxID: 77, status: http.StatusUnauthorized},
		{seq: 3, path: "/cb/4", eventID: "ev3", attempt: 2, eventType: eventRetry, faxID: 77, recipient: "+15550100000", retry: 1, status: refusedStatus},
	}
	for i := range as {
		as[i].at = want[i].at
		if as[i] != want[i] {
			t.Errorf("arrival %d = %+v, want %+v", i, as[i], want[i])
		}
	}
	if n := len(rcv.Deliveries()); n != 3 {
		t.Errorf("the receiver recorded %d deliveries, want 3", n)
	}
}

// TestServeAttributed checks that a request is traced to the process that opened its
// connection: this one.
func TestServeAttributed(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("traces connections through /proc")
	}
	url, stop, err := serveAttributed(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, ownerOf(r))
	}), func() map[int]string { return map[int]string{os.Getpid(): "self", 1: "init"} })
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	for range 2 { // a new connection, then the same one again
		resp, err := http.Get(url)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if string(b) != "self" {
			t.Fatalf("owner %q, want self", b)
		}
	}
}
