// Package receiver is a minimal Phaxio-style webhook receiver for tests and demos. It accepts
// multipart/form-data POSTs on any path, checks the X-Phaxio-Signature header with the webhook
// token (see package sign), and records every delivery, valid or not, in arrival order.
package receiver

import (
	"context"
	"crypto/sha1"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"mime"
	"mime/multipart"
	"net/http"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/faxhook/caddy-faxhook/queue/sign"
)

// MaxBodySize is the largest request body the receiver reads, in bytes. Larger deliveries are
// answered 413 Request Entity Too Large and recorded with an Error.
const MaxBodySize = 32 << 20

// Delivery is one webhook request as the receiver saw it.
type Delivery struct {
	Seq       int               `json:"seq"`             // 1-based arrival order
	Time      time.Time         `json:"time"`            // when the request arrived
	URL       string            `json:"url"`             // reconstructed URL that was verified: scheme://host + RequestURI
	Fields    map[string]string `json:"fields"`          // non-file form fields (first value of each)
	Files     []FileInfo        `json:"files"`           // file parts, in body order
	Signature string            `json:"signature"`       // X-Phaxio-Signature header value
	Verified  bool              `json:"verified"`        // signature matched under the token
	Status    int               `json:"status"`          // status code the receiver answered
	Error     string            `json:"error,omitempty"` // why parsing/verification failed
}

// FileInfo describes one file part of a delivery.
type FileInfo struct {
	Name        string `json:"name"`         // form part name, e.g. "file"
	Filename    string `json:"filename"`     // filename from Content-Disposition
	ContentType string `json:"content_type"` // Content-Type header of the part
	SHA1        string `json:"sha1"`         // lowercase hex SHA-1 of Data
	Size        int    `json:"size"`         // len(Data)
	Data        []byte `json:"-"`            // the part's contents
}

// Config configures a Receiver. The zero value accepts every multipart delivery unverified.
type Config struct {
	// Token is the webhook token. Empty means do not verify: Verified is false and the delivery
	// is accepted anyway.
	Token string
	// Out, if non-nil, receives each Delivery as one JSON line, written before the delivery
	// counts as recorded. Writes are serialised; write errors are ignored.
	Out io.Writer
	// BaseURL is an optional public base URL (scheme://host[:port]) used instead of the
	// request's scheme and Host to rebuild the verified URL: BaseURL + RequestURI. A trailing
	// slash is dropped.
	BaseURL string
	// Respond, if non-nil, chooses the status to answer. It is called once per recorded
	// delivery, after parsing and verification, with Status already set to the default: 200
	// if verified or no token, 401 if the signature is wrong or missing, 400 if the body is not
	// (valid) multipart/form-data, 413 if it exceeds MaxBodySize. Returning 0, or anything
	// outside 200–599, keeps the default. It may be called concurrently.
	Respond func(d Delivery) int
}

// Receiver is an http.Handler that verifies and records webhook deliveries. It is safe for
// concurrent use. Create one with New.
type Receiver struct {
	cfg Config

	outMu sync.Mutex // serialises writes to cfg.Out

	mu      sync.Mutex
	seq     int           // last Seq handed out
	recs    []Delivery    // recorded deliveries, sorted by Seq
	changed chan struct{} // closed and replaced whenever recs grows
}

// New returns a Receiver configured by cfg.
func New(cfg Config) *Receiver {
	cfg.BaseURL = strings.TrimSuffix(cfg.BaseURL, "/")
	return &Receiver{cfg: cfg, changed: make(chan struct{})}
}

// ServeHTTP handles one delivery. Any path is accepted; methods other than POST are answered
// 405 Method Not Allowed and not recorded. Every POST is recorded, including those that fail to
// parse or verify.
func (r *Receiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	if req.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	d := Delivery{
		Seq:       r.nextSeq(),
		Time:      time.Now(),
		URL:       r.requestURL(req),
		Fields:    map[string]string{},
		Files:     []FileInfo{},
		Signature: req.Header.Get(sign.Header),
	}

	fields, status, err := r.parse(w, req, &d)
	if err == nil {
		status, err = r.verify(&d, fields)
	}
	if err != nil {
		d.Error = err.Error()
	}
	d.Status = status
	if r.cfg.Respond != nil {
		if s := r.cfg.Respond(cloneDelivery(d)); s >= 200 && s <= 599 {
			d.Status = s
		}
	}

	r.record(d)

	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(d.Status)
	msg := http.StatusText(d.Status)
	if d.Error != "" {
		msg += ": " + d.Error
	}
	fmt.Fprintln(w, msg)
}

