package capture

import (
	"bytes"
	"compress/flate"
	"compress/gzip"
	"compress/zlib"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
	"sync"

	"github.com/klauspost/compress/zstd"
)

// ErrTooLarge is returned (wrapped) by Decode when the decoded body would exceed the limit, as a
// compression bomb would.
var ErrTooLarge = errors.New("decoded body exceeds limit")

// ErrUnsupportedEncoding is returned (wrapped) by Decode for a content coding it cannot decode.
var ErrUnsupportedEncoding = errors.New("unsupported content encoding")

// zstdMaxWindow is the largest zstd window accepted: RFC 9659 caps the window of the HTTP "zstd"
// content coding at 8 MB, which also bounds the decoder's memory.
const zstdMaxWindow = 8 << 20

// Decode decodes body according to a Content-Encoding header value: "" and "identity" (body
// returned as is), "gzip"/"x-gzip", "deflate" (zlib-wrapped as RFC 9110 says, or raw DEFLATE as
// some servers send) and "zstd". Codings are matched case-insensitively; a list such as
// "deflate, gzip" is undone in reverse order. The decoded output is capped at limit bytes: a
// larger output yields an error wrapping ErrTooLarge. An unknown coding yields an error wrapping
// ErrUnsupportedEncoding.
//
// On error the returned slice holds whatever was decoded before the error (at most limit bytes),
// which for a truncated capture is a usable prefix; it may be nil.
func Decode(encoding string, body []byte, limit int) ([]byte, error) {
	limit = min(max(limit, 0), math.MaxInt-1) // limit+1 must not overflow
	codings := strings.Split(encoding, ",")
	out := body
	applied := false
	for i := len(codings) - 1; i >= 0; i-- {
		c := strings.ToLower(strings.TrimSpace(codings[i]))
		if c == "" || c == "identity" {
			continue
		}
		if len(out) == 0 && supported(c) {
			continue // e.g. a HEAD or 204 response that still names its coding
		}
		dec, err := decodeOne(c, out, limit)
		if err != nil {
			return dec, fmt.Errorf("capture: decode %s: %w", c, err)
		}
		out, applied = dec, true
	}
	if !applied && len(out) > limit {
		return out[:limit], fmt.Errorf("capture: identity body of %d bytes: %w (limit %d)", len(out), ErrTooLarge, limit)
	}
	return out, nil
}

// decodeOne undoes a single, lower-cased content coding.
func decodeOne(coding string, body []byte, limit int) ([]byte, error) {
	switch coding {
	case "gzip", "x-gzip":
		zr, _ := gzipPool.Get().(*gzip.Reader)
		var err error
		if zr == nil {
			zr, err = gzip.NewReader(bytes.NewReader(body))
		} else {
			err = zr.Reset(bytes.NewReader(body))
		}
		if err != nil {
			return nil, err
		}
		out, err := readCapped(zr, limit, len(body))
		if err == nil {
			gzipPool.Put(zr)
		}
		return out, err
	case "deflate":
		if len(body) >= 2 && isZlibHeader(body[0], body[1]) {
			zr, err := zlib.NewReader(bytes.NewReader(body))
			if err != nil {
				return nil, err
			}
			defer zr.Close()
			return readCapped(zr, limit, len(body))
		}
		fr, _ := flatePool.Get().(io.ReadCloser)
		if fr == nil {
			fr = flate.NewReader(bytes.NewReader(body))
		} else if err := fr.(flate.Resetter).Reset(bytes.NewReader(body), nil); err != nil {
			return nil, err
		}
		out, err := readCapped(fr, limit, len(body))
		if err == nil {
			flatePool.Put(fr)
		}
		return out, err
	case "zstd":
		zd, _ := zstdPool.Get().(*zstd.Decoder)
		if zd == nil {
			var err error
			zd, err = zstd.NewReader(nil,
				zstd.WithDecoderConcurrency(1),
				zstd.WithDecoderLowmem(true),
				zstd.WithDecoderMaxWindow(zstdMaxWindow),
				zstd.WithDecodeBuffersBelow(0), // stream, so the output cap applies while decoding
			)
			if err != nil {
				return nil, err
			}
		}
		if err := zd.Reset(bytes.NewReader(body)); err != nil {
			zd.Close()
			return nil, err
		}
		out, err := readCapped(zd, limit, len(body))
		if rerr := zd.Reset(nil); rerr == nil && err == nil {
			zstdPool.Put(zd)
		} else {
			zd.Close()
		}
		return out, err
	}
	return nil, fmt.Errorf("%w %q", ErrUnsupportedEncoding, coding)
}

