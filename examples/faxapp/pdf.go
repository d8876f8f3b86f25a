package faxapp

import (
	"bytes"
	"fmt"
	"strconv"
)

// PDF returns a small, structurally valid PDF document with the given number of pages (at least
// one): a catalog, a page tree, one "/Type /Page" object with a one-line content stream per page
// and a correct cross-reference table. Tests and demos use it as upload material; the service
// counts its pages the same way it counts those of any upload.
func PDF(pages int) []byte {
	if pages < 1 {
		pages = 1
	}
	var b bytes.Buffer
	var offsets []int
	obj := func(body string) {
		offsets = append(offsets, b.Len())
		fmt.Fprintf(&b, "%d 0 obj\n%s\nendobj\n", len(offsets), body)
	}
	b.WriteString("%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
	kids := make([]string, pages)
	for i := range kids {
		kids[i] = strconv.Itoa(4+2*i) + " 0 R"
	}
	obj("<< /Type /Catalog /Pages 2 0 R >>")
	obj(fmt.Sprintf("<< /Type /Pages /Kids [%s] /Count %d >>", joinSpace(kids), pages))
	obj("<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>")
	for i := range pages {
		obj(fmt.Sprintf("<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] "+
			"/Resources << /Font << /F1 3 0 R >> >> /Contents %d 0 R >>", 5+2*i))
		stream := fmt.Sprintf("BT /F1 24 Tf 72 720 Td (faxapp page %d of %d) Tj ET", i+1, pages)
		obj(fmt.Sprintf("<< /Length %d >>\nstream\n%s\nendstream", len(stream), stream))
	}
	xref := b.Len()
	fmt.Fprintf(&b, "xref\n0 %d\n0000000000 65535 f \n", len(offsets)+1)
	for _, off := range offsets {
		fmt.Fprintf(&b, "%010d 00000 n \n", off)
	}
	fmt.Fprintf(&b, "trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n", len(offsets)+1, xref)
	return b.Bytes()
}

func joinSpace(s []string) string {
	var b bytes.Buffer
	for i, x := range s {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(x)
	}
	return b.String()
}

// pageCounter is an io.Writer that counts PDF page objects in a stream of any length while holding
// only a few bytes of it: occurrences of "/Type /Page" or "/Type/Page" not followed by "s" (which
// would make it the page tree, "/Type /Pages").
type pageCounter struct {
	buf []byte
	n   int
}

var typeToken = []byte("/Type")

// longest match plus the byte after it: "/Type /Page" + 1.
const pageLookahead = len("/Type /Page") + 1

func (c *pageCounter) Write(p []byte) (int, error) {
	c.buf = append(c.buf, p...)
	c.scan(false)
	return len(p), nil
}

// Count finishes the stream and returns the number of page objects seen.
func (c *pageCounter) Count() int {
	c.scan(true)
	c.buf = c.buf[:0]
	return c.n
}

// scan counts every match that can be decided from the buffered bytes and keeps only the bytes
// that may still start one. With final set, the end of the buffer is the end of the stream.
func (c *pageCounter) scan(final bool) {
	keep := max(0, len(c.buf)-(len(typeToken)-1))
	for i := 0; ; {
		j := bytes.Index(c.buf[i:], typeToken)
		if j < 0 {
			break
		}
		pos := i + j
		if !final && pos+pageLookahead > len(c.buf) {
			keep = pos
			break
		}
		rest := c.buf[pos+len(typeToken):]
		end := -1
		switch {
		case bytes.HasPrefix(rest, []byte(" /Page")):
			end = pos + len("/Type /Page")
		case bytes.HasPrefix(rest, []byte("/Page")):
			end = pos + len("/Type/Page")
		}
		if end >= 0 && (end >= len(c.buf) || c.buf[end] != 's') {
			c.n++
		}
		i = pos + 1
	}
	if final {
		return
	}
	c.buf = append(c.buf[:0], c.buf[keep:]...)
}
