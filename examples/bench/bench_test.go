package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/faxhook/caddy-faxhook/examples/harness"
	"github.com/faxhook/caddy-faxhook/handler/extract"
)

// TestSmallRun runs the whole benchmark for a moment and checks only that every path answered
// correctly through both Caddys; timings are not asserted.
func TestSmallRun(t *testing.T) {
	if testing.Short() {
		t.Skip("starts two Caddy processes")
	}
	bin, err := harness.CaddyBinary()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Second)
	defer cancel()
	rep, err := Run(ctx, Options{
		Duration: 300 * time.Millisecond, Warmup: 50 * time.Millisecond, Rounds: 1, Concurrency: 2,
		CaddyBinary: bin,
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Paths) != len(AllPaths) {
		t.Fatalf("report has %d paths, want %d", len(rep.Paths), len(AllPaths))
	}
	for i, p := range rep.Paths {
		if p.Path != AllPaths[i] {
			t.Errorf("row %d is path %q, want %q", i, p.Path, AllPaths[i])
		}
		for name, s := range map[string]VariantStats{"bare": p.Bare, "faxhook": p.Faxhook} {
			if s.Requests == 0 || s.Errors != 0 || len(s.Rounds) != 1 {
				t.Errorf("(%s) %s: %d requests, %d errors (%s), %d rounds", p.Path, name, s.Requests, s.Errors, s.FirstError, len(s.Rounds))
			}
		}
	}
	if len(rep.Goals) != 2 {
		t.Errorf("%d goals, want 2", len(rep.Goals))
	}
	for _, p := range rep.Paths {
		for name, s := range map[string]VariantStats{"bare": p.Bare, "faxhook": p.Faxhook} {
			if s.GCPer1k < 0 || s.AllocPerRequest <= 0 {
				t.Errorf("(%s) %s: GC cycles per 1k %v, allocation per request %d: Go metrics not read", p.Path, name, s.GCPer1k, s.AllocPerRequest)
			}
		}
	}
	var out bytes.Buffer
	if err := rep.Print(&out); err != nil {
		t.Fatal(err)
	}
	for _, p := range AllPaths {
		if !strings.Contains(out.String(), "("+string(p)+") "+p.Request()) {
			t.Errorf("table lacks path (%s):\n%s", p, out.String())
		}
	}
	t.Logf("\n%s", out.String())
}

// TestUpstreamBodies checks that the static bodies are what faxhook would parse: realistic sizes
// and fax objects its extractor accepts.
func TestUpstreamBodies(t *testing.T) {
	u := newUpstream()
	if n := len(u.getBody); n < 700 || n > 1500 {
		t.Errorf("single fax body is %d bytes, want about 1 KB", n)
	}
	if n := len(u.list); n < 70_000 || n > 150_000 {
		t.Errorf("list body is %d bytes, want about 100 KB", n)
	}
	objs, err := extract.Phaxio(u.getBody)
	if err != nil || len(objs) != 1 || !objs[0].Full || objs[0].Fax.ID != getFaxID {
		t.Errorf("single fax: %d objects, err %v", len(objs), err)
	}
	objs, err = extract.Phaxio(u.list)
	if err != nil || len(objs) != listSize {
		t.Errorf("list: %d objects, err %v", len(objs), err)
	}
	var env struct {
		Data []map[string]any `json:"data"`
	}
	if err := json.Unmarshal(u.list, &env); err != nil || len(env.Data) != listSize {
		t.Fatalf("list does not decode: %v", err)
	}
	body, ct := sendBody("http://127.0.0.1:1/cb")
	if len(body) < uploadSize || !strings.HasPrefix(ct, "multipart/form-data; boundary=") {
		t.Errorf("send body %d bytes, content type %q", len(body), ct)
	}
}

func TestPercentileAndMedian(t *testing.T) {
	var lat []time.Duration
	for i := 1; i <= 100; i++ {
		lat = append(lat, time.Duration(i))
	}
	if p := percentile(lat, 0.5); p != 50 {
		t.Errorf("p50 = %d", p)
	}
	if p := percentile(lat, 0.99); p != 99 {
		t.Errorf("p99 = %d", p)
	}
	if p := percentile(lat[:1], 0.99); p != 1 {
		t.Errorf("p99 of one = %d", p)
	}
	if p := percentile(nil, 0.5); p != 0 {
		t.Errorf("p50 of none = %d", p)
	}
	if m := median([]float64{3, 1, 2}); m != 2 {
		t.Errorf("median = %v", m)
	}
	if m := median([]time.Duration{4, 1, 3, 2}); m != 2 {
		t.Errorf("median = %v", m)
	}
}

func TestParsePaths(t *testing.T) {
	ps, err := ParsePaths(" b, a ,b")
	if err != nil || len(ps) != 2 || ps[0] != PathGet || ps[1] != PathOther {
		t.Errorf("ParsePaths = %v, %v", ps, err)
	}
	if _, err := ParsePaths("a,e"); err == nil {
		t.Error("path e accepted")
	}
}

func TestCaddyfileDiffersOnlyInFaxhook(t *testing.T) {
	p := caddyfileParams{admin: "127.0.0.1:1", site: "127.0.0.1:2", upstream: "http://127.0.0.1:3", storage: "/s", sentURL: "http://127.0.0.1:4/sent", warnLog: "/w.log"}
	bare := caddyfile(p)
	p.faxhook = true
	fh := caddyfile(p)
	var kept []string
	for _, l := range strings.Split(fh, "\n") {
		faxhookOnly := false
		for _, w := range []string{"faxhook", "storage", "sent_url", "output file", "level WARN", "include"} {
			faxhookOnly = faxhookOnly || strings.Contains(l, w)
		}
		if !faxhookOnly && l != "\t}" {
			kept = append(kept, l)
		}
	}
	var bareLines []string
	for _, l := range strings.Split(bare, "\n") {
		if l != "\t}" {
			bareLines = append(bareLines, l)
		}
	}
	if strings.Join(kept, "\n") != strings.Join(bareLines, "\n") {
		t.Errorf("Caddyfiles differ beyond faxhook:\n%s\n---\n%s", bare, fh)
	}
	if !strings.Contains(bare, "level ERROR") || strings.Contains(bare, "faxhook") {
		t.Errorf("bare Caddyfile:\n%s", bare)
	}
}

func TestGCBudgetIsEqualAndExplicit(t *testing.T) {
	o := Options{}
	if err := o.defaults(); err != nil {
		t.Fatal(err)
	}
	env := strings.Join(o.gcEnv(), " ")
	if env != "GOGC=off GOMEMLIMIT=256MiB" {
		t.Errorf("default GC environment %q", env)
	}
	o.GOGC, o.GOMemLimit = "100", "default"
	if env := strings.Join(o.gcEnv(), " "); env != "GOGC=100" {
		t.Errorf("GC environment %q, want GOGC=100 alone", env)
	}
}

func TestSuspicious(t *testing.T) {
	for _, c := range []struct {
		cost, ratio float64
		want        bool
	}{{1.02, 0.98, false}, {0.97, 0.99, true}, {1.01, 1.05, true}, {1.0, 0, false}, {0, 0, false}} {
		if got := suspicious(c.cost, c.ratio) != ""; got != c.want {
			t.Errorf("suspicious(%v, %v) = %v, want %v", c.cost, c.ratio, got, c.want)
		}
	}
	g := Goal{Value: 0.95, Limit: 1.03, Met: true, Suspicious: suspicious(0.95, 0)}
	if g.Verdict() != "SUSPICIOUS" {
		t.Errorf("verdict of a cost below 1: %q", g.Verdict())
	}
}
