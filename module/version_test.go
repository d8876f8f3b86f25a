package module

import (
	"crypto/hmac"
	"crypto/sha1"
	"encoding/hex"
	"encoding/json"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/faxhook/caddy-faxhook/module/profile"
	"github.com/faxhook/caddy-faxhook/module/profile/fax"
	"github.com/faxhook/caddy-faxhook/module/render"
)

// versionToken signs the webhooks of the version tests.
const versionToken = "test-webhook-token"

// rubySignature is an independent re-implementation of phaxio-ruby's signer
// (lib/phaxio/resources/webhook.rb, and the v1-era Phaxio.valid_callback_signature? of commit
// f26dedc, the same algorithm): the URL, then each non-file field's name and value sorted by
// name, then each file part's name and the hex SHA-1 of its bytes sorted by part name; the
// lowercase hex HMAC-SHA1 of that with the token. It shares no code with queue/sign.
func rubySignature(token, url string, params map[string]string, files map[string][]byte) string {
	data := url
	for _, k := range sortedKeys(params) {
		data += k + params[k]
	}
	names := make([]string, 0, len(files))
	for k := range files {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		sum := sha1.Sum(files[k])
		data += k + hex.EncodeToString(sum[:])
	}
	mac := hmac.New(sha1.New, []byte(token))
	mac.Write([]byte(data))
	return hex.EncodeToString(mac.Sum(nil))
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// wireDelivery is one webhook as a loopback receiver read it off the wire.
type wireDelivery struct {
	path     string
	fields   []string // "name=value" in body order
	files    []string // "partname filename content-type sha1" in body order
	verified bool
}

// wireReceiver is a loopback HTTP receiver that records every delivery by path, verifying its
// X-Phaxio-Signature with rubySignature.
type wireReceiver struct {
	srv *httptest.Server
	mu  sync.Mutex
	got map[string][]wireDelivery
}

func newWireReceiver(t *testing.T) *wireReceiver {
	t.Helper()
	wr := &wireReceiver{got: map[string][]wireDelivery{}}
	wr.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		d := wireDelivery{path: r.URL.Path}
		_, params, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		fields, files := map[string]string{}, map[string][]byte{}
		mr := multipart.NewReader(r.Body, params["boundary"])
		for {
			p, err := mr.NextPart()
			if err == io.EOF {
				break
			}
			if err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
			b, _ := io.ReadAll(p)
			if p.FileName() != "" {
				sum := sha1.Sum(b)
				d.files = append(d.files, p.FormName()+" "+p.FileName()+" "+p.Header.Get("Content-Type")+" "+hex.EncodeToString(sum[:]))
				files[p.FormName()] = b
				continue
			}
			d.fields = append(d.fields, p.FormName()+"="+string(b))
			fields[p.FormName()] = string(b)
		}
		url := "http://" + r.Host + r.URL.RequestURI()
		d.verified = r.Header.Get("X-Phaxio-Signature") == rubySignature(versionToken, url, fields, files)
		wr.mu.Lock()
		wr.got[d.path] = append(wr.got[d.path], d)
		wr.mu.Unlock()
	}))
	t.Cleanup(wr.srv.Close)
	return wr
}

// url returns the receiver's URL for path.
func (wr *wireReceiver) url(path string) string { return wr.srv.URL + path }

// wait returns the deliveries to each path once every path has one, or fails after 10 s.
func (wr *wireReceiver) wait(t *testing.T, paths ...string) map[string][]wireDelivery {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		wr.mu.Lock()
		done := true
		for _, p := range paths {
			done = done && len(wr.got[p]) > 0
		}
		if done || time.Now().After(deadline) {
			got := map[string][]wireDelivery{}
			for k, v := range wr.got {
				got[k] = append([]wireDelivery(nil), v...)
			}
			wr.mu.Unlock()
			if !done {
				t.Fatalf("deliveries so far %v; want one to each of %v", got, paths)
			}
			return got
		}
		wr.mu.Unlock()
		time.Sleep(10 * time.Millisecond)
	}
}

