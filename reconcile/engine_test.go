package reconcile

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/recon-dev/recon/compare"
	"github.com/recon-dev/recon/repair"
	"github.com/recon-dev/recon/state"
)

// caughtUp is a Progress whose reading is always far enough along; the
// watermark rule itself is tested with the real consumer in pipeline.
type caughtUp struct{ ok bool }

func (c *caughtUp) CaughtUp(string, time.Time, time.Time, time.Duration) bool { return c.ok }

type clock struct{ t time.Time }

func (c *clock) now() time.Time          { return c.t }
func (c *clock) advance(d time.Duration) { c.t = c.t.Add(d) }

type fixture struct {
	t     *testing.T
	e     *Engine
	store *state.Store
	clk   *clock
	prog  *caughtUp
	rules *compare.Rules
	off   int64
}

func newFixture(t *testing.T, mode string) *fixture {
	t.Helper()
	st, err := state.Open(t.TempDir(), state.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	rules, err := compare.NewRules([]string{"id"}, nil, nil, map[string]string{"amount": "decimal(2)"}, 0)
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{t: t, store: st, clk: &clock{t: time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)}, prog: &caughtUp{ok: true}, rules: rules}
	f.e = f.engine(mode, System{Name: "wh", Topic: "tgt"})
	return f
}

// engine builds an engine over the fixture's store with the given targets,
// as a restart with a changed config would.
func (f *fixture) engine(mode string, targets ...System) *Engine {
	f.t.Helper()
	e, err := New(f.store, Options{
		Datasets: []Dataset{{
			Name: "orders", Window: 30 * time.Second, PayloadFull: true,
			Source:  System{Name: "pg", Topic: "src"},
			Targets: targets,
		}},
		Outputs:  Outputs{Divergences: "div", Repairs: "rep", DLQ: "dlq"},
		Hasher:   compare.NewHasher([]byte("0123456789abcdef")),
		Planner:  repair.NewPlanner(map[string]repair.Policy{"orders": {Mode: mode, AutoKinds: []string{"missing", "lagging", "orphan"}}}),
		Progress: f.prog,
		Now:      f.clk.now,
	})
	if err != nil {
		f.t.Fatal(err)
	}
	return e
}

// change applies one event of system sys ("pg" or "wh") at version v.
func (f *fixture) change(sys string, v uint64, op compare.Op, raw map[string]any, unchanged ...string) {
	f.t.Helper()
	key, err := f.rules.Key(raw)
	if err != nil {
		f.t.Fatal(err)
	}
	ev := &compare.ChangeEvent{Dataset: "orders", System: sys, Key: key, Op: op, Version: compare.Version{A: v}, EventTime: f.clk.t}
	if op == compare.OpUpsert {
		row, unch, err := f.rules.Normalize(raw)
		if err != nil {
			f.t.Fatal(err)
		}
		ev.Row, ev.Unchanged = row, append(unch, unchanged...)
	}
	topic := map[string]string{"pg": "src", "wh": "tgt"}[sys]
	f.off++
	f.apply(Item{Topic: topic, Offset: f.off, Event: ev})
}

// apply folds items and checkpoints them, so the test can read the store.
func (f *fixture) apply(items ...Item) {
	f.t.Helper()
	if err := f.e.Apply(context.Background(), items); err != nil {
		f.t.Fatal(err)
	}
	if err := f.e.Flush(context.Background()); err != nil {
		f.t.Fatal(err)
	}
}

func (f *fixture) sweep() SweepResult {
	f.t.Helper()
	res, err := f.e.Sweep(context.Background(), 100)
	if err != nil {
		f.t.Fatal(err)
	}
	return res
}

func (f *fixture) target(key string) *state.TargetState {
	f.t.Helper()
	ks, err := f.store.KeyState("orders", key)
	if err != nil || ks == nil {
		f.t.Fatalf("key %s: %v", key, err)
	}
	return ks.Targets["wh"]
}

func row(id int, amount, status string) map[string]any {
	return map[string]any{"id": id, "amount": amount, "status": status}
}

