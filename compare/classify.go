package compare

import (
	"fmt"
	"time"
)

// DivergenceKind names how a target disagrees with the source (DESIGN §4).
type DivergenceKind string

const (
	Missing  DivergenceKind = "missing"
	Orphan   DivergenceKind = "orphan"
	Lagging  DivergenceKind = "lagging"
	Conflict DivergenceKind = "conflict"
)

// SourceVersion is one remembered source change of a key.
type SourceVersion struct {
	Version   Version
	Digest    Digest
	Deleted   bool
	SeenAt    time.Time
	EventTime time.Time
}

// TargetRow is a target's newest change of a key.
type TargetRow struct {
	Version Version
	Digest  Digest
	Deleted bool
	SeenAt  time.Time
	// Cols are the row's column hashes; nil when unknown. Classify names the
	// columns that differ from the source head's.
	Cols Columns
}

// Pair is what is known of one key in the source and one target.
type Pair struct {
	// Source holds recent source versions, oldest first, the head last; empty
	// when the source never showed the key.
	Source []SourceVersion
	// SourceComplete says the source topic holds every live key, so a key it
	// never showed is known not to exist.
	SourceComplete bool
	// Target is nil when the target never showed the key.
	Target *TargetRow
	// Lineage is the source version the target row says it derives from; zero if none.
	Lineage Version
	// SourceCols are the column hashes of the source head's row; nil when
	// unknown or deleted. State keeps them for the head only, not for history.
	SourceCols Columns
}

// Status is the standing of a pair after an event or a sweep.
type Status struct {
	InSync bool
	// Judged is false when nothing can be concluded: the source never showed the
	// key and is not complete.
	Judged bool
	// Reflects is the source version the target is known to reflect; zero if none.
	Reflects Version
	// Matched reports whether the target row matches a known source version (or
	// trusted lineage). An unmatched live row is a local write.
	Matched bool
	// Deadline is when the pair's window expires; set when Judged && !InSync.
	Deadline time.Time
	// Basis is the source change the deadline is tied to (zero for a row the
	// source never showed); its EventTime feeds the watermark rule.
	Basis SourceVersion
}

func (p Pair) head() (SourceVersion, bool) {
	if len(p.Source) == 0 {
		return SourceVersion{}, false
	}
	return p.Source[len(p.Source)-1], true
}

// targetLive reports whether the target currently holds a live row.
func (p Pair) targetLive() bool { return p.Target != nil && !p.Target.Deleted }

// matches reports whether source version s is what the target holds: both
// absent, or both live with equal digests.
func (p Pair) matches(s SourceVersion) bool {
	if !p.targetLive() {
		return s.Deleted
	}
	return !s.Deleted && s.Digest == p.Target.Digest
}

// reflects finds the source version the target reflects. Lineage wins when the
// history confirms it or cannot (the version was trimmed or is not read yet);
// lineage contradicted by the history is no match at all.
func (p Pair) reflects() (Version, bool) {
	if !p.Lineage.IsZero() {
		for _, s := range p.Source {
			if s.Version == p.Lineage {
				if p.matches(s) {
					return s.Version, true
				}
				return Version{}, false
			}
		}
		return p.Lineage, true
	}
	for i := len(p.Source) - 1; i >= 0; i-- {
		if p.matches(p.Source[i]) {
			return p.Source[i].Version, true
		}
	}
	return Version{}, false
}

// Assess decides whether a pair is in sync and, if not, when its window
// expires. The deadline is tied to the oldest source version the target does
// not yet reflect, so a hot key whose versions each arrive within the window is
// never flagged, while a target stuck on one version is flagged one window after
// the first version it missed. A row that matches no source version starts its
// window no earlier than when it was seen.
func Assess(p Pair, window time.Duration) Status {
	head, known := p.head()
	if !known {
		if !p.targetLive() {
			return Status{InSync: true, Judged: true}
		}
		if !p.SourceComplete {
			return Status{}
		}
		return Status{Judged: true, Deadline: p.Target.SeenAt.Add(window)}
	}
	if p.matches(head) && (p.Lineage.IsZero() || p.Lineage.Compare(head.Version) <= 0) {
		return Status{InSync: true, Judged: true, Reflects: head.Version, Matched: true}
	}
	st := Status{Judged: true}
	st.Reflects, st.Matched = p.reflects()

	// The oldest version newer than what the target reflects is the one it missed.
	basis, found := SourceVersion{}, false
	for _, s := range p.Source {
		if s.Version.Compare(st.Reflects) > 0 {
			basis, found = s, true
			break
		}
	}
	at := basis.SeenAt
	if !found {
		// The target claims a version recon has not read from the source yet.
		at = time.Time{}
	}
	if !st.Matched || !found {
		if p.Target != nil && p.Target.SeenAt.After(at) {
			at = p.Target.SeenAt
		}
	}
	st.Basis = basis
	st.Deadline = at.Add(window)
	return st
}

// Verdict is the classification of a pair whose window expired.
type Verdict struct {
	Kind      DivergenceKind
	Rationale string
}

// Classify says how an out-of-sync pair diverges. Call it only for a pair that
// Assess found judged and not in sync.
func Classify(p Pair) Verdict {
	head, known := p.head()
	st := Assess(p, 0)
	switch {
	case !known:
		return Verdict{Orphan, fmt.Sprintf("the source (complete) never showed the key; the target holds it at version %s", p.Target.Version)}
	case !head.Deleted && !p.targetLive():
		if p.Target == nil {
			return Verdict{Missing, fmt.Sprintf("the source holds the key at version %s; the target never had it", head.Version)}
		}
		return Verdict{Missing, fmt.Sprintf("the source holds the key at version %s; the target deleted it at version %s", head.Version, p.Target.Version)}
	case head.Deleted && p.targetLive():
		return Verdict{Orphan, fmt.Sprintf("the source deleted the key at version %s; the target still holds it at version %s", head.Version, p.Target.Version)}
	case st.Matched && !st.Reflects.IsZero() && st.Reflects.Compare(head.Version) < 0:
		return Verdict{Lagging, fmt.Sprintf("the target's row equals source version %s; the source head is %s", st.Reflects, head.Version)}
	case st.Matched && st.Reflects.Compare(head.Version) > 0:
		return Verdict{Conflict, fmt.Sprintf("the target claims source version %s, which the source never showed (head %s)", st.Reflects, head.Version)}
	default:
		why := fmt.Sprintf("the target's row (version %s, digest %s) equals no known source version; the source head is %s (digest %s)", p.Target.Version, p.Target.Digest, head.Version, head.Digest)
		if !head.Deleted {
			why += columnDiff(p.SourceCols, p.Target.Cols)
		}
		return Verdict{Conflict, why}
	}
}
