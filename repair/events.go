package repair

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"time"

	"github.com/recon-dev/recon/compare"
)

// SourceState is the source side of a divergence event.
type SourceState struct {
	Version   string         `json:"version"`
	Digest    compare.Digest `json:"digest"`
	Deleted   bool           `json:"deleted"`
	EventTime time.Time      `json:"event_time"`
}

// TargetState is the target side of a divergence event.
type TargetState struct {
	Version  string         `json:"version"`
	Digest   compare.Digest `json:"digest"`
	Deleted  bool           `json:"deleted"`
	Reflects string         `json:"reflects,omitempty"`
	SeenAt   time.Time      `json:"seen_at"`
}

// Divergence is the divergence event of DESIGN §6. A storm event (Event
// storm or storm_cleared, Kind storm) uses it too: the blast-radius guard of
// a whole dataset tripped or cleared; its Target is empty, its Key has no
// fields, and its Rationale gives the figures.
type Divergence struct {
	ID           string       `json:"id"`
	Event        string       `json:"event"` // opened | resolved | storm | storm_cleared
	Dataset      string       `json:"dataset"`
	Target       string       `json:"target"`
	Key          compare.Key  `json:"key"`
	Kind         string       `json:"kind"`
	Source       *SourceState `json:"source"`
	TargetState  *TargetState `json:"target_state"`
	OpenedAt     time.Time    `json:"opened_at"`
	DetectedAt   time.Time    `json:"detected_at"`
	ResolvedAt   *time.Time   `json:"resolved_at,omitempty"`
	WindowMS     int64        `json:"window_ms"`
	Rationale    string       `json:"rationale"`
	RulesVersion string       `json:"rules_version"`
	// ConfigHash is the SHA-256 (hex) of the dataset's effective config the
	// verdict was made under.
	ConfigHash string `json:"config_hash"`
}

// Repair is the repair event of DESIGN §6.
type Repair struct {
	ID             string         `json:"id"`
	DivergenceID   string         `json:"divergence_id"`
	Dataset        string         `json:"dataset"`
	Target         string         `json:"target"`
	Key            compare.Key    `json:"key"`
	Action         string         `json:"action"` // upsert | delete
	Kind           string         `json:"kind"`
	SourceVersion  string         `json:"source_version"`
	ExpectedDigest compare.Digest `json:"expected_digest"`
	PreviousDigest compare.Digest `json:"previous_digest"`
	After          compare.Row    `json:"after"`
	// Before is the target's row the repair replaces or deletes, in the
	// target's column names, with payload full and when recon knows it:
	// what reverting the repair restores. Null when the target holds no
	// live row (previous_digest empty) or the row is not known (a revert
	// then restores previous_digest by reference).
	Before       compare.Row `json:"before"`
	Mode         string      `json:"mode"` // auto | approved
	ApprovedBy   string      `json:"approved_by,omitempty"`
	DryRun       bool        `json:"dry_run"`
	CreatedAt    time.Time   `json:"created_at"`
	Rationale    string      `json:"rationale"`
	RulesVersion string      `json:"rules_version"`
	ConfigHash   string      `json:"config_hash"` // of the dataset's effective config, as on divergences
	// Reverts is set on a compensating repair: the id of the repair it
	// undoes.
	Reverts string `json:"reverts,omitempty"`
}

// Events of a divergence record.
const (
	EventOpened       = "opened"
	EventResolved     = "resolved"
	EventStorm        = "storm"         // the blast-radius guard of a dataset tripped
	EventStormCleared = "storm_cleared" // ... and cleared
	KindStorm         = "storm"         // the kind of storm events
)

// Stored is a repair event read back from the JSON it was rendered as: the
// key and rows stay raw JSON, so an approval or a revert re-renders it, or
// derives a compensating repair from it, without a value changing on the
// way. Its fields are Repair's, in the same order.
type Stored struct {
	ID             string          `json:"id"`
	DivergenceID   string          `json:"divergence_id"`
	Dataset        string          `json:"dataset"`
	Target         string          `json:"target"`
	Key            json.RawMessage `json:"key"`
	Action         string          `json:"action"`
	Kind           string          `json:"kind"`
	SourceVersion  string          `json:"source_version"`
	ExpectedDigest compare.Digest  `json:"expected_digest"`
	PreviousDigest compare.Digest  `json:"previous_digest"`
	After          json.RawMessage `json:"after"`
	Before         json.RawMessage `json:"before"`
	Mode           string          `json:"mode"`
	ApprovedBy     string          `json:"approved_by,omitempty"`
	DryRun         bool            `json:"dry_run"`
	CreatedAt      time.Time       `json:"created_at"`
	Rationale      string          `json:"rationale"`
	RulesVersion   string          `json:"rules_version"`
	ConfigHash     string          `json:"config_hash"`
	Reverts        string          `json:"reverts,omitempty"`
}

// ParseStored reads a rendered repair event.
func ParseStored(b []byte) (Stored, error) {
	var s Stored
	if err := json.Unmarshal(b, &s); err != nil {
		return Stored{}, fmt.Errorf("reading a stored repair event: %w", err)
	}
	// A null row decodes as the JSON text null; keep it so.
	if len(s.After) == 0 {
		s.After = json.RawMessage("null")
	}
	if len(s.Before) == 0 {
		s.Before = json.RawMessage("null")
	}
	return s, nil
}

// HasRow reports whether a raw row is a row rather than null.
func HasRow(raw json.RawMessage) bool { return len(raw) > 0 && string(raw) != "null" }

// Actions of a repair.
const (
	ActionUpsert = "upsert"
	ActionDelete = "delete"
)

// ID derives a deterministic id from its parts: the same divergence or repair,
// planned again after a restart, gets the same id, so consumers deduplicate.
func ID(parts ...string) string {
	h := sha256.New()
	for _, p := range parts {
		h.Write([]byte(p))
		h.Write([]byte{0})
	}
	return hex.EncodeToString(h.Sum(nil)[:16])
}

// RecordKey is the Kafka key of an output event: <dataset>/<target>/<key>.
func RecordKey(dataset, target string, key compare.Key) []byte {
	return []byte(dataset + "/" + target + "/" + key.String())
}

// Marshal renders an event as JSON.
func Marshal(v any) ([]byte, error) { return json.Marshal(v) }
