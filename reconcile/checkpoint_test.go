package reconcile

import (
	"context"
	"maps"
	"sync"
	"testing"
	"time"

	"github.com/recon-dev/recon/compare"
	"github.com/recon-dev/recon/repair"
)

// lazyEngine is an engine over the fixture's store that checkpoints only
// when told to, or when a checkpoint grows large.
func (f *fixture) lazyEngine(durable func(map[string]map[int32]int64)) *Engine {
	f.t.Helper()
	e, err := New(f.store, Options{
		Datasets: []Dataset{{Name: "orders", Window: 30 * time.Second, PayloadFull: true,
			Source: System{Name: "pg", Topic: "src"}, Targets: []System{{Name: "wh", Topic: "tgt"}}}},
		Outputs:         Outputs{Divergences: "div", Repairs: "rep", DLQ: "dlq"},
		Hasher:          compare.NewHasher([]byte("0123456789abcdef")),
		Planner:         repair.NewPlanner(map[string]repair.Policy{"orders": {Mode: "auto", AutoKinds: []string{"missing"}}}),
		Progress:        f.prog,
		Now:             f.clk.now,
		CheckpointEvery: time.Hour,
		Durable:         durable,
	})
	if err != nil {
		f.t.Fatal(err)
	}
	return e
}

func (f *fixture) event(sys string, v uint64, id int) Item {
	f.t.Helper()
	raw := row(id, "1.00", "new")
	key, err := f.rules.Key(raw)
	if err != nil {
		f.t.Fatal(err)
	}
	r, _, err := f.rules.Normalize(raw)
	if err != nil {
		f.t.Fatal(err)
	}
	f.off++
	topic := map[string]string{"pg": "src", "wh": "tgt"}[sys]
	return Item{Topic: topic, Offset: f.off, Event: &compare.ChangeEvent{Dataset: "orders", System: sys, Key: key,
		Op: compare.OpUpsert, Version: compare.Version{A: v}, Row: r, EventTime: f.clk.t}}
}

// Between checkpoints nothing is on disk; a checkpoint stores the key states
// with the offsets that produced them, and a window opened and closed in
// between never reaches the timer index. Kafka hears of the offsets only
// once they are durable.
func TestCheckpointStoresStateWithItsOffsets(t *testing.T) {
	f := newFixture(t, "auto")
	var (
		mu   sync.Mutex
		told []map[string]map[int32]int64
	)
	f.e = f.lazyEngine(func(o map[string]map[int32]int64) {
		mu.Lock()
		defer mu.Unlock()
		told = append(told, o)
	})
	ctx := context.Background()
	if err := f.e.Apply(ctx, []Item{f.event("pg", 1, 1)}); err != nil {
		t.Fatal(err)
	}
	if err := f.e.Apply(ctx, []Item{f.event("wh", 1, 1)}); err != nil {
		t.Fatal(err)
	}
	if ks, _ := f.store.KeyState("orders", "1"); ks != nil {
		t.Fatalf("state stored before a checkpoint: %+v", ks)
	}
	if offs, _ := f.store.Offsets(); len(offs) != 0 {
		t.Fatalf("offsets stored before a checkpoint: %v", offs)
	}
	mu.Lock()
	if len(told) != 0 {
		t.Fatalf("Kafka told of offsets before they were durable: %v", told)
	}
	mu.Unlock()

	if err := f.e.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	ks, err := f.store.KeyState("orders", "1")
	if err != nil || ks == nil || ks.Source.Version.A != 1 || ks.Targets["wh"].Head.Version.A != 1 {
		t.Fatalf("stored state %+v, %v", ks, err)
	}
	want := map[string]map[int32]int64{"src": {0: 2}, "tgt": {0: 3}}
	offs, err := f.store.Offsets()
	if err != nil || !maps.EqualFunc(offs, want, maps.Equal) {
		t.Fatalf("stored offsets %v, %v; want %v", offs, err, want)
	}
	mu.Lock()
	if len(told) != 1 || !maps.EqualFunc(told[0], want, maps.Equal) {
		t.Fatalf("Kafka told %v, want %v once", told, want)
	}
	mu.Unlock()
	if next, ok, err := f.store.NextDeadline(); ok || err != nil {
		t.Fatalf("a timer at %v (%v) for a window that closed before the checkpoint", next, err)
	}
}

