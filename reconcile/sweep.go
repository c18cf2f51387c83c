package reconcile

import (
	"context"
	"fmt"
	"time"

	"github.com/recon-dev/recon/compare"
	"github.com/recon-dev/recon/repair"
	"github.com/recon-dev/recon/state"
)

// SweepResult says what one sweep did.
type SweepResult struct {
	Fired   int // verdicts opened
	Waiting int // expired windows held back by the watermark rule
	// Held says the sweep stopped early because the outbox is full; the
	// windows left are fired once the publisher drains it.
	Held bool
}

// Sweep fires the windows that expired by now. A window fires only once the
// source and target topics are known to be read far enough (Progress), so
// recon's own consumer lag never looks like a divergence; a window that must
// wait keeps its timer and is tried again at the next sweep. With a Gate, a
// sweep fires nothing once the outbox is full: the timers stay due, and the
// verdicts come late rather than grow the outbox without bound.
func (e *Engine) Sweep(ctx context.Context, limit int) (SweepResult, error) {
	var res SweepResult
	e.mu.Lock()
	defer e.mu.Unlock()
	// Due timers are read from the store: what is pending goes there first.
	if err := e.flush(); err != nil {
		return res, err
	}
	now := e.now().UTC()
	var err error
	var timers []state.Timer
	if g := e.opts.Gate; g != nil && !g.Admits(0) {
		res.Held = true // no verdict fits in the outbox: leave the timers due
	} else if timers, err = e.store.DueTimers(now, limit); err != nil {
		return res, err
	}
	verifies, err := e.store.DueVerifyTimers(now, limit)
	if err != nil {
		return res, err
	}
	if len(timers) == 0 && len(verifies) == 0 {
		e.setWaiting(0)
		return res, nil
	}
	e.trim()
	tx := e.begin()
	for _, vt := range verifies {
		if err := tx.verifyDue(vt, now); err != nil {
			return res, e.fail(err)
		}
	}
	for _, tm := range timers {
		if ctx.Err() != nil {
			break
		}
		if g := e.opts.Gate; g != nil && !g.Admits(tx.p.batch.OutboxBytes()) {
			res.Held = true
			break
		}
		fired, waiting, err := tx.fire(tm, now)
		if err != nil {
			return res, e.fail(err)
		}
		if fired {
			res.Fired++
		}
		if waiting {
			res.Waiting++
		}
	}
	if tx.err != nil {
		return res, e.fail(tx.err)
	}
	// Verdicts are durable before Sweep returns.
	if err := e.flush(); err != nil {
		return res, err
	}
	e.setWaiting(res.Waiting)
	return res, nil
}

func (e *Engine) setWaiting(n int) {
	if e.opts.Metrics != nil {
		e.opts.Metrics.waiting.Set(float64(n))
	}
}

func (t *txn) fire(tm state.Timer, now time.Time) (fired, waiting bool, err error) {
	d, ok := t.e.datasets[tm.Dataset]
	if !ok {
		// A dataset removed from config: its timers can only be dropped.
		t.p.moveTimer(tm.Dataset, tm.Target, tm.Key, tm.Deadline, time.Time{})
		return false, false, nil
	}
	ks, err := t.loadByString(d.Name, tm.Key, compare.Key{})
	if err != nil {
		return false, false, err
	}
	ts := ks.Targets[tm.Target]
	if ts == nil || !ts.Deadline.Equal(tm.Deadline) {
		// Stale: the window moved or closed after this timer was written.
		t.p.moveTimer(d.Name, tm.Target, tm.Key, tm.Deadline, time.Time{})
		return false, false, nil
	}
	p := t.pair(d, ks, tm.Target)
	st := compare.Assess(p, d.Window)
	switch {
	case st.InSync || !st.Judged:
		t.setDeadline(d, ts, tm.Key, tm.Target, time.Time{})
		return false, false, nil
	case st.Deadline.After(now):
		t.setDeadline(d, ts, tm.Key, tm.Target, st.Deadline.UTC())
		return false, false, nil
	}
	tt, ok := d.target(tm.Target)
	if !ok {
		// A target removed from config: nothing reads it, so its windows
		// would wait forever and crowd the due timers.
		t.setDeadline(d, ts, tm.Key, tm.Target, time.Time{})
		return false, false, nil
	}
	change := st.Basis.EventTime
	if !t.e.opts.Progress.CaughtUp(d.Source.Topic, tm.Deadline, change, d.Window) {
		return false, true, nil
	}
	if !t.e.opts.Progress.CaughtUp(tt.Topic, tm.Deadline, change, d.Window) {
		return false, true, nil
	}
	v := compare.Classify(p)
	t.setDeadline(d, ts, tm.Key, tm.Target, time.Time{})
	if ts.Open != nil {
		if ts.Open.Kind == string(v.Kind) {
			return false, false, nil
		}
		t.resolve(d, ks, tm.Key, tm.Target, ts, now, fmt.Sprintf("the divergence became %s", v.Kind), false)
	}
	t.open(d, ks, tm.Key, tm.Target, ts, st, v, tm.Deadline, now)
	return true, false, nil
}

