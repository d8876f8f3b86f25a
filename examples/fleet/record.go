package fleet

import (
	"bytes"
	"encoding/json"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/faxhook/caddy-faxhook/examples/receiver"
)

// Headers faxhook sets on every webhook request (queue/httpsend): the event's id, stable across
// the attempts of one event, and the attempt's number. The examples may not import the plugin's
// sender, so they are named here.
const (
	headerEventID = "X-Faxhook-Event-Id"
	headerAttempt = "X-Faxhook-Attempt"
)

// arrival is one webhook request as the recorder saw it, with what the analysis needs: which
// event of which fax it carried, in which order it came and whether the receiver accepted it.
type arrival struct {
	seq       int64     // 1-based order in which requests reached the recorder
	at        time.Time // when the request reached the recorder
	path      string    // the request's path: /sent or /cb/N
	eventID   string    // X-Faxhook-Event-Id
	attempt   int       // X-Faxhook-Attempt
	eventType string
	faxID     int64
	recipient string // recipient_phone_number of an inflight event
	page      int    // page of a transmitting_page event
	retry     int    // retry_count of a retry_scheduled event
	status    int    // what the receiver answered; 2xx means accepted
	from      string // the instance that sent it, "" when not known (see owner.go)
}

// accepted reports whether the receiver took the request: its signature verified and it was
// not refused on purpose.
func (a arrival) accepted() bool { return a.status >= 200 && a.status <= 299 }

// recorder wraps the signature-verifying receiver and records, beside it, the headers and fields
// the fleet's analysis needs. The receiver records the form fields but not the headers, so the
// recorder reads the body once, hands an identical copy to the receiver, and keeps the status the
// receiver answered (200 only for a verified signature).
type recorder struct {
	rcv *receiver.Receiver
	seq atomic.Int64

	mu   sync.Mutex
	recs []arrival
}

func newRecorder(rcv *receiver.Receiver) *recorder { return &recorder{rcv: rcv} }

// ServeHTTP records the request and lets the receiver verify and answer it.
func (r *recorder) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	a := arrival{seq: r.seq.Add(1), at: time.Now(), path: req.URL.Path, eventID: req.Header.Get(headerEventID), from: ownerOf(req)}
	a.attempt, _ = strconv.Atoi(req.Header.Get(headerAttempt))
	if req.Method == http.MethodPost && req.Body != nil {
		body, err := io.ReadAll(io.LimitReader(req.Body, receiver.MaxBodySize+1))
		req.Body.Close()
		if err == nil {
			req.Body = io.NopCloser(bytes.NewReader(body))
			a.fill(req.Header.Get("Content-Type"), body)
		}
	}
	sw := &statusWriter{ResponseWriter: w, status: http.StatusOK}
	r.rcv.ServeHTTP(sw, req)
	a.status = sw.status
	r.mu.Lock()
	r.recs = append(r.recs, a)
	r.mu.Unlock()
}

// fill reads the event's fields from a multipart body; a body it cannot read leaves them empty
// (the receiver answers it 400, so it counts as not accepted).
func (a *arrival) fill(contentType string, body []byte) {
	_, params, err := mime.ParseMediaType(contentType)
	if err != nil || params["boundary"] == "" {
		return
	}
	mr := multipart.NewReader(bytes.NewReader(body), params["boundary"])
	fields := map[string]string{}
	for {
		p, err := mr.NextPart()
		if err != nil {
			break
		}
		if p.FileName() == "" {
			if _, dup := fields[p.FormName()]; !dup {
				v, _ := io.ReadAll(p)
				fields[p.FormName()] = string(v)
			}
		}
		p.Close()
	}
	a.eventType = fields["event_type"]
	a.recipient = fields["recipient_phone_number"]
	a.page, _ = strconv.Atoi(fields["page"])
	a.retry, _ = strconv.Atoi(fields["retry_count"])
	var f struct {
		ID int64 `json:"id"`
	}
	if json.Unmarshal([]byte(fields["fax"]), &f) == nil {
		a.faxID = f.ID
	}
}

// arrivals returns what was recorded, in arrival order.
func (r *recorder) arrivals() []arrival {
	r.mu.Lock()
	out := slices.Clone(r.recs)
	r.mu.Unlock()
	slices.SortFunc(out, func(a, b arrival) int { return int(a.seq - b.seq) })
	return out
}

// statusWriter keeps the status code a handler answered.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	w.status = code
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
