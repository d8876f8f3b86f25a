package ssrf

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"
)

func TestCheckDefault(t *testing.T) {
	g := New(nil)
	for _, tc := range []struct {
		ip     string
		reason string // "" = allowed
	}{
		// IPv4 special-purpose ranges.
		{"0.0.0.0", "unspecified"},
		{"0.1.2.3", `"this network"`},
		{"127.0.0.1", "loopback"},
		{"127.255.255.254", "loopback"},
		{"10.0.0.1", "private"},
		{"10.255.255.255", "private"},
		{"172.16.0.1", "private"},
		{"172.31.255.255", "private"},
		{"192.168.1.1", "private"},
		{"169.254.169.254", "cloud metadata"},
		{"169.254.170.2", "cloud metadata"},
		{"169.254.1.1", "link-local"},
		{"100.64.0.1", "shared address space"},
		{"100.127.255.255", "shared address space"},
		{"100.100.100.200", "cloud metadata (Alibaba"},
		{"192.0.0.1", "IETF protocol assignments"},
		{"192.0.0.192", "cloud metadata (Oracle"},
		{"192.0.2.10", "documentation"},
		{"198.51.100.10", "documentation"},
		{"203.0.113.10", "documentation"},
		{"192.88.99.1", "6to4 relay"},
		{"198.18.0.1", "benchmarking"},
		{"198.19.255.255", "benchmarking"},
		{"224.0.0.1", "multicast"},
		{"239.255.255.250", "multicast"},
		{"240.0.0.1", "reserved"},
		{"255.255.255.255", "broadcast"},

		// Public IPv4, including the neighbours of blocked ranges.
		{"8.8.8.8", ""},
		{"1.1.1.1", ""},
		{"9.255.255.255", ""},
		{"11.0.0.0", ""},
		{"172.15.255.255", ""},
		{"172.32.0.0", ""},
		{"192.167.255.255", ""},
		{"192.169.0.0", ""},
		{"100.63.255.255", ""},
		{"100.128.0.0", ""},
		{"169.253.255.255", ""},
		{"198.17.255.255", ""},
		{"198.20.0.0", ""},
		{"223.255.255.255", ""},
		{"93.184.215.14", ""},

		// IPv6 special-purpose ranges.
		{"::", "unspecified"},
		{"::1", "loopback"},
		{"::127.0.0.1", "IPv4-compatible"},
		{"::8.8.8.8", "IPv4-compatible"},
		{"::ffff:0:127.0.0.1", "IPv4-translated"},
		{"fc00::1", "unique local"},
		{"fd12:3456::1", "unique local"},
		{"fd00:ec2::254", "cloud metadata (AWS"},
		{"fe80::1", "link-local"},
		{"fe80::1%eth0", "link-local"}, // a zone must not slip past the prefix match
		{"febf::1", "link-local"},
		{"fec0::1", "site-local"},
		{"ff02::1", "multicast"},
		{"ff0e::1", "multicast"},
		{"100::1", "discard-only"},
		{"2001:db8::1", "documentation"},
		{"3fff::1", "documentation"},
		{"2001:2::1", "benchmarking"},
		{"2001:10::1", "ORCHID"},
		{"5f00::1", "SRv6"},

		// IPv4-mapped: judged as the IPv4 address.
		{"::ffff:127.0.0.1", "IPv4-mapped 127.0.0.1, loopback"},
		{"::ffff:10.1.2.3", "IPv4-mapped 10.1.2.3, private"},
		{"::ffff:169.254.169.254", "IPv4-mapped 169.254.169.254, cloud metadata"},
		{"::ffff:0.0.0.0", "IPv4-mapped 0.0.0.0, unspecified"},
		{"::ffff:8.8.8.8", ""},

		// NAT64 well-known prefix: judged as the IPv4 address; local-use prefix blocked whole.
		{"64:ff9b::127.0.0.1", "NAT64 of 127.0.0.1, loopback"},
		{"64:ff9b::a9fe:a9fe", "NAT64 of 169.254.169.254, cloud metadata"},
		{"64:ff9b::192.168.0.1", "NAT64 of 192.168.0.1, private"},
		{"64:ff9b::8.8.8.8", ""},
		{"64:ff9b:1::8.8.8.8", "local-use NAT64"},
		{"64:ff9b:1:ffff::1", "local-use NAT64"},

		// 6to4 and Teredo blocked whole, public embedded address or not.
		{"2002:7f00:1::1", "6to4 (embeds 127.0.0.1)"},
		{"2002:a9fe:a9fe::", "6to4 (embeds 169.254.169.254)"},
		{"2002:808:808::1", "6to4 (embeds 8.8.8.8)"},
		{"2001:0:4136:e378:8000:63bf:3fff:fdd2", "Teredo"},

		// Public IPv6.
		{"2606:4700:4700::1111", ""},
		{"2001:4860:4860::8888", ""},
		{"2a00:1450:4001:80b::200e", ""},
		{"2001:1::1", ""}, // inside 2001::/23 but not Teredo, benchmarking or ORCHID
		{"2003::1", ""},
		{"fbff::1", ""}, // just below fc00::/7
	} {
		ip := netip.MustParseAddr(tc.ip)
		err := g.Check(ip)
		if tc.reason == "" {
			if err != nil {
				t.Errorf("Check(%s) = %v, want allowed", tc.ip, err)
			}
			continue
		}
		if err == nil {
			t.Errorf("Check(%s) = nil, want blocked as %s", tc.ip, tc.reason)
			continue
		}
		if !errors.Is(err, ErrBlocked) {
			t.Errorf("Check(%s) = %v, does not match ErrBlocked", tc.ip, err)
		}
		var be *BlockedError
		if !errors.As(err, &be) || !strings.Contains(be.Reason, tc.reason) {
			t.Errorf("Check(%s) = %v, want reason containing %q", tc.ip, err, tc.reason)
		}
	}
}