func (d *Dataset) target(name string) (System, bool) {
	for _, t := range d.Targets {
		if t.Name == name {
			return t, true
		}
	}
	return System{}, false
}

// open records a verdict: the divergence event, its planned repair, and the
// open divergence in the key state, all in the same commit.
func (t *txn) open(d *Dataset, ks *state.KeyState, key, target string, ts *state.TargetState, st compare.Status, v compare.Verdict, deadline, now time.Time) {
	src := sourceState(ks)
	tgt := targetState(ts)
	srcVer, tgtVer := "", ""
	if src != nil {
		srcVer = src.Version
	}
	if tgt != nil {
		tgtVer = tgt.Version
	}
	id := repair.ID("divergence", d.Name, target, key, string(v.Kind), srcVer, tgtVer)
	ev := repair.Divergence{
		ID: id, Event: "opened", Dataset: d.Name, Target: target, Key: ks.Key, Kind: string(v.Kind),
		Source: src, TargetState: tgt,
		OpenedAt: deadline.Add(-d.Window), DetectedAt: now, WindowMS: d.Window.Milliseconds(),
		Rationale: v.Rationale, RulesVersion: t.e.opts.RulesVersion, ConfigHash: d.ConfigHash,
	}
	body := t.emit(t.e.opts.Outputs.Divergences, d.Name, target, ks.Key, "recon-kind", string(v.Kind), id, ev)
	t.audit(d, now, state.AuditRecord{Action: repair.AuditOpened, Target: target, Key: key, DivergenceID: id,
		Detail: string(v.Kind) + ": " + v.Rationale})
	open := &state.Divergence{ID: id, Kind: string(v.Kind), OpenedAt: ev.OpenedAt, DetectedAt: now}
	if ks.Source != nil {
		open.SourceVersion = ks.Source.Version
	}
	ts.Open = open
	if g := t.e.guards[d.Name]; g != nil {
		g.open++
	}
	delay := now.Sub(deadline).Seconds()
	kind := string(v.Kind)
	t.metric(func(m *Metrics) {
		m.opened.WithLabelValues(d.Name, target, kind).Inc()
		m.open.WithLabelValues(d.Name, target, kind).Inc()
		m.detection.WithLabelValues(d.Name, target).Observe(delay)
	})
	t.e.log.Info("divergence opened", "dataset", d.Name, "target", target, "kind", kind, "id", id)
	t.checkGuard(d, now)
	t.planRepair(d, ks, key, target, ts, v, id, now)
	t.putDivergence(state.DivergenceRecord{ID: id, Dataset: d.Name, Target: target, Key: key, Kind: kind,
		State: state.DivergenceOpen, OpenedAt: ev.OpenedAt, DetectedAt: now, Rationale: v.Rationale,
		RepairID: ts.Open.RepairID, Event: body})
}

func (t *txn) putDivergence(r state.DivergenceRecord) {
	t.p.batch.PutDivergence(r)
	t.p.records++
}

func (t *txn) putRepair(r state.RepairRecord) {
	t.p.batch.PutRepair(r)
	t.p.records++
}