// A hot key whose versions each reach the target within the window is never
// flagged, though the target is never in sync: the source changes every 10s
// and each version reaches the target 20s later, inside the 30s window.
func TestHotKeyWithinWindowIsNeverFlagged(t *testing.T) {
	f := newFixture(t, "auto")
	status := func(v uint64) string { return fmt.Sprintf("s%d", v) }
	for v := uint64(1); v <= 30; v++ {
		f.change("pg", v, compare.OpUpsert, row(1, "1.00", status(v)))
		if v > 2 {
			f.change("wh", v-2, compare.OpUpsert, row(1, "1.00", status(v-2)))
		}
		f.clk.advance(10 * time.Second)
		if res := f.sweep(); res.Fired != 0 {
			t.Fatalf("version %d: a verdict fired for a key whose every version arrives within the window", v)
		}
		if ts := f.target("1"); v > 2 && ts.Deadline.IsZero() {
			t.Fatalf("version %d: the target is behind, so a window must be open", v)
		}
	}
	if n, _ := f.store.OutboxDepth(); n != 0 {
		t.Fatalf("%d outbox records for a healthy hot key", n)
	}
}

// A target stuck on one version is flagged one window after the first version
// it missed, as lagging.
func TestStuckTargetIsLaggingOneWindowAfterFirstMiss(t *testing.T) {
	f := newFixture(t, "auto")
	f.change("pg", 1, compare.OpUpsert, row(1, "1.00", "new"))
	f.change("wh", 1, compare.OpUpsert, row(1, "1.00", "new"))
	f.change("pg", 2, compare.OpUpsert, row(1, "1.00", "paid"))
	f.clk.advance(10 * time.Second)
	f.change("pg", 3, compare.OpUpsert, row(1, "1.00", "shipped"))
	f.clk.advance(19 * time.Second)
	if res := f.sweep(); res.Fired != 0 {
		t.Fatal("fired before the window of version 2 expired")
	}
	f.clk.advance(2 * time.Second)
	if res := f.sweep(); res.Fired != 1 {
		t.Fatalf("want one verdict 31s after version 2, got %+v", res)
	}
	if ts := f.target("1"); ts.Open == nil || ts.Open.Kind != "lagging" || ts.Reflects != (compare.Version{A: 1}) {
		t.Fatalf("target state %+v", ts)
	}
}

// Postgres TOAST: an update that leaves out an unchanged large column keeps
// its previous value, so the digest still matches the target's full row.
func TestUnchangedToastColumnKeepsPreviousValue(t *testing.T) {
	f := newFixture(t, "auto")
	doc := "a very large document"
	full := map[string]any{"id": 1, "amount": "1.00", "status": "new", "doc": doc}
	f.change("pg", 1, compare.OpUpsert, full)
	f.change("wh", 1, compare.OpUpsert, full)
	upd := map[string]any{"id": 1, "amount": "2.00", "status": "new", "doc": compare.Unavailable{}}
	f.change("pg", 2, compare.OpUpsert, upd)
	f.change("wh", 2, compare.OpUpsert, map[string]any{"id": 1, "amount": "2.00", "status": "new", "doc": doc})
	ts := f.target("1")
	if !ts.Deadline.IsZero() || ts.Reflects != (compare.Version{A: 2}) {
		t.Fatalf("target should be in sync at version 2: %+v", ts)
	}
	ks, _ := f.store.KeyState("orders", "1")
	if got := ks.SourceRow["doc"].Text; got != doc {
		t.Fatalf("source row lost the TOAST column: %q", got)
	}
}