// The numbers of the version tests: a v1 number, a v2 number and one without a version of its
// own (the global version).
const (
	numV1    = "+15550001111"
	numV2    = "+15550002222"
	numPlain = "+15550003333"
)

// versionPDF is the received faxes' PDF (SHA-1 95607b02…, spec vector D of the shared notes).
var versionPDF = []byte("%PDF-1.4\n")

const versionPDFSHA1 = "95607b02d48a786cb786897d727114fc79814b1e"

// sentVersionFax is a completed sent fax with id, sent from callerID.
func sentVersionFax(id int64, callerID string) fax.Fax {
	done := "2026-01-02T10:01:30.000-05:00"
	return fax.Fax{ID: id, Direction: fax.DirectionSent, NumPages: 2, Status: fax.StatusSuccess, IsTest: true,
		CreatedAt: "2026-01-02T10:00:00.000-05:00", CallerID: fax.Str(callerID), CompletedAt: fax.Str(done), Cost: 14,
		Tags: map[string]string{"order": "42"},
		Recipients: []fax.Recipient{{PhoneNumber: "+15558675309", Status: fax.Str(fax.StatusSuccess), CompletedAt: fax.Str(done),
			Bitrate: fax.Int(14400), Resolution: fax.Int(8040)}}}
}

// receivedVersionFax is a completed received fax with id, received on toNumber, with a
// PhaxCode.
func receivedVersionFax(id int64, toNumber string) fax.Fax {
	return fax.Fax{ID: id, Direction: fax.DirectionReceived, NumPages: 1, Status: fax.StatusSuccess, IsTest: true,
		CreatedAt: "2026-01-03T09:00:00.000Z", FromNumber: fax.Str("+15557654321"), CompletedAt: fax.Str("2026-01-03T09:02:00.000Z"),
		Cost: 7, ToNumber: fax.Str(toNumber),
		Barcodes: []fax.Barcode{{Type: "phax-code", Page: 1, Value: "v", Identifier: json.RawMessage(`"abc"`), Metadata: json.RawMessage(`"order-42"`)}}}
}

// recordVersionFaxes records the sent fax (with its callback URL) and the received fax in flight,
// then complete.
func recordVersionFaxes(t *testing.T, e *engine, sent fax.Fax, callbackURL string, received fax.Fax) {
	t.Helper()
	inflight := received
	inflight.Status, inflight.CompletedAt = fax.StatusInProgress, nil
	record(t, e, &Observation{Faxes: []profile.Object{{Fax: fax.Fax{ID: sent.ID}}}, CallbackURLs: []string{callbackURL}},
		&Observation{Faxes: []profile.Object{{Fax: inflight, Full: true}}})
	record(t, e, &Observation{Faxes: []profile.Object{{Fax: sent, Full: true}}},
		&Observation{Faxes: []profile.Object{{Fax: received, Full: true}}})
}

