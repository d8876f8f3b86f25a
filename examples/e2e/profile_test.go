package e2e

import (
	"crypto/sha1"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/faxhook/caddy-faxhook/examples/faxapp"
	"github.com/faxhook/caddy-faxhook/examples/harness"
	"github.com/faxhook/caddy-faxhook/examples/otherfax"
	"github.com/faxhook/caddy-faxhook/examples/receiver"
)

// profileRun is one fax service behind a real Caddy with faxhook, polled by faxhook only.
type profileRun struct {
	t      *testing.T
	rcv    *receiver.Receiver
	rcvURL string
	caddy  *harness.Caddy
	site   string
	upURL  string
}

// waitCompleted waits (up to 45 s) for n fax_completed webhooks, then half a second more for
// anything that may follow, and returns every delivery; it fails the test unless exactly n
// arrived.
func (r *profileRun) waitCompleted(n int) []receiver.Delivery {
	r.t.Helper()
	completed := func() int {
		k := 0
		for _, d := range r.rcv.Deliveries() {
			if d.Fields["event_type"] == "fax_completed" {
				k++
			}
		}
		return k
	}
	deadline := time.Now().Add(45 * time.Second)
	for completed() < n && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	time.Sleep(500 * time.Millisecond) // nothing more may come
	ds := r.rcv.Deliveries()
	if k := completed(); k != n {
		r.t.Fatalf("%d fax_completed webhooks, want %d: %v", k, n, summaries(ds))
	}
	return ds
}

// startProfileRun starts the service h, a receiver and Caddy; faxhookOpts are extra global
// faxhook options in which RCV and FAX stand for the receiver's and the service's URLs.
func startProfileRun(t *testing.T, h http.Handler, faxhookOpts string) *profileRun {
	t.Helper()
	bin, err := harness.CaddyBinary()
	if err != nil {
		t.Fatal(err)
	}
	r := &profileRun{t: t, upURL: serve(t, h)}
	r.rcv = receiver.New(receiver.Config{Token: token})
	r.rcvURL = serve(t, r.rcv)
	admin, err := harness.FreeAddr()
	if err != nil {
		t.Fatal(err)
	}
	if r.site, err = harness.FreeAddr(); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	cf := fmt.Sprintf(`{
	admin %s
	auto_https off
	faxhook {
		storage %s
		token {env.FAXHOOK_TOKEN}
		allow_private 127.0.0.0/8
		inflight on
		received_url %s/received
		%s
	}
}

http://%s {
	faxhook
	reverse_proxy %s
}
`, admin, filepath.Join(dir, "storage"), r.rcvURL, strings.NewReplacer("RCV", r.rcvURL, "FAX", r.upURL).Replace(faxhookOpts), r.site, r.upURL)
	if r.caddy, err = harness.StartCaddy(bin, filepath.Join(dir, "caddy"), admin, cf, "FAXHOOK_TOKEN="+token); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := r.caddy.Stop(); err != nil {
			t.Errorf("stopping caddy: %v", err)
		}
		if t.Failed() {
			t.Logf("caddy log:\n%s", r.caddy.Tail(60))
		}
	})
	return r
}

// profileScenario is what both services go through: one fax sent through Caddy to a line that
// succeeds and one that is busy once (the client never asks about it again), and one fax
// received by the service directly (no client request reveals it). Only faxhook's poller can
// see how they end.
const (
	profileOK, profileBusy = "+15550200000", "+15550200001"
	profileFrom            = "+15550300000"
	profileLine            = "+18005550111"
	profileEvents          = 9 // 3 pages per recipient, 1 retry, 2 × fax_completed
)

// normalized is a delivery as two services must produce it identically: where it went, the
// event, the fax object and the SHA-1 of each file part. Times are left out (the two runs happen
// at different instants), and so is the changing state in the fax object of an inflight event
// (statuses, retry counts, cost, line figures): it is the state at the poll that revealed the event, and the
// two runs' polls fall at different moments of the simulation. fax_completed carries the final
// state, which is compared whole.
func normalized(t *testing.T, rcvURL string, d receiver.Delivery) string {
	t.Helper()
	if !d.Verified {
		t.Errorf("delivery to %s not verified: %s", d.URL, d.Error)
	}
	var f map[string]any
	if err := json.Unmarshal([]byte(d.Fields["fax"]), &f); err != nil {
		t.Fatalf("fax field is not JSON: %v: %q", err, d.Fields["fax"])
	}
	delete(f, "created_at")
	delete(f, "completed_at")
	inflight := d.Fields["event_type"] != "fax_completed"
	if inflight {
		delete(f, "status")
		delete(f, "cost")
	}
	if rs, ok := f["recipients"].([]any); ok {
		for _, r := range rs {
			if m, ok := r.(map[string]any); ok {
				delete(m, "completed_at")
				if inflight {
					for _, k := range []string{"status", "retry_count", "bitrate", "resolution"} {
						delete(m, k)
					}
				}
			}
		}
	}
	fb, _ := json.Marshal(f)
	var files []string
	for _, fi := range d.Files {
		files = append(files, fmt.Sprintf("%s:%s:%d", fi.Name, fi.SHA1, fi.Size))
	}
	return fmt.Sprintf("%s %s %s files=%v", strings.TrimPrefix(d.URL, rcvURL), summary(d), fb, files)
}

