// Package ssrf keeps webhook deliveries away from addresses an outsider should not be able to reach
// through faxhook: loopback, private and link-local networks, cloud metadata endpoints and the other
// special-purpose ranges. A webhook URL comes from whoever sends a fax (callback_url), so without a
// guard anyone who can send a fax can make Caddy POST to 127.0.0.1:2019 (Caddy's admin API) or to
// 169.254.169.254 (instance credentials).
//
// The check happens at dial time on the address actually dialled (Guard.Control as a
// net.Dialer's Control), after name resolution, so a DNS name that resolves to 127.0.0.1, or one
// that changes its answer between a check and the connection (DNS rebinding), is caught too.
//
// # What is blocked
//
// Every address in these ranges is blocked unless an allow list entry covers it:
//
//	IPv4
//	  0.0.0.0/8        "this network", including the unspecified 0.0.0.0
//	  10.0.0.0/8       private
//	  100.64.0.0/10    shared address space (carrier-grade NAT), incl. 100.100.100.200 (Alibaba metadata)
//	  127.0.0.0/8      loopback
//	  169.254.0.0/16   link-local, incl. 169.254.169.254 (AWS, GCP, Azure, … metadata) and 169.254.170.2 (ECS)
//	  172.16.0.0/12    private
//	  192.0.0.0/24     IETF protocol assignments, incl. 192.0.0.192 (Oracle Cloud metadata)
//	  192.0.2.0/24, 198.51.100.0/24, 203.0.113.0/24  documentation
//	  192.88.99.0/24   6to4 relay anycast (deprecated)
//	  192.168.0.0/16   private
//	  198.18.0.0/15    benchmarking
//	  224.0.0.0/4      multicast
//	  240.0.0.0/4      reserved, incl. the broadcast address 255.255.255.255
//	IPv6
//	  ::/128, ::1/128  unspecified, loopback
//	  ::/96            IPv4-compatible (deprecated)
//	  ::ffff:0:0/96    IPv4-mapped: judged as the IPv4 address it carries
//	  ::ffff:0:0:0/96  IPv4-translated (SIIT)
//	  64:ff9b::/96     NAT64 well-known prefix: judged as the IPv4 address it carries
//	  64:ff9b:1::/48   NAT64 local-use prefix: blocked whole (where the IPv4 address sits is site-specific)
//	  100::/64         discard-only
//	  2001::/32        Teredo: blocked whole
//	  2001:2::/48      benchmarking
//	  2001:10::/28     ORCHID (deprecated)
//	  2001:db8::/32, 3fff::/20  documentation
//	  2002::/16        6to4: blocked whole
//	  5f00::/16        SRv6 segment identifiers
//	  fc00::/7         unique local (private), incl. fd00:ec2::254 (AWS metadata)
//	  fe80::/10        link-local
//	  fec0::/10        site-local (deprecated)
//	  ff00::/8         multicast
//
// 6to4 and Teredo are blocked whole rather than judged by the IPv4 address they embed: both are
// deprecated transition mechanisms that webhook receivers do not use, and a relay turns them into
// traffic whose real destination the guard cannot see. An IPv4-mapped address and an address under
// the NAT64 well-known prefix reach exactly the IPv4 address they carry, so they are allowed or
// blocked as that address is (64:ff9b::8.8.8.8 is allowed, 64:ff9b::10.0.0.1 is not), which keeps
// IPv6-only networks with DNS64 working.
//
// # Allow list
//
// An allow list (the allow_private option) opens ranges: an address inside any allowed prefix passes,
// whatever range it belongs to. IPv4-mapped and NAT64 addresses are also allowed when the IPv4
// address they carry is. An entry that covers a cloud metadata address opens it too, so keep entries
// as narrow as the receivers need (127.0.0.1/32 for tests rather than 0.0.0.0/0).
package ssrf

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"syscall"
	"time"
)

// ErrBlocked is matched, through errors.Is, by every error that reports a destination the guard
// refused. Senders use it to tell a blocked URL (permanent) from a network failure (retried).
var ErrBlocked = errors.New("destination address blocked")

// BlockedError reports a destination the guard refused. It matches ErrBlocked.
type BlockedError struct {
	// Addr is the destination address; it is the zero Addr when the destination could not be read
	// as an IP address at all.
	Addr netip.Addr
	// Reason says what kind of address it is ("loopback", "NAT64 of 10.0.0.1, private", …) or,
	// when Addr is zero, why it could not be checked.
	Reason string
}