// Golden wire bodies, one per version and kind of fax: field names, order and values (the fax
// JSON byte for byte, its field order included) and the PDF's file part.
var (
	goldenSent = map[render.Version][]string{
		render.V1: {"success=true", "is_test=true", "direction=sent",
			`fax={"id":%ID%,"num_pages":2,"cost":14,"direction":"sent","status":"success","is_test":true,"requested_at":1767366000,` +
				`"caller_id":"%CALLER%","completed_at":1767366090,"recipients":[{"number":"5558675309","status":"success","retry_count":0,` +
				`"bitrate":14400,"resolution":8040,"completed_at":1767366090}],"tags":{"order":"42"}}`,
			"message="},
		render.V2: {"success=true", "is_test=true", "direction=sent",
			`fax={"id":%ID%,"direction":"sent","num_pages":2,"status":"success","is_test":true,"created_at":"2026-01-02T10:00:00.000-05:00",` +
				`"caller_id":"+1%CALLER%","from_number":null,"completed_at":"2026-01-02T10:01:30.000-05:00","caller_name":null,"cost":14,` +
				`"tags":{"order":"42"},"recipients":[{"phone_number":"+15558675309","status":"success","retry_count":0,` +
				`"completed_at":"2026-01-02T10:01:30.000-05:00","bitrate":14400,"resolution":8040,"error_type":null,"error_id":null,` +
				`"error_message":null}],"to_number":null,"error_id":null,"error_type":null,"error_message":null}`},
		render.V21: {
			`fax={"id":%ID%,"direction":"sent","num_pages":2,"status":"success","is_test":true,"created_at":"2026-01-02T10:00:00.000-05:00",` +
				`"caller_id":"+1%CALLER%","from_number":null,"completed_at":"2026-01-02T10:01:30.000-05:00","caller_name":null,"cost":14,` +
				`"tags":{"order":"42"},"recipients":[{"phone_number":"+15558675309","status":"success","retry_count":0,` +
				`"completed_at":"2026-01-02T10:01:30.000-05:00","bitrate":14400,"resolution":8040,"error_type":null,"error_id":null,` +
				`"error_message":null}],"to_number":null,"error_id":null,"error_type":null,"error_message":null,"barcodes":[]}`,
			"event_type=fax_completed"},
	}
	goldenReceived = map[render.Version][]string{
		render.V1: {"success=true", "is_test=true", "direction=received",
			`fax={"id":%ID%,"num_pages":1,"cost":7,"direction":"received","status":"success","is_test":true,"requested_at":1767430800,` +
				`"from_number":"5557654321","to_number":"%TO%","completed_at":1767430920}`,
			"metadata=order-42", "message="},
		render.V2: {"success=true", "is_test=true", "direction=received",
			`fax={"id":%ID%,"direction":"received","num_pages":1,"status":"success","is_test":true,"created_at":"2026-01-03T09:00:00.000Z",` +
				`"caller_id":null,"from_number":"+15557654321","completed_at":"2026-01-03T09:02:00.000Z","caller_name":null,"cost":7,` +
				`"tags":{},"recipients":[],"to_number":"+1%TO%","error_id":null,"error_type":null,"error_message":null}`},
		render.V21: {
			`fax={"id":%ID%,"direction":"received","num_pages":1,"status":"success","is_test":true,"created_at":"2026-01-03T09:00:00.000Z",` +
				`"caller_id":null,"from_number":"+15557654321","completed_at":"2026-01-03T09:02:00.000Z","caller_name":null,"cost":7,` +
				`"tags":{},"recipients":[],"to_number":"+1%TO%","error_id":null,"error_type":null,"error_message":null,` +
				`"barcodes":[{"type":"phax-code","page":1,"value":"v","identifier":"abc","metadata":"order-42"}]}`,
			"event_type=fax_completed"},
	}
	// goldenFilePart is the received fax's PDF part per version: part name, file name,
	// content type, SHA-1.
	goldenFilePart = map[render.Version]string{
		render.V1:  "filename fax-%ID%.pdf application/pdf " + versionPDFSHA1,
		render.V2:  "filename fax-%ID%.pdf application/pdf " + versionPDFSHA1,
		render.V21: "file fax-%ID%.pdf application/pdf " + versionPDFSHA1,
	}
)

// expand fills a golden body's placeholders: the fax id and the 10-digit form of a number.
func expand(lines []string, id, num string) []string {
	out := make([]string, len(lines))
	r := strings.NewReplacer("%ID%", id, "%CALLER%", strings.TrimPrefix(num, "+1"), "%TO%", strings.TrimPrefix(num, "+1"))
	for i, l := range lines {
		out[i] = r.Replace(l)
	}
	return out
}

