package capture

import (
	"bytes"
	"compress/flate"
	"compress/gzip"
	"compress/zlib"
	"errors"
	"strings"
	"testing"

	"github.com/klauspost/compress/zstd"
)

func gz(t testing.TB, b []byte) []byte {
	var buf bytes.Buffer
	w := gzip.NewWriter(&buf)
	_, _ = w.Write(b)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func zl(t testing.TB, b []byte) []byte {
	var buf bytes.Buffer
	w := zlib.NewWriter(&buf)
	_, _ = w.Write(b)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func rawDeflate(t testing.TB, b []byte) []byte {
	var buf bytes.Buffer
	w, _ := flate.NewWriter(&buf, flate.BestCompression)
	_, _ = w.Write(b)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func zs(t testing.TB, b []byte) []byte {
	enc, err := zstd.NewWriter(nil)
	if err != nil {
		t.Fatal(err)
	}
	defer enc.Close()
	return enc.EncodeAll(b, nil)
}

func TestDecodeRoundTrips(t *testing.T) {
	plain := []byte(strings.Repeat(`{"id":323034813,"direction":"sent","status":"queued"}`, 200))
	cases := []struct {
		enc  string
		body []byte
	}{
		{"", plain},
		{"identity", plain},
		{"gzip", gz(t, plain)},
		{"x-gzip", gz(t, plain)},
		{" GZIP ", gz(t, plain)},
		{"deflate", zl(t, plain)},
		{"deflate", rawDeflate(t, plain)},
		{"zstd", zs(t, plain)},
		{"deflate, gzip", gz(t, zl(t, plain))},
		{"gzip, identity", gz(t, plain)},
	}
	for _, c := range cases {
		for range 2 { // second round uses pooled decoders
			got, err := Decode(c.enc, c.body, len(plain))
			if err != nil {
				t.Fatalf("%q: %v", c.enc, err)
			}
			if !bytes.Equal(got, plain) {
				t.Fatalf("%q: round trip differs (%d bytes)", c.enc, len(got))
			}
		}
	}
}

func TestDecodeEmptyBody(t *testing.T) {
	for _, enc := range []string{"gzip", "deflate", "zstd", ""} {
		got, err := Decode(enc, nil, 10)
		if err != nil || len(got) != 0 {
			t.Fatalf("%q: %q %v", enc, got, err)
		}
	}
}

func TestDecodeUnknown(t *testing.T) {
	for _, enc := range []string{"br", "compress", "gzip, br"} {
		_, err := Decode(enc, []byte("xx"), 100)
		if !errors.Is(err, ErrUnsupportedEncoding) {
			t.Fatalf("%q: err = %v", enc, err)
		}
	}
}

func TestDecodeBombCapped(t *testing.T) {
	const limit = 1 << 20
	zeros := make([]byte, 8<<20) // 8 MiB of zeros compresses to a few KiB
	for name, body := range map[string][]byte{
		"gzip":    gz(t, zeros),
		"deflate": zl(t, zeros),
		"zstd":    zs(t, zeros),
	} {
		if len(body) > 64<<10 {
			t.Fatalf("%s: bomb is %d bytes", name, len(body))
		}
		got, err := Decode(name, body, limit)
		if !errors.Is(err, ErrTooLarge) {
			t.Fatalf("%s: err = %v", name, err)
		}
		if len(got) != limit {
			t.Fatalf("%s: returned %d bytes", name, len(got))
		}
	}
	// Exactly at the limit is fine.
	got, err := Decode("gzip", gz(t, zeros[:limit]), limit)
	if err != nil || len(got) != limit {
		t.Fatalf("at limit: %d %v", len(got), err)
	}
	// An identity body larger than the limit is reported too.
	if _, err := Decode("", zeros[:limit+1], limit); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("identity: %v", err)
	}
}

func TestDecodeTruncatedInput(t *testing.T) {
	plain := bytes.Repeat([]byte("abcdefghijklmnopqrstuvwxyz"), 4000)
	for _, enc := range []string{"gzip", "zstd", "deflate"} {
		var full []byte
		switch enc {
		case "gzip":
			full = gz(t, plain)
		case "zstd":
			full = zs(t, plain)
		default:
			full = zl(t, plain)
		}
		got, err := Decode(enc, full[:len(full)/2], 1<<20)
		if err == nil {
			t.Fatalf("%s: truncated input decoded without error", enc)
		}
		if !bytes.HasPrefix(plain, got) {
			t.Fatalf("%s: partial output is not a prefix", enc)
		}
	}
	if _, err := Decode("gzip", []byte("not gzip at all"), 100); err == nil {
		t.Fatal("garbage decoded")
	}
	if _, err := Decode("zstd", []byte("not zstd at all"), 100); err == nil {
		t.Fatal("garbage decoded")
	}
}

func TestDecodableEncodings(t *testing.T) {
	cases := map[string]string{
		"":                                 "",
		"br":                               "",
		"*":                                "",
		"gzip, deflate, br, zstd":          "gzip, deflate, zstd",
		"br;q=1.0, gzip;q=0.8, *;q=0.1":    "gzip;q=0.8",
		"zstd;q=0.9,  identity ; q=0.5,br": "zstd;q=0.9, identity ; q=0.5",
		"GZip;Q=0.5":                       "GZip;Q=0.5",
		"x-gzip, compress":                 "x-gzip",
		"gzip;q=0":                         "",
		"br, identity;q=0":                 "",
		"gzip;q=0, zstd; q=0.001":          "gzip;q=0, zstd; q=0.001",
		"gzip;Q=0.0, identity":             "gzip;Q=0.0, identity",
		"gzip;q=bogus":                     "gzip;q=bogus",
		" , gzip ,, ":                      "gzip",
		"identity":                         "identity",
	}
	for in, want := range cases {
		if got := DecodableEncodings(in); got != want {
			t.Errorf("DecodableEncodings(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestDecodeHugeLimit(t *testing.T) {
	plain := []byte("hello, fax")
	got, err := Decode("gzip", gz(t, plain), int(^uint(0)>>1))
	if err != nil || !bytes.Equal(got, plain) {
		t.Fatalf("%q %v", got, err)
	}
}
