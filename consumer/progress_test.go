package consumer

import (
	"testing"
	"time"
)

// The watermark rule: a window may fire only when every owned partition of
// the topic was caught up at or after the deadline, or has delivered records
// a window newer than the source change.
func TestProgressCaughtUp(t *testing.T) {
	t0 := time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)
	at := func(s int) time.Time { return t0.Add(time.Duration(s) * time.Second) }
	const w = 10 * time.Second

	p := NewProgress(func() time.Time { return t0 })
	if p.CaughtUp("t", at(0), at(0), w) {
		t.Fatal("a topic this member does not read is never caught up")
	}
	p.assign("t", 0, 0)
	p.assign("t", 1, 0)

	// Partition 0 was read to its end as of t=20; partition 1 lags.
	p.observeEnd("t", 0, 5, at(20))
	p.advanced("t", 0, 5, at(19), at(19))
	p.observeEnd("t", 1, 9, at(20))
	p.advanced("t", 1, 3, at(2), at(2))
	if p.CaughtUp("t", at(15), at(0), w) {
		t.Fatal("partition 1 is behind its high watermark and its records are old")
	}
	// Partition 1 delivered a record a window newer than the change: enough.
	p.advanced("t", 1, 4, at(11), at(11))
	if !p.CaughtUp("t", at(15), at(0), w) {
		t.Fatal("records a window newer than the change should do")
	}
	// A deadline later than every caught-up observation waits.
	if p.CaughtUp("t", at(25), at(30), w) {
		t.Fatal("caught up at t=20 says nothing of a deadline at t=25")
	}
	// An end offset stamped after the deadline that the position has reached.
	p.advanced("t", 1, 9, at(12), at(12))
	p.observeEnd("t", 0, 5, at(26))
	p.observeEnd("t", 1, 9, at(26))
	if !p.CaughtUp("t", at(25), at(30), w) {
		t.Fatal("both partitions were at their ends at t=26")
	}
	// A partition revoked no longer counts; one that is behind still does.
	p.observeEnd("t", 1, 12, at(30))
	if p.CaughtUp("t", at(28), at(40), w) {
		t.Fatal("partition 1 has new records recon has not read")
	}
	p.revoke("t", 1)
	if !p.CaughtUp("t", at(26), at(40), w) {
		t.Fatal("only partition 0 is read here now")
	}
}

// The record timestamps and the change times must both be a window past the
// change: a topic re-produced with fresh timestamps holds old changes under
// new record times, and its newest record time says nothing of where the copy
// of a change lies.
func TestProgressNeedsBothClocks(t *testing.T) {
	t0 := time.Date(2026, 12, 5, 10, 0, 0, 0, time.UTC)
	at := func(s int) time.Time { return t0.Add(time.Duration(s) * time.Second) }
	const w = 10 * time.Second
	p := NewProgress(func() time.Time { return t0 })
	p.assign("t", 0, 0)

	p.advanced("t", 0, 100, at(3600), at(2)) // re-produced: new record times, old changes
	if p.CaughtUp("t", at(15), at(0), w) {
		t.Fatal("fresh record timestamps over old changes must not count as read past the change")
	}
	p.advanced("t", 0, 200, at(3601), at(11)) // the changes reach a window past it too
	if !p.CaughtUp("t", at(15), at(0), w) {
		t.Fatal("both clocks a window past the change should do")
	}

	q := NewProgress(func() time.Time { return t0 })
	q.assign("t", 0, 0)
	q.advanced("t", 0, 100, at(2), at(3600)) // change times ahead of record times: wait for both
	if q.CaughtUp("t", at(15), at(0), w) {
		t.Fatal("record timestamps behind the window must not count either")
	}
}
