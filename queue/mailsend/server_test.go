package mailsend

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"io"
	"log"
	"math/big"
	"mime"
	"mime/multipart"
	"net"
	netmail "net/mail"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
)

// This file holds the test SMTP server: a real go-smtp server on 127.0.0.1 whose backend records
// what it receives and can be told to fail.

// delivered is one message the test server accepted.
type delivered struct {
	from string
	to   []string
	data []byte
	user string // the authenticated user, "" without AUTH
	tls  bool   // whether the session ran over TLS
}

// backend is a recording go-smtp backend.
type backend struct {
	mu   sync.Mutex
	msgs []delivered

	// tempFailRcpt and tempFailData are how many RCPT / DATA commands still get a 451.
	tempFailRcpt, tempFailData int
	// rejectRcpt maps addresses to the error their RCPT gets.
	rejectRcpt map[string]*smtp.SMTPError
	// user and pass, when set, make the server offer AUTH PLAIN and require it.
	user, pass string
}

func (be *backend) NewSession(c *smtp.Conn) (smtp.Session, error) {
	return &session{be: be, conn: c}, nil
}

func (be *backend) messages() []delivered {
	be.mu.Lock()
	defer be.mu.Unlock()
	return append([]delivered(nil), be.msgs...)
}

type session struct {
	be   *backend
	conn *smtp.Conn
	user string
	from string
	to   []string
}

var _ smtp.AuthSession = (*session)(nil)

func (s *session) AuthMechanisms() []string {
	if s.be.user == "" {
		return nil
	}
	return []string{sasl.Plain}
}

func (s *session) Auth(mech string) (sasl.Server, error) {
	if mech != sasl.Plain || s.be.user == "" {
		return nil, smtp.ErrAuthUnknownMechanism
	}
	return sasl.NewPlainServer(func(_, username, password string) error {
		if username != s.be.user || password != s.be.pass {
			return smtp.ErrAuthFailed
		}
		s.user = username
		return nil
	}), nil
}

func (s *session) Mail(from string, _ *smtp.MailOptions) error {
	if s.be.user != "" && s.user == "" {
		return smtp.ErrAuthRequired
	}
	s.from = from
	return nil
}

func (s *session) Rcpt(to string, _ *smtp.RcptOptions) error {
	s.be.mu.Lock()
	defer s.be.mu.Unlock()
	if e := s.be.rejectRcpt[to]; e != nil {
		return e
	}
	if s.be.tempFailRcpt > 0 {
		s.be.tempFailRcpt--
		return &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: "Mailbox temporarily unavailable"}
	}
	s.to = append(s.to, to)
	return nil
}

func (s *session) Data(r io.Reader) error {
	data, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	s.be.mu.Lock()
	defer s.be.mu.Unlock()
	if s.be.tempFailData > 0 {
		s.be.tempFailData--
		return &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: "Try again later"}
	}
	_, isTLS := s.conn.TLSConnectionState()
	s.be.msgs = append(s.be.msgs, delivered{from: s.from, to: s.to, data: data, user: s.user, tls: isTLS})
	return nil
}

func (s *session) Reset()        { s.from, s.to = "", nil }
func (s *session) Logout() error { return nil }

// serverMode is how the test server does TLS.
type serverMode int

const (
	plainServer    serverMode = iota // no TLS at all
	startTLSServer                   // offers STARTTLS
	implicitServer                   // TLS from the first byte
)

// startServer runs a go-smtp server for be on 127.0.0.1 and returns its port.
func startServer(t testing.TB, be *backend, mode serverMode) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listening: %v", err)
	}
	return serve(t, be, mode, ln)
}

// serve runs a go-smtp server for be on ln and returns its port.
func serve(t testing.TB, be *backend, mode serverMode, ln net.Listener) int {
	t.Helper()
	srv := smtp.NewServer(be)
	srv.Domain = "localhost"
	srv.AllowInsecureAuth = true
	srv.ReadTimeout = 5 * time.Second
	srv.WriteTimeout = 5 * time.Second
	srv.ErrorLog = log.New(io.Discard, "", 0)
	switch mode {
	case startTLSServer:
		srv.TLSConfig = serverTLS(t)
	case implicitServer:
		ln = tls.NewListener(ln, serverTLS(t))
	}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	return ln.Addr().(*net.TCPAddr).Port
}

var (
	certOnce   sync.Once
	certErr    error
	serverCert tls.Certificate
	clientPool *x509.CertPool
)

