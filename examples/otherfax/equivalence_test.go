package otherfax

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/faxhook/caddy-faxhook/examples/faxapp"
	"github.com/faxhook/caddy-faxhook/module/profile"
	"github.com/faxhook/caddy-faxhook/module/profile/fax"
)

// twin drives a faxapp and an otherfax with the same seed and clock through the same calls, and
// returns what faxhook would extract from each one's answers: profile.Phaxio for faxapp, the
// example mapping for otherfax.
type twin struct {
	t     *testing.T
	clk   *clock
	phx   *httptest.Server
	other *env
	m     profile.Mapping
}

func newTwin(t *testing.T, seed int64, clk *clock, m profile.Mapping) *twin {
	if err := m.Validate(); err != nil {
		t.Fatal(err)
	}
	phx := httptest.NewServer(faxapp.New(faxapp.Config{APIKey: "k", APISecret: "s", Tick: tick, Seed: seed, Now: clk.Now}))
	t.Cleanup(phx.Close)
	return &twin{t: t, clk: clk, phx: phx, other: newEnv(t, seed, clk), m: m}
}

// phaxio calls faxapp; fields become a multipart form (with the document as "file").
func (tw *twin) phaxio(method, path string, fields [][2]string, file []byte) []byte {
	tw.t.Helper()
	var body io.Reader
	ct := ""
	if fields != nil || file != nil {
		var b bytes.Buffer
		mw := multipart.NewWriter(&b)
		for _, f := range fields {
			mw.WriteField(f[0], f[1])
		}
		if file != nil {
			fw, _ := mw.CreateFormFile("file", "doc.pdf")
			fw.Write(file)
		}
		mw.Close()
		body, ct = &b, mw.FormDataContentType()
	}
	req, _ := http.NewRequest(method, tw.phx.URL+path, body)
	if ct != "" {
		req.Header.Set("Content-Type", ct)
	}
	req.SetBasicAuth("k", "s")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		tw.t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		tw.t.Fatalf("faxapp %s %s: %d %s", method, path, resp.StatusCode, raw)
	}
	return raw
}

// otherfax calls otherfax and checks that the example mapping routes the call as wantRoute
// ("" for a call faxhook does not observe).
func (tw *twin) otherfax(method, path string, body any, wantRoute string) []byte {
	tw.t.Helper()
	route, _, ok := tw.m.Match(method, strings.Split(path, "?")[0])
	if route != wantRoute || ok != (wantRoute != "") {
		tw.t.Fatalf("Match(%s %s) = %q %v, want %s", method, path, route, ok, wantRoute)
	}
	code, raw := tw.other.do(method, path, body)
	if code != 200 && code != 201 {
		tw.t.Fatalf("otherfax %s %s: %d %s", method, path, code, raw)
	}
	return raw
}

// same checks that the two extractions agree in everything faxhook uses: the v2.1 fax object,
// Full, CurrentPage and which fields were present (barcodes aside: otherfax has none).
func (tw *twin) same(what string, want, got []profile.Object) {
	tw.t.Helper()
	if len(want) != len(got) {
		tw.t.Fatalf("%s: faxapp %d objects, otherfax %d", what, len(want), len(got))
	}
	for i := range want {
		w, g := want[i], got[i]
		wj, _ := w.Fax.JSON()
		gj, _ := g.Fax.JSON()
		if !bytes.Equal(wj, gj) {
			tw.t.Fatalf("%s, object %d:\nfaxapp   %s\notherfax %s", what, i, wj, gj)
		}
		if w.Full != g.Full || !reflect.DeepEqual(w.CurrentPage, g.CurrentPage) {
			tw.t.Fatalf("%s, object %d: Full %v/%v CurrentPage %v/%v", what, i, w.Full, g.Full, w.CurrentPage, g.CurrentPage)
		}
	}
}

func (tw *twin) extractPhaxio(body []byte) []profile.Object {
	tw.t.Helper()
	objs, err := profile.Phaxio(body)
	if err != nil {
		tw.t.Fatalf("profile.Phaxio: %v", err)
	}
	return objs
}

func (tw *twin) extractMapped(route string, body []byte) []profile.Object {
	tw.t.Helper()
	objs, err := tw.m.Extract(route, body)
	if err != nil {
		tw.t.Fatalf("mapping.Extract(%s): %v\n%s", route, err, body)
	}
	return objs
}

