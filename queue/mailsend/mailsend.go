// Package mailsend delivers webhook jobs whose URL is a mailto: URL, the way Phaxio does: the
// job's rendered message (queue.Mail: a plain-text body with an HTML alternative), sent through a
// configured SMTP server to the URL's recipients, with the job's files attached unchanged.
//
// Every attempt of a job carries the same Message-ID, derived from the job's ID, and an
// X-Faxhook-Event-Id header, so that recipients and filters can recognise a repeated delivery.
//
// Outcomes follow the queue's rules: anything that may work later (refused connection, TLS
// failure, timeout, a 4xx or 5xx reply) is a retryable failure whose Status is the SMTP reply
// code, if any; a mailto: URL that can never work (malformed, no address, an address the server
// rejects at RCPT as unknown) is a Permanent failure.
package mailsend

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	netmail "net/mail"
	"net/textproto"
	"os"
	"strconv"
	"strings"
	"time"

	mail "github.com/wneessen/go-mail"
	mailsmtp "github.com/wneessen/go-mail/smtp"

	"github.com/faxhook/caddy-faxhook/queue"
)

// TLSPolicy says how a Sender secures its connection to the SMTP server.
type TLSPolicy string

// TLS policies.
const (
	// TLSStartTLS connects in plain text and upgrades with STARTTLS; a server that does not offer
	// STARTTLS fails the attempt (ErrSTARTTLSUnavailable). This is the default. Default port 587.
	TLSStartTLS TLSPolicy = "starttls"
	// TLSOpportunistic upgrades with STARTTLS when the server offers it and stays in plain text
	// otherwise. A failed STARTTLS handshake still fails the attempt. Credentials are sent over a
	// plain-text connection only to a loopback server (localhost, 127.0.0.1, ::1), or with a
	// mechanism that does not reveal the password (SCRAM, CRAM-MD5). Default port 587.
	TLSOpportunistic TLSPolicy = "opportunistic"
	// TLSImplicit speaks TLS from the first byte (SMTPS, RFC 8314). Default port 465.
	TLSImplicit TLSPolicy = "implicit"
)

// Defaults applied by New to zero Options fields.
const (
	// DefaultTimeout bounds a whole attempt: connecting, TLS, AUTH and sending the message.
	DefaultTimeout = 30 * time.Second
	// DefaultPort is the submission port, used with TLSStartTLS and TLSOpportunistic.
	DefaultPort = 587
	// DefaultImplicitTLSPort is the SMTPS port, used with TLSImplicit.
	DefaultImplicitTLSPort = 465
	// DefaultContentType is the Content-Type of an attachment whose File.ContentType is empty.
	DefaultContentType = "application/pdf"
)

// Header names, besides the standard ones, that every e-mail carries.
const (
	// HeaderEventID carries the job's EventID, stable across attempts and URLs, for deduplication.
	HeaderEventID = "X-Faxhook-Event-Id"
	// HeaderAttempt carries the 1-based number of the attempt.
	HeaderAttempt = "X-Faxhook-Attempt"
)

// ErrSTARTTLSUnavailable is the cause of a failed attempt under TLSStartTLS when the server does
// not offer STARTTLS.
var ErrSTARTTLSUnavailable = errors.New("STARTTLS is required (TLS policy \"starttls\") but the server does not offer it")

// errAttemptTimeout is the cause of the attempt context when Options.Timeout runs out.
var errAttemptTimeout = errors.New("e-mail attempt timed out")

// Options configures a Sender. Host and From are required; every other zero field takes its
// default.
type Options struct {
	// Host is the SMTP server's host name or IP address. When Port is 0 it may also be given as
	// "host:port".
	Host string
	// Port is the SMTP server's port. Default 587, or 465 with TLSImplicit.
	Port int
	// Username and Password enable SMTP AUTH. Over TLS the strongest mechanism the server offers is
	// used (go-mail's auto-discovery: SCRAM, CRAM-MD5, PLAIN, LOGIN); under TLSOpportunistic see
	// there. An empty Username means no AUTH.
	Username, Password string
	// From is the envelope sender and the From header, e.g. "Faxhook <fax@example.com>".
	From string
	// TLS is the TLS policy. Default TLSStartTLS.
	TLS TLSPolicy
	// Timeout bounds a whole attempt. Default 30s.
	Timeout time.Duration
	// TLSConfig is the TLS client configuration, e.g. to trust a private CA. It is cloned; an empty
	// ServerName becomes Host, and a zero MinVersion becomes TLS 1.2. Default: system roots.
	TLSConfig *tls.Config
	// HELO is the name sent with EHLO. Default: the machine's host name.
	HELO string
}

