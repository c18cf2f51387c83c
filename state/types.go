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

// RepairRecord is a planned repair and where it stands.
type RepairRecord struct {
	ID           string
	DivergenceID string
	Dataset      string
	Target       string
	Key          string
	Kind         string
	Action       string
	State        string // pending | published | rejected | superseded
	CreatedAt    time.Time
	UpdatedAt    time.Time
	// Event is the rendered repair event, published as is once approved.
	Event []byte
}