// send creates the same fax on both and checks the send responses agree.
func (tw *twin) send(to []string, pages int, contentURL string, extra map[string]any) int64 {
	tw.t.Helper()
	var fields [][2]string
	req := map[string]any{"recipients": to, "notify_url": "https://example.com/cb"}
	for _, n := range to {
		fields = append(fields, [2]string{"to[]", n})
	}
	var file []byte
	if contentURL != "" {
		fields = append(fields, [2]string{"content_url", contentURL})
		req["document_url"] = contentURL
	} else {
		file = faxapp.PDF(pages)
		req["document_base64"] = base64.StdEncoding.EncodeToString(file)
	}
	for k, v := range extra {
		req[k] = v
		switch k {
		case "labels":
			for tk, tv := range v.(map[string]string) {
				fields = append(fields, [2]string{"tag[" + tk + "]", tv})
			}
		case "caller_id":
			fields = append(fields, [2]string{"caller_id", v.(string)})
		case "simulate_failure":
			typ, _ := untranslate(categories, v.(string))
			fields = append(fields, [2]string{"test_fail", typ})
		}
	}
	fields = append(fields, [2]string{"callback_url", "https://example.com/cb"})
	pb := tw.phaxio("POST", "/v2.1/faxes", fields, file)
	ob := tw.otherfax("POST", "/api/fax/jobs", req, profile.RouteSend)
	tw.same("send", tw.extractPhaxio(pb), tw.extractMapped(profile.RouteSend, ob))
	id, ok := profile.ID(pb)
	oid, upstream, ook := tw.m.NewID(ob)
	if !ok || !ook || id != oid || upstream != fmt.Sprint(id) {
		tw.t.Fatalf("send ids: faxapp %d %v, otherfax %d %q %v", id, ok, oid, upstream, ook)
	}
	return id
}

// step is one observation: what the sequence of objects of one fax implies, as events.
type tracker struct {
	last   map[int64]profile.Object
	events []string
}

// observe derives the webhook events faxhook's rules give for a new state of a fax: completion,
// each new page on the wire to a recipient, each retry scheduled.
func (tr *tracker) observe(tick int, o profile.Object) {
	if !o.Full {
		return
	}
	prev, seen := tr.last[o.Fax.ID]
	tr.last[o.Fax.ID] = o
	if fax.IsTerminal(o.Fax.Status) && (!seen || !fax.IsTerminal(prev.Fax.Status)) && o.Fax.Direction == fax.DirectionSent {
		tr.events = append(tr.events, fmt.Sprintf("t%d %d %s %s", tick, o.Fax.ID, fax.EventFaxCompleted, o.Fax.Status))
	}
	for i, r := range o.Fax.Recipients {
		var pr fax.Recipient
		if seen && i < len(prev.Fax.Recipients) {
			pr = prev.Fax.Recipients[i]
		}
		if p, pp := o.CurrentPage[r.PhoneNumber], prev.CurrentPage[r.PhoneNumber]; p > pp && r.Status != nil && *r.Status == fax.RecipientCallActive {
			tr.events = append(tr.events, fmt.Sprintf("t%d %d %s %s page %d", tick, o.Fax.ID, fax.EventTransmittingPage, r.PhoneNumber, p))
		}
		if r.Status != nil && *r.Status == fax.RecipientWillRetry && r.RetryCount > pr.RetryCount {
			tr.events = append(tr.events, fmt.Sprintf("t%d %d %s %s retry %d", tick, o.Fax.ID, fax.EventRetryScheduled, r.PhoneNumber, r.RetryCount))
		}
	}
}

