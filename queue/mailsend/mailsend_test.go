package mailsend

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/faxhook/caddy-faxhook/queue"
)

// sentMail is a rendered e-mail as the app makes it: a subject, a plain-text body with
// characters that need care in transport (long lines, non-ASCII, a dot at a line start) and its
// HTML alternative.
var sentMail = queue.Mail{
	Subject: "Fax 1234 (sent) completed: partialsuccess",
	Text: "Fax 1234 (sent) completed: partialsuccess\n\nThe sent fax 1234 has completed.\n\n" +
		"Tags:\n  note: <script>alert(1)</script>\n.\n" + strings.Repeat("long line ", 40) + "\nÜber 21 cents\n",
	HTML: "<!DOCTYPE html>\n<html><body><p>&lt;script&gt;alert(1)&lt;/script&gt;</p><p>Über</p></body></html>\n",
}

// receivedMail is the rendered e-mail of a received fax with its PDF attached.
var receivedMail = queue.Mail{
	Subject: "Fax 5678 (received) completed: success",
	Text:    "Fax 5678 (received) completed: success\n\nThe received fax is attached as fax-5678.pdf.\n",
	HTML:    "<!DOCTYPE html>\n<html><body><p>The received fax is attached as <b>fax-5678.pdf</b>.</p></body></html>\n",
}

// pdf has every byte value and bare CR/LF, so any re-encoding would show.
var pdf = func() []byte {
	b := []byte("%PDF-1.4\n%\xe2\xe3\xcf\xd3\r\n1 0 obj <<>> endobj\r")
	for i := 0; i < 256; i++ {
		b = append(b, byte(i))
	}
	return append(b, "\n%%EOF\n"...)
}()

func sentJob(t testing.TB, url string) *queue.Job {
	m := sentMail
	return &queue.Job{
		ID: "0123456789abcdef01234567", EventID: "1234.fax_completed", URL: url,
		Payload: queue.Payload{Fields: []queue.Field{{Name: "event_type", Value: "fax_completed"}}, Mail: &m},
	}
}

func receivedJob(t testing.TB, url string) *queue.Job {
	m := receivedMail
	return &queue.Job{
		ID: "fedcba9876543210fedcba98", EventID: "5678.fax_completed", URL: url,
		Payload: queue.Payload{
			Fields: []queue.Field{{Name: "event_type", Value: "fax_completed"}},
			Files:  []queue.File{{Name: "file", Filename: "fax-5678.pdf", ContentType: "application/pdf", Data: pdf}},
			Mail:   &m,
		},
	}
}

// lf returns a part's body with mail's CRLF line ends as LF.
func lf(body []byte) string { return strings.ReplaceAll(string(body), "\r\n", "\n") }

// newSender returns a Sender for a test server on 127.0.0.1:port.
func newSender(t testing.TB, port int, policy TLSPolicy, mod func(*Options)) *Sender {
	t.Helper()
	opts := Options{Host: "127.0.0.1", Port: port, From: "Faxhook <fax@faxhook.test>", TLS: policy,
		Timeout: 3 * time.Second, HELO: "client.test"}
	if mod != nil {
		mod(&opts)
	}
	s, err := New(opts)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return s
}

func mustSucceed(t testing.TB, res queue.Result) {
	t.Helper()
	if res.Err != nil || res.Permanent || res.Status != 250 {
		t.Fatalf("Send = %+v, want success with status 250", res)
	}
}