// Error returns e.g. "destination 127.0.0.1 is loopback; blocked (allow it with allow_private)".
func (e *BlockedError) Error() string {
	if !e.Addr.IsValid() {
		return "destination blocked: " + e.Reason
	}
	return fmt.Sprintf("destination %s is %s; blocked (allow it with allow_private)", e.Addr, e.Reason)
}

// Is reports whether target is ErrBlocked.
func (e *BlockedError) Is(target error) bool { return target == ErrBlocked }

// Guard decides which destination addresses may be dialled. It is immutable and safe for concurrent
// use. A nil *Guard behaves like New(nil): every special-purpose range is blocked.
type Guard struct {
	allow []netip.Prefix
}

// New returns a guard that blocks every special-purpose range (see the package documentation)
// except the addresses inside allow. A nil or empty allow blocks them all.
func New(allow []netip.Prefix) *Guard {
	g := &Guard{}
	for _, p := range allow {
		if p.IsValid() {
			g.allow = append(g.allow, p.Masked())
		}
	}
	return g
}

// Allowed returns a copy of the guard's allow list.
func (g *Guard) Allowed() []netip.Prefix {
	if g == nil {
		return nil
	}
	return append([]netip.Prefix(nil), g.allow...)
}

// ParseAllow reads allow list entries: CIDR ranges ("127.0.0.0/8", "fd00::/8") or bare addresses
// ("::1", "10.1.2.3"), which allow that one address. Host bits of a range are dropped
// ("10.1.2.3/8" is 10.0.0.0/8). The error names the first bad entry.
func ParseAllow(cidrs []string) ([]netip.Prefix, error) {
	out := make([]netip.Prefix, 0, len(cidrs))
	for _, s := range cidrs {
		e := strings.TrimSpace(s)
		if e == "" {
			return nil, errors.New("allow_private: empty entry")
		}
		if strings.Contains(e, "/") {
			p, err := netip.ParsePrefix(e)
			if err != nil {
				return nil, fmt.Errorf("allow_private: %q is not a CIDR range or IP address: %w", s, err)
			}
			out = append(out, p.Masked())
			continue
		}
		a, err := netip.ParseAddr(e)
		if err != nil {
			return nil, fmt.Errorf("allow_private: %q is not a CIDR range or IP address: %w", s, err)
		}
		if a.Zone() != "" {
			return nil, fmt.Errorf("allow_private: %q: an IPv6 zone cannot be allowed, give the address without %%%s", s, a.Zone())
		}
		out = append(out, netip.PrefixFrom(a, a.BitLen()))
	}
	return out, nil
}

// Check returns nil if ip may be dialled, else a *BlockedError saying what kind of address it is.
// An IPv6 zone is ignored.
func (g *Guard) Check(ip netip.Addr) error {
	if !ip.IsValid() {
		return &BlockedError{Reason: "no valid IP address to check"}
	}
	ip = ip.WithZone("")
	if reason := g.classify(ip); reason != "" {
		return &BlockedError{Addr: ip, Reason: reason}
	}
	return nil
}

// CheckHost checks a URL's host when it is a literal IP address ("127.0.0.1", "[::1]",
// "[fe80::1%eth0]"), so that such a URL can be refused before any network I/O. A host name is not
// resolved here and always passes; the dial-time check (Control) judges the addresses it resolves to.
func (g *Guard) CheckHost(host string) error {
	h := strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
	ip, err := netip.ParseAddr(h)
	if err != nil {
		return nil
	}
	return g.Check(ip)
}

// Control is a net.Dialer Control function: it checks the resolved address about to be dialled
// ("ip:port") and refuses the connection with a *BlockedError if it is blocked. An address that is
// not an IP and port is refused too.
func (g *Guard) Control(network, address string, _ syscall.RawConn) error {
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return &BlockedError{Reason: fmt.Sprintf("cannot check %s address %q: %v", network, address, err)}
	}
	return g.Check(ap.Addr())
}

// Dialer returns a net.Dialer that only connects to addresses the guard allows, with a 30s connect
// timeout and 30s keep-alive (those of http.DefaultTransport). Senders that dial themselves (SMTP)
// use it; name resolution is not affected, so a resolver on 127.0.0.53 keeps working.
func (g *Guard) Dialer() *net.Dialer {
	return &net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second, Control: g.Control}
}

