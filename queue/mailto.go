package queue

import (
	"errors"
	"fmt"
	"net/mail"
	"net/url"
	"strings"
)

// MaxMailRecipients caps the addresses (To, Cc and Bcc together) one mailto: URL may name, so
// that a submitted webhook URL cannot turn the queue into a mass mailer.
const MaxMailRecipients = 50

// MailRecipients is what a mailto: URL asks for: who gets the e-mail and, optionally, its
// subject.
type MailRecipients struct {
	// To are the primary recipients: the addresses before the '?' plus any "to" header fields.
	To []string
	// Cc are the addresses of the "cc" header fields.
	Cc []string
	// Bcc are the addresses of the "bcc" header fields; they get the e-mail but appear in no header.
	Bcc []string
	// Subject is the "subject" header field, percent-decoded; empty means the default subject.
	Subject string
}

// All returns every recipient address, To first, then Cc, then Bcc.
func (r MailRecipients) All() []string {
	all := make([]string, 0, len(r.To)+len(r.Cc)+len(r.Bcc))
	all = append(all, r.To...)
	all = append(all, r.Cc...)
	return append(all, r.Bcc...)
}

// ParseMailto parses a mailto: URL as RFC 6068 defines it: comma-separated addresses after the
// scheme, then optional header fields after '?', separated by '&', each name=value with both parts
// percent-encoded. A '+' is a plus sign, not a space (use %20 for spaces).
//
// The header fields "to", "cc" and "bcc" add recipients (comma-separated, like the main list);
// "subject" sets the subject; "body" and every other header field are ignored, as RFC 6068
// recommends for fields a client does not want to honour. The scheme and field names are
// case-insensitive.
//
// Every address must be a single RFC 5322 address (net/mail); a display name is accepted and
// dropped, so the result holds bare addr-specs. It is an error when no address is given at all,
// when a list item is empty, when an address is malformed, or when there are more than
// MaxMailRecipients addresses. mailto: URLs carry no credentials, so errors quote the URL.
func ParseMailto(raw string) (MailRecipients, error) {
	var r MailRecipients
	scheme, rest, ok := strings.Cut(raw, ":")
	if !ok || !strings.EqualFold(scheme, "mailto") {
		if !ok || strings.ContainsAny(scheme, "/?#@") {
			return r, fmt.Errorf("invalid mailto URL %q: no mailto: scheme", raw)
		}
		return r, fmt.Errorf("invalid mailto URL %q: scheme %q is not mailto", raw, scheme)
	}
	if strings.Contains(rest, "#") {
		return r, fmt.Errorf("invalid mailto URL %q: a '#' must be percent-encoded as %%23", raw)
	}
	if strings.HasPrefix(rest, "//") {
		return r, fmt.Errorf("invalid mailto URL %q: mailto URLs have no '//' part", raw)
	}
	to, query, _ := strings.Cut(rest, "?")

	var err error
	if to != "" {
		if r.To, err = parseAddrList(to); err != nil {
			return MailRecipients{}, fmt.Errorf("invalid mailto URL %q: %w", raw, err)
		}
	}
	subjectSeen := false
	if query != "" {
		for i, field := range strings.Split(query, "&") {
			if field == "" {
				continue // "?&subject=x" or a trailing '&': harmless
			}
			rawName, rawValue, _ := strings.Cut(field, "=")
			name, err := url.PathUnescape(rawName)
			if err != nil {
				return MailRecipients{}, fmt.Errorf("invalid mailto URL %q: header field %d: bad percent-encoding in name", raw, i+1)
			}
			var list *[]string
			switch strings.ToLower(name) {
			case "to":
				list = &r.To
			case "cc":
				list = &r.Cc
			case "bcc":
				list = &r.Bcc
			case "subject":
				v, err := url.PathUnescape(rawValue)
				if err != nil {
					return MailRecipients{}, fmt.Errorf("invalid mailto URL %q: subject: bad percent-encoding", raw)
				}
				if !subjectSeen { // the first subject wins
					r.Subject = strings.TrimSpace(v)
					subjectSeen = true
				}
				continue
			default:
				continue // body, in-reply-to, keywords, ...: not ours to set
			}
			if rawValue == "" {
				continue // "cc=" names nobody
			}
			addrs, err := parseAddrList(rawValue)
			if err != nil {
				return MailRecipients{}, fmt.Errorf("invalid mailto URL %q: %s: %w", raw, strings.ToLower(name), err)
			}
			*list = append(*list, addrs...)
		}
	}

	n := len(r.To) + len(r.Cc) + len(r.Bcc)
	switch {
	case n == 0:
		return MailRecipients{}, fmt.Errorf("invalid mailto URL %q: no address", raw)
	case n > MaxMailRecipients:
		return MailRecipients{}, fmt.Errorf("invalid mailto URL %q: %d addresses, at most %d allowed", raw, n, MaxMailRecipients)
	}
	return r, nil
}

// parseAddrList splits a still percent-encoded, comma-separated address list (a comma inside an
// address must be encoded as %2C) and validates each address.
func parseAddrList(list string) ([]string, error) {
	var addrs []string
	for _, item := range strings.Split(list, ",") {
		a, err := url.PathUnescape(item)
		if err != nil {
			return nil, fmt.Errorf("bad percent-encoding in %q", item)
		}
		a = strings.TrimSpace(a)
		if a == "" {
			return nil, errors.New("empty address in list")
		}
		addr, err := mail.ParseAddress(a)
		if err != nil {
			return nil, fmt.Errorf("bad address %q: %w", a, err)
		}
		addrs = append(addrs, addrSpec(addr.Address))
	}
	return addrs, nil
}

// addrSpec renders a parsed address as an RFC 5322 addr-spec, quoting the local part when it needs
// it (net/mail hands it back unquoted).
func addrSpec(address string) string {
	s := (&mail.Address{Address: address}).String()
	return strings.TrimSuffix(strings.TrimPrefix(s, "<"), ">")
}