func TestSendSentFax(t *testing.T) {
	be := &backend{}
	port := startServer(t, be, plainServer)
	s := newSender(t, port, TLSOpportunistic, nil)

	job := sentJob(t, "mailto:a@x.test,b@x.test?cc=c@x.test")
	mustSucceed(t, s.Send(context.Background(), job))

	msgs := be.messages()
	if len(msgs) != 1 {
		t.Fatalf("server got %d messages, want 1", len(msgs))
	}
	d := msgs[0]
	if d.from != "fax@faxhook.test" {
		t.Errorf("MAIL FROM %q, want fax@faxhook.test", d.from)
	}
	if want := []string{"a@x.test", "b@x.test", "c@x.test"}; !reflect.DeepEqual(d.to, want) {
		t.Errorf("RCPT TO %v, want %v", d.to, want)
	}
	m := parseMsg(t, d.data)
	if got, want := m.subject(t), "Fax 1234 (sent) completed: partialsuccess"; got != want {
		t.Errorf("Subject %q, want %q", got, want)
	}
	to, _ := m.header.AddressList("To")
	cc, _ := m.header.AddressList("Cc")
	if len(to) != 2 || to[0].Address != "a@x.test" || to[1].Address != "b@x.test" || len(cc) != 1 || cc[0].Address != "c@x.test" {
		t.Errorf("To %v, Cc %v", to, cc)
	}
	if from, _ := m.header.AddressList("From"); len(from) != 1 || from[0].Address != "fax@faxhook.test" || from[0].Name != "Faxhook" {
		t.Errorf("From %v", from)
	}
	if got, want := m.header.Get("Message-Id"), "<"+messageID(job.ID, "faxhook.test")+">"; got != want {
		t.Errorf("Message-ID %q, want %q", got, want)
	}
	if got := m.header.Get(HeaderEventID); got != job.EventID {
		t.Errorf("%s %q, want %q", HeaderEventID, got, job.EventID)
	}
	if got := m.header.Get(HeaderAttempt); got != "1" {
		t.Errorf("%s %q, want 1", HeaderAttempt, got)
	}
	if got := m.header.Get("Auto-Submitted"); got != "auto-generated" {
		t.Errorf("Auto-Submitted %q", got)
	}
	if ct := m.header.Get("Content-Type"); !strings.HasPrefix(ct, "multipart/alternative") {
		t.Errorf("Content-Type %q, want multipart/alternative", ct)
	}
	if got := m.types(); !reflect.DeepEqual(got, []string{"text/plain", "text/html"}) {
		t.Errorf("parts %v, want text/plain then text/html", got)
	}

	// The rendered message travels unchanged, but for the line ends, which mail makes CRLF.
	if text := lf(m.part(t, "text/plain").body); text != sentMail.Text {
		t.Errorf("text body changed in transport:\n%q\nwant\n%q", text, sentMail.Text)
	}
	if html := lf(m.part(t, "text/html").body); html != sentMail.HTML {
		t.Errorf("HTML body changed in transport:\n%q\nwant\n%q", html, sentMail.HTML)
	}
}

func TestSendMessageIDStableAcrossAttempts(t *testing.T) {
	be := &backend{}
	port := startServer(t, be, plainServer)
	s := newSender(t, port, TLSOpportunistic, nil)
	job := sentJob(t, "mailto:a@x.test")
	mustSucceed(t, s.Send(context.Background(), job))
	job.Attempts = append(job.Attempts, queue.Attempt{})
	mustSucceed(t, s.Send(context.Background(), job))
	msgs := be.messages()
	if len(msgs) != 2 {
		t.Fatalf("got %d messages", len(msgs))
	}
	a, b := parseMsg(t, msgs[0].data), parseMsg(t, msgs[1].data)
	if a.header.Get("Message-Id") == "" || a.header.Get("Message-Id") != b.header.Get("Message-Id") {
		t.Errorf("Message-IDs %q and %q, want equal", a.header.Get("Message-Id"), b.header.Get("Message-Id"))
	}
	if b.header.Get(HeaderAttempt) != "2" {
		t.Errorf("second attempt header %q", b.header.Get(HeaderAttempt))
	}
}

func TestSendReceivedFaxAttachesPDF(t *testing.T) {
	be := &backend{}
	port := startServer(t, be, plainServer)
	s := newSender(t, port, TLSOpportunistic, nil)

	mustSucceed(t, s.Send(context.Background(), receivedJob(t, "mailto:inbox@x.test")))
	msgs := be.messages()
	if len(msgs) != 1 {
		t.Fatalf("server got %d messages, want 1", len(msgs))
	}
	m := parseMsg(t, msgs[0].data)
	if ct := m.header.Get("Content-Type"); !strings.HasPrefix(ct, "multipart/mixed") {
		t.Errorf("Content-Type %q, want multipart/mixed", ct)
	}
	if got, want := m.subject(t), "Fax 5678 (received) completed: success"; got != want {
		t.Errorf("Subject %q, want %q", got, want)
	}
	att := m.part(t, "application/pdf")
	if att.disposition != "attachment" || att.filename != "fax-5678.pdf" {
		t.Errorf("attachment disposition %q filename %q", att.disposition, att.filename)
	}
	if !bytes.Equal(att.body, pdf) {
		t.Errorf("attachment differs from the PDF: got %d bytes, want %d", len(att.body), len(pdf))
	}
	if text := lf(m.part(t, "text/plain").body); text != receivedMail.Text {
		t.Errorf("text body changed in transport:\n%q\nwant\n%q", text, receivedMail.Text)
	}
	if html := lf(m.part(t, "text/html").body); html != receivedMail.HTML {
		t.Errorf("HTML body changed in transport:\n%q\nwant\n%q", html, receivedMail.HTML)
	}
}

