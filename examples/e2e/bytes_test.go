package e2e

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/faxhook/caddy-faxhook/examples/harness"
	"github.com/faxhook/caddy-faxhook/examples/receiver"
)

// staticUpstream serves fixed bodies: a JSON fax, a gzip-encoded JSON fax, a 50 MB JSON list and
// a 50 MB binary file.
type staticUpstream struct {
	fax1, fax2gz, list, file []byte
}

func completedFax(id int) []byte {
	done := time.Now().Add(time.Hour).Format("2006-01-02T15:04:05.000-07:00")
	return []byte(fmt.Sprintf(`{"success":true,"message":"Metadata for fax","data":{"id":%d,"direction":"sent","num_pages":1,"status":"success","is_test":true,"created_at":%q,"caller_id":null,"from_number":null,"completed_at":%q,"caller_name":null,"cost":7,"tags":{},"recipients":[{"phone_number":"+15550100000","status":"success","retry_count":0,"completed_at":%q,"bitrate":14400,"resolution":8040,"error_type":null,"error_id":null,"error_message":null}],"to_number":null,"error_id":null,"error_type":null,"error_message":null,"barcodes":[]}}`, id, done, done, done))
}

func newStaticUpstream() *staticUpstream {
	u := &staticUpstream{fax1: completedFax(1)}
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write(completedFax(2))
	zw.Close()
	u.fax2gz = gz.Bytes()
	var list bytes.Buffer
	list.WriteString(`{"success":true,"message":"Retrieved faxes successfully","data":[`)
	for i := 0; list.Len() < 50<<20; i++ {
		if i > 0 {
			list.WriteByte(',')
		}
		fmt.Fprintf(&list, `{"id":%d,"direction":"sent","num_pages":1,"status":"success","is_test":true,"created_at":"2020-01-01T00:00:00.000Z","completed_at":"2020-01-01T00:00:00.000Z","tags":{"note":"%s"}}`, 1000+i, strings.Repeat("x", 200))
	}
	list.WriteString(`],"paging":{"total":1,"per_page":25,"page":1}}`)
	u.list = list.Bytes()
	u.file = make([]byte, 50<<20)
	for i := range u.file {
		u.file[i] = byte(i * 7)
	}
	return u
}

func (u *staticUpstream) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch r.URL.Path {
	case "/v2.1/faxes/1":
		w.Header().Set("Content-Type", "application/json")
		w.Write(u.fax1)
	case "/v2.1/faxes/2":
		w.Header().Set("Content-Type", "application/json")
		if strings.Contains(r.Header.Get("Accept-Encoding"), "gzip") {
			w.Header().Set("Content-Encoding", "gzip")
			w.Write(u.fax2gz)
			return
		}
		w.Write(completedFax(2))
	case "/v2.1/faxes":
		w.Header().Set("Content-Type", "application/json")
		w.Write(u.list)
	case "/v2.1/faxes/3/file":
		w.Header().Set("Content-Type", "application/pdf")
		w.Write(u.file)
	default:
		http.NotFound(w, r)
	}
}

func TestClientGetsUpstreamBytesUnchanged(t *testing.T) {
	bin, err := harness.CaddyBinary()
	if err != nil {
		t.Fatal(err)
	}
	up := newStaticUpstream()
	upURL := serve(t, up)
	rcv := receiver.New(receiver.Config{Token: token})
	rcvURL := serve(t, rcv)
	admin, _ := harness.FreeAddr()
	site, _ := harness.FreeAddr()
	dir := t.TempDir()
	cf := fmt.Sprintf(`{
	admin %s
	auto_https off
	faxhook {
		storage %s
		token {env.FAXHOOK_TOKEN}
		sent_url %s/sent
		allow_private 127.0.0.1
	}
}
http://%s {
	encode gzip
	faxhook
	reverse_proxy %s
}
`, admin, filepath.Join(dir, "storage"), rcvURL, site, upURL)
	c, err := harness.StartCaddy(bin, filepath.Join(dir, "caddy"), admin, cf, "FAXHOOK_TOKEN="+token)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Stop()

	client := &http.Client{Transport: &http.Transport{DisableCompression: true}}
	get := func(path, acceptEncoding string) []byte {
		t.Helper()
		req, _ := http.NewRequest(http.MethodGet, "http://"+site+path, nil)
		if acceptEncoding != "" {
			req.Header.Set("Accept-Encoding", acceptEncoding)
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("GET %s: %v %s", path, err, resp.Status)
		}
		return b
	}
	same := func(name string, got, want []byte) {
		t.Helper()
		if sha256.Sum256(got) != sha256.Sum256(want) {
			t.Errorf("%s: client got %d bytes that differ from the upstream's %d", name, len(got), len(want))
		}
	}
	same("JSON fax", get("/v2.1/faxes/1", ""), up.fax1)
	same("gzip-encoded JSON fax", get("/v2.1/faxes/2", "gzip"), up.fax2gz)
	same("50 MB JSON list", get("/v2.1/faxes", ""), up.list)
	same("50 MB file", get("/v2.1/faxes/3/file", ""), up.file)

	// Both small faxes, plain and gzip-encoded, were observed: their webhooks arrive.
	ds, err := rcv.Wait(ctxT(t, 20*time.Second), 2)
	if err != nil {
		t.Fatalf("webhooks for the observed faxes did not arrive: %v\n%s", err, c.Tail(30))
	}
	time.Sleep(300 * time.Millisecond)
	if n := rcv.Count(); n != 2 {
		t.Fatalf("%d webhooks, want 2 (the 50 MB list is too large to observe and holds old faxes)", n)
	}
	ids := map[int64]bool{}
	for _, d := range ds {
		ids[parseFax(t, d).ID] = d.Verified
	}
	if !ids[1] || !ids[2] {
		t.Fatalf("verified webhooks by fax id: %v", ids)
	}
}
