package sim

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
)

// settled reports whether the run is over: every injected divergence was
// flagged, every verdict resolved, the replica holds the source's data for
// every key, and nothing is left in flight — no record in the producer, none
// unread by recon, no open window in recon's store, no event in its outbox,
// none unread by the observer and the repair consumer. Only then can no late
// verdict, false or not, escape the report.
func (r *runner) settled(ctx context.Context) (bool, error) {
	if len(r.pending) > 0 || r.prod.BufferedProduceRecords() > 0 {
		return false, nil
	}
	flagged := make(map[int64]map[string]bool)
	for _, ev := range r.obs.openedEvents() {
		if !r.obs.isResolved(ev.ID) {
			return false, nil
		}
		if flagged[ev.keyID] == nil {
			flagged[ev.keyID] = make(map[string]bool)
		}
		flagged[ev.keyID][ev.Kind] = true
	}
	for id, kind := range r.wl.expected {
		if !flagged[id][string(kind)] {
			return false, nil
		}
	}
	diverged, _, err := r.diverged(1)
	if err != nil || len(diverged) > 0 {
		return false, err
	}
	if quiet, err := r.reconQuiet(ctx); !quiet || err != nil {
		return false, err
	}
	return r.readersCaughtUp(ctx)(), nil
}

// diverged lists up to limit keys whose replica row differs from the
// source's, with a description of each.
func (r *runner) diverged(limit int) (ids []int64, out []string, err error) {
	for id := int64(1); id < r.wl.nextID && len(out) < limit; id++ {
		var src *Order
		if o, ok := r.wl.src.Row(id); ok {
			src = &o
		}
		var tgt *Row
		if row, ok := r.replica.Row(id); ok {
			tgt = &row
		}
		same, err := r.dg.same(src, tgt)
		if err != nil {
			return nil, nil, err
		}
		if !same {
			ids = append(ids, id)
			out = append(out, describeDiff(id, src, tgt))
		}
	}
	return ids, out, nil
}

func describeDiff(id int64, src *Order, tgt *Row) string {
	show := func(o *Order) string {
		if o == nil {
			return "no row"
		}
		return fmt.Sprintf("amount %s status %s quantity %d", amountText(o.Amount), o.Status, o.Quantity)
	}
	var t *Order
	if tgt != nil {
		t = &tgt.Order
	}
	return fmt.Sprintf("key %d: source %s, replica %s", id, show(src), show(t))
}

// reconQuiet asks recon's store whether it has read every input record and
// has no open window and no unpublished event left.
func (r *runner) reconQuiet(ctx context.Context) (bool, error) {
	if r.sup != nil {
		return r.sup.quiet(ctx, r.opts.Partitions)
	}
	st := r.pipe.Store()
	if _, pending, err := st.NextDeadline(); err != nil || pending {
		return false, err
	}
	if n, _ := st.OutboxDepth(); n > 0 {
		return false, nil
	}
	offs, err := st.Offsets()
	if err != nil {
		return false, err
	}
	ends, err := r.adm.ListEndOffsets(ctx, SourceTopic, TargetTopic)
	if err != nil {
		return false, err
	}
	if err := ends.Error(); err != nil {
		return false, err
	}
	read := true
	ends.Each(func(o kadm.ListedOffset) {
		if o.Offset > offs[o.Topic][o.Partition] {
			read = false
		}
	})
	return read, nil
}

// readersCaughtUp is a condition: the observer and the repair consumer have
// read everything recon published.
func (r *runner) readersCaughtUp(ctx context.Context) func() bool {
	return func() bool {
		a, err := r.obs.caughtUp(ctx, r.adm)
		if err != nil || !a {
			return false
		}
		b, err := r.rc.caughtUp(ctx, r.adm)
		if err != nil || !b {
			return false
		}
		c, err := r.dlq.caughtUp(ctx, r.adm)
		return err == nil && c
	}
}

func (r *runner) isLate(id int64) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.late[id]
}