// Every file of the job is attached, under its Filename, else its part name; a message without
// HTML is plain text.
func TestSendAttachesEveryFile(t *testing.T) {
	be := &backend{}
	port := startServer(t, be, plainServer)
	s := newSender(t, port, TLSOpportunistic, nil)
	job := receivedJob(t, "mailto:inbox@x.test")
	job.Mail.HTML = ""
	job.Files = append(job.Files, queue.File{Name: "extra", ContentType: "text/plain", Data: []byte("hi")})
	mustSucceed(t, s.Send(context.Background(), job))
	msgs := be.messages()
	if len(msgs) != 1 {
		t.Fatalf("server got %d messages, want 1", len(msgs))
	}
	m := parseMsg(t, msgs[0].data)
	if got := m.types(); !reflect.DeepEqual(got, []string{"text/plain", "application/pdf", "text/plain"}) {
		t.Errorf("parts %v", got)
	}
	if att := m.part(t, "application/pdf"); att.filename != "fax-5678.pdf" || !bytes.Equal(att.body, pdf) {
		t.Errorf("PDF attachment %q, %d bytes", att.filename, len(att.body))
	}
	if att := m.parts[2]; att.disposition != "attachment" || att.filename != "extra" || string(att.body) != "hi" {
		t.Errorf("second attachment %+v", att)
	}
}

func TestSendMailtoSubjectOverrides(t *testing.T) {
	be := &backend{}
	port := startServer(t, be, plainServer)
	s := newSender(t, port, TLSOpportunistic, nil)
	mustSucceed(t, s.Send(context.Background(), sentJob(t, "mailto:a@x.test?subject=Fax%20report%0D%0ABcc:%20evil@x.test&bcc=hidden@x.test")))
	msgs := be.messages()
	if len(msgs) != 1 {
		t.Fatalf("got %d messages", len(msgs))
	}
	if want := []string{"a@x.test", "hidden@x.test"}; !reflect.DeepEqual(msgs[0].to, want) {
		t.Errorf("RCPT TO %v, want %v", msgs[0].to, want)
	}
	m := parseMsg(t, msgs[0].data)
	if got, want := m.subject(t), "Fax report  Bcc: evil@x.test"; got != want {
		t.Errorf("Subject %q, want %q", got, want)
	}
	if m.header.Get("Bcc") != "" || bytes.Contains(msgs[0].data, []byte("hidden@")) {
		t.Errorf("Bcc address leaked into the message:\n%s", msgs[0].data)
	}
}

func TestSendTemporaryFailureThenSuccess(t *testing.T) {
	for _, tc := range []struct {
		name string
		be   *backend
	}{
		{"DATA", &backend{tempFailData: 1}},
		{"RCPT", &backend{tempFailRcpt: 1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			port := startServer(t, tc.be, plainServer)
			s := newSender(t, port, TLSOpportunistic, nil)
			job := sentJob(t, "mailto:a@x.test")

			res := s.Send(context.Background(), job)
			if res.Err == nil || res.Permanent || res.Status != 451 {
				t.Fatalf("first Send = %+v, want retryable failure with status 451", res)
			}
			if !strings.Contains(res.Err.Error(), "451") {
				t.Errorf("error %q does not mention the reply", res.Err)
			}
			if n := len(tc.be.messages()); n != 0 {
				t.Fatalf("server accepted %d messages after a 451", n)
			}
			mustSucceed(t, s.Send(context.Background(), job))
			if n := len(tc.be.messages()); n != 1 {
				t.Fatalf("server has %d messages, want 1", n)
			}
		})
	}
}