// isZlibHeader reports whether two bytes form a valid zlib (RFC 1950) header with the DEFLATE
// method; raw DEFLATE data is told apart by the header checksum.
func isZlibHeader(cmf, flg byte) bool {
	return cmf&0x0f == 8 && cmf>>4 <= 7 && (uint16(cmf)<<8|uint16(flg))%31 == 0
}

var (
	gzipPool  sync.Pool // *gzip.Reader
	flatePool sync.Pool // flate reader (io.ReadCloser + flate.Resetter)
	zstdPool  sync.Pool // *zstd.Decoder
)

// readCapped reads r to EOF into a new slice of at most limit bytes; a longer stream yields the
// first limit bytes and ErrTooLarge.
func readCapped(r io.Reader, limit, inputLen int) ([]byte, error) {
	// Compressed JSON typically expands 5-10x; start there and let append grow, never past limit+1.
	buf := make([]byte, 0, min(limit+1, max(512, 4*inputLen)))
	for {
		if len(buf) == cap(buf) {
			if len(buf) > limit {
				return buf[:limit], fmt.Errorf("%w (limit %d)", ErrTooLarge, limit)
			}
			nc := min(limit+1, 2*cap(buf))
			nb := make([]byte, len(buf), nc)
			copy(nb, buf)
			buf = nb
		}
		n, err := r.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if len(buf) > limit {
			return buf[:limit], fmt.Errorf("%w (limit %d)", ErrTooLarge, limit)
		}
		if err == io.EOF {
			return buf, nil
		}
		if err != nil {
			return buf, err
		}
	}
}

// supported reports whether Decode can undo a lower-cased coding.
func supported(coding string) bool {
	switch coding {
	case "gzip", "x-gzip", "deflate", "zstd", "identity":
		return true
	}
	return false
}

// DecodableEncodings filters an Accept-Encoding header value down to the codings Decode supports
// (gzip, x-gzip, deflate, zstd, identity), keeping each kept element verbatim (with its q-value
// and other parameters) and in its original order. Wildcards ("*") and all other codings are
// dropped. It returns "" if nothing remains, or if every remaining element has q=0 (forwarding
// only refusals could make the upstream answer 406); the caller then deletes the header so that
// the upstream (or Go's transport) chooses.
func DecodableEncodings(acceptEncoding string) string {
	var b strings.Builder
	acceptable := false
	for elem := range strings.SplitSeq(acceptEncoding, ",") {
		elem = strings.TrimSpace(elem)
		coding, params, _ := strings.Cut(elem, ";")
		if !supported(strings.ToLower(strings.TrimSpace(coding))) {
			continue
		}
		if b.Len() > 0 {
			b.WriteString(", ")
		}
		b.WriteString(elem)
		if qValue(params) > 0 {
			acceptable = true
		}
	}
	if !acceptable {
		return ""
	}
	return b.String()
}

// qValue returns the q parameter of an Accept-Encoding element's parameters (1 if absent or
// malformed).
func qValue(params string) float64 {
	for p := range strings.SplitSeq(params, ";") {
		k, v, ok := strings.Cut(p, "=")
		if !ok || !strings.EqualFold(strings.TrimSpace(k), "q") {
			continue
		}
		q, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
		if err != nil {
			return 1
		}
		return q
	}
	return 1
}
