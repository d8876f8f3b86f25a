package formtap

import (
	"bufio"
	"bytes"
	"io"
	"mime"
	"mime/quotedprintable"
	"net/textproto"
	"strings"
	"sync"
)

const (
	// maxBoundary is the longest boundary accepted. RFC 2046 allows 70 characters; Go's reader
	// accepts more but fails on boundary lines longer than its 4 KiB line buffer.
	maxBoundary = 1000
	// maxLine bounds a boundary line (boundary, transport padding, line end), as Go's 4 KiB
	// bufio line buffer does.
	maxLine = 4096
	// maxHeader bounds the header block of one part. Larger blocks make the tap incomplete.
	maxHeader = 16 << 10
	// maxParts mirrors mime/multipart's ReadForm default: a form with more parts fails there.
	maxParts = 1000
	// workSize is the lookahead buffer: enough for any state's needs.
	workSize = maxHeader + maxLine + 2*maxBoundary
)

// Multipart scanner states.
const (
	mpPreamble = iota // before the first boundary line; lineStart says where we are
	mpLine            // data starts with "--boundary" at a line start
	mpHeaders         // at the start of a part's header block
	mpBody            // inside a part's body
	mpDone            // final boundary seen: complete
	mpFailed          // malformed or beyond limits: incomplete
)

var workPool = sync.Pool{New: func() any { b := make([]byte, workSize); return &b }}

// multipartScanner scans a multipart/form-data body incrementally, following the rules of
// mime/multipart.Reader (NextPart) and Reader.ReadForm: preamble lines are skipped, a boundary
// line may carry transport padding, lines may end in CRLF or, if the first boundary line does, in
// LF alone; a part body ends at "\r\n--boundary" (or "\n--boundary") followed by '-', a space, a
// tab, CR or LF; quoted-printable parts are decoded; a part whose Content-Disposition has a
// filename is a file, not a value.
//
// It never holds more than one bounded lookahead window, plus the value of the current part when
// its name is wanted (bounded by maxValue).
type multipartScanner struct {
	t *Tap

	dashBoundary []byte // "--boundary"
	nlDash       []byte // "\r\n--boundary", or "\n--boundary" in LF mode
	nl           []byte // "\r\n" or "\n"

	state     int
	lineStart bool // preamble: at the beginning of a line
	partsRead int

	// current part
	partStart bool // no body byte consumed yet (a boundary may follow without a line break)
	capture   bool
	name      string
	qp        bool
	val       []byte
	valOver   bool
	valLen    int // bytes of the current captured part's body, counted on after valOver

	scanned int // bytes of an undecided header block or line already searched (no rescans on slow drips)

	work *[]byte // pooled lookahead buffer of workSize bytes, taken when bytes must wait for more
	pend []byte  // unconsumed bytes carried over between writes (aliases *work)
	hdr  *bufio.Reader
}

func newMultipartScanner(t *Tap, boundary string) *multipartScanner {
	b := []byte("\r\n--" + boundary)
	return &multipartScanner{
		t:            t,
		dashBoundary: b[2:],
		nlDash:       b,
		nl:           b[:2],
		state:        mpPreamble,
		lineStart:    true,
	}
}

// Write implements Scanner.
func (s *multipartScanner) Write(p []byte) bool {
	s.run(p, false)
	return s.state >= mpDone
}

// End implements Scanner.
func (s *multipartScanner) End() bool {
	s.run(nil, true)
	return s.state == mpDone
}

// Release implements Scanner.
func (s *multipartScanner) Release() {
	if s.work != nil {
		workPool.Put(s.work)
		s.work, s.pend = nil, nil
	}
	s.val = nil
}

