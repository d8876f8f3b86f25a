// Package sign computes and checks Phaxio's X-Phaxio-Signature: the lowercase hex HMAC-SHA1, keyed
// with the webhook token, of the URL, then every non-file field's name and value sorted by name,
// then every file part's name and the hex SHA-1 of its contents sorted by part name.
package sign

import (
	"crypto/hmac"
	"crypto/sha1"
	"encoding/hex"
	"hash"
	"sort"
	"sync"
)

// Header is the HTTP header that carries the signature.
const Header = "X-Phaxio-Signature"

// Field is one non-file form field.
type Field struct {
	Name, Value string
}

// File is one file part: its form part name and the hex SHA-1 of its contents.
type File struct {
	Name, SHA1Hex string
}

// FileOf returns the File entry of a part named name holding data.
func FileOf(name string, data []byte) File {
	sum := sha1.Sum(data)
	return File{Name: name, SHA1Hex: hex.EncodeToString(sum[:])}
}

// Message builds the string that is signed. The inputs are not modified.
func Message(rawURL string, fields []Field, files []File) []byte {
	var msg []byte
	eachPiece(rawURL, fields, files, func(s string) { msg = append(msg, s...) })
	return msg
}

// eachPiece hands emit the pieces of the signed message in order: the URL, every field's name
// and value sorted by name, every file part's name and hex SHA-1 sorted by part name (stable
// sorts: equal names keep their order).
func eachPiece(rawURL string, fields []Field, files []File, emit func(string)) {
	emit(rawURL)
	for _, i := range sortedBy(len(fields), func(i int) string { return fields[i].Name }) {
		emit(fields[i].Name)
		emit(fields[i].Value)
	}
	for _, i := range sortedBy(len(files), func(i int) string { return files[i].Name }) {
		emit(files[i].Name)
		emit(files[i].SHA1Hex)
	}
}

// Sign returns the X-Phaxio-Signature value for a webhook POSTed to rawURL.
func Sign(token, rawURL string, fields []Field, files []File) string {
	mac := hmac.New(sha1.New, []byte(token))
	mac.Write(Message(rawURL, fields, files))
	return hex.EncodeToString(mac.Sum(nil))
}

// Signer signs with one token, as Sign does, for a sender that signs many webhooks: it reuses
// HMAC states keyed with the token and feeds the message to the HMAC piece by piece instead of
// building it first. It is safe for concurrent use.
type Signer struct {
	pool sync.Pool // of *macState
}

// macState is a keyed HMAC with a scratch buffer for the message's pieces.
type macState struct {
	mac hash.Hash
	buf []byte
}

// NewSigner returns a Signer for token.
func NewSigner(token string) *Signer {
	key := []byte(token)
	s := &Signer{}
	s.pool.New = func() any { return &macState{mac: hmac.New(sha1.New, key)} }
	return s
}

// Sign returns what Sign(token, rawURL, fields, files) returns.
func (s *Signer) Sign(rawURL string, fields []Field, files []File) string {
	st := s.pool.Get().(*macState)
	defer s.pool.Put(st)
	st.mac.Reset()
	b := st.buf[:0]
	eachPiece(rawURL, fields, files, func(p string) {
		if len(b) >= 8<<10 {
			st.mac.Write(b)
			b = b[:0]
		}
		b = append(b, p...)
	})
	st.mac.Write(b)
	if cap(b) <= 64<<10 {
		st.buf = b[:0]
	}
	var sum [sha1.Size]byte
	return hex.EncodeToString(st.mac.Sum(sum[:0]))
}

// sortedBy returns the indexes 0…n-1 stably sorted by name(i), as Message orders the parts.
func sortedBy(n int, name func(int) string) []int {
	idx := make([]int, n)
	for i := range idx {
		idx[i] = i
	}
	sort.SliceStable(idx, func(a, b int) bool { return name(idx[a]) < name(idx[b]) })
	return idx
}

// Verify reports whether signature is the right one. It compares in constant time.
func Verify(token, signature, rawURL string, fields []Field, files []File) bool {
	want := Sign(token, rawURL, fields, files)
	return hmac.Equal([]byte(want), []byte(signature))
}
