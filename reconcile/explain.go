package reconcile

import (
	"encoding/json"
	"fmt"
	"slices"
	"time"

	"github.com/recon-dev/recon/compare"
	"github.com/recon-dev/recon/state"
)

// Reads for people and tools. They are consistent with what the engine has
// folded: records a fold wrote are made durable first, and a key state is
// read from the engine's cache, which may be newer than the store.

// Page sizes of Repairs and Divergences.
const (
	DefaultPageSize = 100
	MaxPageSize     = 1000
)

// RepairFilter selects repairs; empty fields select all.
type RepairFilter struct {
	Dataset, Target string
	State           string // a state.Repair* state
	Cursor          string // from the previous page's Next
	Limit           int    // default DefaultPageSize, at most MaxPageSize
}

// RepairPage is one page of repairs, newest first. Next is the cursor of the
// next page; empty on the last page.
type RepairPage struct {
	Repairs []state.RepairRecord
	Next    string
}

// DivergenceFilter selects divergences; empty fields select all.
type DivergenceFilter struct {
	Dataset, Target string
	Kind            string // missing, orphan, lagging or conflict
	State           string // open or resolved
	Cursor          string
	Limit           int
}

// DivergencePage is one page of divergences, newest detection first.
type DivergencePage struct {
	Divergences []state.DivergenceRecord
	Next        string
}

var (
	repairStates = []string{state.RepairPending, state.RepairPublished, state.RepairVerified, state.RepairFailed,
		state.RepairRejected, state.RepairSuperseded, state.RepairReverted, state.RepairDryRun}
	divergenceStates = []string{state.DivergenceOpen, state.DivergenceResolved}
	divergenceKinds  = []string{string(compare.Missing), string(compare.Orphan), string(compare.Lagging), string(compare.Conflict)}
)

func pageLimit(n int) (int, error) {
	switch {
	case n == 0:
		return DefaultPageSize, nil
	case n < 0 || n > MaxPageSize:
		return 0, fmt.Errorf("limit %d: want 1 to %d: %w", n, MaxPageSize, ErrInvalid)
	}
	return n, nil
}

func oneOf(what, v string, allowed []string) error {
	if v != "" && !slices.Contains(allowed, v) {
		return fmt.Errorf("%s %q: want one of %v: %w", what, v, allowed, ErrInvalid)
	}
	return nil
}

// syncRecords makes the repair and divergence records folded so far
// durable, so that a store read sees them.
func (e *Engine) syncRecords() error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.pend.records > 0 {
		return e.flush()
	}
	return e.waitInflight()
}

// Repair returns one repair by id.
func (e *Engine) Repair(id string) (state.RepairRecord, error) {
	if err := e.syncRecords(); err != nil {
		return state.RepairRecord{}, err
	}
	r, err := e.store.Repair(id)
	if err != nil {
		return state.RepairRecord{}, err
	}
	if r == nil {
		return state.RepairRecord{}, notFound("repair", id)
	}
	return *r, nil
}

// Repairs returns one page of the repairs f selects.
func (e *Engine) Repairs(f RepairFilter) (RepairPage, error) {
	limit, err := pageLimit(f.Limit)
	if err == nil {
		err = oneOf("state", f.State, repairStates)
	}
	if err != nil {
		return RepairPage{}, err
	}
	if err := e.syncRecords(); err != nil {
		return RepairPage{}, err
	}
	recs, next, err := e.store.RepairPage(f.Cursor, limit, func(r *state.RepairRecord) bool {
		return (f.Dataset == "" || r.Dataset == f.Dataset) && (f.Target == "" || r.Target == f.Target) &&
			(f.State == "" || r.State == f.State)
	})
	return RepairPage{Repairs: recs, Next: next}, err
}

// Divergences returns one page of the divergences f selects.
func (e *Engine) Divergences(f DivergenceFilter) (DivergencePage, error) {
	limit, err := pageLimit(f.Limit)
	if err == nil {
		err = oneOf("state", f.State, divergenceStates)
	}
	if err == nil {
		err = oneOf("kind", f.Kind, divergenceKinds)
	}
	if err != nil {
		return DivergencePage{}, err
	}
	if err := e.syncRecords(); err != nil {
		return DivergencePage{}, err
	}
	recs, next, err := e.store.DivergencePage(f.Cursor, limit, func(d *state.DivergenceRecord) bool {
		return (f.Dataset == "" || d.Dataset == f.Dataset) && (f.Target == "" || d.Target == f.Target) &&
			(f.Kind == "" || d.Kind == f.Kind) && (f.State == "" || d.State == f.State)
	})
	return DivergencePage{Divergences: recs, Next: next}, err
}

// ExplainAuditLimit bounds the audit records Explain returns: the newest.
const ExplainAuditLimit = 200

