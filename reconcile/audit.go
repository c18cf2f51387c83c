package reconcile

import (
	"fmt"
	"slices"
	"time"

	"github.com/recon-dev/recon/repair"
	"github.com/recon-dev/recon/state"
)

// audit appends a record of a decision about dataset d to the pending
// checkpoint, so it is durable together with the decision, stamped with the
// rules version and the dataset's config hash. The actor is recon unless the
// record names a person.
func (t *txn) audit(d *Dataset, now time.Time, r state.AuditRecord) {
	if r.Actor == "" {
		r.Actor = repair.AuditActor
	}
	r.Time, r.Dataset = now, d.Name
	r.RulesVersion, r.ConfigHash = t.e.opts.RulesVersion, d.ConfigHash
	t.p.batch.AppendAudit(r)
}

// recordConfigs appends a config_changed audit record for every dataset whose
// rules version or config hash differs from the one it last ran with (or that
// never ran), and for every dataset gone from the config, before the engine
// decides anything under the new config. Datasets without a config hash are
// left alone: the caller does not track their config.
func (e *Engine) recordConfigs() error {
	stored, err := e.store.DatasetConfigs()
	if err != nil {
		return err
	}
	now := e.now().UTC()
	b := e.store.NewBatch()
	names := make([]string, 0, len(e.datasets))
	for name := range e.datasets {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		d := e.datasets[name]
		if d.ConfigHash == "" {
			continue
		}
		cur := state.DatasetConfig{RulesVersion: e.opts.RulesVersion, Hash: d.ConfigHash}
		old, known := stored[name]
		if known && old == cur {
			continue
		}
		b.AppendAudit(state.AuditRecord{Time: now, Actor: repair.AuditActor, Action: repair.AuditConfigChanged,
			Dataset: name, RulesVersion: cur.RulesVersion, ConfigHash: cur.Hash, Detail: configChange(old, known, cur)})
		b.PutDatasetConfig(name, cur)
	}
	gone := make([]string, 0, len(stored))
	for name := range stored {
		if e.datasets[name] == nil {
			gone = append(gone, name)
		}
	}
	slices.Sort(gone)
	for _, name := range gone {
		old := stored[name]
		b.AppendAudit(state.AuditRecord{Time: now, Actor: repair.AuditActor, Action: repair.AuditConfigChanged,
			Dataset: name, RulesVersion: e.opts.RulesVersion,
			Detail: fmt.Sprintf("dataset removed from config (config %s, rules version %s)", old.Hash, old.RulesVersion)})
		b.DeleteDatasetConfig(name)
	}
	if err := e.store.Commit(b); err != nil {
		return fmt.Errorf("recording config changes: %w", err)
	}
	return nil
}

func configChange(old state.DatasetConfig, known bool, cur state.DatasetConfig) string {
	if !known {
		return fmt.Sprintf("config (none) -> %s, rules version %s", cur.Hash, cur.RulesVersion)
	}
	s := fmt.Sprintf("config %s -> %s", old.Hash, cur.Hash)
	if old.Hash == cur.Hash {
		s = "config " + cur.Hash + " unchanged"
	}
	if old.RulesVersion != cur.RulesVersion {
		return s + fmt.Sprintf(", rules version %s -> %s", old.RulesVersion, cur.RulesVersion)
	}
	return s
}

// plannedDetail says what became of a planned repair.
func plannedDetail(r repair.Repair, outcome string) string {
	switch outcome {
	case "dry_run":
		return r.Action + " repair published as a dry run"
	case "pending":
		return r.Action + " repair pending approval"
	case "guarded":
		return r.Action + " repair held by the blast-radius guard"
	case "published":
		return r.Action + " repair to be published automatically"
	}
	return r.Action + " repair " + outcome
}
