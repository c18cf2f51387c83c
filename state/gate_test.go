package state

import (
	"bytes"
	"context"
	"testing"
	"time"
)

// The gate closes when the outbox reaches its bound, stays closed until the
// outbox drains to 90% of it (not merely below the bound), and wakes a
// waiter when the publisher's deletes get it there.
func TestOutboxGate(t *testing.T) {
	s := openTest(t, t.TempDir())
	var changes []bool
	g := s.NewOutboxGate(10_000, func(closed bool, _ int64) { changes = append(changes, closed) })

	add := func(n int) []uint64 {
		b := s.NewBatch()
		for range n {
			b.AppendOutbox(OutboxRecord{Topic: "recon.divergences", Value: bytes.Repeat([]byte("x"), 977)})
		}
		if got := b.OutboxBytes(); got != int64(n)*1000 {
			t.Fatalf("batch of %d records: OutboxBytes %d, want %d (each encodes to 1000 bytes: 23 of framing)", n, got, n*1000)
		}
		mustCommit(t, s, b)
		recs, err := s.Outbox(0)
		if err != nil {
			t.Fatal(err)
		}
		seqs := make([]uint64, len(recs))
		for i, r := range recs {
			seqs[i] = r.Seq
		}
		return seqs
	}

	seqs := add(9)
	if !g.Open() || !g.Admits(999) {
		t.Fatal("9000 bytes of 10000: the gate must be open and admit 999 more")
	}
	if g.Admits(1000) {
		t.Fatal("9000 bytes + 1000 pending reach the bound: not admitted")
	}
	if g.Open() {
		t.Fatal("a verdict that did not fit must close the gate: the consumer pauses too")
	}
	seqs = add(1)
	if g.Open() || g.Admits(0) {
		t.Fatal("10000 bytes of 10000: the gate must be closed")
	}

	waited := make(chan error, 1)
	go func() { waited <- g.Wait(context.Background()) }()

	// 9500 bytes: below the bound but above the low-water mark, 9000.
	if err := s.DeleteOutbox(seqs[0]); err != nil {
		t.Fatal(err)
	}
	if _, b := s.OutboxDepth(); b != 9000 {
		t.Fatalf("outbox bytes %d, want 9000", b)
	}
	// 9000 bytes is exactly the low-water mark: the waiter wakes.
	select {
	case err := <-waited:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Wait did not return once the outbox drained to the low-water mark")
	}
	if !g.Open() {
		t.Fatal("gate closed after draining to 90%")
	}
	if want := []bool{true, false}; len(changes) != 2 || changes[0] != want[0] || changes[1] != want[1] {
		t.Fatalf("gate changes %v, want %v", changes, want)
	}

	// A closed gate above the low-water mark keeps Wait blocked until ctx ends.
	add(2)
	if g.Open() {
		t.Fatal("11000 bytes: gate open")
	}
	if err := s.DeleteOutbox(seqs[1]); err != nil {
		t.Fatal(err)
	}
	if g.Open() {
		t.Fatal("10000 bytes after closing: the gate must stay closed until 9000")
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := g.Wait(ctx); err == nil {
		t.Fatal("Wait on a closed gate with a cancelled ctx returned nil")
	}
}
