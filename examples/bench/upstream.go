package bench

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"mime/multipart"
	"net/http"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/faxhook/caddy-faxhook/module/profile/fax"
)

// getFaxID is the fax that path (b) fetches.
const getFaxID = 2001

// firstSendID is the id of the first fax the upstream "queues" for path (d); sends never collide
// with the static faxes.
const firstSendID = 10_000_000

// sampleFax returns a realistic completed (or, for every tenth, in-progress) sent fax with two
// recipients, about 1 KB of JSON. Completion times lie in the past, before faxhook's storage
// existed, so observing these faxes never fires a webhook: the benchmark measures the proxy path,
// not deliveries.
func sampleFax(id int64) fax.Fax {
	created := time.Date(2025, 3, 14, 9, 26, 53, 0, time.UTC).Add(time.Duration(id) * time.Minute)
	done := created.Add(97 * time.Second).Format(time.RFC3339)
	status, r1, r2 := fax.StatusSuccess, fax.StatusSuccess, fax.StatusSuccess
	var errID *int
	var errType, errMsg *string
	switch id % 10 {
	case 3:
		status, r1, r2 = fax.StatusPartialSuccess, fax.StatusSuccess, fax.StatusFailure
		errID, errType, errMsg = fax.Int(34), fax.Str("lineError"), fax.Str("Line busy")
	case 7:
		status, r1, r2 = fax.StatusFailure, fax.StatusFailure, fax.StatusFailure
		errID, errType, errMsg = fax.Int(34), fax.Str("lineError"), fax.Str("Line busy")
	case 9:
		status, r1, r2 = fax.StatusInProgress, fax.StatusInProgress, fax.RecipientCallActive
	}
	recipient := func(n, st string) fax.Recipient {
		r := fax.Recipient{PhoneNumber: n, Status: fax.Str(st), RetryCount: 0}
		switch st {
		case fax.StatusSuccess:
			r.CompletedAt, r.Bitrate, r.Resolution = fax.Str(done), fax.Int(14400), fax.Int(7700)
		case fax.StatusFailure:
			r.RetryCount = 3
			r.CompletedAt, r.Bitrate, r.Resolution = fax.Str(done), fax.Int(14400), fax.Int(7700)
			r.ErrorType, r.ErrorID, r.ErrorMessage = fax.Str("lineError"), fax.Int(34), fax.Str("Line busy")
		}
		return r
	}
	f := fax.Fax{
		ID: id, Direction: fax.DirectionSent, NumPages: 3, Status: status,
		CreatedAt:  created.Format(time.RFC3339),
		CallerID:   fax.Str("+15555550100"),
		FromNumber: nil,
		CallerName: fax.Str("Acme Medical Records"),
		Cost:       14,
		Tags: map[string]string{
			"order_id": "ORD-" + strconv.FormatInt(848000+id, 10), "customer": "cust_7f3a9c21",
			"department": "billing", "priority": "normal", "patient_ref": "PR-2025-" + strconv.FormatInt(40000+id, 10),
			"batch": "nightly-statements-2025-03", "invoice": "INV-2025-03-" + strconv.FormatInt(700000+id, 10),
		},
		Recipients: []fax.Recipient{
			recipient("+15558670000", r1),
			recipient("+15558675309", r2),
		},
		ErrorID: errID, ErrorType: errType, ErrorMessage: errMsg,
		Barcodes: []fax.Barcode{},
	}
	if status != fax.StatusInProgress {
		f.CompletedAt = fax.Str(done)
	}
	return f
}

// envelope is the v2.1 response envelope.
type envelope struct {
	Success bool    `json:"success"`
	Message string  `json:"message"`
	Data    any     `json:"data"`
	Paging  *paging `json:"paging,omitempty"`
}

type paging struct {
	Total   int `json:"total"`
	PerPage int `json:"per_page"`
	Page    int `json:"page"`
}

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return append(b, '\n')
}

// upstream is the static fax API the benchmark proxies to: precomputed bodies, no state beyond
// the send counter.
type upstream struct {
	health  []byte
	getBody []byte
	list    []byte
	nextID  atomic.Int64
	url     string
	srv     *http.Server
}

// listSize is how many faxes the list of path (c) holds.
const listSize = 100

