package pgstore

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"
)

// Leadership is one process's candidacy for a role that one process of the fleet holds at a
// time (e.g. the janitor). It holds a session-level advisory lock (pg_try_advisory_lock) on a
// connection of its own: the lock lasts as long as that session, whatever the process does.
//
// While it does not hold the lock it tries every Options.LeaderInterval. While it holds it, it
// checks its connection at the same interval (at most every keepaliveBound/4): when the
// connection fails, Held reports false at once, before any reconnect, and a value is sent on
// Changes.
//
// How soon another process takes over from a holder that is gone:
//   - the holder closed the store, or its process died (killed, crashed): its connection's
//     socket closes and the server ends the session at once; another process takes the lock
//     at its next try, within LeaderInterval.
//   - its host died or the network between it and the server broke: the server ends the
//     session when TCP keepalive gives up on the peer, about keepaliveBound (11s: 5s idle, 3
//     probes 2s apart, or tcp_user_timeout 10s for unacknowledged data) after the last
//     exchange, so another process takes over within about 13s. The cut-off holder notices
//     first: its check fails within two check intervals (4s by default), and it reports the
//     loss then.
//
// The keepalive bounds are the defaults Open sets when the DSN sets no tcp_keepalives_* or
// tcp_user_timeout of its own.
type Leadership struct {
	s       *Store
	name    string
	key     int64
	held    atomic.Bool
	pid     atomic.Uint32 // the server pid of the connection, for tests
	changes chan struct{}
	ctx     context.Context
	cancel  context.CancelFunc
	done    chan struct{}
	once    sync.Once
}

// Leader starts a candidacy for the role name, which it keeps until Close (or the store's
// Close).
func (s *Store) Leader(name string) *Leadership {
	ctx, cancel := context.WithCancel(s.ctx)
	l := &Leadership{s: s, name: name, key: advisoryKey(s.schema, "leader", name), changes: make(chan struct{}, 1),
		ctx: ctx, cancel: cancel, done: make(chan struct{})}
	s.listenMu.Lock()
	s.leaders[l] = struct{}{}
	s.listenMu.Unlock()
	go l.run()
	return l
}

// Held reports whether this process holds the role now.
func (l *Leadership) Held() bool { return l.held.Load() }

// Changes returns a channel that receives a value when Held changes; values coalesce (it holds
// at most one), so read Held after each.
func (l *Leadership) Changes() <-chan struct{} { return l.changes }

// Close ends the candidacy, releasing the role if held, and waits until it is released.
func (l *Leadership) Close() error {
	l.once.Do(func() {
		l.cancel()
		<-l.done
		l.s.listenMu.Lock()
		delete(l.s.leaders, l)
		l.s.listenMu.Unlock()
	})
	return nil
}

func (l *Leadership) set(v bool) {
	if l.held.Swap(v) == v {
		return
	}
	if v {
		l.s.log.Info("leadership taken", zap.String("role", l.name))
	} else {
		l.s.log.Warn("leadership lost", zap.String("role", l.name))
	}
	select {
	case l.changes <- struct{}{}:
	default:
	}
}

func (l *Leadership) run() {
	defer close(l.done)
	interval := l.s.opts.LeaderInterval
	backoff := minBackoff
	for {
		err := l.session(&backoff)
		l.set(false) // before any reconnect
		if l.ctx.Err() != nil {
			return
		}
		l.s.log.Warn("the leadership connection failed; reconnecting", zap.String("role", l.name),
			zap.Error(err), zap.Duration("backoff", backoff))
		select {
		case <-l.ctx.Done():
			return
		case <-time.After(min(backoff, interval)):
		}
		backoff = min(2*backoff, maxBackoff)
	}
}

// session connects and tries for the lock until it holds it, then checks the connection until
// it fails or Close.
func (l *Leadership) session(backoff *time.Duration) error {
	interval := l.s.opts.LeaderInterval
	check := min(interval, keepaliveBound/4)
	ctx, cancel := context.WithTimeout(l.ctx, l.s.rtWait)
	conn, err := l.s.connect(ctx, "faxhook-leader")
	cancel()
	if err != nil {
		return err
	}
	defer func() {
		// Report the loss before the lock can pass to another process. Closing the session
		// releases the lock; unlocking first only tells the server sooner.
		held := l.held.Load()
		l.set(false)
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		if held && !conn.IsClosed() {
			conn.Exec(ctx, "SELECT pg_advisory_unlock($1)", l.key)
		}
		conn.Close(ctx)
		cancel()
	}()
	*backoff = minBackoff
	l.pid.Store(conn.PgConn().PID())
	defer l.pid.Store(0)
	for !l.held.Load() {
		ctx, cancel := context.WithTimeout(l.ctx, check)
		var ok bool
		err := conn.QueryRow(ctx, "SELECT pg_try_advisory_lock($1)", l.key).Scan(&ok)
		cancel()
		if err != nil {
			return err
		}
		if ok {
			l.set(true)
			break
		}
		select {
		case <-l.ctx.Done():
			return l.ctx.Err()
		case <-time.After(interval):
		}
	}
	for {
		// Blocks on the socket: a closed connection ends it at once, a quiet one after check.
		ctx, cancel := context.WithTimeout(l.ctx, check)
		_, err := conn.WaitForNotification(ctx)
		timedOut := ctx.Err() != nil
		cancel()
		switch {
		case l.ctx.Err() != nil:
			return l.ctx.Err()
		case timedOut:
			if err := ping(l.ctx, conn, check); err != nil {
				l.set(false)
				return err
			}
		case err != nil:
			l.set(false)
			return err
		}
	}
}