func TestSendRecipientRejected(t *testing.T) {
	for _, tc := range []struct {
		name      string
		err       *smtp.SMTPError
		permanent bool
	}{
		{"550 no such user", &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "No such user"}, true},
		{"553 mailbox name not allowed", &smtp.SMTPError{Code: 553, EnhancedCode: smtp.EnhancedCode{5, 1, 3}, Message: "Bad address syntax"}, true},
		{"550 relaying denied", &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 7, 1}, Message: "Relaying denied"}, false},
		{"452 too many recipients", &smtp.SMTPError{Code: 452, EnhancedCode: smtp.EnhancedCode{4, 5, 3}, Message: "Too many recipients"}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			be := &backend{rejectRcpt: map[string]*smtp.SMTPError{"nobody@x.test": tc.err}}
			port := startServer(t, be, plainServer)
			s := newSender(t, port, TLSOpportunistic, nil)
			res := s.Send(context.Background(), sentJob(t, "mailto:a@x.test,nobody@x.test"))
			if res.Err == nil || res.Status != tc.err.Code || res.Permanent != tc.permanent {
				t.Fatalf("Send = %+v, want failure with status %d, permanent %v", res, tc.err.Code, tc.permanent)
			}
			if !strings.Contains(res.Err.Error(), "nobody@x.test") || !strings.Contains(res.Err.Error(), tc.err.Message) {
				t.Errorf("error %q does not name the address and the reply", res.Err)
			}
			if n := len(be.messages()); n != 0 {
				t.Errorf("server accepted %d messages", n)
			}
		})
	}
}

func TestSendSTARTTLSRequiredButNotOffered(t *testing.T) {
	be := &backend{}
	port := startServer(t, be, plainServer)
	s := newSender(t, port, "", nil) // default policy: starttls
	res := s.Send(context.Background(), sentJob(t, "mailto:a@x.test"))
	if res.Err == nil || res.Permanent {
		t.Fatalf("Send = %+v, want retryable failure", res)
	}
	if !errors.Is(res.Err, ErrSTARTTLSUnavailable) || !strings.Contains(res.Err.Error(), "STARTTLS is required") {
		t.Errorf("error %q does not say STARTTLS is required", res.Err)
	}
	if n := len(be.messages()); n != 0 {
		t.Errorf("server accepted %d messages in plain text", n)
	}
}

func TestSendSTARTTLS(t *testing.T) {
	be := &backend{}
	port := startServer(t, be, startTLSServer)
	s := newSender(t, port, TLSStartTLS, func(o *Options) { o.TLSConfig = clientTLS(t) })
	mustSucceed(t, s.Send(context.Background(), sentJob(t, "mailto:a@x.test")))
	if msgs := be.messages(); len(msgs) != 1 || !msgs[0].tls {
		t.Fatalf("messages %+v, want one over TLS", msgs)
	}

	// Opportunistic takes STARTTLS when it is offered.
	s = newSender(t, port, TLSOpportunistic, func(o *Options) { o.TLSConfig = clientTLS(t) })
	mustSucceed(t, s.Send(context.Background(), sentJob(t, "mailto:a@x.test")))
	if msgs := be.messages(); len(msgs) != 2 || !msgs[1].tls {
		t.Fatalf("messages %+v, want the second over TLS", msgs)
	}
}

func TestSendSTARTTLSUntrustedCertificate(t *testing.T) {
	be := &backend{}
	port := startServer(t, be, startTLSServer)
	s := newSender(t, port, TLSStartTLS, nil) // system roots: the self-signed cert is not trusted
	res := s.Send(context.Background(), sentJob(t, "mailto:a@x.test"))
	if res.Err == nil || res.Permanent || res.Status != 0 {
		t.Fatalf("Send = %+v, want retryable failure without status", res)
	}
	if !strings.Contains(res.Err.Error(), "certificate") {
		t.Errorf("error %q does not mention the certificate", res.Err)
	}
	if n := len(be.messages()); n != 0 {
		t.Errorf("server accepted %d messages", n)
	}
}