// makeCert generates a self-signed certificate for 127.0.0.1 and localhost, once per test binary.
func makeCert(t testing.TB) {
	t.Helper()
	certOnce.Do(func() {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			certErr = err
			return
		}
		tmpl := &x509.Certificate{
			SerialNumber:          big.NewInt(1),
			Subject:               pkix.Name{CommonName: "faxhook test SMTP server"},
			NotBefore:             time.Now().Add(-time.Hour),
			NotAfter:              time.Now().Add(24 * time.Hour),
			KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
			ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
			BasicConstraintsValid: true,
			IsCA:                  true,
			IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
			DNSNames:              []string{"localhost"},
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
		if err != nil {
			certErr = err
			return
		}
		cert, err := x509.ParseCertificate(der)
		if err != nil {
			certErr = err
			return
		}
		serverCert = tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: cert}
		clientPool = x509.NewCertPool()
		clientPool.AddCert(cert)
	})
	if certErr != nil {
		t.Fatalf("generating certificate: %v", certErr)
	}
}

func serverTLS(t testing.TB) *tls.Config {
	makeCert(t)
	return &tls.Config{Certificates: []tls.Certificate{serverCert}, MinVersion: tls.VersionTLS12}
}

// clientTLS trusts the test certificate.
func clientTLS(t testing.TB) *tls.Config {
	makeCert(t)
	return &tls.Config{RootCAs: clientPool}
}

// mimePart is one leaf of a parsed MIME message, its body decoded.
type mimePart struct {
	contentType string // media type without parameters
	params      map[string]string
	disposition string
	filename    string
	body        []byte
}

// parsedMsg is a received message parsed the way a mail client would.
type parsedMsg struct {
	header netmail.Header
	parts  []mimePart
}

// subject returns the decoded Subject header.
func (m parsedMsg) subject(t testing.TB) string {
	t.Helper()
	s, err := new(mime.WordDecoder).DecodeHeader(m.header.Get("Subject"))
	if err != nil {
		t.Fatalf("decoding Subject %q: %v", m.header.Get("Subject"), err)
	}
	return s
}

// part returns the first leaf of media type mt.
func (m parsedMsg) part(t testing.TB, mt string) mimePart {
	t.Helper()
	for _, p := range m.parts {
		if p.contentType == mt {
			return p
		}
	}
	t.Fatalf("message has no %s part; parts: %v", mt, m.types())
	return mimePart{}
}

func (m parsedMsg) types() []string {
	var ts []string
	for _, p := range m.parts {
		ts = append(ts, p.contentType)
	}
	return ts
}

// parseMsg parses raw with net/mail and walks its MIME tree with mime/multipart.
func parseMsg(t testing.TB, raw []byte) parsedMsg {
	t.Helper()
	msg, err := netmail.ReadMessage(bytes.NewReader(raw))
	if err != nil {
		t.Fatalf("parsing message: %v\n%s", err, raw)
	}
	body, err := io.ReadAll(msg.Body)
	if err != nil {
		t.Fatalf("reading message body: %v", err)
	}
	pm := parsedMsg{header: msg.Header}
	walk(t, msg.Header.Get("Content-Type"), msg.Header.Get("Content-Transfer-Encoding"), "", body, &pm.parts)
	return pm
}

func walk(t testing.TB, contentType, cte, disposition string, body []byte, out *[]mimePart) {
	t.Helper()
	mt, params, err := mime.ParseMediaType(contentType)
	if err != nil {
		t.Fatalf("Content-Type %q: %v", contentType, err)
	}
	if strings.HasPrefix(mt, "multipart/") {
		mr := multipart.NewReader(bytes.NewReader(body), params["boundary"])
		for {
			p, err := mr.NextPart()
			if err == io.EOF {
				return
			}
			if err != nil {
				t.Fatalf("reading %s part: %v", mt, err)
			}
			data, err := io.ReadAll(p) // quoted-printable is decoded by the reader
			if err != nil {
				t.Fatalf("reading %s part: %v", mt, err)
			}
			walk(t, p.Header.Get("Content-Type"), p.Header.Get("Content-Transfer-Encoding"),
				p.Header.Get("Content-Disposition"), data, out)
		}
	}
	if strings.EqualFold(strings.TrimSpace(cte), "base64") {
		dec, err := io.ReadAll(base64.NewDecoder(base64.StdEncoding, bytes.NewReader(body)))
		if err != nil {
			t.Fatalf("decoding base64 %s part: %v", mt, err)
		}
		body = dec
	}
	p := mimePart{contentType: mt, params: params, body: body}
	if disposition != "" {
		d, dp, err := mime.ParseMediaType(disposition)
		if err != nil {
			t.Fatalf("Content-Disposition %q: %v", disposition, err)
		}
		p.disposition, p.filename = d, dp["filename"]
	}
	*out = append(*out, p)
}

// freePort returns a loopback port nothing listens on.
func freePort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listening: %v", err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	_ = ln.Close()
	return port
}

// silentServer accepts connections and never says a word; it returns its port.
func silentServer(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listening: %v", err)
	}
	var mu sync.Mutex
	var conns []net.Conn
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		_ = ln.Close()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			_ = c.Close()
		}
	})
	return ln.Addr().(*net.TCPAddr).Port
}

func itoa(n int) string { return strconv.Itoa(n) }
