package reconcile

import (
	"fmt"
	"time"

	"github.com/recon-dev/recon/compare"
	"github.com/recon-dev/recon/repair"
	"github.com/recon-dev/recon/state"
)

// guardState is one dataset's blast-radius guard as the engine tracks it:
// the figures the ratio trigger needs, and whether the guard is tripped. The
// decision itself is the planner's (repair.Planner.Guard); the engine turns
// a change of state into a storm event, an audit record, the gauge and the
// stored state, in the checkpoint of the decision that changed it.
type guardState struct {
	keys    int64 // key states of the dataset
	open    int64 // open divergences of the dataset
	tripped bool
	since   time.Time // when it last tripped
	reason  string
}

// GuardStatus is the blast-radius guard of one dataset.
type GuardStatus struct {
	Dataset string `json:"dataset"`
	// Tripped is set while automatic repairs of the dataset are held
	// pending for a person.
	Tripped bool      `json:"tripped"`
	Since   time.Time `json:"since,omitzero"` // when it tripped
	Reason  string    `json:"reason,omitempty"`
	// Open and Keys are the figures of the ratio trigger: divergences open
	// and key states seen.
	Open int64 `json:"open"`
	Keys int64 `json:"keys"`
}

// Guards returns the blast-radius guard of every configured dataset, by
// dataset name.
func (e *Engine) Guards() map[string]GuardStatus {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := make(map[string]GuardStatus, len(e.guards))
	for name, g := range e.guards {
		out[name] = GuardStatus{Dataset: name, Tripped: g.tripped, Since: g.since, Reason: g.reason, Open: g.open, Keys: g.keys}
	}
	return out
}

// initGuards evaluates each dataset's guard on the figures counted at start
// and records a change against the state stored by the last run: a guard
// tripped when recon stopped and clear now is cleared, and the other way
// round, each with its audit record and storm event.
func (e *Engine) initGuards() error {
	stored, err := e.store.GuardStates()
	if err != nil {
		return err
	}
	now := e.now().UTC()
	tx := e.begin()
	for name, d := range e.datasets {
		g := e.guards[name]
		if st, ok := stored[name]; ok && st.Tripped {
			g.tripped, g.since, g.reason = true, st.Since, st.Reason
		}
		tx.checkGuard(d, now)
		e.setGuardGauge(name, g.tripped)
	}
	if tx.err != nil {
		return e.fail(tx.err)
	}
	return e.flush()
}

// checkGuard re-evaluates the guard of d and records a change of state.
func (t *txn) checkGuard(d *Dataset, now time.Time) {
	g := t.e.guards[d.Name]
	if g == nil {
		return
	}
	cur := t.e.opts.Planner.Guard(now, d.Name, g.open, g.keys)
	if cur.Tripped == g.tripped {
		if cur.Tripped {
			g.reason = cur.Reason
		}
		return
	}
	event, action := repair.EventStorm, repair.AuditGuardTripped
	detail := cur.Reason + ": automatic repairs are held pending approval"
	if cur.Tripped {
		g.since = now
	} else {
		event, action = repair.EventStormCleared, repair.AuditGuardCleared
		detail = fmt.Sprintf("cleared (%d of %d keys have an open divergence): automatic repairs go out again; repairs held meanwhile stay pending", g.open, g.keys)
	}
	g.tripped, g.reason = cur.Tripped, cur.Reason
	ev := repair.Divergence{
		ID: repair.ID("storm", d.Name, g.since.Format(time.RFC3339Nano)), Event: event, Dataset: d.Name, Key: compare.Key{},
		Kind: repair.KindStorm, OpenedAt: g.since, DetectedAt: now, WindowMS: d.Window.Milliseconds(),
		Rationale: detail, RulesVersion: t.e.opts.RulesVersion, ConfigHash: d.ConfigHash,
	}
	if !cur.Tripped {
		at := now
		ev.ResolvedAt = &at
	}
	t.emit(t.e.opts.Outputs.Divergences, d.Name, "", compare.Key{}, "recon-kind", repair.KindStorm, ev.ID, ev)
	t.audit(d, now, state.AuditRecord{Action: action, Detail: detail})
	t.p.batch.PutGuardState(d.Name, state.GuardState{Tripped: g.tripped, Since: now, Reason: g.reason})
	tripped := g.tripped
	t.metric(func(m *Metrics) { m.guardTripped.WithLabelValues(d.Name).Set(boolGauge(tripped)) })
	t.e.log.Warn("blast-radius guard "+map[bool]string{true: "tripped", false: "cleared"}[tripped], "dataset", d.Name, "detail", detail)
}

func (e *Engine) setGuardGauge(dataset string, tripped bool) {
	if e.opts.Metrics != nil {
		e.opts.Metrics.guardTripped.WithLabelValues(dataset).Set(boolGauge(tripped))
	}
}

func boolGauge(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// TickGuards re-evaluates the guards that are tripped, so one that clears
// with time (the minute of max_per_minute ended) clears without waiting for
// the next divergence. The sweeper calls it every tick; it costs nothing
// while no guard is tripped.
func (e *Engine) TickGuards() error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.failed != nil {
		return e.failed
	}
	tx := e.begin()
	now := e.now().UTC()
	changed := false
	for name, g := range e.guards {
		if g.tripped {
			tx.checkGuard(e.datasets[name], now)
			changed = changed || !g.tripped
		}
	}
	if tx.err != nil {
		return e.fail(tx.err)
	}
	if changed {
		return e.flush()
	}
	return nil
}