func TestSendImplicitTLS(t *testing.T) {
	be := &backend{user: "alice", pass: "s3cret-pw"}
	port := startServer(t, be, implicitServer)
	s := newSender(t, port, TLSImplicit, func(o *Options) {
		o.TLSConfig = clientTLS(t)
		o.Username, o.Password = "alice", "s3cret-pw"
	})
	mustSucceed(t, s.Send(context.Background(), receivedJob(t, "mailto:a@x.test")))
	msgs := be.messages()
	if len(msgs) != 1 || !msgs[0].tls || msgs[0].user != "alice" {
		t.Fatalf("messages %+v, want one over TLS from alice", msgs)
	}
	if att := parseMsg(t, msgs[0].data).part(t, "application/pdf"); !bytes.Equal(att.body, pdf) {
		t.Errorf("attachment differs from the PDF")
	}

	// Implicit TLS against a plain-text server fails, retryably.
	plain := startServer(t, &backend{}, plainServer)
	s = newSender(t, plain, TLSImplicit, func(o *Options) { o.TLSConfig = clientTLS(t) })
	res := s.Send(context.Background(), sentJob(t, "mailto:a@x.test"))
	if res.Err == nil || res.Permanent || !strings.Contains(res.Err.Error(), "TLS handshake") {
		t.Fatalf("Send = %+v, want retryable TLS handshake failure", res)
	}
}

func TestSendAuth(t *testing.T) {
	const user, pass = "alice", "s3cret-pw"
	t.Run("plain text on loopback", func(t *testing.T) {
		be := &backend{user: user, pass: pass}
		port := startServer(t, be, plainServer)
		s := newSender(t, port, TLSOpportunistic, func(o *Options) { o.Username, o.Password = user, pass })
		mustSucceed(t, s.Send(context.Background(), sentJob(t, "mailto:a@x.test")))
		if msgs := be.messages(); len(msgs) != 1 || msgs[0].user != user {
			t.Fatalf("messages %+v, want one from %s", msgs, user)
		}
	})
	t.Run("STARTTLS", func(t *testing.T) {
		be := &backend{user: user, pass: pass}
		port := startServer(t, be, startTLSServer)
		s := newSender(t, port, TLSStartTLS, func(o *Options) {
			o.Username, o.Password, o.TLSConfig = user, pass, clientTLS(t)
		})
		mustSucceed(t, s.Send(context.Background(), sentJob(t, "mailto:a@x.test")))
		if msgs := be.messages(); len(msgs) != 1 || msgs[0].user != user || !msgs[0].tls {
			t.Fatalf("messages %+v, want one from %s over TLS", msgs, user)
		}
	})
	t.Run("plain text to a non-loopback name", func(t *testing.T) {
		// 127.0.0.2 reaches the loopback interface on Linux, but go-mail's PLAIN and LOGIN only
		// trust the names localhost, 127.0.0.1 and ::1 with a password in plain text.
		ln, err := net.Listen("tcp", "127.0.0.2:0")
		if err != nil {
			t.Skipf("no 127.0.0.2 here: %v", err)
		}
		be := &backend{user: user, pass: pass}
		port := serve(t, be, plainServer, ln)
		s := newSender(t, port, TLSOpportunistic, func(o *Options) { o.Host, o.Username, o.Password = "127.0.0.2", user, pass })
		res := s.Send(context.Background(), sentJob(t, "mailto:a@x.test"))
		if res.Err == nil || res.Permanent || !strings.Contains(res.Err.Error(), "unencrypted connection") {
			t.Fatalf("Send = %+v, want a refusal to send the password in plain text", res)
		}
		if strings.Contains(res.Err.Error(), pass) {
			t.Errorf("error %q contains the password", res.Err)
		}
		if n := len(be.messages()); n != 0 {
			t.Errorf("server accepted %d messages", n)
		}
	})
	t.Run("wrong password", func(t *testing.T) {
		be := &backend{user: user, pass: pass}
		port := startServer(t, be, plainServer)
		const wrong = "wr0ng-Passw0rd"
		s := newSender(t, port, TLSOpportunistic, func(o *Options) { o.Username, o.Password = user, wrong })
		res := s.Send(context.Background(), sentJob(t, "mailto:a@x.test"))
		if res.Err == nil || res.Permanent || res.Status != 535 {
			t.Fatalf("Send = %+v, want retryable failure with status 535", res)
		}
		if strings.Contains(res.Err.Error(), wrong) {
			t.Errorf("error %q contains the password", res.Err)
		}
	})
	t.Run("no AUTH", func(t *testing.T) {
		be := &backend{user: user, pass: pass}
		port := startServer(t, be, plainServer)
		s := newSender(t, port, TLSOpportunistic, nil)
		res := s.Send(context.Background(), sentJob(t, "mailto:a@x.test"))
		if res.Err == nil || res.Permanent || res.Status != 502 {
			t.Fatalf("Send = %+v, want retryable failure with status 502", res)
		}
	})
}

