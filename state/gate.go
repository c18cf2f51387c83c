package state

import (
	"context"
	"sync"
	"time"
)

// OutboxGate is the outbox's backpressure: while the brokers refuse recon's
// output the outbox grows on disk, and past max bytes those who fill it (the
// consumer, whose input makes verdicts, and the sweeper, which fires them)
// must stop until the publisher drains it. It closes when the outbox reaches
// max bytes and opens again only once it is down to low bytes, so that
// consumption does not flap around the bound one checkpoint at a time.
//
// The outbox can pass max by what was folded before the gate closed (one
// poll, one checkpoint) and by records nobody can hold back (approvals): the
// bound is on what recon keeps adding, not a hard quota.
type OutboxGate struct {
	store    *Store
	max, low int64

	mu     sync.Mutex
	closed bool
	since  time.Time // when the gate last closed
	// closedAt is the store's outboxShrunk channel when the gate closed:
	// the gate opens only once records have left the outbox since. A gate
	// closed by Admits, for bytes not yet committed, must not open again
	// on the outbox's size before that commit.
	closedAt <-chan struct{}
	// closing is closed when the gate closes, and replaced when it opens.
	closing chan struct{}
	// onChange, if set, is called with the new state each time the gate
	// closes or opens, under mu, so calls come in order.
	onChange func(closed bool, bytes int64)
}

// NewOutboxGate returns a gate that closes at max bytes in the outbox and
// opens again at 90% of max. onChange may be nil.
func (s *Store) NewOutboxGate(max int64, onChange func(closed bool, bytes int64)) *OutboxGate {
	return &OutboxGate{store: s, max: max, low: max - max/10, onChange: onChange, closing: make(chan struct{})}
}

// Max is the bound the gate closes at.
func (g *OutboxGate) Max() int64 { return g.max }

// Held reports whether the gate is closed, and since when, without
// updating it: readiness reads it.
func (g *OutboxGate) Held() (bool, time.Time) {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.closed, g.since
}

// Open reports whether the outbox may grow, updating the gate's state from
// the outbox's current size.
func (g *OutboxGate) Open() bool {
	bytes, shrunk := g.store.outboxSize()
	return g.update(bytes, shrunk)
}

func (g *OutboxGate) update(bytes int64, shrunk <-chan struct{}) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	switch {
	case !g.closed && bytes >= g.max:
		g.closed, g.closedAt, g.since = true, shrunk, time.Now()
		close(g.closing)
	case g.closed && bytes <= g.low && isClosed(g.closedAt):
		g.closed = false
		g.closing = make(chan struct{})
	default:
		return !g.closed
	}
	if g.onChange != nil {
		g.onChange(g.closed, bytes)
	}
	return !g.closed
}

// Closing returns a channel that is closed once the gate is closed: a
// consumer blocked waiting for input learns there that it must pause.
func (g *OutboxGate) Closing() <-chan struct{} {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.closing
}

func isClosed(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

// outboxSize is the outbox's size in bytes and the channel closed at the
// next delete from it.
func (s *Store) outboxSize() (int64, <-chan struct{}) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.outboxBytes, s.outboxShrunk
}

// Admits reports whether pending more bytes, not yet committed, may be added
// to the outbox: the gate is open and they keep it under max. The sweeper
// asks it before each verdict, so that one sweep cannot overshoot the bound
// by a thousand verdicts.
//
// A verdict that does not fit closes the gate as the outbox reaching max
// would: the sweeper stops just short of the bound, and the consumer must
// pause then too, or it would keep opening windows that cannot fire.
func (g *OutboxGate) Admits(pending int64) bool {
	bytes, shrunk := g.store.outboxSize()
	return g.update(bytes+pending, shrunk)
}

// Wait blocks until the gate is open or ctx is done, and returns ctx's error
// in the latter case. It wakes whenever records leave the outbox; nothing
// else opens the gate.
func (g *OutboxGate) Wait(ctx context.Context) error {
	for {
		bytes, shrunk := g.store.outboxSize()
		if g.update(bytes, shrunk) {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-shrunk:
		}
	}
}