func TestCheckMessage(t *testing.T) {
	err := New(nil).Check(netip.MustParseAddr("127.0.0.1"))
	if got, want := err.Error(), "destination 127.0.0.1 is loopback; blocked (allow it with allow_private)"; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
	err = New(nil).Check(netip.MustParseAddr("fe80::1%eth0"))
	if got, want := err.Error(), "destination fe80::1 is link-local; blocked (allow it with allow_private)"; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
	if err := New(nil).Check(netip.Addr{}); !errors.Is(err, ErrBlocked) {
		t.Errorf("Check of the zero Addr = %v, want blocked", err)
	}
}

func TestCheckAllowList(t *testing.T) {
	allow, err := ParseAllow([]string{"127.0.0.0/8", "::1", "10.1.2.3", "64:ff9b:1::/48"})
	if err != nil {
		t.Fatal(err)
	}
	g := New(allow)
	for _, tc := range []struct {
		ip      string
		allowed bool
	}{
		{"127.0.0.1", true},
		{"127.1.2.3", true},
		{"::1", true},
		{"::ffff:127.0.0.1", true},    // mapped form of an allowed IPv4 address
		{"64:ff9b::127.0.0.1", true},  // NAT64 of an allowed IPv4 address
		{"64:ff9b:1::10.0.0.1", true}, // an allowed range opens even a range blocked whole
		{"10.1.2.3", true},
		{"10.1.2.4", false},
		{"::2", false}, // IPv4-compatible
		{"169.254.169.254", false},
		{"192.168.0.1", false},
		{"fd00:ec2::254", false},
		{"2002:7f00:1::1", false}, // 6to4 stays blocked even when its embedded address is allowed
		{"8.8.8.8", true},
	} {
		err := g.Check(netip.MustParseAddr(tc.ip))
		if tc.allowed && err != nil {
			t.Errorf("Check(%s) = %v, want allowed", tc.ip, err)
		}
		if !tc.allowed && err == nil {
			t.Errorf("Check(%s) = nil, want blocked", tc.ip)
		}
	}
	if got := g.Allowed(); len(got) != 4 || got[0].String() != "127.0.0.0/8" || got[1].String() != "::1/128" {
		t.Errorf("Allowed() = %v", got)
	}

	// Everything open.
	all := New([]netip.Prefix{netip.MustParsePrefix("0.0.0.0/0"), netip.MustParsePrefix("::/0")})
	for _, ip := range []string{"127.0.0.1", "169.254.169.254", "::1", "2002:7f00:1::1"} {
		if err := all.Check(netip.MustParseAddr(ip)); err != nil {
			t.Errorf("allow everything: Check(%s) = %v", ip, err)
		}
	}
}