// collect waits for the scenario's webhooks and returns them normalized and sorted, after
// checking that each recipient's events arrived in order.
func (r *profileRun) collect() []string {
	r.t.Helper()
	ds, err := r.rcv.Wait(ctxT(r.t, 45*time.Second), profileEvents)
	if err != nil {
		r.t.Fatalf("waiting for %d webhooks (got %d): %v", profileEvents, r.rcv.Count(), err)
	}
	time.Sleep(500 * time.Millisecond)
	if n := r.rcv.Count(); n != profileEvents {
		r.t.Fatalf("%d webhooks, want exactly %d", n, profileEvents)
	}
	ds = r.rcv.Deliveries()
	for _, ph := range []string{profileOK, profileBusy} {
		var mine []string
		for _, d := range ds {
			if d.Fields["recipient_phone_number"] == ph {
				mine = append(mine, summary(d))
			}
		}
		want := []string{"page " + ph + " 1", "page " + ph + " 2", "page " + ph + " 3"}
		if ph == profileBusy {
			want = append([]string{"retry " + ph + " 1"}, want...)
		}
		if !slices.Equal(mine, want) {
			r.t.Errorf("recipient %s: %v, want %v", ph, mine, want)
		}
	}
	var out []string
	for _, d := range ds {
		out = append(out, normalized(r.t, r.rcvURL, d))
	}
	slices.Sort(out)
	return out
}

// A service whose API looks nothing like Phaxio's, fronted by configuration alone (global
// mapping and poll) and asked about its faxes by nobody but faxhook's poller, produces the same
// webhooks as faxapp does, sent and received, the received fax's PDF included.
func TestMappedServicePolledOnlyByFaxhook(t *testing.T) {
	const seed, tick = 5, 50 * time.Millisecond
	pdf := faxapp.PDF(2)
	sum := sha1.Sum(pdf)

	// faxapp, the Phaxio profile.
	fa := startProfileRun(t, faxapp.New(faxapp.Config{APIKey: key, APISecret: secret, Tick: tick, Seed: seed}),
		"poll {\n\t\t\tupstream FAX/v2.1\n\t\t\tcredentials "+key+" "+secret+"\n\t\t\tinterval 100ms\n\t\t}")
	ctx := ctxT(t, 90*time.Second)
	viaCaddy := &harness.Client{Base: "http://" + fa.site + "/v2.1", Key: key, Secret: secret}
	if _, err := viaCaddy.Send(ctx, harness.SendOptions{To: []string{profileOK, profileBusy}, File: faxapp.PDF(3),
		CallbackURL: fa.rcvURL + "/sent"}); err != nil {
		t.Fatal(err)
	}
	direct := &harness.Client{Base: fa.upURL + "/v2.1", Key: key, Secret: secret}
	if _, err := direct.TestReceive(ctx, pdf, profileFrom, profileLine); err != nil {
		t.Fatal(err)
	}
	want := fa.collect()

	// otherfax, the JSON mapping.
	const tok = "other-token"
	mappingFile := filepath.Join(t.TempDir(), "mapping.json")
	if err := os.WriteFile(mappingFile, []byte(otherfax.ExampleMappingJSON), 0o644); err != nil {
		t.Fatal(err)
	}
	of := startProfileRun(t, otherfax.New(otherfax.Config{Token: tok, Tick: tick, Seed: seed}),
		"mapping "+mappingFile+"\n\t\tpoll {\n\t\t\tupstream FAX\n\t\t\theader Authorization \"Bearer "+tok+"\"\n\t\t\tinterval 100ms\n\t\t}")
	otherCall(ctx, t, http.MethodPost, "http://"+of.site+"/api/fax/jobs", tok, map[string]any{
		"recipients":      []string{profileOK, profileBusy},
		"document_base64": base64.StdEncoding.EncodeToString(faxapp.PDF(3)),
		"notify_url":      of.rcvURL + "/sent",
	})
	otherCall(ctx, t, http.MethodPost, of.upURL+"/api/fax/inbound", tok, map[string]any{
		"from": profileFrom, "to": profileLine, "document_base64": base64.StdEncoding.EncodeToString(pdf),
	})
	got := of.collect()

	if !slices.Equal(got, want) {
		t.Fatalf("otherfax through the mapping:\n%s\nfaxapp:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	wantFile := fmt.Sprintf("[file:%s:%d]", hex.EncodeToString(sum[:]), len(pdf))
	received := 0
	for _, s := range got {
		if strings.HasPrefix(s, "/received ") {
			received++
			if !strings.Contains(s, "files="+wantFile) {
				t.Errorf("received fax's webhook without its PDF %s: %s", wantFile, s)
			}
		}
	}
	if received != 1 {
		t.Errorf("%d received-fax webhooks, want 1", received)
	}
}
