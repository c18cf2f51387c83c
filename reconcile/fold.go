package reconcile

import (
	"fmt"
	"slices"
	"time"

	"github.com/recon-dev/recon/compare"
	"github.com/recon-dev/recon/state"
)

// fold applies one change event. Events are idempotent: a version already
// folded in changes nothing and an older one only enters the history, so
// duplicates and redelivery never produce a verdict by themselves.
func (t *txn) fold(ev *compare.ChangeEvent, now time.Time) error {
	d, ok := t.e.datasets[ev.Dataset]
	if !ok {
		return fmt.Errorf("event for unknown dataset %q", ev.Dataset)
	}
	ks, key, err := t.load(d.Name, ev.Key)
	if err != nil {
		return err
	}
	var changed bool
	if ev.System == d.Source.Name {
		changed = t.foldSource(d, ks, ev, now)
	} else {
		changed = t.foldTarget(d, ks, ev, now)
	}
	if !changed {
		t.count(eventCount{ev.Dataset, ev.System, ""})
		return nil
	}
	t.count(eventCount{ev.Dataset, ev.System, ev.Op.String()})
	if ev.System == d.Source.Name {
		for _, tg := range d.Targets {
			t.reassess(d, ks, key, tg.Name, now, false)
		}
		return nil
	}
	t.reassess(d, ks, key, ev.System, now, true)
	return nil
}

// eventCount labels the per-event counters; an empty op counts an ignored
// event. Counting per batch keeps a closure and a label lookup per event off
// the single writer's path.
type eventCount struct{ dataset, system, op string }

func (t *txn) count(c eventCount) {
	if t.e.opts.Metrics != nil {
		t.p.counts[c]++
	}
}

// head digests an event's row, keeping the previous values of columns the
// event marks unchanged (Postgres TOAST).
func (t *txn) head(ev *compare.ChangeEvent, prev *state.Head, now time.Time) *state.Head {
	h := &state.Head{Version: ev.Version, Deleted: ev.Op == compare.OpDelete, EventTime: ev.EventTime.UTC(), SeenAt: now, Partition: ev.Partition}
	if h.Deleted {
		return h
	}
	h.Cols = ev.Cols
	if h.Cols == nil {
		h.Cols = t.e.opts.Hasher.Columns(ev.Row)
	}
	if len(ev.Unchanged) == 0 && !ev.Digest.IsZero() {
		h.Digest = ev.Digest
		return h
	}
	for _, c := range ev.Unchanged {
		if prev != nil && !prev.Deleted {
			if v, ok := prev.Cols.Get(c); ok {
				h.Cols = h.Cols.With(c, v)
				continue
			}
		}
		t.metric(func(m *Metrics) { m.toastUnresolved.WithLabelValues(ev.Dataset, ev.System).Inc() })
	}
	h.Digest = t.e.opts.Hasher.Digest(h.Cols)
	return h
}

func (t *txn) foldSource(d *Dataset, ks *state.KeyState, ev *compare.ChangeEvent, now time.Time) bool {
	if ks.Source != nil {
		switch c := ev.Version.Compare(ks.Source.Version); {
		case c == 0:
			return false
		case c < 0:
			return t.insertHistory(ks, ev, now)
		}
	}
	prevRow, prevHead := ks.SourceRow, ks.Source
	h := t.head(ev, ks.Source, now)
	ks.Source = h
	ks.SourceChanges++
	ks.History = append(ks.History, state.HistoryEntry{Version: h.Version, Digest: h.Digest, Deleted: h.Deleted, EventTime: h.EventTime, SeenAt: h.SeenAt})
	if n := len(ks.History); n > state.HistoryLen {
		ks.History = slices.Delete(ks.History, 0, n-state.HistoryLen)
	}
	if d.PayloadFull {
		if _, err := ev.FullRow(); err != nil {
			t.fail(fmt.Errorf("normalizing the row of %s key %s: %w", ev.System, ev.Key, err))
		}
		switch {
		case h.Deleted:
			ks.SourceRow = nil
		case len(ev.Unchanged) == 0:
			// Events are not changed once decoded: the row can be shared.
			ks.SourceRow = ev.Row
		default:
			row := make(compare.Row, len(ev.Row)+len(ev.Unchanged))
			for c, v := range ev.Row {
				row[c] = v
			}
			for _, c := range ev.Unchanged {
				if v, ok := prevRow[c]; ok {
					row[c] = v
				}
			}
			ks.SourceRow = row
		}
		keepTargetRows(ks, prevHead, prevRow)
	}
	return true
}

