package repair

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
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

// Divergence is the divergence event of DESIGN §6.
type Divergence struct {
	ID           string       `json:"id"`
	Event        string       `json:"event"` // opened | resolved
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
	Mode           string         `json:"mode"` // auto | approved
	ApprovedBy     string         `json:"approved_by,omitempty"`
	DryRun         bool           `json:"dry_run"`
	CreatedAt      time.Time      `json:"created_at"`
	Rationale      string         `json:"rationale"`
	RulesVersion   string         `json:"rules_version"`
	ConfigHash     string         `json:"config_hash"` // of the dataset's effective config, as on divergences
}

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
