package e2e

import (
	"bytes"
	"context"
	"crypto/sha1"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/faxhook/caddy-faxhook/examples/faxapp"
	"github.com/faxhook/caddy-faxhook/examples/receiver"
	"github.com/faxhook/caddy-faxhook/examples/sinchfax"
	"github.com/faxhook/caddy-faxhook/module/profile"
)

const (
	sinchKey, sinchSecret = "sinch-key-id", "sinch-key-secret"
	sinchOK, sinchFail    = "+15550400000", "+15550400001"
	sinchFrom, sinchLine  = "+15550500000", "+18005550122"
)

// sinchDo makes a Basic-authenticated Sinch API call and returns the status and body.
func sinchDo(ctx context.Context, t *testing.T, method, url string, body any) (int, []byte) {
	t.Helper()
	var rd *bytes.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	} else {
		rd = bytes.NewReader(nil)
	}
	req, _ := http.NewRequestWithContext(ctx, method, url, rd)
	req.Header.Set("Content-Type", "application/json")
	req.SetBasicAuth(sinchKey, sinchSecret)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out bytes.Buffer
	out.ReadFrom(resp.Body)
	return resp.StatusCode, out.Bytes()
}

// sinchScenario sends a 3-page fax to a line that succeeds and one that fails, through Caddy,
// and has the simulator receive a 2-page fax (no client request reveals it). It returns the
// sent faxes' ids (by number) and the received fax's id and PDF.
func sinchScenario(ctx context.Context, t *testing.T, r *profileRun, sim *sinchfax.Service) (sent map[string]string, rcvID string, pdf []byte) {
	t.Helper()
	code, body := sinchDo(ctx, t, http.MethodPost, "http://"+r.site+sim.Prefix()+"/faxes", map[string]any{
		"to":          []string{sinchOK, sinchFail},
		"files":       []map[string]string{{"file": base64.StdEncoding.EncodeToString(faxapp.PDF(3)), "fileType": "PDF"}},
		"callbackUrl": r.rcvURL + "/sent",
		"labels":      map[string]string{"order": "42"},
	})
	var list struct {
		Faxes []struct{ ID, To string }
	}
	if code != http.StatusOK || json.Unmarshal(body, &list) != nil || len(list.Faxes) != 2 {
		t.Fatalf("send through Caddy: %d %s", code, body)
	}
	sent = map[string]string{}
	for _, f := range list.Faxes {
		sent[f.To] = f.ID
	}
	pdf = faxapp.PDF(2)
	code, body = sinchDo(ctx, t, http.MethodPost, r.upURL+"/_sim/inbound", map[string]string{
		"from": sinchFrom, "to": sinchLine, "file": base64.StdEncoding.EncodeToString(pdf)})
	var in struct{ ID string }
	if code != http.StatusOK || json.Unmarshal(body, &in) != nil || in.ID == "" {
		t.Fatalf("receiving a fax: %d %s", code, body)
	}
	return sent, in.ID, pdf
}