// String describes the options with the password redacted, so that logging them is safe.
func (o Options) String() string {
	pass := ""
	if o.Password != "" {
		pass = "REDACTED"
	}
	return fmt.Sprintf("mailsend.Options{Host:%q Port:%d Username:%q Password:%q From:%q TLS:%q Timeout:%s HELO:%q}",
		o.Host, o.Port, o.Username, pass, o.From, o.TLS, o.Timeout, o.HELO)
}

// GoString is String, so that %#v redacts the password too.
func (o Options) GoString() string { return o.String() }

// Sender delivers webhook jobs to mailto: URLs over SMTP. It implements queue.Sender and is safe
// for concurrent use: every attempt uses a connection of its own.
type Sender struct {
	host       string
	port       int
	addr       string
	username   string
	password   string
	from       *netmail.Address
	fromDomain string
	policy     TLSPolicy
	timeout    time.Duration
	tlsConfig  *tls.Config
	helo       string
}

var _ queue.Sender = (*Sender)(nil)

// New validates opts and returns a Sender. Its errors name the offending option and never contain
// the password.
func New(opts Options) (*Sender, error) {
	s := &Sender{
		host:     strings.TrimSpace(opts.Host),
		port:     opts.Port,
		username: opts.Username,
		password: opts.Password,
		policy:   TLSPolicy(strings.ToLower(strings.TrimSpace(string(opts.TLS)))),
		timeout:  opts.Timeout,
		helo:     opts.HELO,
	}
	switch s.policy {
	case "":
		s.policy = TLSStartTLS
	case TLSStartTLS, TLSOpportunistic, TLSImplicit:
	default:
		return nil, fmt.Errorf("mailsend: Options.TLS %q: want %q, %q or %q", opts.TLS, TLSStartTLS, TLSOpportunistic, TLSImplicit)
	}

	if s.host == "" {
		return nil, errors.New("mailsend: Options.Host is required")
	}
	if h, p, err := net.SplitHostPort(s.host); err == nil {
		if s.port != 0 {
			return nil, fmt.Errorf("mailsend: Options.Host %q has a port and Options.Port is set too", opts.Host)
		}
		n, err := strconv.Atoi(p)
		if err != nil {
			return nil, fmt.Errorf("mailsend: Options.Host %q: bad port %q", opts.Host, p)
		}
		s.host, s.port = h, n
		if s.port == 0 {
			return nil, fmt.Errorf("mailsend: Options.Host %q: port out of range", opts.Host)
		}
	}
	s.host = strings.TrimSuffix(strings.TrimPrefix(s.host, "["), "]")
	if s.host == "" || strings.ContainsAny(s.host, "/@ \t\r\n") || strings.Contains(s.host, "://") {
		return nil, fmt.Errorf("mailsend: Options.Host %q is not a host name or IP address", opts.Host)
	}
	if s.port == 0 {
		s.port = DefaultPort
		if s.policy == TLSImplicit {
			s.port = DefaultImplicitTLSPort
		}
	}
	if s.port < 1 || s.port > 65535 {
		return nil, fmt.Errorf("mailsend: Options.Port %d out of range 1-65535", s.port)
	}
	s.addr = net.JoinHostPort(s.host, strconv.Itoa(s.port))

	if opts.Password != "" && opts.Username == "" {
		return nil, errors.New("mailsend: Options.Password is set but Options.Username is empty")
	}
	if strings.ContainsAny(opts.Username, "\r\n\x00") {
		return nil, errors.New("mailsend: Options.Username contains a control character")
	}

	if strings.TrimSpace(opts.From) == "" {
		return nil, errors.New("mailsend: Options.From is required")
	}
	from, err := netmail.ParseAddress(opts.From)
	if err != nil {
		return nil, fmt.Errorf("mailsend: Options.From %q is not a valid address: %w", opts.From, err)
	}
	s.from = from
	s.fromDomain = from.Address[strings.LastIndexByte(from.Address, '@')+1:]

	if s.timeout < 0 {
		return nil, fmt.Errorf("mailsend: Options.Timeout %s is negative", s.timeout)
	}
	if s.timeout == 0 {
		s.timeout = DefaultTimeout
	}

	if s.helo != "" && (strings.ContainsAny(s.helo, " \t\r\n") || !isPrintableASCII(s.helo)) {
		return nil, fmt.Errorf("mailsend: Options.HELO %q is not a valid host name", s.helo)
	}

	if opts.TLSConfig != nil {
		s.tlsConfig = opts.TLSConfig.Clone()
	} else {
		s.tlsConfig = &tls.Config{}
	}
	if s.tlsConfig.ServerName == "" {
		s.tlsConfig.ServerName = s.host
	}
	if s.tlsConfig.MinVersion == 0 {
		s.tlsConfig.MinVersion = tls.VersionTLS12
	}
	return s, nil
}

func isPrintableASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] <= ' ' || s[i] >= 0x7f {
			return false
		}
	}
	return true
}

// Addr returns the SMTP server's address as host:port.
func (s *Sender) Addr() string { return s.addr }

// Send makes one delivery attempt of job to the addresses of its mailto: URL and reports the
// outcome. A malformed URL or a job without a rendered message (Payload.Mail) gives a Permanent
// failure without any network I/O; so does a server's permanent rejection of a recipient as
// unknown (550/553, or an enhanced 5.1.x code, in reply to RCPT). Every other failure is
// retryable, with Status set to the SMTP reply code when the server gave one. On success Status is 250 and Body is the server's
// reply to the message (typically its queue id). Send returns when ctx ends or the attempt times
// out, whichever is first.
func (s *Sender) Send(ctx context.Context, job *queue.Job) queue.Result {
	if job == nil {
		return queue.Result{Err: errors.New("sending e-mail webhook: nil job"), Permanent: true}
	}
	rcpts, err := queue.ParseMailto(job.URL)
	if err != nil {
		return queue.Result{Err: err, Permanent: true}
	}
	target := strings.Join(rcpts.All(), ", ")

	msg, err := s.message(job, rcpts)
	if err != nil {
		return queue.Result{Err: fmt.Errorf("building e-mail to %s: %w", target, err), Permanent: true}
	}

	actx, cancel := context.WithTimeoutCause(ctx, s.timeout, errAttemptTimeout)
	defer cancel() // also closes the connection, through the AfterFunc registered by dial

	client, err := s.client(actx)
	if err != nil {
		// New validated everything go-mail checks, so this is not expected.
		return queue.Result{Err: fmt.Errorf("configuring SMTP client for %s: %w", s.addr, err)}
	}

	smtpClient, err := client.DialToSMTPClientWithContext(actx)
	if err != nil {
		return s.failure(ctx, actx, fmt.Sprintf("mailing webhook to %s: connecting to SMTP server %s", target, s.addr), err)
	}
	err = client.SendWithSMTPClient(smtpClient, msg)
	if err == nil || msg.IsDelivered() {
		_ = client.CloseWithSMTPClient(smtpClient) // the server has the message; a failed QUIT changes nothing
		return queue.Result{Status: 250, Body: msg.ServerResponse()}
	}
	return s.failure(ctx, actx, fmt.Sprintf("mailing webhook to %s via %s", target, s.addr), err)
}

