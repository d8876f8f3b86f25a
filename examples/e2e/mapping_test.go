package e2e

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/faxhook/caddy-faxhook/examples/faxapp"
	"github.com/faxhook/caddy-faxhook/examples/harness"
	"github.com/faxhook/caddy-faxhook/examples/otherfax"
	"github.com/faxhook/caddy-faxhook/examples/receiver"
)

// otherCall makes a bearer-authenticated JSON call to the otherfax API through Caddy.
func otherCall(ctx context.Context, t *testing.T, method, url, token string, body any) map[string]any {
	t.Helper()
	var rd *bytes.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	} else {
		rd = bytes.NewReader(nil)
	}
	req, _ := http.NewRequestWithContext(ctx, method, url, rd)
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil || resp.StatusCode >= 300 {
		t.Fatalf("%s %s: %s %v %v", method, url, resp.Status, out, err)
	}
	return out
}

// The second simulated service, whose JSON looks nothing like Phaxio's, produces the same
// webhooks as faxapp does, through the mapping configuration alone.
func TestMappedServiceProducesSameEvents(t *testing.T) {
	bin, err := harness.CaddyBinary()
	if err != nil {
		t.Fatal(err)
	}
	const tok = "other-token"
	up := serve(t, otherfax.New(otherfax.Config{Token: tok, Tick: 50 * time.Millisecond, Seed: 3}))
	rcv := receiver.New(receiver.Config{Token: token})
	rcvURL := serve(t, rcv)
	dir := t.TempDir()
	mappingFile := filepath.Join(dir, "mapping.json")
	if err := os.WriteFile(mappingFile, []byte(otherfax.ExampleMappingJSON), 0o644); err != nil {
		t.Fatal(err)
	}
	admin, _ := harness.FreeAddr()
	site, _ := harness.FreeAddr()
	cf := fmt.Sprintf(`{
	admin %s
	auto_https off
	faxhook {
		storage %s
		token {env.FAXHOOK_TOKEN}
		inflight on
		allow_private 127.0.0.0/8
		mapping %s
	}
}
http://%s {
	faxhook
	reverse_proxy %s
}
`, admin, filepath.Join(dir, "storage"), mappingFile, site, up)
	c, err := harness.StartCaddy(bin, filepath.Join(dir, "caddy"), admin, cf, "FAXHOOK_TOKEN="+token)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Stop()
	ctx := ctxT(t, 60*time.Second)
	base := "http://" + site + "/api/fax/jobs"
	const ok, busy = "+15550200000", "+15550200001"
	sent := otherCall(ctx, t, http.MethodPost, base, tok, map[string]any{
		"recipients":      []string{ok, busy},
		"document_base64": base64.StdEncoding.EncodeToString(faxapp.PDF(3)),
		"notify_url":      rcvURL + "/other?x=1",
	})
	id := int64(sent["job_id"].(float64))
	for {
		job := otherCall(ctx, t, http.MethodGet, fmt.Sprintf("%s/%d", base, id), tok, nil)["job"].(map[string]any)
		if s := job["state"]; s == "DELIVERED" || s == "FAILED" || s == "PARTIAL" {
			break
		}
		time.Sleep(30 * time.Millisecond)
	}
	ds, err := rcv.Wait(ctxT(t, 20*time.Second), 8)
	if err != nil {
		t.Fatalf("%v\n%s", err, c.Tail(30))
	}
	time.Sleep(300 * time.Millisecond)
	if n := rcv.Count(); n != 8 {
		t.Fatalf("%d webhooks, want 8 as for faxapp", n)
	}
	var got []string
	for _, d := range ds {
		if !d.Verified || d.URL != rcvURL+"/other?x=1" {
			t.Errorf("delivery to %s verified=%v", d.URL, d.Verified)
		}
		got = append(got, summary(d))
	}
	for _, ph := range []string{ok, busy} {
		var mine []string
		for _, s := range got {
			if strings.Contains(s, ph) {
				mine = append(mine, s)
			}
		}
		want := []string{"page " + ph + " 1", "page " + ph + " 2", "page " + ph + " 3"}
		if ph == busy {
			want = append([]string{"retry " + ph + " 1"}, want...)
		}
		if strings.Join(mine, ",") != strings.Join(want, ",") {
			t.Errorf("recipient %s: %v, want %v", ph, mine, want)
		}
	}
	last := ds[len(ds)-1]
	var f struct {
		ID     int64  `json:"id"`
		Status string `json:"status"`
	}
	json.Unmarshal([]byte(last.Fields["fax"]), &f)
	if summary(last) != "fax_completed" || f.ID != id || f.Status != "success" {
		t.Fatalf("last webhook %s for fax %d (%s), want fax_completed for %d success", summary(last), f.ID, f.Status, id)
	}
}