func newUpstream() *upstream {
	u := &upstream{health: []byte("ok\n")}
	u.getBody = mustJSON(envelope{Success: true, Message: "Retrieved fax successfully", Data: sampleFax(getFaxID)})
	faxes := make([]fax.Fax, listSize)
	for i := range faxes {
		faxes[i] = sampleFax(int64(1000 + listSize - i)) // newest first, like Phaxio
	}
	u.list = mustJSON(envelope{
		Success: true, Message: "Retrieved faxes successfully", Data: faxes,
		Paging: &paging{Total: listSize, PerPage: listSize, Page: 1},
	})
	u.nextID.Store(firstSendID - 1)
	return u
}

func writeStatic(w http.ResponseWriter, ct string, body []byte) {
	h := w.Header()
	h["Content-Type"] = []string{ct}
	h["Content-Length"] = []string{strconv.Itoa(len(body))}
	w.Write(body)
}

func (u *upstream) handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /health", func(w http.ResponseWriter, r *http.Request) {
		writeStatic(w, "text/plain; charset=utf-8", u.health)
	})
	getPath := "/v2.1/faxes/" + strconv.Itoa(getFaxID)
	mux.HandleFunc("GET "+getPath, func(w http.ResponseWriter, r *http.Request) {
		writeStatic(w, "application/json", u.getBody)
	})
	mux.HandleFunc("GET /v2.1/faxes", func(w http.ResponseWriter, r *http.Request) {
		writeStatic(w, "application/json", u.list)
	})
	mux.HandleFunc("POST /v2.1/faxes", func(w http.ResponseWriter, r *http.Request) {
		if _, err := io.Copy(io.Discard, r.Body); err != nil {
			http.Error(w, "reading body: "+err.Error(), http.StatusBadRequest)
			return
		}
		id := u.nextID.Add(1)
		b := make([]byte, 0, 96)
		b = append(b, `{"success":true,"message":"Fax queued for sending","data":{"id":`...)
		b = strconv.AppendInt(b, id, 10)
		b = append(b, "}}\n"...)
		writeStatic(w, "application/json", b)
	})
	return mux
}

// sink is the webhook endpoint of the faxhook Caddy's sent_url and of the callback_url of
// path (d): it drains the body and answers 200.
func sink() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.WriteHeader(http.StatusOK)
	})
}

// uploadSize is the size of the file part of path (d).
const uploadSize = 1 << 20

// sendBody builds the multipart body of path (d): a recipient, callback_url before the file (as
// most clients send it) and a 1 MiB file part that looks like a scanned PDF: header, one
// compressed image stream of pseudo-random bytes (deterministic) and a trailer.
func sendBody(callbackURL string) (body []byte, contentType string) {
	var b bytes.Buffer
	mw := multipart.NewWriter(&b)
	mw.WriteField("to[]", "+15558670000")
	mw.WriteField("callback_url", callbackURL)
	mw.WriteField("tag[order_id]", "ORD-848123")
	fw, _ := mw.CreateFormFile("file", "document.pdf")
	fw.Write(scannedPDF(uploadSize))
	mw.Close()
	return b.Bytes(), mw.FormDataContentType()
}

// scannedPDF returns size bytes shaped like a one-page scanned PDF: binary image data makes up
// almost all of it, as in real fax documents. (A file of text lines only, without a single CR
// byte, is a worse case for faxhook's multipart scanner; see the package tests.)
func scannedPDF(size int) []byte {
	head := []byte("%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<< /Type /XObject /Subtype /Image /Width 1728 /Height 2200 " +
		"/ColorSpace /DeviceGray /BitsPerComponent 1 /Filter /FlateDecode >>\nstream\n")
	tail := []byte("\nendstream\nendobj\ntrailer\n<< /Root 1 0 R >>\n%%EOF\n")
	out := make([]byte, size)
	n := copy(out, head)
	rng := rand.New(rand.NewPCG(7, 11))
	var word [8]byte
	for i := n; i < size-len(tail); i += len(word) {
		binary.LittleEndian.PutUint64(word[:], rng.Uint64())
		copy(out[i:size-len(tail)], word[:])
	}
	copy(out[size-len(tail):], tail)
	return out
}

// describeSize formats a byte count for the report.
func describeSize(n int) string {
	switch {
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}