// checkDelivery compares one delivery with its golden body and file part and checks that its
// signature verified.
func checkDelivery(t *testing.T, what string, d wireDelivery, fields []string, file string) {
	t.Helper()
	if !d.verified {
		t.Errorf("%s: signature did not verify", what)
	}
	if strings.Join(d.fields, "\n") != strings.Join(fields, "\n") {
		t.Errorf("%s: fields on the wire:\n%s\nwant:\n%s", what, strings.Join(d.fields, "\n"), strings.Join(fields, "\n"))
	}
	var files []string
	if file != "" {
		files = []string{file}
	}
	if strings.Join(d.files, "\n") != strings.Join(files, "\n") {
		t.Errorf("%s: file parts %q, want %q", what, d.files, files)
	}
}

// versionEngine starts an engine (dispatcher running) that signs with versionToken and fetches
// received PDFs from a loopback fax service.
func versionEngine(t *testing.T, s settings) *engine {
	t.Helper()
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, "/v2.1/faxes/") && strings.HasSuffix(r.URL.Path, "/file") {
			w.Write(versionPDF)
			return
		}
		http.NotFound(w, r)
	}))
	t.Cleanup(up.Close)
	s.token, s.schedule, s.timeout, s.workers = versionToken, []time.Duration{time.Second}, 5*time.Second, 4
	s.maxFileSize, s.poll = 1<<20, &pollSettings{upstream: up.URL + "/v2.1", disabled: true}
	return startEngine(t, s)
}

// A v1 receiver, a v2 receiver and a v2.1 receiver, each behind a number with its own version
// (and the v2.1 one behind the global version), each get their own format of the same kinds of
// faxes, delivered for real, every signature verified independently.
func TestWebhookVersionsPerNumber(t *testing.T) {
	wr := newWireReceiver(t)
	e := versionEngine(t, settings{
		receivedURLs:   []string{wr.url("/v21/received")},
		numberURLs:     map[string][]string{numV1: {wr.url("/v1/received")}, numV2: {wr.url("/v2/received")}},
		numberVersions: map[string]render.Version{numV1: render.V1, numV2: render.V2},
	})
	cases := []struct {
		version render.Version
		num     string
		sentID  int64
		name    string
	}{{render.V1, numV1, 11, "v1"}, {render.V2, numV2, 12, "v2"}, {render.V21, numPlain, 13, "v21"}}
	for _, c := range cases {
		recordVersionFaxes(t, e, sentVersionFax(c.sentID, c.num), wr.url("/"+c.name+"/sent?fax=1"), receivedVersionFax(c.sentID+10, c.num))
	}
	got := wr.wait(t, "/v1/sent", "/v2/sent", "/v21/sent", "/v1/received", "/v2/received", "/v21/received")
	for _, c := range cases {
		sid, rid := itoa(c.sentID), itoa(c.sentID+10)
		checkDelivery(t, c.name+" sent", got["/"+c.name+"/sent"][0], expand(goldenSent[c.version], sid, c.num), "")
		checkDelivery(t, c.name+" received", got["/"+c.name+"/received"][0], expand(goldenReceived[c.version], rid, c.num),
			expand([]string{goldenFilePart[c.version]}, rid, c.num)[0])
	}
}

// The global webhook_version alone decides the format when no number has its own.
func TestWebhookVersionGlobal(t *testing.T) {
	for _, c := range []struct {
		version render.Version
		name    string
	}{{render.V1, "v1"}, {render.V2, "v2"}, {render.V21, "v21"}} {
		t.Run(c.name, func(t *testing.T) {
			wr := newWireReceiver(t)
			e := versionEngine(t, settings{version: c.version, receivedURLs: []string{wr.url("/received")}})
			recordVersionFaxes(t, e, sentVersionFax(31, numPlain), wr.url("/sent"), receivedVersionFax(32, numPlain))
			got := wr.wait(t, "/sent", "/received")
			checkDelivery(t, "sent", got["/sent"][0], expand(goldenSent[c.version], "31", numPlain), "")
			checkDelivery(t, "received", got["/received"][0], expand(goldenReceived[c.version], "32", numPlain),
				expand([]string{goldenFilePart[c.version]}, "32", numPlain)[0])
		})
	}
}

func itoa(n int64) string { b, _ := json.Marshal(n); return string(b) }