// Replays and duplicates change nothing, and an old version only enters
// history: no verdict from redelivery alone.
func TestReplaysChangeNothing(t *testing.T) {
	f := newFixture(t, "auto")
	f.change("pg", 5, compare.OpUpsert, row(1, "1.00", "paid"))
	f.change("wh", 5, compare.OpUpsert, row(1, "1.00", "paid"))
	before, _ := f.store.KeyState("orders", "1")
	f.change("pg", 5, compare.OpUpsert, row(1, "1.00", "paid"))
	f.change("wh", 5, compare.OpUpsert, row(1, "1.00", "paid"))
	f.change("wh", 4, compare.OpUpsert, row(1, "9.00", "old"))
	f.change("pg", 3, compare.OpUpsert, row(1, "0.50", "new")) // older: history only
	after, _ := f.store.KeyState("orders", "1")
	if after.Source.Version != before.Source.Version || after.SourceChanges != before.SourceChanges ||
		after.Targets["wh"].Head.Version != before.Targets["wh"].Head.Version || len(after.History) != 2 {
		t.Fatalf("replay changed state: before %+v after %+v", before, after)
	}
	f.clk.advance(time.Hour)
	if res := f.sweep(); res.Fired != 0 {
		t.Fatal("a replay produced a verdict")
	}
}

// The watermark rule holds a verdict while recon's reading is behind, and the
// verdict comes once it catches up.
func TestVerdictWaitsForWatermark(t *testing.T) {
	f := newFixture(t, "approve")
	f.change("pg", 1, compare.OpUpsert, row(1, "1.00", "new"))
	f.clk.advance(time.Minute)
	f.prog.ok = false
	if res := f.sweep(); res.Fired != 0 || res.Waiting != 1 {
		t.Fatalf("want the window held back, got %+v", res)
	}
	f.prog.ok = true
	if res := f.sweep(); res.Fired != 1 {
		t.Fatalf("want the verdict once caught up, got %+v", res)
	}
	// approve mode: the repair is held, not published.
	reps, err := f.store.Repairs("pending", 0)
	if err != nil || len(reps) != 1 || reps[0].Kind != "missing" {
		t.Fatalf("pending repairs %+v, %v", reps, err)
	}
	if n, _ := f.store.OutboxDepth(); n != 1 {
		t.Fatalf("outbox %d, want only the divergence event", n)
	}
}

// A target delete carries the lineage of the row it removed; it must still
// count as reflecting the source's delete, and a re-insert after it gets a
// window of its own.
func TestTargetDeleteLineageIsNotAMismatch(t *testing.T) {
	f := newFixture(t, "auto")
	f.change("pg", 1, compare.OpUpsert, row(1, "1.00", "new"))
	f.change("wh", 1, compare.OpUpsert, row(1, "1.00", "new"))
	f.change("pg", 2, compare.OpDelete, row(1, "1.00", "new"))
	f.clk.advance(time.Second)
	ks, _ := f.rules.Key(row(1, "", ""))
	ev := &compare.ChangeEvent{Dataset: "orders", System: "wh", Key: ks, Op: compare.OpDelete,
		Version: compare.Version{A: 2}, Lineage: compare.Version{A: 1}, EventTime: f.clk.t}
	f.off++
	f.apply(Item{Topic: "tgt", Offset: f.off, Event: ev})
	if ts := f.target("1"); !ts.Deadline.IsZero() {
		t.Fatalf("a replicated delete left a window open: %+v", ts)
	}
	f.clk.advance(20 * time.Second)
	f.change("pg", 3, compare.OpUpsert, row(1, "3.00", "new"))
	f.clk.advance(29 * time.Second)
	if res := f.sweep(); res.Fired != 0 {
		t.Fatal("the re-insert was judged before its own window expired")
	}
}

// A window of a target removed from config is closed, not left waiting for a
// topic nothing reads any more, where it would crowd the due timers.
func TestWindowOfRemovedTargetIsDropped(t *testing.T) {
	f := newFixture(t, "auto")
	f.change("pg", 1, compare.OpUpsert, row(1, "1.00", "new"))
	if _, ok, _ := f.store.NextDeadline(); !ok {
		t.Fatal("the missing key should have an open window")
	}
	f.e = f.engine("auto", System{Name: "other", Topic: "other"})
	f.clk.advance(time.Minute)
	if res := f.sweep(); res.Fired != 0 || res.Waiting != 0 {
		t.Fatalf("sweep %+v, want the window dropped", res)
	}
	if next, ok, _ := f.store.NextDeadline(); ok {
		t.Fatalf("a timer is left at %v", next)
	}
}