// run feeds p (and, with eof, the end of the body) through the state machine. Bytes that cannot
// be decided yet are kept in the lookahead buffer; once it is empty, p is scanned in place.
func (s *multipartScanner) run(p []byte, eof bool) {
	for s.state < mpDone {
		if len(s.pend) == 0 {
			if len(p) == 0 && !eof {
				return
			}
			n, ok := s.step(p, eof)
			if !ok {
				if eof || len(p) >= workSize {
					s.state = mpFailed
					return
				}
				s.stash(p)
				return
			}
			p = p[n:]
			continue
		}
		// Top the carried-over bytes up from p and scan them.
		k := copy((*s.work)[len(s.pend):], p)
		s.pend = (*s.work)[:len(s.pend)+k]
		p = p[k:]
		last := eof && len(p) == 0
		n, ok := s.step(s.pend, last)
		if !ok {
			if last || len(s.pend) == workSize {
				s.state = mpFailed
				return
			}
			return // p is empty: wait for more
		}
		rest := copy(*s.work, s.pend[n:])
		s.pend = (*s.work)[:rest]
	}
}

// stash keeps p, which is shorter than the lookahead buffer, for the next write.
func (s *multipartScanner) stash(p []byte) {
	if s.work == nil {
		s.work = workPool.Get().(*[]byte)
	}
	s.pend = (*s.work)[:copy(*s.work, p)]
}

// step consumes a prefix of data in the current state. ok=false means more data is needed to
// decide (n is then 0); with ok=true, n may be 0 when only the state changed.
func (s *multipartScanner) step(data []byte, eof bool) (n int, ok bool) {
	switch s.state {
	case mpPreamble:
		return s.stepPreamble(data, eof)
	case mpLine:
		return s.stepLine(data, eof)
	case mpHeaders:
		return s.stepHeaders(data, eof)
	case mpBody:
		return s.stepBody(data, eof)
	}
	return 0, true
}

func (s *multipartScanner) stepPreamble(data []byte, eof bool) (int, bool) {
	if s.lineStart {
		if bytes.HasPrefix(data, s.dashBoundary) {
			s.state = mpLine
			return 0, true
		}
		if !eof && bytes.HasPrefix(s.dashBoundary, data) {
			return 0, false
		}
	}
	if eof {
		s.state = mpFailed // no boundary at all: Go's reader fails with an EOF error
		return len(data), true
	}
	i := bytes.IndexByte(data, '\n')
	if i < 0 {
		s.lineStart = false
		return len(data), true
	}
	s.lineStart = true
	return i + 1, true
}

// stepLine handles a line that starts with "--boundary", as mime/multipart's nextPart does.
func (s *multipartScanner) stepLine(data []byte, eof bool) (int, bool) {
	i := bytes.IndexByte(data[min(s.scanned, len(data)):], '\n')
	if i >= 0 {
		i += min(s.scanned, len(data))
	}
	s.scanned = 0
	var line []byte
	switch {
	case i >= 0:
		line = data[:i+1]
	case eof:
		// The body ends without a line break: only a final boundary is acceptable.
		if s.isFinalBoundary(data) {
			s.state = mpDone
		} else {
			s.state = mpFailed
		}
		return len(data), true
	case len(data) >= maxLine:
		s.state = mpFailed
		return len(data), true
	default:
		s.scanned = len(data)
		return 0, false
	}
	if len(line) > maxLine {
		s.state = mpFailed
		return len(line), true
	}
	switch {
	case s.isBoundaryDelimiterLine(line):
		s.partsRead++
		if s.partsRead > maxParts {
			s.state = mpFailed
			return len(line), true
		}
		s.state = mpHeaders
	case s.isFinalBoundary(line):
		s.state = mpDone
	case s.partsRead == 0:
		s.state, s.lineStart = mpPreamble, true // a preamble line that merely looks alike
	default:
		s.state = mpFailed
	}
	return len(line), true
}

func (s *multipartScanner) isBoundaryDelimiterLine(line []byte) bool {
	if !bytes.HasPrefix(line, s.dashBoundary) {
		return false
	}
	rest := skipLWSP(line[len(s.dashBoundary):])
	if s.partsRead == 0 && len(rest) == 1 && rest[0] == '\n' {
		// The first boundary line ends in LF alone: switch to LF mode, as Go does.
		s.nl = s.nl[1:]
		s.nlDash = s.nlDash[1:]
	}
	return bytes.Equal(rest, s.nl)
}

