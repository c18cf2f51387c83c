package api

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/recon-dev/recon/compare"
	"github.com/recon-dev/recon/reconcile"
	"github.com/recon-dev/recon/repair"
	"github.com/recon-dev/recon/state"
)

// fixture is a real engine over a real Badger store, on a clock the test
// moves: dataset orders, source pg (topic src), target wh (topic tgt),
// window 30s, payload full.
type fixture struct {
	t     *testing.T
	store *state.Store
	e     *reconcile.Engine
	now   time.Time
	rules *compare.Rules
	off   int64
}

// caughtUp says every topic is read far enough: the watermark rule is the
// consumer's business, tested in pipeline.
type caughtUp struct{}

func (caughtUp) CaughtUp(string, time.Time, time.Time, time.Duration) bool { return true }

func newFixture(t *testing.T, mode string) *fixture {
	t.Helper()
	f := &fixture{t: t, store: openStore(t), now: time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)}
	var err error
	f.rules, err = compare.NewRules([]string{"id"}, nil, nil, map[string]string{"amount": "decimal(2)"}, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.e, err = reconcile.New(f.store, reconcile.Options{
		Datasets: []reconcile.Dataset{{
			Name: "orders", Window: 30 * time.Second, PayloadFull: true,
			Source:  reconcile.System{Name: "pg", Topic: "src"},
			Targets: []reconcile.System{{Name: "wh", Topic: "tgt"}},
		}},
		Outputs:  reconcile.Outputs{Divergences: "div", Repairs: "rep", DLQ: "dlq"},
		Hasher:   compare.NewHasher([]byte("0123456789abcdef")),
		Planner:  repair.NewPlanner(map[string]repair.Policy{"orders": {Mode: mode, AutoKinds: []string{"missing", "lagging", "orphan"}}}),
		Progress: caughtUp{},
		Now:      func() time.Time { return f.now },
		// Every Apply is checkpointed, so what the test folds is in the store.
		CheckpointEvery: -1,
	})
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func (f *fixture) options(tokens []Token) Options {
	return Options{Tokens: tokens, Engine: f.e, Store: f.store}
}

// change folds one upsert of system sys ("pg" or "wh") at version v.
func (f *fixture) change(sys string, v uint64, raw map[string]any) {
	f.t.Helper()
	key, err := f.rules.Key(raw)
	if err != nil {
		f.t.Fatal(err)
	}
	row, unchanged, err := f.rules.Normalize(raw)
	if err != nil {
		f.t.Fatal(err)
	}
	ev := &compare.ChangeEvent{Dataset: "orders", System: sys, Key: key, Op: compare.OpUpsert,
		Version: compare.Version{A: v}, EventTime: f.now, Row: row, Unchanged: unchanged}
	f.off++
	topic := map[string]string{"pg": "src", "wh": "tgt"}[sys]
	if err := f.e.Apply(context.Background(), []reconcile.Item{{Topic: topic, Offset: f.off, Event: ev}}); err != nil {
		f.t.Fatal(err)
	}
	if err := f.e.Flush(context.Background()); err != nil {
		f.t.Fatal(err)
	}
}

// after moves the clock by d and sweeps the windows that expired.
func (f *fixture) after(d time.Duration) {
	f.t.Helper()
	f.now = f.now.Add(d)
	if _, err := f.e.Sweep(context.Background(), 1000); err != nil {
		f.t.Fatal(err)
	}
}

// missing makes key id missing from the target: the source has it, the
// target never gets it, and its window expires. It returns the pending
// repair planned for it.
func (f *fixture) missing(id int) state.RepairRecord {
	f.t.Helper()
	f.change("pg", uint64(100+id), map[string]any{"id": id, "amount": "12.50", "status": "new"})
	f.after(31 * time.Second)
	recs, err := f.store.Repairs(state.RepairPending, 0)
	if err != nil {
		f.t.Fatal(err)
	}
	for _, r := range recs {
		if r.Dataset == "orders" && r.Key == fmt.Sprint(id) {
			return r
		}
	}
	f.t.Fatalf("no pending repair for key %d among %+v", id, recs)
	return state.RepairRecord{}
}
