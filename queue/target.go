package queue

import (
	"errors"
	"fmt"
	"net/netip"
	"net/url"
	"strings"
)

// Target is a webhook URL parsed once into every view of it the queue and the application use:
// its scheme, its destination, the form that is signed, the form that is shown, its credentials
// and, for mailto: URLs, its recipients. It is the only code that splits credentials off a
// webhook URL.
type Target struct {
	// Raw is the URL exactly as configured or submitted.
	Raw string
	// Scheme is the lower-case scheme: "http", "https" or "mailto".
	Scheme string
	// Destination names the receiver whose concurrent attempts Options.PerHost limits (see the
	// function Destination).
	Destination string
	// Signed is the URL as it is signed (see SignedURL): Raw less user:password@ and #fragment.
	Signed string
	// Redacted is Raw with its user:password@ part replaced by REDACTED@ (see RedactURL), for
	// logs and the admin API.
	Redacted string
	// Userinfo is the user:password part of an http(s) URL as written (percent-encoded), ""
	// without one.
	Userinfo string
	// Password is the part of Userinfo after its first ':', as written; "" without one.
	Password string
	// Host is the host of an http(s) URL with any port, as written (url.URL.Host).
	Host string
	// Hostname is Host without port and brackets (url.URL.Hostname).
	Hostname string
	// Mail holds the recipients of a mailto: URL; nil for other schemes.
	Mail *MailRecipients

	user *url.Userinfo // the credentials of an http(s) URL, decoded; nil without
}

// BasicAuth returns the user name and password of an http(s) URL's user:password@ part,
// percent-decoded, to be sent as HTTP Basic credentials; ok is false when the URL has none.
func (t Target) BasicAuth() (user, password string, ok bool) {
	if t.user == nil {
		return "", "", false
	}
	password, _ = t.user.Password()
	return t.user.Username(), password, true
}

// ParseTarget parses a webhook URL and checks that it is one the queue's senders can deliver
// to: http or https with a host that is a name or an IP address in standard form (see
// CheckHostForm), or mailto with at least one valid address (see ParseMailto).
//
// Raw, Destination, Signed, Redacted, Userinfo and Password come from a textual split that
// cannot fail, and are set even when err is not nil, so that a URL that fails validation can
// still be shown and keyed without its credentials; Scheme, Host, Hostname and Mail are set only
// when err is nil. The errors never repeat an http(s) URL, which may hold credentials: callers
// show the Redacted form beside them.
func ParseTarget(raw string) (Target, error) {
	sp := splitURL(raw)
	t := Target{Raw: raw, Destination: Destination(raw), Signed: SignedURL(raw), Redacted: sp.redacted(raw)}
	if sp.at >= 0 {
		t.Userinfo = raw[sp.start:sp.at]
		_, t.Password, _ = strings.Cut(t.Userinfo, ":")
	}
	u, err := url.Parse(raw)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // its text quotes the whole URL
		}
		return t, fmt.Errorf("not a URL: %w", err)
	}
	scheme := strings.ToLower(u.Scheme)
	switch scheme {
	case "http", "https":
		if u.Host == "" {
			return t, errors.New("missing host")
		}
		if err := CheckHostForm(u.Hostname()); err != nil {
			return t, err
		}
		t.Host, t.Hostname, t.user = u.Host, u.Hostname(), u.User
	case "mailto":
		r, err := ParseMailto(raw)
		if err != nil {
			return t, err
		}
		t.Mail = &r
	case "":
		return t, errors.New("missing scheme (http, https or mailto)")
	default:
		return t, fmt.Errorf("unsupported scheme %q (http, https or mailto)", u.Scheme)
	}
	t.Scheme = scheme
	return t, nil
}

// urlSplit locates the authority of a URL written scheme://authority[/?#…] in the string it was
// split from.
type urlSplit struct {
	sep        int // index of "://", -1 when there is none (then the other fields are 0 or -1)
	start, end int // bounds of the authority
	at         int // index of the '@' that ends the user:password part (the authority's last), -1 if none
}

// splitURL splits s textually, without validating it, so that it gives the same answer for
// URLs that do not parse.
func splitURL(s string) urlSplit {
	sp := urlSplit{sep: strings.Index(s, "://"), at: -1}
	if sp.sep < 0 {
		return sp
	}
	sp.start = sp.sep + 3
	rest := s[sp.start:]
	end := strings.IndexAny(rest, "/?#")
	if end < 0 {
		end = len(rest)
	}
	sp.end = sp.start + end
	if at := strings.LastIndexByte(rest[:end], '@'); at >= 0 {
		sp.at = sp.start + at
	}
	return sp
}