// A deadline still in memory is checkpointed before the sweep looks for due
// timers in the store, so folding lazily never delays a verdict.
func TestPendingDeadlineIsSwept(t *testing.T) {
	f := newFixture(t, "auto")
	f.e = f.lazyEngine(nil)
	ctx := context.Background()
	if err := f.e.Apply(ctx, []Item{f.event("pg", 1, 1)}); err != nil {
		t.Fatal(err)
	}
	f.clk.advance(31 * time.Second)
	if err := f.e.checkpointIfDue(); err != nil {
		t.Fatal(err)
	}
	if next, ok, err := f.store.NextDeadline(); !ok || err != nil || next.After(f.clk.t) {
		t.Fatalf("next stored deadline %v, %v, %v: want the due window's", next, ok, err)
	}
	if res := f.sweep(); res.Fired != 1 {
		t.Fatalf("sweep %+v, want the missing verdict", res)
	}
	if n := f.outbox(); n != 2 {
		t.Fatalf("%d outbox records, want the divergence and its repair", n)
	}
}

// A crash before a checkpoint loses only what the store never had: a new
// engine resumes from the stored offsets and, replaying, reaches the same
// state as a run without the crash.
func TestCrashBeforeCheckpointReplays(t *testing.T) {
	f := newFixture(t, "auto")
	f.e = f.lazyEngine(nil)
	ctx := context.Background()
	first := []Item{f.event("pg", 1, 1), f.event("pg", 1, 2)}
	if err := f.e.Apply(ctx, first); err != nil {
		t.Fatal(err)
	}
	if err := f.e.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	lost := []Item{f.event("pg", 2, 1), f.event("wh", 2, 1), f.event("wh", 1, 2)}
	if err := f.e.Apply(ctx, lost); err != nil {
		t.Fatal(err)
	}
	// The process dies: the engine is dropped without a checkpoint.
	f.e = f.lazyEngine(nil)
	offs, err := f.store.Offsets()
	if err != nil || offs["src"][0] != 3 || len(offs["tgt"]) != 0 {
		t.Fatalf("stored offsets after the crash %v, %v", offs, err)
	}
	if err := f.e.Apply(ctx, lost); err != nil {
		t.Fatal(err)
	}
	if err := f.e.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{"1", "2"} {
		if ts := f.target(key); ts.Head == nil || !ts.Deadline.IsZero() {
			t.Fatalf("key %s after the replay: %+v, want in sync", key, ts)
		}
	}
	if next, ok, _ := f.store.NextDeadline(); ok {
		t.Fatalf("a timer at %v is left after the replay", next)
	}
}

// A checkpoint that grows past its bound is started without waiting for the
// interval, so one stays within Badger's transaction limits.
func TestLargeCheckpointIsNotDeferred(t *testing.T) {
	f := newFixture(t, "auto")
	f.e = f.lazyEngine(nil)
	items := make([]Item, 0, maxDirty)
	for id := 1; id <= maxDirty; id++ {
		items = append(items, f.event("pg", 1, id))
	}
	if err := f.e.Apply(context.Background(), items); err != nil {
		t.Fatal(err)
	}
	f.e.mu.Lock()
	err := f.e.waitInflight()
	f.e.mu.Unlock()
	if err != nil {
		t.Fatal(err)
	}
	if n, _, _ := f.store.Stats(); n != maxDirty {
		t.Fatalf("%d key states stored, want %d without a Flush", n, maxDirty)
	}
}

func (f *fixture) outbox() int {
	f.t.Helper()
	recs, err := f.store.Outbox(100)
	if err != nil {
		f.t.Fatal(err)
	}
	return len(recs)
}
