package module

import (
	"fmt"
	"net/http"
	"time"

	"github.com/caddyserver/caddy/v2"

	"github.com/faxhook/caddy-faxhook/queue"
)

// HealthConfig configures destination health: after Failures consecutive failed attempts to a
// destination (scheme, host and port of a webhook URL) — no answer, a timeout, a 5xx or a 429 —
// the destination is down. Its webhooks then keep their retry ladders, but at most one attempt
// per ProbeInterval (a probe: the webhook due first) goes out to it; the others wait, their
// attempts not counted, and die only when their ladder's whole time is over. When a probe
// succeeds, the destination is up and its waiting and retrying webhooks are delivered at once,
// oldest first, under per_host. Each Caddy instance judges health on its own, also in a fleet.
type HealthConfig struct {
	// Off turns destination health off: every webhook follows the plain retry ladder, as at
	// Phaxio. Failures and ProbeInterval must then be left unset.
	Off bool `json:"off,omitempty"`
	// Failures is how many consecutive failed attempts make a destination down: 1 to
	// MaxHealthFailures (1000). Default 5.
	Failures int `json:"failures,omitempty"`
	// ProbeInterval is the least time between two attempts to a destination that is down, and
	// so the longest a receiver that is back waits for its backlog: 1s to 1h. Default 30s.
	ProbeInterval caddy.Duration `json:"probe_interval,omitempty"`
}

// Bounds of HealthConfig.
const (
	// MaxHealthFailures bounds HealthConfig.Failures.
	MaxHealthFailures = 1000
	// minProbeInterval and maxProbeInterval bound HealthConfig.ProbeInterval.
	minProbeInterval = time.Second
	maxProbeInterval = time.Hour
)

// Validate checks the health options; every error names the option at fault.
func (h *HealthConfig) Validate() error {
	if h == nil {
		return nil
	}
	if h.Off && (h.Failures != 0 || h.ProbeInterval != 0) {
		return fmt.Errorf("health: off leaves no room for failures or probe_interval; remove them, or remove off")
	}
	if err := CheckCount("health failures", int64(h.Failures), MaxHealthFailures, "5"); err != nil {
		return err
	}
	if d := time.Duration(h.ProbeInterval); d != 0 && (d < minProbeInterval || d > maxProbeInterval) {
		return fmt.Errorf("health probe_interval: %s is out of range; allowed: %s to %s, or 0 for the default (%s)",
			d, minProbeInterval, maxProbeInterval, queue.DefaultProbeInterval)
	}
	return nil
}

// options returns the queue's options of h; nil is the defaults.
func (h *HealthConfig) options() queue.Health {
	if h == nil {
		return queue.Health{}
	}
	return queue.Health{Off: h.Off, Failures: h.Failures, ProbeInterval: time.Duration(h.ProbeInterval)}
}

// Caddy events of destination health. Their data is {destination (credentials redacted),
// state ("down" or "up"), consecutive_failures, since, next_probe (down only)}.
const (
	// EventDestinationDown is emitted when a destination goes down.
	EventDestinationDown = "faxhook_destination_down"
	// EventDestinationUp is emitted when a destination that was down answers a probe.
	EventDestinationUp = "faxhook_destination_up"
)

// onHealth is the dispatcher's OnHealth hook: it announces a destination going down or coming
// back up as a Caddy event (without blocking; see eventEmitter.emit).
func onHealth(em *eventEmitter) func(h queue.DestinationHealth) {
	return func(h queue.DestinationHealth) {
		data := map[string]any{
			"destination": h.Destination, "state": h.State,
			"consecutive_failures": h.Failures, "since": h.Since,
		}
		name := EventDestinationUp
		if h.State == queue.HealthDown {
			name = EventDestinationDown
			data["next_probe"] = h.NextProbe
		}
		em.emit(name, data)
	}
}

// destinationsDown returns how many destinations the dispatchers of this process hold down.
func destinationsDown() float64 {
	n := 0
	for _, e := range runningEngines() {
		if e.delivery == nil {
			continue
		}
		if d := e.delivery.dispatcher(); d != nil {
			n += d.DestinationsDown()
		}
	}
	return float64(n)
}

// destinationsView is the answer of GET /faxhook/destinations.
type destinationsView struct {
	// Health says whether destination health is on ("on" or "off").
	Health string `json:"health"`
	// Destinations lists the destinations that failed lately (down, or up with failures
	// counted); the others are up.
	Destinations []queue.DestinationHealth `json:"destinations"`
}

// destinations answers GET /faxhook/destinations: the health of the destinations this
// instance's dispatcher saw fail lately.
func (a *adminAPI) destinations(w http.ResponseWriter, r *http.Request) error {
	e, err := a.engine(r)
	if err != nil {
		return err
	}
	v := destinationsView{Health: "on", Destinations: []queue.DestinationHealth{}}
	if s := e.cfg.Load(); s != nil && s.health.Off {
		v.Health = "off"
	}
	if e.delivery != nil {
		if d := e.delivery.dispatcher(); d != nil {
			v.Destinations = d.Health()
		}
	}
	return writeJSON(w, http.StatusOK, v)
}