// Per-event counters are exact: folded events by op, and ignored ones apart.
func TestEventCounters(t *testing.T) {
	f := newFixture(t, "auto")
	reg := prometheus.NewRegistry()
	m := NewMetrics(reg, func() (int64, int64) { return 0, 0 })
	e, err := New(f.store, Options{
		Datasets: []Dataset{{Name: "orders", Window: 30 * time.Second, Source: System{Name: "pg", Topic: "src"},
			Targets: []System{{Name: "wh", Topic: "tgt"}}}},
		Hasher: compare.NewHasher([]byte("0123456789abcdef")), Planner: repair.NewPlanner(nil),
		Progress: f.prog, Metrics: m, Now: f.clk.now,
	})
	if err != nil {
		t.Fatal(err)
	}
	f.e = e
	f.change("pg", 1, compare.OpUpsert, row(1, "1.00", "new"))
	f.change("pg", 1, compare.OpUpsert, row(1, "1.00", "new")) // duplicate
	f.change("pg", 2, compare.OpDelete, row(1, "1.00", "new"))
	f.change("wh", 1, compare.OpUpsert, row(1, "1.00", "new"))
	for _, c := range []struct {
		got  prometheus.Collector
		want float64
	}{
		{m.events.WithLabelValues("orders", "pg", "upsert"), 1},
		{m.events.WithLabelValues("orders", "pg", "delete"), 1},
		{m.events.WithLabelValues("orders", "wh", "upsert"), 1},
		{m.ignored.WithLabelValues("orders", "pg"), 1},
		{m.ignored.WithLabelValues("orders", "wh"), 0},
	} {
		if v := testutil.ToFloat64(c.got); v != c.want {
			t.Errorf("counter = %v, want %v", v, c.want)
		}
	}
}

// A pass that fails to fold stops the engine: nothing of it is stored, and
// every later Apply, Flush and Sweep fails, since the cache may hold changes
// that will never be stored. The process restarts from the stored offsets.
func TestFailedFoldStopsTheEngine(t *testing.T) {
	f := newFixture(t, "auto")
	f.change("pg", 1, compare.OpUpsert, row(1, "1.00", "new"))
	key, _ := f.rules.Key(row(1, "", ""))
	r2, _, _ := f.rules.Normalize(row(1, "2.00", "paid"))
	good := &compare.ChangeEvent{Dataset: "orders", System: "pg", Key: key, Op: compare.OpUpsert, Version: compare.Version{A: 2}, Row: r2, EventTime: f.clk.t}
	bad := &compare.ChangeEvent{Dataset: "nope", System: "pg", Key: key, Op: compare.OpUpsert, Version: compare.Version{A: 3}, EventTime: f.clk.t}
	ctx := context.Background()
	err := f.e.Apply(ctx, []Item{{Topic: "src", Offset: 10, Event: good}, {Topic: "src", Offset: 11, Event: bad}})
	if err == nil {
		t.Fatal("a pass with an event of an unknown dataset applied")
	}
	if err := f.e.Flush(ctx); err == nil {
		t.Fatal("a failed engine flushed")
	}
	if _, err := f.e.Sweep(ctx, 10); err == nil {
		t.Fatal("a failed engine swept")
	}
	ks, err := f.store.KeyState("orders", key.String())
	if err != nil || ks == nil || ks.Source.Version.A != 1 {
		t.Fatalf("stored state %+v, %v: want version 1 only", ks, err)
	}
	offs, err := f.store.Offsets()
	if err != nil || offs["src"][0] != 2 {
		t.Fatalf("stored offsets %v, %v: want the failed pass's offsets not stored", offs, err)
	}
	// A restart (a new engine over the same store) carries on from there.
	f.e = f.engine("auto", System{Name: "wh", Topic: "tgt"})
	f.change("wh", 1, compare.OpUpsert, row(1, "1.00", "new"))
	if ts := f.target("1"); !ts.Deadline.IsZero() {
		t.Fatalf("the target matches the stored source head, yet a window is open: %+v", ts)
	}
}