// allowed reports whether ip (zone already removed) is inside an allow list entry.
func (g *Guard) allowed(ip netip.Addr) bool {
	if g == nil {
		return false
	}
	for _, p := range g.allow {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

// classify returns why ip (zone already removed) is blocked, or "" if it may be dialled.
func (g *Guard) classify(ip netip.Addr) string {
	if g.allowed(ip) {
		return ""
	}
	if ip.Is4() {
		return lookup(v4Ranges, ip)
	}
	if ip.Is4In6() {
		v4 := ip.Unmap()
		if r := g.classify(v4); r != "" {
			return "IPv4-mapped " + v4.String() + ", " + r
		}
		return ""
	}
	if nat64.Contains(ip) {
		b := ip.As16()
		v4 := netip.AddrFrom4([4]byte{b[12], b[13], b[14], b[15]})
		if r := g.classify(v4); r != "" {
			return "NAT64 of " + v4.String() + ", " + r
		}
		return ""
	}
	if sixToFour.Contains(ip) {
		b := ip.As16()
		return "6to4 (embeds " + netip.AddrFrom4([4]byte{b[2], b[3], b[4], b[5]}).String() + ")"
	}
	return lookup(v6Ranges, ip)
}

// lookup returns the reason of the first range containing ip, or "".
func lookup(ranges []blockedRange, ip netip.Addr) string {
	for _, r := range ranges {
		if r.prefix.Contains(ip) {
			return r.reason
		}
	}
	return ""
}

// blockedRange is one special-purpose range and the words that describe it in errors.
type blockedRange struct {
	prefix netip.Prefix
	reason string
}

var (
	nat64     = netip.MustParsePrefix("64:ff9b::/96")
	sixToFour = netip.MustParsePrefix("2002::/16")
)

func block(cidr, reason string) blockedRange {
	return blockedRange{netip.MustParsePrefix(cidr), reason}
}

// v4Ranges are the blocked IPv4 ranges, the more specific before the ranges that contain them.
var v4Ranges = []blockedRange{
	block("0.0.0.0/32", "unspecified"),
	block("0.0.0.0/8", `"this network" (0.0.0.0/8)`),
	block("127.0.0.0/8", "loopback"),
	block("10.0.0.0/8", "private"),
	block("172.16.0.0/12", "private"),
	block("192.168.0.0/16", "private"),
	block("169.254.169.254/32", "cloud metadata (link-local)"),
	block("169.254.170.2/32", "cloud metadata (ECS, link-local)"),
	block("169.254.0.0/16", "link-local"),
	block("100.100.100.200/32", "cloud metadata (Alibaba, shared address space)"),
	block("100.64.0.0/10", "shared address space (carrier-grade NAT)"),
	block("192.0.0.192/32", "cloud metadata (Oracle, IETF protocol assignments)"),
	block("192.0.0.0/24", "IETF protocol assignments"),
	block("192.0.2.0/24", "documentation"),
	block("198.51.100.0/24", "documentation"),
	block("203.0.113.0/24", "documentation"),
	block("192.88.99.0/24", "6to4 relay anycast"),
	block("198.18.0.0/15", "benchmarking"),
	block("224.0.0.0/4", "multicast"),
	block("255.255.255.255/32", "broadcast"),
	block("240.0.0.0/4", "reserved"),
}

// v6Ranges are the blocked IPv6 ranges besides IPv4-mapped, NAT64 and 6to4, which classify handles.
var v6Ranges = []blockedRange{
	block("::/128", "unspecified"),
	block("::1/128", "loopback"),
	block("::/96", "IPv4-compatible (deprecated)"),
	block("::ffff:0:0:0/96", "IPv4-translated"),
	block("64:ff9b:1::/48", "local-use NAT64"),
	block("100::/64", "discard-only"),
	block("2001::/32", "Teredo"),
	block("2001:2::/48", "benchmarking"),
	block("2001:10::/28", "ORCHID (deprecated)"),
	block("2001:db8::/32", "documentation"),
	block("3fff::/20", "documentation"),
	block("5f00::/16", "SRv6 segment identifiers"),
	block("fd00:ec2::254/128", "cloud metadata (AWS, unique local)"),
	block("fc00::/7", "unique local (private)"),
	block("fe80::/10", "link-local"),
	block("fec0::/10", "site-local (deprecated)"),
	block("ff00::/8", "multicast"),
}