func TestNilGuardBlocks(t *testing.T) {
	var g *Guard
	if err := g.Check(netip.MustParseAddr("127.0.0.1")); !errors.Is(err, ErrBlocked) {
		t.Errorf("nil guard: Check(127.0.0.1) = %v, want blocked", err)
	}
	if err := g.Check(netip.MustParseAddr("8.8.8.8")); err != nil {
		t.Errorf("nil guard: Check(8.8.8.8) = %v", err)
	}
	if g.Allowed() != nil {
		t.Error("nil guard has an allow list")
	}
}

func TestParseAllow(t *testing.T) {
	got, err := ParseAllow([]string{"127.0.0.0/8", " 10.1.2.3/8 ", "::1", "192.168.1.7", "fd00::/8"})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"127.0.0.0/8", "10.0.0.0/8", "::1/128", "192.168.1.7/32", "fd00::/8"}
	if len(got) != len(want) {
		t.Fatalf("ParseAllow = %v, want %v", got, want)
	}
	for i := range want {
		if got[i].String() != want[i] {
			t.Errorf("entry %d = %s, want %s", i, got[i], want[i])
		}
	}
	if got, err := ParseAllow(nil); err != nil || len(got) != 0 {
		t.Errorf("ParseAllow(nil) = %v, %v", got, err)
	}

	for _, bad := range []string{"localhost", "10.0.0.0/33", "10.0.0/8", "", "fe80::1%eth0", "fe80::/10%eth0", "1.2.3.4/x", "::1/129"} {
		_, err := ParseAllow([]string{"127.0.0.1", bad})
		if err == nil {
			t.Errorf("ParseAllow(%q) accepted it", bad)
			continue
		}
		if !strings.HasPrefix(err.Error(), "allow_private: ") || (bad != "" && !strings.Contains(err.Error(), bad)) {
			t.Errorf("ParseAllow(%q) error %q does not name the entry", bad, err)
		}
	}
}

func TestCheckHost(t *testing.T) {
	g := New(nil)
	for host, blocked := range map[string]bool{
		"127.0.0.1":      true,
		"[::1]":          true,
		"::1":            true,
		"[fe80::1%eth0]": true,
		"8.8.8.8":        false,
		"[2606:4700::1]": false,
		"localhost":      false, // names are judged at dial time
		"example.com":    false,
		"2130706433":     false, // not an IP literal for netip; the dial-time check sees what it becomes
	} {
		err := g.CheckHost(host)
		if blocked != (err != nil) {
			t.Errorf("CheckHost(%q) = %v, want blocked=%v", host, err, blocked)
		}
	}
}

func TestControl(t *testing.T) {
	g := New(nil)
	for addr, blocked := range map[string]bool{
		"127.0.0.1:80":          true,
		"[::1]:443":             true,
		"[fe80::1%eth0]:80":     true,
		"[::ffff:10.0.0.1]:80":  true,
		"8.8.8.8:53":            false,
		"[2606:4700::1111]:443": false,
		"not-an-address":        true, // fail closed
		"example.com:80":        true,
	} {
		err := g.Control("tcp", addr, nil)
		if blocked != (err != nil) {
			t.Errorf("Control(%q) = %v, want blocked=%v", addr, err, blocked)
		}
		if err != nil && !errors.Is(err, ErrBlocked) {
			t.Errorf("Control(%q) = %v, does not match ErrBlocked", addr, err)
		}
	}
}

// TestDialerBlocksResolvedName dials a name that resolves to loopback: the guard sees the resolved
// address and refuses it before connecting, and the error survives the net.OpError wrapper.
func TestDialerBlocksResolvedName(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan struct{}, 1)
	go func() {
		if c, err := ln.Accept(); err == nil {
			accepted <- struct{}{}
			c.Close()
		}
	}()
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	_, err = New(nil).Dialer().DialContext(ctx, "tcp", net.JoinHostPort("localhost", port))
	if !errors.Is(err, ErrBlocked) {
		t.Fatalf("dialing localhost:%s = %v, want blocked", port, err)
	}
	var op *net.OpError
	if !errors.As(err, &op) {
		t.Errorf("error %T is not a *net.OpError", err)
	}

	allow, _ := ParseAllow([]string{"127.0.0.1"})
	c, err := New(allow).Dialer().DialContext(ctx, "tcp", ln.Addr().String())
	if err != nil {
		t.Fatalf("dialing an allowed address: %v", err)
	}
	c.Close()
	select {
	case <-accepted:
	case <-ctx.Done():
		t.Fatal("the allowed connection never arrived")
	}
}
