package queue

import (
	"math"
	"time"
)

// paceBook is what the run loop learns, over a Shared store, of how far ahead of its workers to
// lease each destination's jobs: how long a leasing round takes, and per destination how long an
// attempt takes and how large its payloads are. Only the run goroutine touches it.
//
// A destination's jobs ahead must last until the next round brings more: PerHost attempts at
// once, each taking attempt, use up PerHost×round/attempt jobs per round, and rounds vary (a slow
// one takes several times the mean). A destination whose attempts are fast next to a round (a
// receiver on the same network, a busy database) thus gets up to sharedAhead×PerHost jobs
// leased; a slow one stays at plainAhead×PerHost, and leaves the rest of its backlog in the
// shared queue for the other processes of the fleet, whose per-host limits add up.
type paceBook struct {
	round time.Duration // leasing rounds' duration, a moving average; 0 until one ended
	dests map[string]*pace
}

// pace is what paceBook knows of one destination.
type pace struct {
	// attempt is its attempts' duration, a moving average; 0 until one ended.
	attempt time.Duration
	// size is the payload size its next jobs are taken to have: the largest of the jobs the
	// last round that leased some of them leased, or half the size before, if more; 0 until a
	// round leased some.
	size int64
}

// reach is how far ahead a round may lease one destination's jobs.
type reach struct {
	// jobs is the most of its jobs that may be running or ahead.
	jobs int
	// size is what each of its jobs beyond plainAhead×PerHost takes from AheadBytes.
	size int64
}

// maxPaced is how many destinations a paceBook remembers; it forgets them all when more come,
// and their next rounds lease no further ahead than over a store of one process.
const maxPaced = 1024

// roundsAhead is how many mean rounds' worth of attempts a destination's jobs ahead are to last.
const roundsAhead = 3

// ewma moves avg a eighth of the way to v (to v itself when avg is 0).
func ewma(avg, v time.Duration) time.Duration {
	if avg == 0 {
		return v
	}
	return avg + (v-avg)/8
}

func (b *paceBook) dest(dest string) *pace {
	if b.dests == nil || len(b.dests) >= maxPaced && b.dests[dest] == nil {
		b.dests = map[string]*pace{}
	}
	p := b.dests[dest]
	if p == nil {
		p = &pace{}
		b.dests[dest] = p
	}
	return p
}

// roundTook books a leasing round's duration.
func (b *paceBook) roundTook(d time.Duration) { b.round = ewma(b.round, max(d, time.Microsecond)) }

// attempted books an attempt's duration.
func (b *paceBook) attempted(dest string, d time.Duration) {
	p := b.dest(dest)
	p.attempt = ewma(p.attempt, max(d, time.Microsecond))
}

// leased books the payload sizes of the jobs a round leased.
func (b *paceBook) leased(jobs []leased) {
	largest := map[string]int64{}
	for _, j := range jobs {
		largest[j.dest] = max(largest[j.dest], j.size, 1)
	}
	for dest, n := range largest {
		p := b.dest(dest)
		p.size = max(n, p.size/2)
	}
}

// reaches returns how far ahead a round may lease each destination paceBook knows enough of,
// with perHost attempts at once per destination. A destination left out gets
// plainAhead×perHost.
func (b *paceBook) reaches(perHost int) map[string]reach {
	if b.round == 0 {
		return nil
	}
	out := make(map[string]reach, len(b.dests))
	for dest, p := range b.dests {
		if p.attempt == 0 || p.size == 0 {
			continue
		}
		// Jobs ahead (beyond the running ones) to last roundsAhead rounds.
		need := math.Ceil(roundsAhead * float64(perHost) * float64(b.round) / float64(p.attempt))
		jobs := perHost + int(min(need, float64((sharedAhead-1)*perHost)))
		if jobs > plainAhead*perHost {
			out[dest] = reach{jobs: jobs, size: p.size}
		}
	}
	return out
}