// client returns a go-mail client for one attempt. Its connections are made by dial, which ties
// them to actx.
func (s *Sender) client(actx context.Context) (*mail.Client, error) {
	opts := []mail.Option{
		mail.WithPort(s.port),
		mail.WithTimeout(s.timeout),
		mail.WithTLSConfig(s.tlsConfig),
		mail.WithoutRset(), // the connection is closed right after the message
		mail.WithDialContextFunc(s.dialer(actx)),
	}
	switch s.policy {
	case TLSStartTLS:
		opts = append(opts, mail.WithTLSPolicy(mail.TLSMandatory))
	default:
		// TLSImplicit: dial hands go-mail a *tls.Conn, so go-mail sees an encrypted connection;
		// opportunistic keeps it from trying STARTTLS on top, which a server must not offer then.
		opts = append(opts, mail.WithTLSPolicy(mail.TLSOpportunistic))
	}
	if s.helo != "" {
		opts = append(opts, mail.WithHELO(s.helo))
	}
	if s.username != "" {
		opts = append(opts, mail.WithUsername(s.username), mail.WithPassword(s.password))
		if s.policy == TLSOpportunistic {
			// The connection may stay in plain text, where go-mail's auto-discovery refuses PLAIN and
			// LOGIN even towards loopback. PLAIN and LOGIN still refuse to send a password in plain
			// text to anything but a loopback server.
			opts = append(opts, mail.WithOpportunisticSMTPAuth(
				mail.SMTPAuthSCRAMSHA256, mail.SMTPAuthSCRAMSHA1, mail.SMTPAuthCramMD5,
				mail.SMTPAuthPlain, mail.SMTPAuthLogin))
		} else {
			opts = append(opts, mail.WithSMTPAuth(mail.SMTPAuthAutoDiscover))
		}
	}
	return mail.NewClient(s.host, opts...)
}

// dialer returns the function go-mail dials with: TCP, plus the TLS handshake under TLSImplicit.
// Every connection is closed when actx ends, so that Send returns promptly when its context is
// cancelled or the attempt times out, whatever go-mail is waiting for.
func (s *Sender) dialer(actx context.Context) mail.DialContextFunc {
	return func(ctx context.Context, network, address string) (net.Conn, error) {
		var d net.Dialer
		raw, err := d.DialContext(ctx, network, address)
		if err != nil {
			return nil, err
		}
		context.AfterFunc(actx, func() { _ = raw.Close() })
		if s.policy != TLSImplicit {
			return raw, nil
		}
		tc := tls.Client(raw, s.tlsConfig)
		if err := tc.HandshakeContext(ctx); err != nil {
			_ = raw.Close()
			return nil, fmt.Errorf("TLS handshake: %w", err)
		}
		return tc, nil
	}
}

// failure turns a go-mail error into a Result: the reply code as Status, Permanent for a
// recipient the server rejects as unknown, and timeouts and cancellation in plain words.
func (s *Sender) failure(parent, actx context.Context, what string, err error) queue.Result {
	var res queue.Result
	var rcptRejected bool
	var se *mail.SendError
	var te *textproto.Error
	switch {
	case errors.As(err, &se):
		res.Status = se.ErrorCode()
		rcptRejected = se.Reason == mail.ErrSMTPRcptTo && badMailbox(res.Status, se.EnhancedStatusCode())
	case errors.As(err, &te):
		res.Status = te.Code
	}
	if strings.Contains(err.Error(), "does not support STARTTLS") {
		// go-mail reports this as a plain string; say it in the package's own words.
		err = ErrSTARTTLSUnavailable
	}

	switch {
	case rcptRejected:
		res.Err = fmt.Errorf("%s: recipient address rejected, no retry can fix it: %w", what, err)
		res.Permanent = true
	case parent.Err() != nil && res.Status == 0:
		res.Err = fmt.Errorf("%s: attempt abandoned: %w", what, context.Cause(parent))
	case res.Status == 0 && (errors.Is(context.Cause(actx), errAttemptTimeout) || errors.Is(err, os.ErrDeadlineExceeded)):
		res.Err = fmt.Errorf("%s: timed out after %s: %w", what, s.timeout, context.DeadlineExceeded)
	case errors.Is(err, mailsmtp.ErrUnencrypted):
		res.Err = fmt.Errorf("%s: SMTP AUTH: refusing to send the password over an unencrypted connection: %w", what, err)
	default:
		res.Err = fmt.Errorf("%s: %w", what, err)
	}
	return res
}