func (s *multipartScanner) isFinalBoundary(line []byte) bool {
	if !bytes.HasPrefix(line, s.dashBoundary) {
		return false
	}
	rest, ok := bytes.CutPrefix(line[len(s.dashBoundary):], []byte("--"))
	if !ok {
		return false
	}
	rest = skipLWSP(rest)
	return len(rest) == 0 || bytes.Equal(rest, s.nl)
}

func skipLWSP(b []byte) []byte {
	for len(b) > 0 && (b[0] == ' ' || b[0] == '\t') {
		b = b[1:]
	}
	return b
}

// stepHeaders waits for the whole header block of a part and parses it with net/textproto.
func (s *multipartScanner) stepHeaders(data []byte, eof bool) (int, bool) {
	end := headerEnd(data, max(0, min(s.scanned, len(data))-2))
	s.scanned = 0
	if end < 0 {
		switch {
		case eof && len(data) < maxHeader:
			// Go's reader treats a body that ends inside a header block as the end of the form
			// when textproto reports a clean io.EOF there (the unfinished part is dropped).
			if _, _, err := s.parseHeader(data); err == io.EOF {
				s.state = mpDone
			} else {
				s.state = mpFailed
			}
			return len(data), true
		case eof || len(data) >= maxHeader:
			s.state = mpFailed
			return len(data), true
		}
		s.scanned = len(data)
		return 0, false
	}
	if end > maxHeader {
		s.state = mpFailed
		return end, true
	}
	h, consumed, err := s.parseHeader(data[:end])
	if err != nil || consumed != end {
		// Malformed, or textproto saw the end of the block elsewhere than we did.
		s.state = mpFailed
		return end, true
	}

	s.capture, s.name, s.qp, s.valOver, s.valLen = false, "", false, false, 0
	s.val = s.val[:0]
	disposition, params, err := mime.ParseMediaType(h.Get("Content-Disposition"))
	if err == nil && disposition == "form-data" && params["filename"] == "" {
		if name := params["name"]; s.t.Wanted(name) {
			s.capture, s.name = true, name
			s.qp = strings.EqualFold(h.Get("Content-Transfer-Encoding"), "quoted-printable")
		}
	}
	s.state, s.partStart = mpBody, true
	return end, true
}

// parseHeader parses a header block with net/textproto, as mime/multipart does, and reports how
// many bytes textproto consumed.
func (s *multipartScanner) parseHeader(block []byte) (textproto.MIMEHeader, int, error) {
	br := bytes.NewReader(block)
	if s.hdr == nil {
		s.hdr = bufio.NewReaderSize(br, 512)
	} else {
		s.hdr.Reset(br)
	}
	h, err := textproto.NewReader(s.hdr).ReadMIMEHeader()
	consumed := len(block) - br.Len() - s.hdr.Buffered()
	s.hdr.Reset(nil)
	return h, consumed, err
}

// headerEnd returns the length of the header block at the start of data, through its empty
// line, or -1 if the empty line is not in data yet. The search for line ends starts at from
// (a previous search covered data[:from+2] without success).
func headerEnd(data []byte, from int) int {
	if from == 0 {
		switch {
		case bytes.HasPrefix(data, []byte("\n")):
			return 1
		case bytes.HasPrefix(data, []byte("\r\n")):
			return 2
		}
	}
	for off := from; ; {
		i := bytes.IndexByte(data[off:], '\n')
		if i < 0 {
			return -1
		}
		j := off + i + 1
		switch {
		case j < len(data) && data[j] == '\n':
			return j + 1
		case j+1 < len(data) && data[j] == '\r' && data[j+1] == '\n':
			return j + 2
		case j+1 >= len(data) && (j == len(data) || data[j] == '\r'):
			return -1 // the next line's start is not in data yet
		}
		off = j
	}
}

