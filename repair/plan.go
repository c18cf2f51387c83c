package repair

import (
	"fmt"
	"strings"
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
	// MaxDivergentRatio trips the guard when more than this fraction of the
	// dataset's keys have an open divergence (0 disables it). See Guard.
	MaxDivergentRatio float64
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
	Before          compare.Row // the target's row the repair replaces, in its column names, if known (payload: full)
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

// Planner applies datasets' policies. The blast-radius guard is its only
// state: repairs published per dataset in the current minute, and whether the
// divergent ratio tripped.
type Planner struct {
	policies map[string]Policy
	minute   map[string]guardWindow
	ratio    map[string]bool // the ratio trigger is tripped
}

type guardWindow struct {
	start time.Time
	count int
	held  bool // a repair was held for want of budget in this minute
}

// NewPlanner returns a planner for the given policies by dataset.
func NewPlanner(policies map[string]Policy) *Planner {
	return &Planner{policies: policies, minute: make(map[string]guardWindow), ratio: make(map[string]bool)}
}

// GuardMinOpen is how many divergences a dataset must have open before the
// divergent ratio can trip its guard: a small dataset's first divergences are
// not a storm.
const GuardMinOpen = 10

// Guard is the state of a dataset's blast-radius guard. While it is
// tripped, automatic repairs are held pending for a person.
type Guard struct {
	Tripped bool
	// Reason names the triggers and their figures.
	Reason string
}

// Guard evaluates the blast-radius guard of dataset at now, given how many
// of its keys have an open divergence (open) among the keys it has seen
// (keys). It trips when more than max_divergent_ratio of the keys diverge
// (with at least GuardMinOpen open) and clears once the ratio is back to
// half of it, so that it does not flap at the edge; or, while the current
// minute lasts, when a repair was held because max_per_minute were already
// published in it. Only auto mode has automatic repairs to guard.
// Plan holds automatic repairs while the ratio trigger is tripped: call Guard
// with fresh figures before Plan.
func (pl *Planner) Guard(now time.Time, dataset string, open, keys int64) Guard {
	pol, ok := pl.policies[dataset]
	if !ok || pol.Mode != ModeAuto {
		return Guard{}
	}
	var reasons []string
	ratio := float64(open) / float64(max(keys, 1))
	tripped := pl.ratio[dataset]
	switch {
	case pol.MaxDivergentRatio <= 0:
		tripped = false
	case !tripped && open >= GuardMinOpen && ratio > pol.MaxDivergentRatio:
		tripped = true
	case tripped && ratio <= pol.MaxDivergentRatio/2:
		tripped = false
	}
	pl.ratio[dataset] = tripped
	if tripped {
		reasons = append(reasons, fmt.Sprintf("%d of %d keys (%.1f%%) have an open divergence, above max_divergent_ratio %g",
			open, keys, 100*ratio, pol.MaxDivergentRatio))
	}
	if w := pl.minute[dataset]; w.held && inMinute(now, w.start) {
		reasons = append(reasons, fmt.Sprintf("%d automatic repairs published in the minute since %s, the max_per_minute",
			w.count, w.start.UTC().Format(time.RFC3339)))
	}
	if len(reasons) == 0 {
		return Guard{}
	}
	return Guard{Tripped: true, Reason: strings.Join(reasons, "; ")}
}

func inMinute(now, start time.Time) bool { return !now.Before(start) && now.Sub(start) < time.Minute }

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
	if pol.Payload != "reference" && !in.PreviousDigest.IsZero() {
		r.Before = in.Before
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
	if pl.ratio[in.Dataset] || !pl.allow(now, in.Dataset, pol.MaxPerMinute) {
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
	if !inMinute(now, w.start) {
		w = guardWindow{start: now}
	}
	if w.count >= max {
		w.held = true
		pl.minute[dataset] = w
		return false
	}
	w.count++
	pl.minute[dataset] = w
	return true
}