// badMailbox tells whether a negative reply to RCPT says the address does not exist or can never
// receive mail: an enhanced status code 5.1.x (addressing), except 5.1.7 and 5.1.8 which are about
// the sender, or, without an enhanced code, 550 or 553. A 550 5.7.1 (relaying denied, policy) is a
// configuration problem, not a bad address, and stays retryable.
func badMailbox(code int, enhanced string) bool {
	if code < 500 || code > 599 {
		return false
	}
	if enhanced != "" {
		return strings.HasPrefix(enhanced, "5.1.") && enhanced != "5.1.7" && enhanced != "5.1.8"
	}
	return code == 550 || code == 553
}

// message builds the e-mail for job: its rendered message, and its files as attachments.
func (s *Sender) message(job *queue.Job, rcpts queue.MailRecipients) (*mail.Msg, error) {
	if job.Mail == nil {
		return nil, errors.New("the job has no rendered e-mail message")
	}
	subject := Clean(job.Mail.Subject)
	if rcpts.Subject != "" {
		subject = Clean(rcpts.Subject)
	}

	m := mail.NewMsg(mail.WithNoDefaultUserAgent())
	m.FromMailAddress(s.from)
	if len(rcpts.To) > 0 {
		if err := m.To(rcpts.To...); err != nil {
			return nil, fmt.Errorf("setting To: %w", err)
		}
	}
	if len(rcpts.Cc) > 0 {
		if err := m.Cc(rcpts.Cc...); err != nil {
			return nil, fmt.Errorf("setting Cc: %w", err)
		}
	}
	if len(rcpts.Bcc) > 0 {
		if err := m.Bcc(rcpts.Bcc...); err != nil {
			return nil, fmt.Errorf("setting Bcc: %w", err)
		}
	}
	m.Subject(subject)
	m.SetDate()
	if id := messageID(job.ID, s.fromDomain); id != "" {
		m.SetMessageIDWithValue(id)
	}
	m.SetGenHeader(HeaderEventID, Clean(job.EventID))
	m.SetGenHeader(HeaderAttempt, strconv.Itoa(len(job.Attempts)+1))
	m.SetGenHeader("Auto-Submitted", "auto-generated") // RFC 3834: no vacation replies
	m.SetUserAgent("faxhook")

	m.SetBodyString(mail.TypeTextPlain, job.Mail.Text)
	if job.Mail.HTML != "" {
		m.AddAlternativeString(mail.TypeTextHTML, job.Mail.HTML)
	}

	for _, f := range job.Files {
		ct := f.ContentType
		if ct == "" {
			ct = DefaultContentType
		}
		m.AttachReadSeeker(attachmentName(f), bytes.NewReader(f.Data),
			mail.WithFileContentType(mail.ContentType(ct)))
	}
	return m, nil
}

// attachmentName is the file name under which a file is attached: its Filename, else its part
// name, without control characters.
func attachmentName(f queue.File) string {
	if name := Clean(f.Filename); name != "" {
		return name
	}
	return Clean(f.Name)
}

// Clean drops control characters and trims the result, so that no value can break a header
// line or a plain-text layout: tabs and line breaks become spaces, other control characters go.
// The application renders e-mails with it too.
func Clean(s string) string {
	if strings.IndexFunc(s, isControl) < 0 {
		return strings.TrimSpace(s)
	}
	return strings.TrimSpace(strings.Map(func(r rune) rune {
		switch {
		case r == '\t' || r == '\n' || r == '\r':
			return ' '
		case isControl(r):
			return -1
		}
		return r
	}, s))
}

func isControl(r rune) bool { return r < 0x20 || (r >= 0x7f && r < 0xa0) }

// messageID returns the Message-ID (without angle brackets) of every e-mail for the job with ID
// jobID: the same on every attempt, so that receiving systems can recognise a repeated delivery.
// It is empty for an empty jobID.
func messageID(jobID, domain string) string {
	if jobID == "" {
		return ""
	}
	local := jobID
	if !isAtext(local) || len(local) > 64 {
		sum := sha256.Sum256([]byte(jobID))
		local = hex.EncodeToString(sum[:16])
	}
	if domain == "" || !isAtext(strings.ReplaceAll(domain, ".", "")) {
		domain = "faxhook.invalid"
	}
	return "faxhook." + local + "@" + domain
}

// isAtext tells whether s is non-empty and holds only letters, digits, '-' and '_': safe in a
// Message-ID without quoting.
func isAtext(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}
