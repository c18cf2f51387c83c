package reconcile

// Repair governance: what people do to repairs, through the API.
//
// Every method takes the engine's lock (it is the single writer), validates,
// changes state through the pending checkpoint together with an audit record
// (actor, rules version, config hash), and returns only once that checkpoint
// is durable. Errors callers branch on:
//
//   - ErrInvalid: the request itself is wrong (an empty actor): 400.
//   - ErrNotFound: no such repair, dataset or key: 404.
//   - ErrConflict, as a *ConflictError carrying the repair's state and the
//     reason: the repair is not in a state that allows it, or no longer
//     needed: 409. errors.As gives the record as it now stands.
//   - ErrBadCursor: a page cursor no listing returned: 400.
//   - anything else: the engine or the store failed: 500.
//
// Methods:
//
//   - ApproveRepair(ctx, id, actor): pending -> published. The stored repair
//     event is published as rendered at planning, with mode "approved" and
//     approved_by actor, and verification starts. Refused unless pending. A
//     repair whose pair converged, or whose target or source changed since it
//     was planned, is superseded instead (ConflictError.Reason says why;
//     when the divergence is still open a fresh repair is planned for it,
//     named in ConflictError.Replacement).
//   - RejectRepair(ctx, id, actor, reason): pending -> rejected. The
//     divergence stays open; the same repair is never planned again.
//   - RevertRepair(ctx, id, actor): for a published, verified or failed
//     repair, publishes a compensating repair and marks the original
//     reverted; returns the compensating repair. Its id is derived from the
//     original's; its precondition (previous_digest) is the digest the
//     original wrote (for a failed repair: what the target holds now, if it
//     changed after the publish); it deletes the row when the original
//     created it (previous_digest empty), and otherwise upserts the row the
//     original replaced: with payload full and the row known, after is that
//     row; else after is null and expected_digest names the row to restore
//     (a revert by reference). Refused for a compensating repair, a repair
//     reverted already, a dry run and one never published.
//   - Repair(id), Repairs(RepairFilter), Divergences(DivergenceFilter):
//     records, newest first, paged by an opaque cursor.
//   - Explain(dataset, key): everything about one key (KeyExplanation).
//   - Guards(): the blast-radius guard of every dataset (guard.go).
//
// Repair states (state.RepairRecord.State): pending, published, verified,
// failed, rejected, superseded, reverted, dry_run. Divergence states: open,
// resolved.

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/recon-dev/recon/compare"
	"github.com/recon-dev/recon/repair"
	"github.com/recon-dev/recon/state"
)

// Errors of the governance methods; see the comment at the top of the file.
var (
	ErrInvalid   = errors.New("invalid request")
	ErrNotFound  = errors.New("not found")
	ErrConflict  = errors.New("conflict")
	ErrBadCursor = state.ErrBadCursor
)

// ConflictError says why an operation on a repair was refused.
type ConflictError struct {
	Op     string             // approve, reject or revert
	Repair state.RepairRecord // as it stands after the refusal
	Reason string
	// Replacement is the id of a repair planned in place of a superseded
	// one, if any.
	Replacement string
}

func (e *ConflictError) Error() string {
	s := fmt.Sprintf("cannot %s repair %s (%s): %s", e.Op, e.Repair.ID, e.Repair.State, e.Reason)
	if e.Replacement != "" {
		s += "; repair " + e.Replacement + " replaces it"
	}
	return s
}

// Is makes errors.Is(err, ErrConflict) hold.
func (e *ConflictError) Is(target error) bool { return target == ErrConflict }

func notFound(what, id string) error { return fmt.Errorf("%s %q: %w", what, id, ErrNotFound) }