func (t *txn) planRepair(d *Dataset, ks *state.KeyState, key, target string, ts *state.TargetState, v compare.Verdict, divID string, now time.Time) {
	in := repair.Input{
		Dataset: d.Name, Target: target, Key: ks.Key, Kind: v.Kind, DivergenceID: divID,
		SourceDeleted: ks.Source == nil || ks.Source.Deleted, Rationale: v.Rationale,
		RulesVersion: t.e.opts.RulesVersion, ConfigHash: d.ConfigHash,
	}
	if ks.Source != nil {
		in.SourceVersion = ks.Source.Version
		in.ExpectedDigest = ks.Source.Digest
	}
	if ts.Head != nil && !ts.Head.Deleted {
		in.PreviousDigest = ts.Head.Digest
	}
	if tt, ok := d.target(target); ok {
		if ks.SourceRow != nil {
			in.After = tt.systemRow(ks.SourceRow)
		}
		if row := targetRow(ks, ts); row != nil {
			in.Before = tt.systemRow(row)
		}
	}
	plan := t.e.opts.Planner.Plan(now, in)
	if plan.Decision == repair.None {
		return
	}
	r := plan.Repair
	// A repair a person rejected or reverted is not planned again: the
	// divergence stays open with it, for a person to look at.
	old, err := t.e.store.Repair(r.ID)
	if err != nil {
		t.fail(fmt.Errorf("reading repair %s before planning it: %w", r.ID, err))
		return
	}
	if old != nil && (old.State == state.RepairRejected || old.State == state.RepairReverted) {
		ts.Open.RepairID = r.ID
		t.audit(d, now, state.AuditRecord{Action: repair.AuditRepairPlanned, Target: target, Key: key,
			DivergenceID: divID, RepairID: r.ID, Detail: fmt.Sprintf("%s repair not planned again: it was %s by %s", r.Action, old.State, old.Actor)})
		return
	}
	rec := state.RepairRecord{
		ID: r.ID, DivergenceID: divID, Dataset: d.Name, Target: target, Key: key, Kind: r.Kind,
		Action: r.Action, CreatedAt: now, UpdatedAt: now, Mode: r.Mode,
		SourceVersion: r.SourceVersion, ExpectedDigest: r.ExpectedDigest, PreviousDigest: r.PreviousDigest,
	}
	outcome := "published"
	switch {
	case plan.Decision == repair.Publish && r.DryRun:
		rec.State, outcome = state.RepairDryRun, "dry_run"
	case plan.Decision == repair.Publish:
		rec.State = state.RepairPublished
		rec.PublishedAt, rec.VerifyBy = now, now.Add(d.Window)
	case plan.Guarded:
		rec.State, outcome = state.RepairPending, "guarded"
	default:
		rec.State, outcome = state.RepairPending, "pending"
	}
	body, err := repair.Marshal(r)
	if err != nil {
		t.fail(fmt.Errorf("rendering repair %s: %w", r.ID, err))
		return
	}
	if plan.Decision == repair.Publish {
		t.emitRendered(t.e.opts.Outputs.Repairs, d.Name, target, key, "recon-action", r.Action, r.ID, body)
	}
	rec.Event = body
	if old != nil && !old.VerifyBy.IsZero() {
		t.p.batch.MoveVerifyTimer(r.ID, old.VerifyBy, time.Time{})
	}
	t.p.batch.MoveVerifyTimer(r.ID, time.Time{}, rec.VerifyBy)
	t.putRepair(rec)
	t.audit(d, now, state.AuditRecord{Action: repair.AuditRepairPlanned, Target: target, Key: key,
		DivergenceID: divID, RepairID: r.ID, Detail: plannedDetail(r, outcome)})
	if rec.State == state.RepairPublished {
		// An auditor looking for every repair that went out finds the
		// automatic ones under the same action as the approved ones.
		t.audit(d, now, state.AuditRecord{Action: repair.AuditPublished, Target: target, Key: key,
			DivergenceID: divID, RepairID: r.ID, Detail: r.Action + " repair published automatically (" + r.Kind + " is in auto_kinds)"})
	}
	ts.Open.RepairID = r.ID
	action, mode := r.Action, r.Mode
	t.metric(func(m *Metrics) { m.repairs.WithLabelValues(d.Name, action, mode, outcome).Inc() })
}