// keepTargetRows keeps, in payload: full mode, the row of each target that
// held the source's previous row: the source moved on, so SourceRow no longer
// tells what the target holds, and a repair overwriting it must be able to
// put it back. A target that now matches the new head holds SourceRow again.
// Rows are shared, never changed once made.
func keepTargetRows(ks *state.KeyState, prevHead *state.Head, prevRow compare.Row) {
	for _, ts := range ks.Targets {
		if ts == nil || ts.Head == nil || ts.Head.Deleted {
			continue
		}
		switch {
		case inSyncWith(ts.Head, ks.Source):
			ts.Row = nil
		case ts.Row == nil && prevRow != nil && inSyncWith(ts.Head, prevHead):
			ts.Row = prevRow
		}
	}
}

// inSyncWith reports whether a target head holds the source head's row.
func inSyncWith(h, src *state.Head) bool {
	return h != nil && src != nil && !h.Deleted && !src.Deleted && h.Digest == src.Digest
}

// keepTargetRow sets ts.Row after a target change, in payload: full mode: the
// target's row, unless it is the source's (then SourceRow holds it). Columns
// the event marks unchanged keep the target's previous values.
// The row is only built here, when it is kept: decoding left it to be built
// on demand (compare.ChangeEvent.FullRow).
func (t *txn) keepTargetRow(d *Dataset, ks *state.KeyState, ts *state.TargetState, ev *compare.ChangeEvent, prevHead *state.Head) {
	prevRow := ts.Row
	if prevRow == nil && inSyncWith(prevHead, ks.Source) {
		prevRow = ks.SourceRow
	}
	ts.Row = nil
	if !d.PayloadFull || ts.Head.Deleted || inSyncWith(ts.Head, ks.Source) {
		return
	}
	evRow, err := ev.FullRow()
	if err != nil {
		t.fail(fmt.Errorf("normalizing the row of %s key %s: %w", ev.System, ev.Key, err))
		return
	}
	if evRow == nil {
		return
	}
	if len(ev.Unchanged) == 0 {
		ts.Row = evRow
		return
	}
	row := make(compare.Row, len(evRow)+len(ev.Unchanged))
	for c, v := range evRow {
		row[c] = v
	}
	for _, c := range ev.Unchanged {
		if v, ok := prevRow[c]; ok {
			row[c] = v
		}
	}
	ts.Row = row
}

// insertHistory records a source version older than the head: it may be what
// a lagging target holds.
func (t *txn) insertHistory(ks *state.KeyState, ev *compare.ChangeEvent, now time.Time) bool {
	i, found := slices.BinarySearchFunc(ks.History, ev.Version, func(h state.HistoryEntry, v compare.Version) int {
		return h.Version.Compare(v)
	})
	if found || (len(ks.History) >= state.HistoryLen && i == 0) {
		return false
	}
	h := t.head(ev, nil, now)
	ks.History = slices.Insert(ks.History, i, state.HistoryEntry{Version: h.Version, Digest: h.Digest, Deleted: h.Deleted, EventTime: h.EventTime, SeenAt: h.SeenAt})
	if n := len(ks.History); n > state.HistoryLen {
		ks.History = slices.Delete(ks.History, 0, n-state.HistoryLen)
	}
	return true
}