// governed runs op under the engine's lock on the repair record id, current
// with everything folded, and makes what op changed durable before returning.
func (e *Engine) governed(ctx context.Context, opName, id, actor string, op func(tx *txn, d *Dataset, rec *state.RepairRecord, now time.Time) error) error {
	if actor == "" {
		return fmt.Errorf("an actor is required: %w", ErrInvalid)
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	// Records written by folds wait in the pending checkpoint: make them
	// durable so that the store is current.
	if err := e.flush(); err != nil {
		return err
	}
	rec, err := e.store.Repair(id)
	if err != nil {
		return err
	}
	if rec == nil {
		return notFound("repair", id)
	}
	d, ok := e.datasets[rec.Dataset]
	if !ok {
		return &ConflictError{Op: opName, Repair: *rec, Reason: "its dataset " + rec.Dataset + " is no longer configured"}
	}
	tx := e.begin()
	opErr := op(tx, d, rec, e.now().UTC())
	if tx.err != nil {
		return e.fail(tx.err)
	}
	if err := e.flush(); err != nil {
		return err
	}
	return opErr
}

// ApproveRepair publishes a pending repair on behalf of actor; see the top
// of the file.
func (e *Engine) ApproveRepair(ctx context.Context, id, actor string) (state.RepairRecord, error) {
	var out state.RepairRecord
	err := e.governed(ctx, "approve", id, actor, func(tx *txn, d *Dataset, rec *state.RepairRecord, now time.Time) error {
		out = *rec
		if rec.State != state.RepairPending {
			return &ConflictError{Op: "approve", Repair: *rec, Reason: "only a pending repair can be approved"}
		}
		s, err := repair.ParseStored(rec.Event)
		if err != nil {
			return err
		}
		ks, err := tx.loadByString(d.Name, rec.Key, compare.Key{})
		if err != nil {
			return err
		}
		if why := stale(d, ks, rec, &s); why != "" {
			why += " (on approval by " + actor + ")"
			tx.supersede(d, rec, now, why)
			out = *rec
			cerr := &ConflictError{Op: "approve", Repair: *rec, Reason: why}
			ts := ks.Targets[rec.Target]
			if ts != nil && ts.Open != nil && ts.Open.RepairID == rec.ID {
				st := compare.Assess(pair(d, ks, rec.Target), d.Window)
				if !st.InSync {
					tx.planRepair(d, ks, rec.Key, rec.Target, ts, compare.Classify(pair(d, ks, rec.Target)), ts.Open.ID, now)
					if ts.Open.RepairID != rec.ID {
						cerr.Replacement = ts.Open.RepairID
						if err := tx.relinkDivergence(ts.Open.ID, ts.Open.RepairID); err != nil {
							return err
						}
					}
				}
			}
			return cerr
		}
		s.Mode, s.ApprovedBy = "approved", actor
		body, err := repair.Marshal(s)
		if err != nil {
			return fmt.Errorf("rendering repair %s: %w", rec.ID, err)
		}
		tx.emitRendered(e.opts.Outputs.Repairs, d.Name, rec.Target, rec.Key, "recon-action", s.Action, rec.ID, body)
		rec.State, rec.Mode, rec.Actor, rec.Event, rec.UpdatedAt = state.RepairPublished, "approved", actor, body, now
		rec.PublishedAt, rec.VerifyBy = now, now.Add(d.Window)
		tx.p.batch.MoveVerifyTimer(rec.ID, time.Time{}, rec.VerifyBy)
		tx.putRepair(*rec)
		tx.auditBy(d, now, actor, state.AuditRecord{Action: repair.AuditApproved, Target: rec.Target, Key: rec.Key,
			DivergenceID: rec.DivergenceID, RepairID: rec.ID, Detail: rec.Action + " repair approved"})
		tx.audit(d, now, state.AuditRecord{Action: repair.AuditPublished, Target: rec.Target, Key: rec.Key,
			DivergenceID: rec.DivergenceID, RepairID: rec.ID, Detail: rec.Action + " repair published, approved by " + actor})
		action := rec.Action
		tx.metric(func(m *Metrics) { m.repairs.WithLabelValues(d.Name, action, "approved", "approved").Inc() })
		out = *rec
		return nil
	})
	return out, err
}

// stale says why a pending repair no longer fits its key, or "": the pair
// converged, its divergence is closed or has another repair, or the source
// or the target moved since it was planned (the person reviewed a row that
// is no longer the one to write, or a precondition that no longer holds).
func stale(d *Dataset, ks *state.KeyState, rec *state.RepairRecord, s *repair.Stored) string {
	ts := ks.Targets[rec.Target]
	if compare.Assess(pair(d, ks, rec.Target), d.Window).InSync {
		return "no longer needed: the target converged with the source"
	}
	if ts == nil || ts.Open == nil || (ts.Open.ID != rec.DivergenceID && ts.Open.RepairID != rec.ID) {
		return "its divergence " + rec.DivergenceID + " is no longer open"
	}
	if ts.Open.RepairID != rec.ID {
		return "its divergence is now repaired by " + ts.Open.RepairID
	}
	src := ""
	if ks.Source != nil {
		src = ks.Source.Version.String()
	}
	if src != s.SourceVersion {
		return fmt.Sprintf("the source changed since it was planned (version %s, now %s)", s.SourceVersion, src)
	}
	var holds compare.Digest
	if ts.Head != nil && !ts.Head.Deleted {
		holds = ts.Head.Digest
	}
	if holds != s.PreviousDigest {
		return "the target changed since it was planned: its precondition no longer holds"
	}
	return ""
}

// RejectRepair closes a pending repair on behalf of actor; see the top of
// the file.
func (e *Engine) RejectRepair(ctx context.Context, id, actor, reason string) (state.RepairRecord, error) {
	var out state.RepairRecord
	err := e.governed(ctx, "reject", id, actor, func(tx *txn, d *Dataset, rec *state.RepairRecord, now time.Time) error {
		out = *rec
		if rec.State != state.RepairPending {
			return &ConflictError{Op: "reject", Repair: *rec, Reason: "only a pending repair can be rejected"}
		}
		rec.State, rec.Actor, rec.Reason, rec.UpdatedAt = state.RepairRejected, actor, reason, now
		tx.putRepair(*rec)
		detail := rec.Action + " repair rejected"
		if reason != "" {
			detail += ": " + reason
		}
		tx.auditBy(d, now, actor, state.AuditRecord{Action: repair.AuditRejected, Target: rec.Target, Key: rec.Key,
			DivergenceID: rec.DivergenceID, RepairID: rec.ID, Detail: detail})
		action, mode := rec.Action, rec.Mode
		tx.metric(func(m *Metrics) { m.repairs.WithLabelValues(d.Name, action, mode, "rejected").Inc() })
		out = *rec
		return nil
	})
	return out, err
}

// RevertRepair publishes the compensating repair of a published repair on
// behalf of actor, and returns it; see the top of the file.
func (e *Engine) RevertRepair(ctx context.Context, id, actor string) (state.RepairRecord, error) {
	var out state.RepairRecord
	err := e.governed(ctx, "revert", id, actor, func(tx *txn, d *Dataset, rec *state.RepairRecord, now time.Time) error {
		refuse := func(why string) error { return &ConflictError{Op: "revert", Repair: *rec, Reason: why} }
		switch {
		case rec.Reverts != "":
			return refuse("it is itself the revert of repair " + rec.Reverts + ": a compensating repair is not reverted")
		case rec.State == state.RepairReverted:
			return refuse("it was reverted already, by repair " + rec.RevertedBy)
		case rec.State == state.RepairDryRun:
			return refuse("a dry run is not meant to be applied, so there is nothing to revert")
		case rec.State != state.RepairPublished && rec.State != state.RepairVerified && rec.State != state.RepairFailed:
			return refuse("it was never published")
		}
		s, err := repair.ParseStored(rec.Event)
		if err != nil {
			return err
		}
		ks, err := tx.loadByString(d.Name, rec.Key, compare.Key{})
		if err != nil {
			return err
		}
		// The precondition: the row the repair wrote. A failed repair did
		// not leave what it meant to; if the target changed after it was
		// published, what it holds now is the repair's doing.
		pre := s.ExpectedDigest
		if rec.State == state.RepairFailed {
			ts := ks.Targets[rec.Target]
			if ts == nil || ts.Head == nil || !ts.Head.SeenAt.After(rec.PublishedAt) {
				return refuse("the target shows no change since the repair was published: there is nothing to revert")
			}
			pre = compare.Digest{}
			if !ts.Head.Deleted {
				pre = ts.Head.Digest
			}
		}
		c := compensating(d, &s, rec, pre, actor, e.opts.RulesVersion, now)
		body, err := repair.Marshal(c)
		if err != nil {
			return fmt.Errorf("rendering the revert of repair %s: %w", rec.ID, err)
		}
		tx.emitRendered(e.opts.Outputs.Repairs, d.Name, rec.Target, rec.Key, "recon-action", c.Action, c.ID, body)
		comp := state.RepairRecord{
			ID: c.ID, DivergenceID: rec.DivergenceID, Dataset: d.Name, Target: rec.Target, Key: rec.Key, Kind: rec.Kind,
			Action: c.Action, State: state.RepairPublished, CreatedAt: now, UpdatedAt: now, Mode: "approved", Actor: actor,
			Reason: c.Rationale, SourceVersion: c.SourceVersion, ExpectedDigest: c.ExpectedDigest, PreviousDigest: c.PreviousDigest,
			PublishedAt: now, VerifyBy: now.Add(d.Window), Reverts: rec.ID, Event: body,
		}
		tx.p.batch.MoveVerifyTimer(comp.ID, time.Time{}, comp.VerifyBy)
		tx.putRepair(comp)
		tx.p.batch.MoveVerifyTimer(rec.ID, rec.VerifyBy, time.Time{})
		rec.State, rec.RevertedBy, rec.Actor, rec.UpdatedAt, rec.VerifyBy = state.RepairReverted, comp.ID, actor, now, time.Time{}
		rec.Reason = "reverted by " + actor + " through repair " + comp.ID
		tx.putRepair(*rec)
		tx.auditBy(d, now, actor, state.AuditRecord{Action: repair.AuditReverted, Target: rec.Target, Key: rec.Key,
			DivergenceID: rec.DivergenceID, RepairID: rec.ID, Detail: "compensating repair " + comp.ID + ": " + c.Rationale})
		tx.audit(d, now, state.AuditRecord{Action: repair.AuditPublished, Target: rec.Target, Key: rec.Key,
			DivergenceID: rec.DivergenceID, RepairID: comp.ID, Detail: c.Action + " repair published, reverting " + rec.ID + " for " + actor})
		action, mode, caction := rec.Action, rec.Mode, c.Action
		tx.metric(func(m *Metrics) {
			m.repairs.WithLabelValues(d.Name, action, mode, "reverted").Inc()
			m.repairs.WithLabelValues(d.Name, caction, "approved", "published").Inc()
		})
		out = comp
		return nil
	})
	return out, err
}

// compensating derives the repair that undoes s, whose target now holds the
// row with digest pre.
func compensating(d *Dataset, s *repair.Stored, rec *state.RepairRecord, pre compare.Digest, actor, rules string, now time.Time) repair.Stored {
	c := repair.Stored{
		ID: repair.ID("revert", rec.ID), DivergenceID: s.DivergenceID, Dataset: s.Dataset, Target: s.Target, Key: s.Key,
		Kind: s.Kind, SourceVersion: s.SourceVersion, PreviousDigest: pre, After: []byte("null"), Before: []byte("null"),
		Mode: "approved", ApprovedBy: actor, CreatedAt: now, RulesVersion: rules, ConfigHash: d.ConfigHash, Reverts: rec.ID,
	}
	if s.Action == repair.ActionUpsert && !s.ExpectedDigest.IsZero() {
		c.Before = s.After // what the target holds now, if the repair applied
	}
	switch {
	case s.PreviousDigest.IsZero():
		c.Action = repair.ActionDelete
		c.Rationale = fmt.Sprintf("revert of repair %s by %s: the target held no row before it, so the row it wrote is deleted", rec.ID, actor)
	case repair.HasRow(s.Before):
		c.Action, c.ExpectedDigest, c.After = repair.ActionUpsert, s.PreviousDigest, s.Before
		c.Rationale = fmt.Sprintf("revert of repair %s by %s: restores the target's previous row", rec.ID, actor)
	default:
		c.Action, c.ExpectedDigest = repair.ActionUpsert, s.PreviousDigest
		c.Rationale = fmt.Sprintf("revert of repair %s by %s: restores, by reference, the target's previous row with digest %s (recon does not hold the row itself)",
			rec.ID, actor, s.PreviousDigest)
	}
	return c
}

// relinkDivergence points a divergence record at its new repair.
func (t *txn) relinkDivergence(divID, repairID string) error {
	dr, err := t.e.store.Divergence(divID)
	if err != nil || dr == nil {
		return err
	}
	dr.RepairID = repairID
	t.putDivergence(*dr)
	return nil
}

// auditBy appends an audit record of a decision a person made.
func (t *txn) auditBy(d *Dataset, now time.Time, actor string, r state.AuditRecord) {
	r.Actor = actor
	t.audit(d, now, r)
}