// stepBody scans a part body for its delimiter, as mime/multipart's scanUntilBoundary does.
func (s *multipartScanner) stepBody(data []byte, eof bool) (int, bool) {
	if s.partStart {
		// At the beginning of a part body the boundary may follow without a line break.
		if bytes.HasPrefix(data, s.dashBoundary) {
			switch matchAfterPrefix(data, s.dashBoundary, eof) {
			case -1:
				s.content(data[:len(s.dashBoundary)])
				return len(s.dashBoundary), true
			case 0:
				return 0, false
			case +1:
				s.endPart()
				return 0, true
			}
		}
		if bytes.HasPrefix(s.dashBoundary, data) {
			if eof {
				s.state = mpFailed
				return len(data), true
			}
			return 0, false
		}
	}
	if i := bytes.Index(data, s.nlDash); i >= 0 {
		switch matchAfterPrefix(data[i:], s.nlDash, eof) {
		case -1:
			s.content(data[:i+len(s.nlDash)])
			return i + len(s.nlDash), true
		case 0:
			if i == 0 {
				return 0, false
			}
			s.content(data[:i])
			return i, true
		case +1:
			s.content(data[:i])
			s.endPart()
			return i + len(s.nl), true
		}
	}
	if eof {
		s.content(data) // the body ends inside a part: Go reports an unexpected EOF
		s.state = mpFailed
		return len(data), true
	}
	if bytes.HasPrefix(s.nlDash, data) {
		return 0, false
	}
	// A partial delimiter can only start within the last len(nlDash) bytes: search only there
	// (the same answer as mime/multipart's search of the whole chunk, without scanning a file).
	from := max(0, len(data)-len(s.nlDash))
	if i := bytes.LastIndexByte(data[from:], s.nlDash[0]); i >= 0 && bytes.HasPrefix(s.nlDash, data[from+i:]) {
		i += from
		if i == 0 {
			return 0, false
		}
		s.content(data[:i])
		return i, true
	}
	s.content(data)
	return len(data), true
}

// matchAfterPrefix is mime/multipart's test of what follows a delimiter candidate: +1 it is a
// delimiter, -1 it is not, 0 more data is needed.
func matchAfterPrefix(buf, prefix []byte, eof bool) int {
	if len(buf) == len(prefix) {
		if eof {
			return +1
		}
		return 0
	}
	c := buf[len(prefix)]
	if c == ' ' || c == '\t' || c == '\r' || c == '\n' {
		return +1
	}
	if c == '-' {
		if len(buf) == len(prefix)+1 {
			if eof {
				return -1
			}
			return 0
		}
		if buf[len(prefix)+1] == '-' {
			return +1
		}
	}
	return -1
}

// content handles body bytes of the current part.
func (s *multipartScanner) content(b []byte) {
	if len(b) == 0 {
		return
	}
	s.partStart = false
	if !s.capture {
		return
	}
	s.valLen += len(b)
	if s.valOver {
		return
	}
	limit := s.t.maxValue
	if s.qp {
		limit = 3*limit + 3*(limit/25+1) // "=XX" per byte plus soft line breaks
	}
	if len(s.val)+len(b) > limit {
		s.valOver, s.val = true, s.val[:0]
		return
	}
	s.val = append(s.val, b...)
}

// endPart commits the value of the part that just ended and moves on to the next boundary line.
func (s *multipartScanner) endPart() {
	s.state = mpLine
	if !s.capture {
		return
	}
	s.capture = false
	if s.valOver {
		s.t.MarkTruncated(s.name, s.valLen)
		return
	}
	v := s.val
	if s.qp {
		d, err := io.ReadAll(quotedprintable.NewReader(bytes.NewReader(v)))
		if err != nil {
			// Go's part reader returns this error, which fails the whole form.
			s.state = mpFailed
			return
		}
		v = d
	}
	s.t.Add(s.name, string(v))
	s.val = s.val[:0]
}