// The independent verifier reproduces the official vector of phaxio-ruby's spec and vector D
// of the shared notes (a file part).
func TestRubySignatureVectors(t *testing.T) {
	if got := rubySignature(versionToken, "example.com", map[string]string{"test": "true"}, nil); got != "64a735ef0c47a0ae671e381c046648f0966deb29" {
		t.Errorf("official vector: %s", got)
	}
	f2 := `{"id":5678,"direction":"received","status":"success","is_test":true}`
	got := rubySignature(versionToken, "https://example.com/phaxio/received",
		map[string]string{"event_type": "fax_completed", "fax": f2}, map[string][]byte{"file": versionPDF})
	if got != "aeb1b4b7084aaa499db0cd9fe45b87e67cf656b9" {
		t.Errorf("vector D: %s", got)
	}
}

// With inflight on, a fax sent from a number whose version is below 2.1 gets only its
// fax_completed (v1), while a v2.1 fax gets its transmitting_page events; a mailto: URL of a v1
// fax gets the v2.1 e-mail; one event in two versions has two event ids and distinct job ids.
func TestWebhookVersionInflightAndMail(t *testing.T) {
	e := newTestEngine(t, settings{inflight: true, numberVersions: map[string]render.Version{numV1: render.V1}})
	for _, c := range []struct {
		id  int64
		num string
	}{{41, numV1}, {42, numPlain}} {
		record(t, e, send(c.id, "https://cb.example/sent"))
		record(t, e, &Observation{Faxes: []profile.Object{{Fax: sentVersionFax(c.id, c.num), Full: true}}})
	}
	byFax := map[string]map[string]int{}
	for _, j := range allJobs(t, e) {
		id, _ := render.FaxOf(j.Meta)
		k := itoa(id)
		if byFax[k] == nil {
			byFax[k] = map[string]int{}
		}
		byFax[k][eventTypeOf(j)]++
		if id == 41 && (j.Fields[0].Name != "success" || j.EventID != "41.fax_completed.v1" || j.Meta.Get(render.MetaVersion) != "1") {
			t.Errorf("v1 job: event %s, meta %v, fields %v", j.EventID, j.Meta, j.Fields)
		}
	}
	if n := byFax["41"]; n[fax.EventFaxCompleted] != 1 || len(n) != 1 {
		t.Errorf("v1 fax with inflight on: jobs by type %v, want only fax_completed", n)
	}
	if n := byFax["42"]; n[fax.EventFaxCompleted] != 1 || n[fax.EventTransmittingPage] != 2 {
		t.Errorf("v2.1 fax with inflight on: jobs by type %v, want fax_completed and 2 transmitting_page", n)
	}

	// A v1 fax to an http URL and a mailto: URL: the e-mail is v2.1's.
	e2 := newTestEngine(t, settings{version: render.V1})
	record(t, e2, &Observation{Faxes: []profile.Object{{Fax: fax.Fax{ID: 43}}}, CallbackURLs: []string{"https://cb.example/sent", "mailto:ops@x.test"}})
	record(t, e2, &Observation{Faxes: []profile.Object{{Fax: sentVersionFax(43, numPlain), Full: true}}})
	ids := map[string]bool{}
	for _, j := range allJobs(t, e2) {
		ids[j.ID] = true
		mail := strings.HasPrefix(j.URL, "mailto:")
		switch {
		case mail && (j.Mail == nil || j.Fields[0].Name != "fax" || j.EventID != "43.fax_completed" || j.Meta.Get(render.MetaVersion) != ""):
			t.Errorf("mailto: job of a v1 fax: event %s, fields %v, mail %v", j.EventID, j.Fields, j.Mail != nil)
		case !mail && (j.Fields[0].Name != "success" || j.EventID != "43.fax_completed.v1"):
			t.Errorf("http job of a v1 fax: event %s, fields %v", j.EventID, j.Fields)
		}
	}
	if len(ids) != 2 {
		t.Errorf("%d distinct job ids, want 2", len(ids))
	}
}
