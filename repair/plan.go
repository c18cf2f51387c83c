package repair

import (
	"time"

	"github.com/recon-dev/recon/compare"
)

// Modes of a dataset's repair policy.
const (
	ModeOff     = "off"
	ModeDryRun  = "dry-run"
	ModeApprove = "approve"
	ModeAuto    = "auto"
)

// Policy is a dataset's repair policy.
type Policy struct {
	Mode         string
	AutoKinds    []string
	Payload      string // full | reference
	MaxPerMinute int
}

func (p Policy) autoKind(k string) bool {
	for _, a := range p.AutoKinds {
		if a == k {
			return true
		}
	}
	return false
}

// Input is an opened divergence to plan a repair for.
type Input struct {
	Dataset, Target string
	Key             compare.Key
	Kind            compare.DivergenceKind
	DivergenceID    string
	SourceVersion   compare.Version
	SourceDeleted   bool // the source no longer holds the key: delete
	ExpectedDigest  compare.Digest
	PreviousDigest  compare.Digest
	After           compare.Row // the source row in the target's column names (payload: full)
	Rationale       string
	RulesVersion    string
	ConfigHash      string
}

// Decision says what to do with a planned repair.
type Decision int

const (
	// None: the policy plans no repair (mode off).
	None Decision = iota
	// Publish: publish the repair now (auto kinds, and dry-run flagged as such).
	Publish
	// Hold: keep the repair pending for a person (approve mode, kinds outside
	// auto_kinds, or the blast-radius guard tripped).
	Hold
)

// Plan is the outcome of planning one repair.
type Plan struct {
	Decision Decision
	Repair   Repair
	// Guarded is set when the blast-radius guard held a repair that the policy
	// would have published.
	Guarded bool
}

// Planner applies datasets' policies. The blast-radius guard is the only state:
// repairs published per dataset in the current minute.
type Planner struct {
	policies map[string]Policy
	minute   map[string]guardWindow
}

type guardWindow struct {
	start time.Time
	count int
}

// NewPlanner returns a planner for the given policies by dataset.
func NewPlanner(policies map[string]Policy) *Planner {
	return &Planner{policies: policies, minute: make(map[string]guardWindow)}
}

// Plan plans the repair of one opened divergence at time now. Not safe for
// concurrent use: the engine calls it from its single writer.
func (pl *Planner) Plan(now time.Time, in Input) Plan {
	pol, ok := pl.policies[in.Dataset]
	if !ok || pol.Mode == ModeOff || pol.Mode == "" {
		return Plan{Decision: None}
	}
	action := ActionUpsert
	if in.Kind == compare.Orphan || in.SourceDeleted {
		action = ActionDelete
	}
	r := Repair{
		// The precondition is part of the id: after a repair was applied and a
		// stale write undid it, the next repair of the same source version is
		// a different repair, which a consumer deduplicating by id must apply.
		ID:             ID(in.Dataset, in.Target, in.Key.String(), in.SourceVersion.String(), action, in.PreviousDigest.String()),
		DivergenceID:   in.DivergenceID,
		Dataset:        in.Dataset,
		Target:         in.Target,
		Key:            in.Key,
		Action:         action,
		Kind:           string(in.Kind),
		SourceVersion:  in.SourceVersion.String(),
		ExpectedDigest: in.ExpectedDigest,
		PreviousDigest: in.PreviousDigest,
		Mode:           ModeAuto,
		DryRun:         pol.Mode == ModeDryRun,
		CreatedAt:      now,
		Rationale:      in.Rationale,
		RulesVersion:   in.RulesVersion,
		ConfigHash:     in.ConfigHash,
	}
	if action == ActionUpsert && pol.Payload != "reference" {
		r.After = in.After
	}
	if action == ActionDelete {
		r.ExpectedDigest = compare.Digest{}
	}
	switch {
	case pol.Mode == ModeDryRun:
		return Plan{Decision: Publish, Repair: r}
	case pol.Mode == ModeApprove, pol.Mode == ModeAuto && !pol.autoKind(string(in.Kind)):
		r.Mode = "approved" // the mode it will carry once a person approves it
		return Plan{Decision: Hold, Repair: r}
	}
	if !pl.allow(now, in.Dataset, pol.MaxPerMinute) {
		r.Mode = "approved"
		return Plan{Decision: Hold, Repair: r, Guarded: true}
	}
	return Plan{Decision: Publish, Repair: r}
}

// allow counts one automatic repair against the dataset's per-minute budget.
func (pl *Planner) allow(now time.Time, dataset string, max int) bool {
	if max <= 0 {
		return true
	}
	w := pl.minute[dataset]
	if now.Sub(w.start) >= time.Minute || now.Before(w.start) {
		w = guardWindow{start: now}
	}
	if w.count >= max {
		pl.minute[dataset] = w
		return false
	}
	w.count++
	pl.minute[dataset] = w
	return true
}