func (t *txn) foldTarget(d *Dataset, ks *state.KeyState, ev *compare.ChangeEvent, now time.Time) bool {
	ts := ks.Targets[ev.System]
	if ts == nil {
		ts = &state.TargetState{}
		ks.Targets[ev.System] = ts
	}
	if ts.Head != nil && ev.Version.Compare(ts.Head.Version) <= 0 {
		return false
	}
	prevHead := ts.Head
	ts.Head = t.head(ev, ts.Head, now)
	ts.Changes++
	t.keepTargetRow(d, ks, ts, ev, prevHead)
	ts.Lineage = ev.Lineage
	if ev.Op == compare.OpDelete {
		// A delete's lineage comes from its before image: the version the
		// row had, not the delete it applies. A deleted row matches any
		// source delete by itself.
		ts.Lineage = compare.Version{}
	}
	return true
}

// pair builds the comparison view of one (key, target).
func pair(d *Dataset, ks *state.KeyState, target string) compare.Pair {
	return new(pairScratch).build(d, ks, target)
}

// pairScratch backs comparison views so that the hot path builds them
// without allocating: a view is valid until the next build.
type pairScratch struct {
	source []compare.SourceVersion
	target compare.TargetRow
}

func (s *pairScratch) build(d *Dataset, ks *state.KeyState, target string) compare.Pair {
	p := compare.Pair{SourceComplete: d.SourceComplete}
	if ks.Source != nil {
		src := s.source[:0]
		for _, h := range ks.History {
			src = append(src, compare.SourceVersion{Version: h.Version, Digest: h.Digest, Deleted: h.Deleted, SeenAt: h.SeenAt, EventTime: h.EventTime})
		}
		s.source = src
		p.Source = src
		if !ks.Source.Deleted {
			p.SourceCols = ks.Source.Cols // lets a conflict name the columns that differ
		}
	}
	if ts := ks.Targets[target]; ts != nil {
		if ts.Head != nil {
			s.target = compare.TargetRow{Version: ts.Head.Version, Digest: ts.Head.Digest, Deleted: ts.Head.Deleted, SeenAt: ts.Head.SeenAt, Cols: ts.Head.Cols}
			p.Target = &s.target
		}
		p.Lineage = ts.Lineage
	}
	return p
}

// pair is the transaction's view of one (key, target), valid until its next.
func (t *txn) pair(d *Dataset, ks *state.KeyState, target string) compare.Pair {
	return t.scratch.build(d, ks, target)
}

// reassess re-judges one (key, target) after a change: in sync closes the
// window and resolves an open divergence; otherwise the window's deadline
// follows the oldest source version the target does not reflect yet.
func (t *txn) reassess(d *Dataset, ks *state.KeyState, key, target string, now time.Time, byTarget bool) {
	p := t.pair(d, ks, target)
	st := compare.Assess(p, d.Window)
	ts := ks.Targets[target]
	if ts == nil {
		if st.InSync || !st.Judged {
			return
		}
		ts = &state.TargetState{}
		ks.Targets[target] = ts
	}
	ts.Reflects = st.Reflects
	ts.LocalWrite = p.Target != nil && !p.Target.Deleted && !st.Matched
	if st.InSync {
		if (!ts.Deadline.IsZero() || ts.Open != nil) && byTarget && ks.Source != nil {
			lag := now.Sub(ks.Source.SeenAt).Seconds()
			t.metric(func(m *Metrics) { m.convergence.WithLabelValues(d.Name, target).Observe(lag) })
		}
		t.setDeadline(d, ts, key, target, time.Time{})
		if ts.Open != nil {
			t.resolve(d, ks, key, target, ts, now, "the target converged with the source", true)
		}
		return
	}
	if !st.Judged {
		t.setDeadline(d, ts, key, target, time.Time{})
		return
	}
	t.setDeadline(d, ts, key, target, st.Deadline.UTC())
}

func (t *txn) setDeadline(d *Dataset, ts *state.TargetState, key, target string, at time.Time) {
	if ts.Deadline.Equal(at) {
		return
	}
	t.p.moveTimer(d.Name, target, key, ts.Deadline, at)
	ts.Deadline = at
}