func TestSendConnectionRefused(t *testing.T) {
	s := newSender(t, freePort(t), TLSOpportunistic, nil)
	res := s.Send(context.Background(), sentJob(t, "mailto:a@x.test"))
	if res.Err == nil || res.Permanent || res.Status != 0 {
		t.Fatalf("Send = %+v, want retryable failure without status", res)
	}
	if !strings.Contains(res.Err.Error(), "refused") || !strings.Contains(res.Err.Error(), "connecting to SMTP server 127.0.0.1:") {
		t.Errorf("error %q", res.Err)
	}
}

func TestSendTimeout(t *testing.T) {
	port := silentServer(t)
	s := newSender(t, port, TLSOpportunistic, func(o *Options) { o.Timeout = 200 * time.Millisecond })
	start := time.Now()
	res := s.Send(context.Background(), sentJob(t, "mailto:a@x.test"))
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("Send took %s with a 200ms timeout", d)
	}
	if res.Err == nil || res.Permanent || !errors.Is(res.Err, context.DeadlineExceeded) || !strings.Contains(res.Err.Error(), "timed out after 200ms") {
		t.Fatalf("Send = %+v, want a timeout", res)
	}
}

func TestSendContextCancelled(t *testing.T) {
	port := silentServer(t)
	s := newSender(t, port, TLSOpportunistic, func(o *Options) { o.Timeout = 10 * time.Second })
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(100*time.Millisecond, cancel)
	start := time.Now()
	res := s.Send(ctx, sentJob(t, "mailto:a@x.test"))
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("Send took %s after cancellation", d)
	}
	if res.Err == nil || res.Permanent || !errors.Is(res.Err, context.Canceled) || !strings.Contains(res.Err.Error(), "abandoned") {
		t.Fatalf("Send = %+v, want an abandoned attempt", res)
	}
}

func TestSendPermanentWithoutNetwork(t *testing.T) {
	// Nothing listens on the port: a network attempt would fail differently.
	s := newSender(t, freePort(t), TLSOpportunistic, nil)
	for _, tc := range []struct {
		name string
		job  *queue.Job
		want string
	}{
		{"nil job", nil, "nil job"},
		{"http URL", sentJob(t, "https://example.com/hook"), "not mailto"},
		{"no address", sentJob(t, "mailto:?subject=hi"), "no address"},
		{"bad address", sentJob(t, "mailto:not-an-address"), "bad address"},
		{"no rendered message", &queue.Job{ID: "j", URL: "mailto:a@x.test"}, "no rendered e-mail message"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res := s.Send(context.Background(), tc.job)
			if res.Err == nil || !res.Permanent || res.Status != 0 {
				t.Fatalf("Send = %+v, want permanent failure", res)
			}
			if !strings.Contains(res.Err.Error(), tc.want) {
				t.Errorf("error %q lacks %q", res.Err, tc.want)
			}
		})
	}
}

func TestSendConcurrent(t *testing.T) {
	be := &backend{}
	port := startServer(t, be, startTLSServer)
	s := newSender(t, port, TLSStartTLS, func(o *Options) { o.TLSConfig = clientTLS(t) })
	const n = 8
	results := make(chan queue.Result, n)
	for i := 0; i < n; i++ {
		go func() { results <- s.Send(context.Background(), receivedJob(t, "mailto:a@x.test")) }()
	}
	for i := 0; i < n; i++ {
		mustSucceed(t, <-results)
	}
	if got := len(be.messages()); got != n {
		t.Errorf("server has %d messages, want %d", got, n)
	}
}