// KeyExplanation is everything recon knows about one key, ready for JSON.
type KeyExplanation struct {
	Dataset string `json:"dataset"`
	// Key is the canonical key; Fields its columns and values, when the
	// key state is known.
	Key    string       `json:"key"`
	Fields *compare.Key `json:"fields,omitempty"`
	// Source is the source head (nil until the source showed the key),
	// with its row in payload full mode, and History the recent source
	// versions, oldest first, the head last.
	Source    *HeadView     `json:"source"`
	SourceRow compare.Row   `json:"source_row,omitempty"`
	History   []HistoryView `json:"history"`
	// VersionVector holds, per system, the highest version seen and how
	// many distinct changes; for targets also the source version it
	// reflects and whether it wrote locally.
	VersionVector map[string]VectorEntry `json:"version_vector"`
	Targets       []TargetView           `json:"targets"`
	// Divergences and Repairs of the key, oldest first; Audit its newest
	// audit records (at most ExplainAuditLimit), in order.
	Divergences []DivergenceView    `json:"divergences"`
	Repairs     []RepairView        `json:"repairs"`
	Audit       []state.AuditRecord `json:"audit"`
}

// HeadView is the newest change a system showed for a key.
type HeadView struct {
	Version   string         `json:"version"`
	Digest    compare.Digest `json:"digest"`
	Deleted   bool           `json:"deleted"`
	EventTime time.Time      `json:"event_time"`
	SeenAt    time.Time      `json:"seen_at"`
}

// HistoryView is one remembered source version.
type HistoryView = HeadView

// VectorEntry is one system's entry of a key's version vector.
type VectorEntry struct {
	Version    string `json:"version"`
	Changes    uint64 `json:"changes"`
	Reflects   string `json:"reflects,omitempty"`
	LocalWrite bool   `json:"local_write,omitempty"`
}

// TargetView is a key's state in one target.
type TargetView struct {
	Name string    `json:"name"`
	Head *HeadView `json:"head"`
	// Row is the target's row when recon keeps it (payload full, while it
	// differs from the source's).
	Row    compare.Row `json:"row,omitempty"`
	InSync bool        `json:"in_sync"`
	// WindowDeadline is when the open window expires; absent when none is
	// open.
	WindowDeadline time.Time `json:"window_deadline,omitzero"`
	// Open is the open divergence, if any.
	Open *OpenDivergence `json:"open_divergence,omitempty"`
}

// OpenDivergence is the open divergence of one (key, target).
type OpenDivergence struct {
	ID            string    `json:"id"`
	Kind          string    `json:"kind"`
	OpenedAt      time.Time `json:"opened_at"`
	DetectedAt    time.Time `json:"detected_at"`
	SourceVersion string    `json:"source_version"`
	RepairID      string    `json:"repair_id,omitempty"`
}

// RepairView is a repair record as JSON for people and tools; Event is the
// repair event as rendered (and, once published, as published).
type RepairView struct {
	ID             string          `json:"id"`
	DivergenceID   string          `json:"divergence_id"`
	Dataset        string          `json:"dataset"`
	Target         string          `json:"target"`
	Key            string          `json:"key"`
	Kind           string          `json:"kind"`
	Action         string          `json:"action"`
	State          string          `json:"state"`
	Mode           string          `json:"mode,omitempty"`
	Actor          string          `json:"actor,omitempty"`
	Reason         string          `json:"reason,omitempty"`
	SourceVersion  string          `json:"source_version,omitempty"`
	ExpectedDigest compare.Digest  `json:"expected_digest"`
	PreviousDigest compare.Digest  `json:"previous_digest"`
	CreatedAt      time.Time       `json:"created_at"`
	UpdatedAt      time.Time       `json:"updated_at"`
	PublishedAt    time.Time       `json:"published_at,omitzero"`
	VerifyBy       time.Time       `json:"verify_by,omitzero"`
	DecidedAt      time.Time       `json:"decided_at,omitzero"`
	Reverts        string          `json:"reverts,omitempty"`
	RevertedBy     string          `json:"reverted_by,omitempty"`
	Event          json.RawMessage `json:"event,omitempty"`
}

// ViewRepair renders a repair record for JSON.
func ViewRepair(r state.RepairRecord) RepairView {
	v := RepairView{ID: r.ID, DivergenceID: r.DivergenceID, Dataset: r.Dataset, Target: r.Target, Key: r.Key,
		Kind: r.Kind, Action: r.Action, State: r.State, Mode: r.Mode, Actor: r.Actor, Reason: r.Reason,
		SourceVersion: r.SourceVersion, ExpectedDigest: r.ExpectedDigest, PreviousDigest: r.PreviousDigest,
		CreatedAt: r.CreatedAt, UpdatedAt: r.UpdatedAt, PublishedAt: r.PublishedAt, VerifyBy: r.VerifyBy,
		DecidedAt: r.DecidedAt, Reverts: r.Reverts, RevertedBy: r.RevertedBy}
	if json.Valid(r.Event) {
		v.Event = r.Event
	}
	return v
}

