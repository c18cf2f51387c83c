package state

import (
	"time"

	"github.com/recon-dev/recon/compare"
)

// HistoryLen is how many recent source versions a key state keeps by default.
const HistoryLen = 8

// KeyState is everything recon knows about one key of one dataset.
type KeyState struct {
	Key compare.Key

	// Source is the source head; nil until the source has shown the key.
	Source        *Head
	SourceChanges uint64
	// History holds recent source versions, oldest first, the head last.
	History []HistoryEntry
	// SourceRow is the latest live source row in dataset column names, kept only
	// in payload: full mode (repairs carry it).
	SourceRow compare.Row

	// Targets by target name.
	Targets map[string]*TargetState
}

// Head is the newest change a system has shown for a key.
type Head struct {
	Version   compare.Version
	Digest    compare.Digest
	Deleted   bool
	EventTime time.Time
	SeenAt    time.Time
	Partition int32
	// Cols holds a hash per column so that a change that leaves TOAST columns
	// out can be digested with their previous values.
	Cols compare.Columns
}

// HistoryEntry is one source version remembered to tell stale from wrong.
type HistoryEntry struct {
	Version   compare.Version
	Digest    compare.Digest
	Deleted   bool
	EventTime time.Time
	SeenAt    time.Time
}

// TargetState is a key's state in one target.
type TargetState struct {
	Head    *Head
	Changes uint64
	// Lineage is the source version the target's newest row says it derives
	// from (its lineage field); zero when the target carries none.
	Lineage compare.Version
	// Reflects is the source version the target is known to reflect (lineage or
	// a digest match against history); zero if none is known.
	Reflects compare.Version
	// LocalWrite is set when the target wrote a row no source version explains.
	LocalWrite bool
	// Deadline is when the open window expires; zero when the pair is in sync
	// or not judged. A timer with this deadline exists exactly when non-zero.
	Deadline time.Time
	// Open is the open divergence, if any.
	Open *Divergence
	// Row is the target's newest live row in dataset column names, kept only
	// in payload: full mode and only while it is not known to equal the
	// source's row (a target in sync holds SourceRow, up to ignored
	// columns): what a repair overwrites, so that reverting the repair can
	// restore it. Nil when the target holds no live row, when it holds the
	// source's row, or when it is not known.
	Row compare.Row
}

// Divergence is an open divergence of one (key, target).
type Divergence struct {
	ID            string
	Kind          string
	OpenedAt      time.Time // window deadline that expired
	DetectedAt    time.Time // when the verdict was made
	SourceVersion compare.Version
	RepairID      string
}

// Timer is a window deadline of one (dataset, target, key).
type Timer struct {
	Deadline time.Time
	Dataset  string
	Target   string
	Key      string // canonical key encoding
}

// Header is a Kafka record header carried through the outbox.
type Header struct {
	Key   string
	Value []byte
}

// OutboxRecord is a record waiting to be published. Seq is assigned on commit.
type OutboxRecord struct {
	Seq     uint64
	Topic   string
	Key     []byte
	Value   []byte
	Headers []Header
}

// States of a repair record.
const (
	RepairPending    = "pending"    // waits for a person (approve mode, a kind outside auto_kinds, the guard)
	RepairPublished  = "published"  // handed to the outbox; verification by convergence runs
	RepairVerified   = "verified"   // the target converged after it was published
	RepairFailed     = "failed"     // the target did not converge within the window after it was published
	RepairRejected   = "rejected"   // a person rejected it; never published
	RepairSuperseded = "superseded" // no longer needed (the pair converged) or replaced before it was published
	RepairReverted   = "reverted"   // a compensating repair (RevertedBy) undid it
	RepairDryRun     = "dry_run"    // published flagged dry_run: nothing is meant to apply it, so it is never verified
)

// RepairRecord is a planned repair and where it stands.
type RepairRecord struct {
	ID           string
	DivergenceID string
	Dataset      string
	Target       string
	Key          string // canonical key
	Kind         string
	Action       string
	State        string // see RepairPending and the other states
	CreatedAt    time.Time
	UpdatedAt    time.Time
	// Mode is auto (published by policy) or approved (published, or to be
	// published, by a person); empty in records from before it was kept.
	Mode string `json:",omitempty"`
	// Actor is who approved, rejected or reverted it; empty for recon's own
	// decisions.
	Actor string `json:",omitempty"`
	// Reason says why it was rejected, superseded, failed or reverted.
	Reason string `json:",omitempty"`
	// SourceVersion, ExpectedDigest and PreviousDigest are the event's: the
	// source version it restores, the digest the target holds once it is
	// applied (zero for a delete) and its precondition (zero: no live row).
	SourceVersion  string         `json:",omitempty"`
	ExpectedDigest compare.Digest `json:",omitzero"`
	PreviousDigest compare.Digest `json:",omitzero"`
	// PublishedAt is when it went to the outbox; VerifyBy is when
	// verification gives up on it (zero once decided); DecidedAt is when it
	// was verified or failed.
	PublishedAt time.Time `json:",omitzero"`
	VerifyBy    time.Time `json:",omitzero"`
	DecidedAt   time.Time `json:",omitzero"`
	// Reverts names the repair a compensating repair undoes; RevertedBy
	// names the compensating repair of a reverted one.
	Reverts    string `json:",omitempty"`
	RevertedBy string `json:",omitempty"`
	// Event is the rendered repair event, published as is once approved.
	Event []byte
}

// States of a divergence record.
const (
	DivergenceOpen     = "open"
	DivergenceResolved = "resolved"
)

// DivergenceRecord is a divergence, open or resolved, kept for people and
// tools after the key state has moved on.
type DivergenceRecord struct {
	ID         string
	Dataset    string
	Target     string
	Key        string // canonical key
	Kind       string
	State      string // open | resolved
	OpenedAt   time.Time
	DetectedAt time.Time
	ResolvedAt time.Time `json:",omitzero"`
	// Rationale is the verdict's; Resolution says why it was resolved.
	Rationale  string
	Resolution string `json:",omitempty"`
	RepairID   string `json:",omitempty"`
	// Event is the latest divergence event (opened, then resolved), as
	// published.
	Event []byte
}
