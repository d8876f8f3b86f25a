package e2e

import (
	"context"
	"crypto/sha1"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/faxhook/caddy-faxhook/examples/faxapp"
	"github.com/faxhook/caddy-faxhook/examples/harness"
	"github.com/faxhook/caddy-faxhook/examples/otherfax"
)

// listReceived asks for the received faxes through Caddy, with the client's credentials: the
// request that reveals them to faxhook.
func (e *env) listReceived(ctx context.Context) {
	e.t.Helper()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+e.site+"/v2.1/faxes?direction=received", nil)
	if err != nil {
		e.t.Fatal(err)
	}
	req.SetBasicAuth(key, secret)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		e.t.Fatalf("listing received faxes: %s: %s", resp.Status, body)
	}
}

// receiveDirect simulates an incoming fax at the fax service, behind faxhook's back, and waits
// until it is complete there: faxhook learns of it only from a client's request through Caddy.
func (e *env) receiveDirect(ctx context.Context, pdf []byte) int64 {
	e.t.Helper()
	direct := &harness.Client{Base: e.faxURL + "/v2.1", Key: key, Secret: secret}
	id, err := direct.TestReceive(ctx, pdf, "+15550300000", "")
	if err != nil {
		e.t.Fatal(err)
	}
	if _, err := direct.WaitDone(ctx, id, 30*time.Millisecond); err != nil {
		e.t.Fatal(err)
	}
	return id
}

// With no poll block, a received fax's webhook still carries its PDF: faxhook fetches it back
// through the Caddy site and reverse_proxy that served the client's list request, with that
// request's credentials. When the fax service refuses that fetch, the webhook goes without the
// PDF and the log says why.
func TestReceivedFaxPDFThroughClientRouteWithoutPoll(t *testing.T) {
	e := newEnv(t, nil, "received_url RCV/received")
	ctx := ctxT(t, 60*time.Second)
	pdf := faxapp.PDF(2)
	sum := sha1.Sum(pdf)
	id := e.receiveDirect(ctx, pdf)
	e.listReceived(ctx)

	ds := e.expectExactly(1)
	d := ds[0]
	if !d.Verified || d.Fields["event_type"] != "fax_completed" || !strings.Contains(d.Fields["fax"], `"direction":"received"`) {
		t.Fatalf("delivery %+v", d)
	}
	if len(d.Files) != 1 || d.Files[0].Name != "file" || d.Files[0].SHA1 != hex.EncodeToString(sum[:]) || d.Files[0].Size != len(pdf) {
		t.Fatalf("file part %+v, want the PDF (sha1 %x)", d.Files, sum)
	}
	want := fmt.Sprintf("/v2.1/faxes/%d/file %s:%s", id, key, secret)
	if got := e.files.requests(); len(got) != 1 || got[0] != want {
		t.Fatalf("the fax service saw file requests %q, want [%q]", got, want)
	}
	if log := e.caddy.Tail(400); strings.Contains(log, "no poll upstream") || strings.Contains(log, "cannot fetch the received fax") {
		t.Fatalf("a warning about the PDF in the log:\n%s", log)
	}

	// The fax service refuses the file request: the webhook goes without the PDF, logged once.
	e.files.mu.Lock()
	e.files.deny = true
	e.files.mu.Unlock()
	id2 := e.receiveDirect(ctx, faxapp.PDF(1))
	e.listReceived(ctx)
	ds = e.expectExactly(2)
	files := map[int64]int{}
	for _, d := range ds {
		files[parseFax(t, d).ID] = len(d.Files)
	}
	if len(files) != 2 || files[id] != 1 || files[id2] != 0 {
		t.Fatalf("file parts by fax: %v, want %d → 1, %d → 0", files, id, id2)
	}
	log := e.caddy.Tail(400)
	if n := strings.Count(log, "the fax service refused the client"); n != 1 {
		t.Fatalf("%d log entries about the refused PDF fetch, want 1:\n%s", n, log)
	}
	if strings.Contains(log, "Basic ") || strings.Contains(log, "azpz") { // base64 of key:secret
		t.Fatalf("credentials in the log:\n%s", log)
	}
}

// A mapped service with no poll block: the received fax's PDF comes through the mapping's file
// route, fetched through Caddy with the Bearer token of the client's list request.
func TestMappedReceivedFaxPDFThroughClientRouteWithoutPoll(t *testing.T) {
	const tok = "other-token"
	mappingFile := filepath.Join(t.TempDir(), "mapping.json")
	if err := os.WriteFile(mappingFile, []byte(otherfax.ExampleMappingJSON), 0o644); err != nil {
		t.Fatal(err)
	}
	of := startProfileRun(t, otherfax.New(otherfax.Config{Token: tok, Tick: 50 * time.Millisecond, Seed: 5}), "mapping "+mappingFile)
	ctx := ctxT(t, 60*time.Second)
	pdf := faxapp.PDF(2)
	sum := sha1.Sum(pdf)
	otherCall(ctx, t, http.MethodPost, of.upURL+"/api/fax/inbound", tok, map[string]any{
		"from": profileFrom, "to": profileLine, "document_base64": base64.StdEncoding.EncodeToString(pdf),
	})
	// The client lists its received faxes through Caddy until faxhook saw the fax complete.
	for of.rcv.Count() == 0 && ctx.Err() == nil {
		otherCall(ctx, t, http.MethodGet, "http://"+of.site+"/api/fax/jobs?kind=inbound&limit=100", tok, nil)
		time.Sleep(100 * time.Millisecond)
	}
	ds, err := of.rcv.Wait(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	d := ds[0]
	if !strings.HasSuffix(d.URL, "/received") || len(d.Files) != 1 || d.Files[0].SHA1 != hex.EncodeToString(sum[:]) {
		t.Fatalf("received webhook %s with files %+v, want the PDF (sha1 %x)", d.URL, d.Files, sum)
	}
}