// report compares the ground truth with what recon published.
func (r *runner) report(t timings) *Report {
	rep := &Report{Options: r.opts, Settled: t.settled, Workload: t.workload, Settle: t.settle,
		Memory: r.mem.summary(t.workload)}
	wl := r.wl
	flagged := make(map[int64]map[string]bool)
	var delays []time.Duration
	var all []Verdict
	for _, ev := range r.obs.openedEvents() {
		v := Verdict{ID: ev.ID, KeyID: ev.keyID, Kind: ev.Kind, Expected: string(wl.expected[ev.keyID]),
			OpenedAt: ev.OpenedAt, Detected: ev.DetectedAt, Resolved: r.obs.isResolved(ev.ID), LateCopy: r.isLate(ev.keyID)}
		all = append(all, v)
		rep.Opened++
		if !r.rc.repaired(ev.ID) {
			rep.Unrepaired = append(rep.Unrepaired, v)
		}
		if v.Resolved {
			rep.Resolved++
		} else {
			rep.Unresolved = append(rep.Unresolved, v)
		}
		expiry := ev.OpenedAt.Add(time.Duration(ev.WindowMS) * time.Millisecond)
		delays = append(delays, ev.DetectedAt.Sub(expiry))
		switch {
		case v.Kind != v.Expected:
			rep.FalsePositives = append(rep.FalsePositives, v)
		case flagged[v.KeyID][v.Kind]:
			rep.Reopened++
		}
		if flagged[v.KeyID] == nil {
			flagged[v.KeyID] = make(map[string]bool)
		}
		flagged[v.KeyID][v.Kind] = true
	}
	rep.DetectionP50, rep.DetectionP99 = percentile(delays, 50), percentile(delays, 99)

	detected := make(map[string]int)
	var undetected []int64
	for _, id := range slices.Sorted(maps.Keys(wl.expected)) {
		kind := string(wl.expected[id])
		if flagged[id][kind] {
			detected[kind]++
		} else {
			undetected = append(undetected, id)
			rep.Undetected = append(rep.Undetected, fmt.Sprintf("key %d: %s", id, kind))
		}
	}
	for _, k := range Kinds {
		rep.Kinds = append(rep.Kinds, KindCount{Kind: k, Injected: wl.injected[k], Detected: detected[string(k)]})
	}

	r.obs.mu.Lock()
	rep.DuplicateIDs, rep.BadEvents = r.obs.duplicates, slices.Clone(r.obs.bad)
	resolvedAt := maps.Clone(r.obs.resolved)
	r.obs.mu.Unlock()
	rep.Repairs = r.rc.counts()
	if r.sup != nil {
		c := r.sup.snapshot()
		rep.Chaos = &c
	}
	rep.DeadLettered = r.dlq.records()

	rep.KeysTotal = int(wl.nextID - 1)
	divergedIDs, diverged, err := r.diverged(rep.KeysTotal)
	if err != nil {
		diverged = append(diverged, "comparing rows: "+err.Error())
	}
	rep.Diverged = diverged
	rep.KeysConverged = rep.KeysTotal - len(diverged)

	// The story of the first key that went wrong in each way.
	shown := make(map[int64]bool)
	timeline := func(id int64, focus, format string, args ...any) {
		if !shown[id] {
			shown[id] = true
			rep.Timelines = append(rep.Timelines, Timeline{Title: fmt.Sprintf(format, args...), Lines: r.trace.timeline(id, all, resolvedAt, focus)})
		}
	}
	// A false positive the simulator cannot be blamed for comes first.
	fps := slices.Clone(rep.FalsePositives)
	slices.SortStableFunc(fps, func(a, b Verdict) int {
		return cmpBool(a.LateCopy, b.LateCopy)
	})
	if len(fps) > 0 {
		v := fps[0]
		timeline(v.KeyID, v.Kind, "key %d, false positive %s", v.KeyID, v.Kind)
	}
	if len(undetected) > 0 {
		timeline(undetected[0], "", "key %d, undetected %s", undetected[0], wl.expected[undetected[0]])
	}
	if len(rep.Unresolved) > 0 {
		v := rep.Unresolved[0]
		timeline(v.KeyID, "", "key %d, unresolved %s", v.KeyID, v.Kind)
	}
	if len(divergedIDs) > 0 {
		timeline(divergedIDs[0], "", "key %d, not converged", divergedIDs[0])
	}
	r.mu.Lock()
	rep.LateCopies, rep.MaxCopyDelay = len(r.late), r.maxDelay
	r.mu.Unlock()
	rep.Inserts, rep.Updates, rep.Deletes = wl.inserts, wl.updates, wl.deletes
	rep.TargetWrites = r.replica.Writes()
	rep.NoiseDupSource, rep.NoiseSlow = wl.noiseCount.dupSrc, wl.noiseCount.slow
	rep.NoiseDupTarget, rep.NoiseRedelivered = r.replica.noiseCounts()
	return rep
}

func cmpBool(a, b bool) int {
	switch {
	case a == b:
		return 0
	case a:
		return 1
	}
	return -1
}