// targetRow is the row the target holds, in dataset column names, if known:
// its own kept row, or the source's when it holds that.
func targetRow(ks *state.KeyState, ts *state.TargetState) compare.Row {
	switch {
	case ts == nil || ts.Head == nil || ts.Head.Deleted:
		return nil
	case ts.Row != nil:
		return ts.Row
	case inSyncWith(ts.Head, ks.Source):
		return ks.SourceRow
	}
	return nil
}

// resolve closes an open divergence with a resolved event. converged says
// the pair is in sync: a published repair of the divergence is then
// verified, and one still pending is superseded.
func (t *txn) resolve(d *Dataset, ks *state.KeyState, key, target string, ts *state.TargetState, now time.Time, why string, converged bool) {
	o := ts.Open
	at := now
	ev := repair.Divergence{
		ID: o.ID, Event: "resolved", Dataset: d.Name, Target: target, Key: ks.Key, Kind: o.Kind,
		Source: sourceState(ks), TargetState: targetState(ts),
		OpenedAt: o.OpenedAt, DetectedAt: o.DetectedAt, ResolvedAt: &at, WindowMS: d.Window.Milliseconds(),
		Rationale: why, RulesVersion: t.e.opts.RulesVersion, ConfigHash: d.ConfigHash,
	}
	body := t.emit(t.e.opts.Outputs.Divergences, d.Name, target, ks.Key, "recon-kind", o.Kind, o.ID, ev)
	t.audit(d, now, state.AuditRecord{Action: repair.AuditResolved, Target: target, Key: key,
		DivergenceID: o.ID, RepairID: o.RepairID, Detail: why})
	if o.RepairID != "" {
		// Repair records are written in folds only here, and every other
		// writer of them flushes before it returns: the store is current.
		rec, err := t.e.store.Repair(o.RepairID)
		switch {
		case err != nil:
			t.fail(fmt.Errorf("reading repair %s to close it: %w", o.RepairID, err))
		case rec == nil:
		case rec.State == state.RepairPending:
			t.supersede(d, rec, now, "no longer needed: "+why)
		case rec.State == state.RepairPublished && converged:
			t.verified(d, rec, now, now)
		}
	}
	dr, err := t.e.store.Divergence(o.ID)
	if err != nil {
		t.fail(fmt.Errorf("reading divergence %s to resolve it: %w", o.ID, err))
	} else {
		if dr == nil {
			dr = &state.DivergenceRecord{ID: o.ID, Dataset: d.Name, Target: target, Key: key, Kind: o.Kind,
				OpenedAt: o.OpenedAt, DetectedAt: o.DetectedAt}
		}
		dr.State, dr.ResolvedAt, dr.Resolution, dr.RepairID, dr.Event = state.DivergenceResolved, now, why, o.RepairID, body
		t.putDivergence(*dr)
	}
	if g := t.e.guards[d.Name]; g != nil {
		g.open--
		t.checkGuard(d, now)
	}
	ts.Open = nil
	kind := o.Kind
	t.metric(func(m *Metrics) {
		m.resolved.WithLabelValues(d.Name, target, kind).Inc()
		m.open.WithLabelValues(d.Name, target, kind).Dec()
	})
	t.e.log.Info("divergence resolved", "dataset", d.Name, "target", target, "kind", kind, "id", o.ID)
}

// emit renders an output event into the outbox and returns it.
func (t *txn) emit(topic, dataset, target string, key compare.Key, hdr, hdrVal, id string, v any) []byte {
	body, err := repair.Marshal(v)
	if err != nil {
		t.fail(fmt.Errorf("rendering output event %s: %w", id, err))
		return nil
	}
	t.emitRendered(topic, dataset, target, key.String(), hdr, hdrVal, id, body)
	return body
}

