// Package smtpsink is a small SMTP server on loopback that accepts every message and keeps it in
// memory: the mail server of faxhook's demo and end-to-end tests of mailto: webhooks.
package smtpsink

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net"
	netmail "net/mail"
	"strings"
	"sync"
	"time"

	"github.com/emersion/go-smtp"
)

// Message is one accepted message.
type Message struct {
	// From is the envelope sender.
	From string
	// To are the envelope recipients.
	To []string
	// Data is the whole message as received.
	Data []byte
}

// Sink is a running SMTP server that records messages.
type Sink struct {
	srv     *smtp.Server
	l       net.Listener
	mu      sync.Mutex
	msgs    []Message
	changed chan struct{}
	// OnMessage, if set before the first message, is called for every accepted message.
	OnMessage func(Message)
}

// Start listens on addr (e.g. "127.0.0.1:0") and serves until Close.
func Start(addr string) (*Sink, error) {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("smtpsink: listening on %s: %w", addr, err)
	}
	s := &Sink{l: l, changed: make(chan struct{})}
	s.srv = smtp.NewServer(s)
	s.srv.Domain = "localhost"
	s.srv.ReadTimeout, s.srv.WriteTimeout = 30*time.Second, 30*time.Second
	s.srv.MaxMessageBytes = 64 << 20
	go s.srv.Serve(l)
	return s, nil
}

// Addr returns host:port of the server.
func (s *Sink) Addr() string { return s.l.Addr().String() }

// Close stops the server.
func (s *Sink) Close() error { return s.srv.Close() }

// Messages returns the messages accepted so far, oldest first.
func (s *Sink) Messages() []Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Message(nil), s.msgs...)
}

// Wait blocks until at least n messages were accepted or ctx ends.
func (s *Sink) Wait(ctx context.Context, n int) ([]Message, error) {
	for {
		s.mu.Lock()
		msgs, ch := append([]Message(nil), s.msgs...), s.changed
		s.mu.Unlock()
		if len(msgs) >= n {
			return msgs, nil
		}
		select {
		case <-ctx.Done():
			return msgs, fmt.Errorf("smtpsink: %d of %d messages: %w", len(msgs), n, ctx.Err())
		case <-ch:
		}
	}
}

func (s *Sink) add(m Message) {
	s.mu.Lock()
	s.msgs = append(s.msgs, m)
	close(s.changed)
	s.changed = make(chan struct{})
	cb := s.OnMessage
	s.mu.Unlock()
	if cb != nil {
		cb(m)
	}
}

// NewSession implements smtp.Backend.
func (s *Sink) NewSession(*smtp.Conn) (smtp.Session, error) { return &session{sink: s}, nil }

type session struct {
	sink *Sink
	msg  Message
}

func (x *session) Mail(from string, _ *smtp.MailOptions) error { x.msg.From = from; return nil }
func (x *session) Rcpt(to string, _ *smtp.RcptOptions) error {
	x.msg.To = append(x.msg.To, to)
	return nil
}
func (x *session) Data(r io.Reader) error {
	b, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	x.msg.Data = b
	x.sink.add(x.msg)
	x.msg = Message{}
	return nil
}
func (x *session) Reset()        { x.msg = Message{} }
func (x *session) Logout() error { return nil }

// Parsed is a message taken apart.
type Parsed struct {
	// Header is the message header.
	Header netmail.Header
	// Subject is the decoded subject.
	Subject string
	// Text and HTML are the decoded alternatives.
	Text, HTML string
	// Attachments maps attachment file names to their bytes.
	Attachments map[string][]byte
}

// Parse takes a message apart: its subject, text and HTML alternatives and attachments.
func Parse(data []byte) (*Parsed, error) {
	m, err := netmail.ReadMessage(bytes.NewReader(data))
	if err != nil {
		return nil, fmt.Errorf("smtpsink: parsing message: %w", err)
	}
	p := &Parsed{Header: m.Header, Attachments: map[string][]byte{}}
	p.Subject, _ = new(mime.WordDecoder).DecodeHeader(m.Header.Get("Subject"))
	return p, p.walk(m.Header.Get("Content-Type"), m.Header.Get("Content-Transfer-Encoding"), m.Header.Get("Content-Disposition"), m.Body)
}

func (p *Parsed) walk(ctype, cte, disp string, body io.Reader) error {
	mt, params, err := mime.ParseMediaType(ctype)
	if err != nil {
		mt = "text/plain"
	}
	if strings.HasPrefix(mt, "multipart/") {
		mr := multipart.NewReader(body, params["boundary"])
		for {
			part, err := mr.NextRawPart()
			if err == io.EOF {
				return nil
			}
			if err != nil {
				return fmt.Errorf("smtpsink: reading part: %w", err)
			}
			if err := p.walk(part.Header.Get("Content-Type"), part.Header.Get("Content-Transfer-Encoding"), part.Header.Get("Content-Disposition"), part); err != nil {
				return err
			}
		}
	}
	b, err := io.ReadAll(decodeCTE(cte, body))
	if err != nil {
		return fmt.Errorf("smtpsink: decoding %s part: %w", mt, err)
	}
	if _, dp, err := mime.ParseMediaType(disp); err == nil && dp["filename"] != "" {
		p.Attachments[dp["filename"]] = b
		return nil
	}
	switch mt {
	case "text/plain":
		p.Text = string(b)
	case "text/html":
		p.HTML = string(b)
	}
	return nil
}