// checkSinch waits for the scenario's webhooks and checks them: v2.1 fax objects with one
// recipient per "to" and the Sinch id in tags, pages in order, both outcomes, the received fax
// with its PDF byte-identical, and every signature verified.
func checkSinch(t *testing.T, r *profileRun, sent map[string]string, rcvID string, pdf []byte) {
	t.Helper()
	ds := r.waitCompleted(3)
	pages := map[string][]string{}
	for _, d := range ds {
		if !d.Verified {
			t.Errorf("webhook to %s not verified: %s", d.URL, d.Error)
		}
		var f struct {
			ID           int64             `json:"id"`
			Direction    string            `json:"direction"`
			Status       string            `json:"status"`
			Cost         int               `json:"cost"`
			Tags         map[string]string `json:"tags"`
			FromNumber   *string           `json:"from_number"`
			ToNumber     *string           `json:"to_number"`
			ErrorType    *string           `json:"error_type"`
			NumPages     int               `json:"num_pages"`
			Recipients   []map[string]any  `json:"recipients"`
			CallerID     *string           `json:"caller_id"`
			ErrorMessage *string           `json:"error_message"`
		}
		if err := json.Unmarshal([]byte(d.Fields["fax"]), &f); err != nil {
			t.Fatalf("fax field: %v: %s", err, d.Fields["fax"])
		}
		uid := f.Tags["sinch_fax_id"]
		if f.ID != profile.DeriveID(uid) {
			t.Errorf("id %d is not DeriveID of tags.sinch_fax_id %q", f.ID, uid)
		}
		event := d.Fields["event_type"]
		switch {
		case strings.HasSuffix(d.URL, "/received"):
			if uid != rcvID || event != "fax_completed" || f.Direction != "received" || f.Status != "success" ||
				f.FromNumber == nil || *f.FromNumber != sinchFrom || f.ToNumber == nil || *f.ToNumber != sinchLine ||
				len(f.Recipients) != 0 || f.NumPages != 2 {
				t.Errorf("received fax webhook: %s", d.Fields["fax"])
			}
			sum := sha1.Sum(pdf)
			if len(d.Files) != 1 || d.Files[0].SHA1 != hex.EncodeToString(sum[:]) || d.Files[0].Size != len(pdf) {
				t.Errorf("received fax's PDF: %+v, want %d bytes with SHA-1 %x", d.Files, len(pdf), sum)
			}
		case strings.HasSuffix(d.URL, "/sent"):
			if len(f.Recipients) != 1 || f.Direction != "sent" || f.FromNumber != nil || f.Tags["order"] != "42" {
				t.Errorf("sent fax webhook: %s", d.Fields["fax"])
				continue
			}
			to, _ := f.Recipients[0]["phone_number"].(string)
			if sent[to] != uid {
				t.Errorf("recipient %s with sinch_fax_id %q, want %q", to, uid, sent[to])
			}
			switch event {
			case "transmitting_page":
				if d.Fields["recipient_phone_number"] != to {
					t.Errorf("page event of %s for %s", to, d.Fields["recipient_phone_number"])
				}
				pages[to] = append(pages[to], d.Fields["page"])
			case "fax_completed":
				if to == sinchOK && (f.Status != "success" || f.Cost != 21) {
					t.Errorf("successful fax: %s", d.Fields["fax"])
				}
				if to == sinchFail && (f.Status != "failure" || f.ErrorType == nil || *f.ErrorType != "lineError" ||
					f.Recipients[0]["status"] != "failure" || f.Cost != 7) {
					t.Errorf("failed fax: %s", d.Fields["fax"])
				}
			default:
				t.Errorf("unexpected %s: %s", event, d.Fields["fax"])
			}
		default:
			t.Errorf("webhook to %s", d.URL)
		}
	}
	if !slices.Equal(pages[sinchOK], []string{"1", "2", "3"}) {
		t.Errorf("pages of %s: %v, want 1 2 3", sinchOK, pages[sinchOK])
	}
	// The failing line fails after page 1: page 2 was on the wire if faxhook saw it so.
	if p := strings.Join(pages[sinchFail], " "); p != "1" && p != "1 2" {
		t.Errorf("pages of %s: %q, want 1 or 1 2", sinchFail, p)
	}
}

func summaries(ds []receiver.Delivery) []string {
	var out []string
	for _, d := range ds {
		out = append(out, summary(d)+" "+d.URL)
	}
	return out
}

// A Sinch-Fax-v3-shaped service fronted by `profile sinch_v3` and its credentials alone: the
// send goes through Caddy, and nobody but faxhook's poller asks about the faxes afterwards or
// learns of the received one.
func TestSinchV3ThroughThePoller(t *testing.T) {
	sim := sinchfax.New(sinchfax.Config{KeyID: sinchKey, KeySecret: sinchSecret, Tick: 300 * time.Millisecond,
		FailTo: []string{sinchFail}})
	r := startProfileRun(t, sim, "profile sinch_v3\n\t\tpoll {\n\t\t\tupstream FAX"+sim.Prefix()+
		"\n\t\t\tcredentials "+sinchKey+" "+sinchSecret+"\n\t\t\tinterval 100ms\n\t\t}")
	ctx := ctxT(t, 60*time.Second)
	sent, rcvID, pdf := sinchScenario(ctx, t, r, sim)
	checkSinch(t, r, sent, rcvID, pdf)
}

// The same service and scenario without a poll upstream: faxhook learns everything from the
// client's own requests through Caddy (status of each fax, the list of received faxes), and
// fetches the received fax's PDF through the client's route and credentials.
func TestSinchV3ThroughTraffic(t *testing.T) {
	sim := sinchfax.New(sinchfax.Config{KeyID: sinchKey, KeySecret: sinchSecret, Tick: 300 * time.Millisecond,
		FailTo: []string{sinchFail}})
	r := startProfileRun(t, sim, "profile sinch_v3")
	ctx := ctxT(t, 60*time.Second)
	sent, rcvID, pdf := sinchScenario(ctx, t, r, sim)
	base := "http://" + r.site + sim.Prefix()
	done := map[string]bool{}
	for len(done) < len(sent) {
		for _, id := range sent {
			code, body := sinchDo(ctx, t, http.MethodGet, base+"/faxes/"+id, nil)
			var f struct{ Status string }
			if code != http.StatusOK || json.Unmarshal(body, &f) != nil {
				t.Fatalf("status through Caddy: %d %s", code, body)
			}
			if f.Status == "COMPLETED" || f.Status == "FAILURE" {
				done[id] = true
			}
		}
		time.Sleep(60 * time.Millisecond)
	}
	code, body := sinchDo(ctx, t, http.MethodGet, base+"/faxes?direction=INBOUND&pageSize="+strconv.Itoa(100), nil)
	if code != http.StatusOK || !bytes.Contains(body, []byte(rcvID)) {
		t.Fatalf("received faxes through Caddy: %d %s", code, body)
	}
	checkSinch(t, r, sent, rcvID, pdf)
}