func TestNew(t *testing.T) {
	const secret = "hunter2-secret"
	ok := Options{Host: "smtp.example.com", From: "fax@example.com"}
	for _, tc := range []struct {
		name string
		mod  func(*Options)
		want string // "" means valid
	}{
		{"minimal", func(*Options) {}, ""},
		{"host:port", func(o *Options) { o.Host = "smtp.example.com:2525" }, ""},
		{"IPv6 host:port", func(o *Options) { o.Host = "[::1]:2525" }, ""},
		{"no host", func(o *Options) { o.Host = "" }, "Options.Host is required"},
		{"URL as host", func(o *Options) { o.Host = "smtp://smtp.example.com" }, "Options.Host"},
		{"two ports", func(o *Options) { o.Host, o.Port = "smtp.example.com:25", 587 }, "Options.Port is set too"},
		{"port range", func(o *Options) { o.Port = 70000 }, "Options.Port 70000"},
		{"no from", func(o *Options) { o.From = "" }, "Options.From is required"},
		{"bad from", func(o *Options) { o.From = "not an address" }, "Options.From"},
		{"bad TLS", func(o *Options) { o.TLS = "ssl" }, `Options.TLS "ssl"`},
		{"negative timeout", func(o *Options) { o.Timeout = -time.Second }, "Options.Timeout"},
		{"password without user", func(o *Options) { o.Password = secret }, "Options.Username is empty"},
		{"bad HELO", func(o *Options) { o.HELO = "a b" }, "Options.HELO"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := ok
			tc.mod(&o)
			s, err := New(o)
			if tc.want == "" {
				if err != nil {
					t.Fatalf("New: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("New = %v, %v; want error containing %q", s, err, tc.want)
			}
			if strings.Contains(err.Error(), secret) {
				t.Errorf("error %q contains the password", err)
			}
		})
	}

	s, err := New(ok)
	if err != nil {
		t.Fatal(err)
	}
	if s.Addr() != "smtp.example.com:587" || s.policy != TLSStartTLS || s.timeout != DefaultTimeout {
		t.Errorf("defaults: addr %s policy %s timeout %s", s.Addr(), s.policy, s.timeout)
	}
	if s, _ := New(Options{Host: "smtp.example.com", From: "fax@example.com", TLS: TLSImplicit}); s.Addr() != "smtp.example.com:465" {
		t.Errorf("implicit TLS default addr %s", s.Addr())
	}
	if s, _ := New(Options{Host: "[::1]:2525", From: "fax@example.com"}); s.Addr() != "[::1]:2525" || s.tlsConfig.ServerName != "::1" {
		t.Errorf("IPv6 addr %s server name %s", s.Addr(), s.tlsConfig.ServerName)
	}

	o := ok
	o.Username, o.Password = "alice", secret
	for _, str := range []string{o.String(), fmt.Sprintf("%v", o), fmt.Sprintf("%+v", o), fmt.Sprintf("%#v", o), fmt.Sprint(&o)} {
		if strings.Contains(str, secret) || !strings.Contains(str, "REDACTED") {
			t.Errorf("formatted options %q", str)
		}
	}
}

func TestBadMailbox(t *testing.T) {
	for _, tc := range []struct {
		code     int
		enhanced string
		want     bool
	}{
		{550, "", true}, {553, "", true}, {551, "", false}, {554, "", false}, {450, "", false},
		{550, "5.1.1", true}, {501, "5.1.3", true}, {550, "5.7.1", false}, {550, "5.1.8", false},
		{452, "4.1.1", false}, {552, "5.2.2", false},
	} {
		if got := badMailbox(tc.code, tc.enhanced); got != tc.want {
			t.Errorf("badMailbox(%d, %q) = %v, want %v", tc.code, tc.enhanced, got, tc.want)
		}
	}
}

func TestMessageID(t *testing.T) {
	if got := messageID("abc123", "example.com"); got != "faxhook.abc123@example.com" {
		t.Errorf("messageID = %q", got)
	}
	odd := messageID("a b<c>@d", "example.com")
	if odd != messageID("a b<c>@d", "example.com") || strings.ContainsAny(strings.TrimSuffix(odd, "@example.com"), " <>@") {
		t.Errorf("messageID of an odd id = %q", odd)
	}
	if got := messageID("", "example.com"); got != "" {
		t.Errorf("messageID of empty id = %q", got)
	}
	for _, id := range []string{messageID("x", "[127.0.0.1]"), messageID("x", "")} {
		if !strings.HasSuffix(id, "@faxhook.invalid") {
			t.Errorf("messageID with odd domain = %q", id)
		}
	}
}