// redacted returns s with its user:password@ part replaced by REDACTED@.
func (sp urlSplit) redacted(s string) string {
	if sp.at < 0 {
		return s
	}
	return s[:sp.start] + "REDACTED@" + s[sp.at+1:]
}

// RedactURL returns rawURL with any user:password@ part replaced by REDACTED@, for logs and the
// admin API: the Redacted form of ParseTarget, for callers that need nothing else. mailto: URLs
// and URLs without credentials come back unchanged.
func RedactURL(rawURL string) string { return splitURL(rawURL).redacted(rawURL) }

// SignedURL returns the form of a webhook URL that is signed: the URL exactly as given, less any
// user:password@ part and any #fragment, which receivers cannot reconstruct from the request they
// get. Nothing else is normalised: no re-escaping, no default port removal. It is the Signed
// form of ParseTarget.
func SignedURL(rawURL string) string {
	if h := strings.IndexByte(rawURL, '#'); h >= 0 {
		rawURL = rawURL[:h]
	}
	sp := splitURL(rawURL)
	if sp.at < 0 {
		return rawURL
	}
	return rawURL[:sp.start] + rawURL[sp.at+1:]
}

// Destination names the receiver whose concurrent attempts Options.PerHost limits. For http and
// https URLs it is the lower-case scheme and host with any non-default port, without credentials
// ("https://example.com", "http://127.0.0.1:8080"); for mailto: URLs "mailto:" and the lower-case
// domain of the first address; any other string is its own destination. It is the Destination
// of ParseTarget, computed without validating the URL.
func Destination(rawURL string) string {
	s := strings.TrimSpace(rawURL)
	var dest string
	if sp := splitURL(s); sp.sep > 0 {
		hostStart := sp.start
		if sp.at >= 0 {
			hostStart = sp.at + 1
		}
		scheme, host := strings.ToLower(s[:sp.sep]), strings.ToLower(s[hostStart:sp.end])
		switch scheme {
		case "https":
			host = strings.TrimSuffix(host, ":443")
		case "http":
			host = strings.TrimSuffix(host, ":80")
		}
		dest = scheme + "://" + host
	} else if len(s) >= 7 && strings.EqualFold(s[:7], "mailto:") {
		addr := s[7:]
		if end := strings.IndexAny(addr, "?,"); end >= 0 {
			addr = addr[:end]
		}
		if at := strings.LastIndexByte(addr, '@'); at >= 0 {
			addr = addr[at+1:]
		}
		dest = "mailto:" + strings.ToLower(addr)
	} else {
		dest = s
	}
	// Destinations are key parts in stores; NUL separates them from what follows.
	return strings.ReplaceAll(dest, "\x00", "")
}

// CheckHostForm refuses a URL host (as url.URL.Hostname returns it) that ends in a number but is
// not an IP address in standard form: 2130706434, 0x7f.1, 017700000001, 127.1, 127.0.0.01. The
// WHATWG URL standard reads a host whose last label is decimal digits or 0x-prefixed hex as an
// IPv4 address, and the C resolver (inet_aton) reads these forms as one; Go's resolver reads them
// as names, which never resolve, since no top-level domain is numeric. Either way such a URL can
// never be delivered as written: it is refused as malformed, before any I/O and without retries,
// rather than failing DNS on every step of the ladder (or, through a C resolver, reaching an
// address its author disguised). Dotted-decimal IPv4 and bracketed IPv6 literals pass.
func CheckHostForm(host string) error {
	if strings.Contains(host, ":") { // IPv6 literal (Hostname drops the brackets)
		return nil
	}
	last := strings.TrimSuffix(host, ".")
	if i := strings.LastIndexByte(last, '.'); i >= 0 {
		last = last[i+1:]
	}
	if !isNumericLabel(last) {
		return nil
	}
	if ip, err := netip.ParseAddr(host); err == nil && ip.Is4() {
		return nil
	}
	return fmt.Errorf("host %q is numeric but not a dotted-decimal IPv4 address (forms such as 2130706434, 0x7f.1 or 127.1 are refused; write a.b.c.d)", host)
}

// isNumericLabel reports whether a host label is a number as the WHATWG URL standard's IPv4
// parser reads it: decimal digits, or 0x/0X followed by hex digits (possibly none).
func isNumericLabel(l string) bool {
	if l == "" {
		return false
	}
	hex := len(l) >= 2 && l[0] == '0' && (l[1] == 'x' || l[1] == 'X')
	if hex {
		l = l[2:]
	}
	for i := 0; i < len(l); i++ {
		c := l[i]
		if !(c >= '0' && c <= '9' || hex && (c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F')) {
			return false
		}
	}
	return hex || l != ""
}