// emitRendered puts a rendered event in the outbox; key is the canonical key.
func (t *txn) emitRendered(topic, dataset, target, key, hdr, hdrVal, id string, body []byte) {
	t.p.batch.AppendOutbox(state.OutboxRecord{
		Topic: topic, Key: []byte(dataset + "/" + target + "/" + key), Value: body,
		Headers: []state.Header{
			{Key: "recon-dataset", Value: []byte(dataset)},
			{Key: hdr, Value: []byte(hdrVal)},
			{Key: "recon-id", Value: []byte(id)},
		},
	})
	t.p.outboxed++
}

func sourceState(ks *state.KeyState) *repair.SourceState {
	if ks.Source == nil {
		return nil
	}
	h := ks.Source
	return &repair.SourceState{Version: h.Version.String(), Digest: h.Digest, Deleted: h.Deleted, EventTime: h.EventTime}
}

func targetState(ts *state.TargetState) *repair.TargetState {
	if ts == nil || ts.Head == nil {
		return nil
	}
	h := ts.Head
	out := &repair.TargetState{Version: h.Version.String(), Digest: h.Digest, Deleted: h.Deleted, SeenAt: h.SeenAt}
	if !ts.Reflects.IsZero() {
		out.Reflects = ts.Reflects.String()
	}
	return out
}

// systemRow renders a dataset row in the system's own column names.
func (s System) systemRow(row compare.Row) compare.Row {
	if s.Rules != nil {
		return s.Rules.SystemRow(row)
	}
	return toTargetNames(row, s.Rename)
}

// toTargetNames renders a dataset row in a target's own column names.
func toTargetNames(row compare.Row, rename map[string]string) compare.Row {
	if len(rename) == 0 {
		return row
	}
	back := make(map[string]string, len(rename))
	for sys, ds := range rename {
		back[ds] = sys
	}
	out := make(compare.Row, len(row))
	for c, v := range row {
		if n, ok := back[c]; ok {
			c = n
		}
		out[c] = v
	}
	return out
}

// RunSweeper fires expired windows until ctx is done. It checks the earliest
// deadline every tick: a seek in the timer index, cheap when nothing is due.
// It also checkpoints changes left pending when input stops, and before a
// pending deadline is due.
func (e *Engine) RunSweeper(ctx context.Context, tick time.Duration) error {
	t := time.NewTicker(tick)
	defer t.Stop()
	const limit = 1000
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		if err := e.checkpointIfDue(); err != nil {
			return err
		}
		if err := e.TickGuards(); err != nil {
			return err
		}
		due, err := e.somethingDue()
		if err != nil {
			return err
		}
		if !due {
			e.setWaiting(0)
			continue
		}
		for ctx.Err() == nil {
			res, err := e.Sweep(ctx, limit)
			if err != nil {
				return fmt.Errorf("sweeping expired windows: %w", err)
			}
			// Timers that wait on the watermark stay due; stop once a pass
			// fired nothing new so they are retried at the next tick.
			if res.Held || res.Fired == 0 || res.Fired+res.Waiting < limit {
				break
			}
		}
	}
}

// somethingDue reports whether a window or a repair verification is due.
func (e *Engine) somethingDue() (bool, error) {
	now := e.now()
	next, ok, err := e.store.NextDeadline()
	if err != nil {
		return false, fmt.Errorf("reading the next deadline: %w", err)
	}
	if ok && !next.After(now) {
		return true, nil
	}
	next, ok, err = e.store.NextVerifyDeadline()
	if err != nil {
		return false, err
	}
	return ok && !next.After(now), nil
}

// checkpointIfDue starts a checkpoint that is due by age, and completes one
// holding a deadline that is due: the sweep reads timers from the store.
func (e *Engine) checkpointIfDue() error {
	e.mu.Lock()
	defer e.mu.Unlock()
	now := time.Now()
	switch {
	case e.pend.minDeadline <= e.now().UnixNano():
		return e.flush()
	case e.pend.due(e.opts.CheckpointEvery, now):
		return e.checkpointIfReady()
	}
	// Let a finished checkpoint report its outcome.
	if e.inflight != nil && len(e.inflight) > 0 {
		return e.waitInflight()
	}
	return e.failed
}