// parse reads the multipart body into d.Fields and d.Files and returns every non-file value in
// body order for signing. On failure it returns the default status and the reason.
func (r *Receiver) parse(w http.ResponseWriter, req *http.Request, d *Delivery) ([]sign.Field, int, error) {
	if req.ContentLength > MaxBodySize {
		return nil, http.StatusRequestEntityTooLarge,
			fmt.Errorf("body of %d bytes exceeds the %d byte limit", req.ContentLength, MaxBodySize)
	}
	ct := req.Header.Get("Content-Type")
	mt, params, err := mime.ParseMediaType(ct)
	if err != nil || mt != "multipart/form-data" {
		return nil, http.StatusBadRequest, fmt.Errorf("content type %q is not multipart/form-data", ct)
	}
	if params["boundary"] == "" {
		return nil, http.StatusBadRequest, errors.New("multipart/form-data without boundary")
	}

	req.Body = http.MaxBytesReader(w, req.Body, MaxBodySize)
	mr := multipart.NewReader(req.Body, params["boundary"])
	var fields []sign.Field
	for {
		p, err := mr.NextPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, bodyErrStatus(err), fmt.Errorf("reading multipart body: %w", err)
		}
		data, err := io.ReadAll(p)
		p.Close()
		if err != nil {
			return nil, bodyErrStatus(err), fmt.Errorf("reading part %q: %w", p.FormName(), err)
		}
		name := p.FormName()
		if p.FileName() != "" {
			sum := sha1.Sum(data)
			d.Files = append(d.Files, FileInfo{
				Name:        name,
				Filename:    p.FileName(),
				ContentType: p.Header.Get("Content-Type"),
				SHA1:        hex.EncodeToString(sum[:]),
				Size:        len(data),
				Data:        data,
			})
			continue
		}
		v := string(data)
		fields = append(fields, sign.Field{Name: name, Value: v})
		if _, dup := d.Fields[name]; !dup {
			d.Fields[name] = v
		}
	}
	return fields, http.StatusOK, nil
}

// bodyErrStatus maps an error met while reading the body to a status code.
func bodyErrStatus(err error) int {
	var tooBig *http.MaxBytesError
	if errors.As(err, &tooBig) {
		return http.StatusRequestEntityTooLarge
	}
	return http.StatusBadRequest
}

// verify sets d.Verified and returns the default status and, if the signature is bad, why.
func (r *Receiver) verify(d *Delivery, fields []sign.Field) (int, error) {
	if r.cfg.Token == "" {
		return http.StatusOK, nil
	}
	if d.Signature == "" {
		return http.StatusUnauthorized, errors.New("missing " + sign.Header + " header")
	}
	files := make([]sign.File, len(d.Files))
	for i, f := range d.Files {
		files[i] = sign.FileOf(f.Name, f.Data)
	}
	if !sign.Verify(r.cfg.Token, d.Signature, d.URL, fields, files) {
		return http.StatusUnauthorized, errors.New("signature mismatch for " + d.URL)
	}
	d.Verified = true
	return http.StatusOK, nil
}

// requestURL rebuilds the URL the sender signed: scheme://Host + RequestURI, or BaseURL +
// RequestURI when BaseURL is configured.
func (r *Receiver) requestURL(req *http.Request) string {
	uri := req.RequestURI
	if !strings.HasPrefix(uri, "/") {
		// Not origin-form (absolute-form, or a request built without a server).
		uri = req.URL.RequestURI()
	}
	if r.cfg.BaseURL != "" {
		return r.cfg.BaseURL + uri
	}
	scheme := "http"
	if req.TLS != nil {
		scheme = "https"
	}
	return scheme + "://" + req.Host + uri
}

func (r *Receiver) nextSeq() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.seq++
	return r.seq
}

// record writes d to Out, then stores it and wakes waiters.
func (r *Receiver) record(d Delivery) {
	if r.cfg.Out != nil {
		if line, err := json.Marshal(d); err == nil {
			r.outMu.Lock()
			r.cfg.Out.Write(append(line, '\n'))
			r.outMu.Unlock()
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	i := sort.Search(len(r.recs), func(i int) bool { return r.recs[i].Seq > d.Seq })
	r.recs = slices.Insert(r.recs, i, d)
	close(r.changed)
	r.changed = make(chan struct{})
}

// Deliveries returns a copy of the recorded deliveries in arrival (Seq) order. File Data
// slices are shared with the receiver and must not be modified.
func (r *Receiver) Deliveries() []Delivery {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.snapshot()
}

// snapshot copies r.recs; r.mu must be held.
func (r *Receiver) snapshot() []Delivery {
	out := make([]Delivery, len(r.recs))
	for i, d := range r.recs {
		out[i] = cloneDelivery(d)
	}
	return out
}

// Count returns how many deliveries have been recorded.
func (r *Receiver) Count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.recs)
}

// Wait blocks until at least n deliveries have been recorded and returns a copy of all of them,
// as Deliveries does. If ctx ends first it returns the deliveries recorded so far and ctx.Err().
func (r *Receiver) Wait(ctx context.Context, n int) ([]Delivery, error) {
	for {
		r.mu.Lock()
		if len(r.recs) >= n {
			out := r.snapshot()
			r.mu.Unlock()
			return out, nil
		}
		ch := r.changed
		r.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return r.Deliveries(), ctx.Err()
		}
	}
}

// cloneDelivery copies d's map and slice so the copy can be handed out safely.
func cloneDelivery(d Delivery) Delivery {
	d.Fields = maps.Clone(d.Fields)
	d.Files = slices.Clone(d.Files)
	return d
}
