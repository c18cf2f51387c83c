package reconcile

import (
	"fmt"
	"time"

	"github.com/recon-dev/recon/compare"
	"github.com/recon-dev/recon/repair"
	"github.com/recon-dev/recon/state"
)

// Verification by convergence. A repair published (automatically, approved
// by a person, or compensating a revert) gets a verification deadline one
// window after it was published. The pair converging before then, while the
// repair's divergence is open, verifies it (resolve); otherwise, at the
// deadline, the target holding what the repair writes verifies it (the source
// may have moved on since), and anything else fails it: the divergence stays
// open for a person. Dry runs are never verified: nothing applies them.

// verified marks a published repair verified: the target converged at at.
func (t *txn) verified(d *Dataset, rec *state.RepairRecord, at, now time.Time) {
	t.p.batch.MoveVerifyTimer(rec.ID, rec.VerifyBy, time.Time{})
	rec.State, rec.VerifyBy, rec.DecidedAt, rec.UpdatedAt = state.RepairVerified, time.Time{}, at, now
	latency := max(at.Sub(rec.PublishedAt), 0)
	rec.Reason = fmt.Sprintf("the target converged %s after it was published", latency.Round(time.Millisecond))
	t.putRepair(*rec)
	t.audit(d, now, state.AuditRecord{Action: repair.AuditVerified, Target: rec.Target, Key: rec.Key,
		DivergenceID: rec.DivergenceID, RepairID: rec.ID, Detail: rec.Reason})
	target, action, mode := rec.Target, rec.Action, rec.Mode
	t.metric(func(m *Metrics) {
		m.repairLatency.WithLabelValues(d.Name, target).Observe(latency.Seconds())
		m.repairs.WithLabelValues(d.Name, action, mode, "verified").Inc()
	})
}

// failedVerification marks a published repair failed.
func (t *txn) failedVerification(d *Dataset, rec *state.RepairRecord, now time.Time, why string) {
	t.p.batch.MoveVerifyTimer(rec.ID, rec.VerifyBy, time.Time{})
	rec.State, rec.VerifyBy, rec.DecidedAt, rec.UpdatedAt, rec.Reason = state.RepairFailed, time.Time{}, now, now, why
	t.putRepair(*rec)
	t.audit(d, now, state.AuditRecord{Action: repair.AuditFailed, Target: rec.Target, Key: rec.Key,
		DivergenceID: rec.DivergenceID, RepairID: rec.ID, Detail: why})
	action, mode := rec.Action, rec.Mode
	t.metric(func(m *Metrics) { m.repairs.WithLabelValues(d.Name, action, mode, "failed").Inc() })
	t.e.log.Warn("repair failed verification", "dataset", d.Name, "target", rec.Target, "id", rec.ID, "why", why)
}

// supersede closes a pending repair that will not be published.
func (t *txn) supersede(d *Dataset, rec *state.RepairRecord, now time.Time, why string) {
	rec.State, rec.UpdatedAt, rec.Reason = state.RepairSuperseded, now, why
	t.putRepair(*rec)
	t.audit(d, now, state.AuditRecord{Action: repair.AuditSuperseded, Target: rec.Target, Key: rec.Key,
		DivergenceID: rec.DivergenceID, RepairID: rec.ID, Detail: why})
	action, mode := rec.Action, rec.Mode
	t.metric(func(m *Metrics) { m.repairs.WithLabelValues(d.Name, action, mode, "superseded").Inc() })
}

// verifyDue decides a repair whose verification deadline passed.
func (t *txn) verifyDue(vt state.VerifyTimer, now time.Time) error {
	rec, err := t.e.store.Repair(vt.RepairID)
	if err != nil {
		return fmt.Errorf("reading repair %s to verify it: %w", vt.RepairID, err)
	}
	if rec == nil || rec.State != state.RepairPublished || !rec.VerifyBy.Equal(vt.Deadline) {
		// Decided, reverted, or published again since: the timer is stale.
		t.p.batch.MoveVerifyTimer(vt.RepairID, vt.Deadline, time.Time{})
		return nil
	}
	d, ok := t.e.datasets[rec.Dataset]
	if !ok {
		t.p.batch.MoveVerifyTimer(vt.RepairID, vt.Deadline, time.Time{})
		return nil // a dataset removed from config: nothing reads its target
	}
	ks, err := t.loadByString(d.Name, rec.Key, compare.Key{})
	if err != nil {
		return err
	}
	ts := ks.Targets[rec.Target]
	var head *state.Head
	if ts != nil {
		head = ts.Head
	}
	if holdsRepair(head, rec) {
		at := head.SeenAt
		if at.Before(rec.PublishedAt) {
			at = rec.PublishedAt
		}
		t.verified(d, rec, at, now)
		return nil
	}
	if tt, ok := d.target(rec.Target); ok && !t.e.opts.Progress.CaughtUp(tt.Topic, vt.Deadline, rec.PublishedAt, d.Window) {
		// The target's input is not read up to the deadline (recon just
		// restarted, say): the repair may well be applied in what is still
		// unread. The timer stays due; a later sweep decides, as for a
		// window under the watermark rule.
		return nil
	}
	holds := "no row"
	if head != nil && !head.Deleted {
		holds = "a row with digest " + head.Digest.String()
	}
	want := "no row"
	if rec.Action == repair.ActionUpsert {
		want = "digest " + rec.ExpectedDigest.String()
	}
	if rec.Action == repair.ActionUpsert && rec.ExpectedDigest.IsZero() {
		want = "the row it restores"
	}
	t.failedVerification(d, rec, now, fmt.Sprintf("the target did not converge within %s after the repair was published: it holds %s, the repair writes %s",
		d.Window, holds, want))
	return nil
}

// holdsRepair reports whether a target head is what the repair writes. A
// revert by reference (an upsert whose row recon does not know) writes the
// row whose digest the compensating repair expects.
func holdsRepair(h *state.Head, rec *state.RepairRecord) bool {
	if rec.Action == repair.ActionDelete {
		return h == nil || h.Deleted
	}
	return h != nil && !h.Deleted && !rec.ExpectedDigest.IsZero() && h.Digest == rec.ExpectedDigest
}
