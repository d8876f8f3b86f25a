package httpsend

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/faxhook/caddy-faxhook/queue"
)

// boundaryLen is the length of the multipart boundary: hex digits of a SHA-256.
const boundaryLen = 30

// Encode returns the multipart/form-data body of job and its Content-Type header value.
//
// The non-file fields come first, in job.Fields order, then the file parts in job.Files order, each
// with a Content-Disposition naming the part and its file and a Content-Type (DefaultContentType
// when File.ContentType is empty). A file without a Filename is called after its part name, because
// receivers such as Rack ignore file parts without one; the application names its files.
//
// The output is a pure function of the job: the boundary is the first 30 hex digits of
// SHA-256(job.ID), so every attempt sends the same bytes. Should that boundary occur anywhere in the
// content, SHA-256(job.ID + "\x00" + n) for n = 1, 2, … is tried instead, still deterministically.
//
// Names and filenames are quoted as mime/multipart quotes them (backslash before '"' and '\';
// filenames also get CR and LF as %0D and %0A). Part names are signed, so an empty part name, or
// one holding CR, LF or NUL, is an error rather than silently altered.
func Encode(job *queue.Job) (body []byte, contentType string, err error) {
	if job == nil {
		return nil, "", errors.New("encoding webhook body: nil job")
	}
	size := 8 + boundaryLen
	for i, f := range job.Fields {
		if err := checkName(f.Name); err != nil {
			return nil, "", fmt.Errorf("encoding webhook body: field %d: %w", i, err)
		}
		size += 64 + boundaryLen + len(f.Name) + len(f.Value)
	}
	for i, f := range job.Files {
		if err := checkName(f.Name); err != nil {
			return nil, "", fmt.Errorf("encoding webhook body: file %d: %w", i, err)
		}
		if strings.ContainsAny(f.ContentType, "\r\n\x00") {
			return nil, "", fmt.Errorf("encoding webhook body: file %q: content type contains a line break or NUL", f.Name)
		}
		size += 128 + boundaryLen + len(f.Name) + len(f.Filename) + len(f.ContentType) + len(f.Data)
	}
	boundary, err := chooseBoundary(job)
	if err != nil {
		return nil, "", fmt.Errorf("encoding webhook body: %w", err)
	}

	b := make([]byte, 0, size)
	for i, f := range job.Fields {
		b = appendDelimiter(b, boundary, i == 0)
		b = append(b, `Content-Disposition: form-data; name="`...)
		b = appendQuoted(b, f.Name)
		b = append(b, "\"\r\n\r\n"...)
		b = append(b, f.Value...)
	}
	for i, f := range job.Files {
		b = appendDelimiter(b, boundary, i == 0 && len(job.Fields) == 0)
		b = append(b, `Content-Disposition: form-data; name="`...)
		b = appendQuoted(b, f.Name)
		b = append(b, `"; filename="`...)
		b = appendQuoted(b, filename(f))
		b = append(b, "\"\r\nContent-Type: "...)
		ct := f.ContentType
		if ct == "" {
			ct = DefaultContentType
		}
		b = append(b, ct...)
		b = append(b, "\r\n\r\n"...)
		b = append(b, f.Data...)
	}
	if len(job.Fields)+len(job.Files) > 0 {
		b = append(b, "\r\n"...)
	}
	b = append(b, "--"...)
	b = append(b, boundary...)
	b = append(b, "--\r\n"...)
	return b, "multipart/form-data; boundary=" + boundary, nil
}

// appendDelimiter starts a part: "--boundary" on its own line, preceded by CRLF unless first.
func appendDelimiter(b []byte, boundary string, first bool) []byte {
	if !first {
		b = append(b, "\r\n"...)
	}
	b = append(b, "--"...)
	b = append(b, boundary...)
	return append(b, "\r\n"...)
}

// appendQuoted appends s escaped for a quoted Content-Disposition parameter, as mime/multipart does.
func appendQuoted(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case '\\', '"':
			b = append(b, '\\', c)
		case '\r':
			b = append(b, "%0D"...)
		case '\n':
			b = append(b, "%0A"...)
		default:
			b = append(b, c)
		}
	}
	return b
}

// checkName rejects part names that cannot be sent unaltered.
func checkName(name string) error {
	if name == "" {
		return errors.New("empty part name")
	}
	if strings.ContainsAny(name, "\r\n\x00") {
		return fmt.Errorf("part name %q contains a line break or NUL", name)
	}
	return nil
}

// filename is the filename a file part is sent with.
func filename(f queue.File) string {
	if f.Filename != "" {
		return f.Filename
	}
	return f.Name
}

// chooseBoundary derives the job's boundary from its ID, moving to the next candidate in the rare
// case that the content contains it.
func chooseBoundary(job *queue.Job) (string, error) {
	for n := 0; n < 16; n++ {
		seed := job.ID
		if n > 0 {
			seed = job.ID + "\x00" + strconv.Itoa(n)
		}
		sum := sha256.Sum256([]byte(seed))
		var buf [2 * sha256.Size]byte
		hex.Encode(buf[:], sum[:])
		if !contentContains(job, buf[:boundaryLen]) {
			return string(buf[:boundaryLen]), nil
		}
	}
	return "", errors.New("no multipart boundary absent from the content")
}

// contentContains reports whether s occurs anywhere in the job's encoded content.
func contentContains(job *queue.Job, b []byte) bool {
	s := string(b)
	for _, f := range job.Fields {
		if strings.Contains(f.Name, s) || strings.Contains(f.Value, s) {
			return true
		}
	}
	for _, f := range job.Files {
		if strings.Contains(f.Name, s) || strings.Contains(f.Filename, s) ||
			strings.Contains(f.ContentType, s) || bytes.Contains(f.Data, b) {
			return true
		}
	}
	return false
}