// DivergenceView is a divergence record as JSON for people and tools; Event
// is its latest event (opened, then resolved).
type DivergenceView struct {
	ID         string          `json:"id"`
	Dataset    string          `json:"dataset"`
	Target     string          `json:"target"`
	Key        string          `json:"key"`
	Kind       string          `json:"kind"`
	State      string          `json:"state"`
	OpenedAt   time.Time       `json:"opened_at"`
	DetectedAt time.Time       `json:"detected_at"`
	ResolvedAt time.Time       `json:"resolved_at,omitzero"`
	Rationale  string          `json:"rationale,omitempty"`
	Resolution string          `json:"resolution,omitempty"`
	RepairID   string          `json:"repair_id,omitempty"`
	Event      json.RawMessage `json:"event,omitempty"`
}

// ViewDivergence renders a divergence record for JSON.
func ViewDivergence(d state.DivergenceRecord) DivergenceView {
	v := DivergenceView{ID: d.ID, Dataset: d.Dataset, Target: d.Target, Key: d.Key, Kind: d.Kind, State: d.State,
		OpenedAt: d.OpenedAt, DetectedAt: d.DetectedAt, ResolvedAt: d.ResolvedAt, Rationale: d.Rationale,
		Resolution: d.Resolution, RepairID: d.RepairID}
	if json.Valid(d.Event) {
		v.Event = d.Event
	}
	return v
}

// Explain returns everything about one key of dataset; key is the canonical
// key (compare.Key.String: the key's values, comma-separated, escaped).
func (e *Engine) Explain(dataset, key string) (*KeyExplanation, error) {
	d, ok := e.datasets[dataset]
	if !ok {
		return nil, notFound("dataset", dataset)
	}
	x, err := e.explainState(d, key)
	if err != nil {
		return nil, err
	}
	kr, err := e.store.KeyRecords(dataset, key, ExplainAuditLimit)
	if err != nil {
		return nil, err
	}
	if x == nil {
		if len(kr.Divergences) == 0 && len(kr.Repairs) == 0 && len(kr.Audit) == 0 {
			return nil, notFound("key", dataset+"/"+key)
		}
		x = &KeyExplanation{Dataset: dataset, Key: key, VersionVector: map[string]VectorEntry{}}
	}
	for _, dr := range kr.Divergences {
		x.Divergences = append(x.Divergences, ViewDivergence(dr))
	}
	for _, r := range kr.Repairs {
		x.Repairs = append(x.Repairs, ViewRepair(r))
	}
	x.Audit = kr.Audit
	return x, nil
}

// explainState renders the key state of dataset d/key, from the cache if it
// holds it, under the engine's lock (folds change cached states in place),
// after making the records folded so far durable. nil: no state.
func (e *Engine) explainState(d *Dataset, key string) (*KeyExplanation, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.pend.records > 0 {
		if err := e.flush(); err != nil {
			return nil, err
		}
	} else if err := e.waitInflight(); err != nil {
		return nil, err
	}
	ks, ok := e.cache[d.Name+"\x00"+key]
	if !ok {
		var err error
		if ks, err = e.store.KeyState(d.Name, key); err != nil {
			return nil, err
		}
	}
	if ks == nil || (ks.Source == nil && len(ks.Targets) == 0) {
		return nil, nil
	}
	x := &KeyExplanation{Dataset: d.Name, Key: key, VersionVector: map[string]VectorEntry{}, SourceRow: ks.SourceRow}
	if len(ks.Key.Fields) > 0 {
		k := ks.Key
		x.Fields = &k
	}
	if ks.Source != nil {
		x.Source = headView(ks.Source)
		x.VersionVector[d.Source.Name] = VectorEntry{Version: ks.Source.Version.String(), Changes: ks.SourceChanges}
	}
	for _, h := range ks.History {
		x.History = append(x.History, HeadView{Version: h.Version.String(), Digest: h.Digest, Deleted: h.Deleted,
			EventTime: h.EventTime, SeenAt: h.SeenAt})
	}
	names := make([]string, 0, len(ks.Targets))
	for name := range ks.Targets {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		ts := ks.Targets[name]
		if ts == nil {
			continue
		}
		tv := TargetView{Name: name, Head: headView(ts.Head), Row: ts.Row, WindowDeadline: ts.Deadline,
			InSync: compare.Assess(pair(d, ks, name), d.Window).InSync}
		if o := ts.Open; o != nil {
			tv.Open = &OpenDivergence{ID: o.ID, Kind: o.Kind, OpenedAt: o.OpenedAt, DetectedAt: o.DetectedAt,
				SourceVersion: o.SourceVersion.String(), RepairID: o.RepairID}
		}
		x.Targets = append(x.Targets, tv)
		ve := VectorEntry{Changes: ts.Changes, LocalWrite: ts.LocalWrite}
		if ts.Head != nil {
			ve.Version = ts.Head.Version.String()
		}
		if !ts.Reflects.IsZero() {
			ve.Reflects = ts.Reflects.String()
		}
		x.VersionVector[name] = ve
	}
	return x, nil
}

func headView(h *state.Head) *HeadView {
	if h == nil {
		return nil
	}
	return &HeadView{Version: h.Version.String(), Digest: h.Digest, Deleted: h.Deleted, EventTime: h.EventTime, SeenAt: h.SeenAt}
}