// TestSameEventsAsFaxapp runs one scenario against faxapp and otherfax in lockstep: at every
// tick, the v2.1 fax objects faxhook extracts from otherfax's answers through the example mapping
// equal those it extracts from faxapp's Phaxio answers, for single gets, lists, sends, resends
// and cancels, so the webhook events derived from them are the same too.
func TestSameEventsAsFaxapp(t *testing.T) {
	for _, tc := range []struct {
		name string
		zone *time.Location
		tz   string
	}{
		{"UTC", time.UTC, ""},
		{"Chicago", time.FixedZone("CDT", -5*3600), "America/Chicago"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := ExampleMapping()
			m.TimeZone = tc.tz
			clk := &clock{t: start.In(tc.zone)}
			tw := newTwin(t, 3, clk, m)

			ids := []int64{
				tw.send([]string{"+15550000000", "+15550000001"}, 3, "", map[string]any{
					"labels": map[string]string{"order": "42", "dept": "billing"}, "caller_id": "+15551110000"}),
				tw.send([]string{"+15550000002", "+15550000003"}, 3, "", nil),
				tw.send([]string{"+15550000000", "+15550000003"}, 2, "", nil),
				tw.send([]string{"+15550000000"}, 0, "https://example.com/a.pdf", map[string]any{"simulate_failure": "protocol"}),
				tw.send([]string{"+14155550123", "+12125550199", "+13125550142", "+17205550111"}, 2, "", nil),
				tw.send([]string{"+15550000000"}, 4, "", nil), // cancelled at tick 2
			}
			pdf := faxapp.PDF(2)
			pb := tw.phaxio("POST", "/v2.1/faxes", [][2]string{{"direction", "received"}, {"from_number", "+15551234567"}}, pdf)
			tw.otherfax("POST", "/api/fax/inbound", map[string]any{"from": "+15551234567", "document_base64": base64.StdEncoding.EncodeToString(pdf)}, "")
			in, _ := profile.ID(pb)
			ids = append(ids, in)

			phxEvents := &tracker{last: map[int64]profile.Object{}}
			otherEvents := &tracker{last: map[int64]profile.Object{}}
			for tk := 0; tk <= 14; tk++ {
				switch tk {
				case 2:
					pb := tw.phaxio("POST", fmt.Sprintf("/v2.1/faxes/%d/cancel", ids[5]), nil, nil)
					ob := tw.otherfax("POST", fmt.Sprintf("/api/fax/jobs/%d/cancel", ids[5]), nil, profile.RouteCancel)
					// Phaxio answers a cancel with {"id":N}; otherfax with the cancelled job.
					want, got := tw.extractPhaxio(pb), tw.extractMapped(profile.RouteCancel, ob)
					if len(want) != 1 || len(got) != 1 || want[0].Fax.ID != got[0].Fax.ID || !got[0].Full {
						t.Fatalf("cancel: %+v / %+v", want, got)
					}
				case 3:
					pb := tw.phaxio("POST", fmt.Sprintf("/v2.1/faxes/%d/resend", ids[0]), nil, nil)
					ob := tw.otherfax("POST", fmt.Sprintf("/api/fax/jobs/%d/retry", ids[0]), `{"notify_url":"https://example.com/again"}`, profile.RouteResend)
					want, got := tw.extractPhaxio(pb), tw.extractMapped(profile.RouteResend, ob)
					tw.same("resend", want, got)
					ids = append(ids, want[0].Fax.ID)
				}
				for _, id := range ids {
					pb := tw.phaxio("GET", fmt.Sprintf("/v2.1/faxes/%d", id), nil, nil)
					ob := tw.otherfax("GET", fmt.Sprintf("/api/fax/jobs/%d", id), nil, profile.RouteStatus)
					want, got := tw.extractPhaxio(pb), tw.extractMapped(profile.RouteStatus, ob)
					tw.same(fmt.Sprintf("tick %d, fax %d", tk, id), want, got)
					phxEvents.observe(tk, want[0])
					otherEvents.observe(tk, got[0])
				}
				pb := tw.phaxio("GET", "/v2.1/faxes?per_page=100", nil, nil)
				ob := tw.otherfax("GET", "/api/fax/jobs?limit=100", nil, profile.RouteList)
				tw.same(fmt.Sprintf("tick %d, list", tk), tw.extractPhaxio(pb), tw.extractMapped(profile.RouteList, ob))
				clk.Advance(tick)
			}

			if !slices.Equal(phxEvents.events, otherEvents.events) {
				t.Fatalf("events differ:\nfaxapp   %q\notherfax %q", phxEvents.events, otherEvents.events)
			}
			log := strings.Join(otherEvents.events, "\n")
			for _, want := range []string{
				"fax_completed success", "fax_completed failure", "fax_completed partialsuccess",
				"transmitting_page +15550000001 page 3", "retry_scheduled +15550000001 retry 1",
				"retry_scheduled +15550000002 retry 2",
			} {
				if !strings.Contains(log, want) {
					t.Errorf("no %q among the events:\n%s", want, log)
				}
			}
			if o := otherEvents.last[ids[0]]; !strings.HasSuffix(o.Fax.CreatedAt, clk.Now().Format("-07:00")) {
				t.Errorf("created_at %s not in the clock's zone", o.Fax.CreatedAt)
			}
		})
	}
}
