package config

import (
	"time"
)

// Defaults, applied by ApplyDefaults where a setting is absent or zero.
const (
	DefaultBroker       = "127.0.0.1:9092"
	DefaultGroup        = "recon"
	DefaultClientID     = "recon"
	DefaultStateDir     = "./recon-data"
	DefaultListen       = "127.0.0.1:8080"
	DefaultDivergences  = "recon.divergences"
	DefaultRepairs      = "recon.repairs"
	DefaultDLQ          = "recon.dlq"
	DefaultOutputFormat = "json"
	DefaultWindow       = 30 * time.Second
	DefaultRepairMode   = "dry-run"
	DefaultPayload      = "full"
	DefaultMaxPerMinute = 600
	// DefaultMaxDivergentRatio is repair.max_divergent_ratio's default.
	DefaultMaxDivergentRatio = 0.1
	// DefaultMaxRecordBytes is Kafka's own default record size limit
	// (message.max.bytes, about 1 MiB).
	DefaultMaxRecordBytes = 1 << 20
	// DefaultShutdownTimeout bounds a graceful shutdown's outbox flush.
	DefaultShutdownTimeout = 30 * time.Second
	// MaxMaxRecordBytes bounds kafka.max_record_bytes: a record is decoded
	// in memory, several times its size.
	MaxMaxRecordBytes = 1 << 30
	// DefaultOutboxMaxBytes is outbox.max_bytes's default: far more than a
	// healthy publisher ever lets wait, small next to a state dir's disk.
	DefaultOutboxMaxBytes = 256 << 20
	// MinOutboxMaxBytes bounds outbox.max_bytes from below: one checkpoint
	// may add a few hundred records at once, and a smaller bound would
	// pause consumption at every one.
	MinOutboxMaxBytes = 64 << 10

	// MinDigestKeyLen is the shortest digest.key accepted, in bytes.
	MinDigestKeyLen = 16

	// DefaultRulesVersion is rules_version's default.
	DefaultRulesVersion = "1"
	// MaxRulesVersionLen bounds rules_version: it goes on every event.
	MaxRulesVersionLen = 64
)

// DefaultAutoKinds are the divergence kinds repaired without approval in auto
// mode unless repair.auto_kinds says otherwise. conflict is left out on
// purpose: a target that wrote locally deserves a person's look.
func DefaultAutoKinds() []string { return []string{"missing", "lagging", "orphan"} }

// Config is the whole of recon.yaml.
type Config struct {
	// RulesVersion names the version of these rules for auditors: it is
	// stamped on every event and audit record, and changing it is itself an
	// audit record. Default "1".
	RulesVersion   string         `yaml:"rules_version"`
	Kafka          Kafka          `yaml:"kafka"`
	SchemaRegistry SchemaRegistry `yaml:"schema_registry"`
	State          State          `yaml:"state"`
	HTTP           HTTP           `yaml:"http"`
	Digest         Digest         `yaml:"digest"`
	Outputs        Outputs        `yaml:"outputs"`
	Outbox         Outbox         `yaml:"outbox"`
	Datasets       []Dataset      `yaml:"datasets"` // at least one
	// ShutdownTimeout bounds how long a SIGTERM waits for the outbox to
	// drain to Kafka once consuming stopped; what is left stays in the
	// state store and is published on the next start. Default 30s.
	ShutdownTimeout Duration `yaml:"shutdown_timeout"`
}

// Kafka is how recon reaches the cluster that carries both its input and output topics.
type Kafka struct {
	Brokers  []string `yaml:"brokers"`   // seed brokers, host:port; default [127.0.0.1:9092]
	Group    string   `yaml:"group"`     // consumer group; default recon
	ClientID string   `yaml:"client_id"` // default recon
	TLS      TLS      `yaml:"tls"`
	SASL     SASL     `yaml:"sasl"`
	// MaxRecordBytes sends a record whose key and value together are larger
	// to the DLQ (reason oversized) without decoding it; default 1 MiB.
	MaxRecordBytes int `yaml:"max_record_bytes"`
	// InstanceID makes recon a static member of its group (KIP-345): a
	// restarted process with the same id takes its partitions back at once
	// instead of waiting for the old member's session to time out. Unique
	// per instance; default none (a dynamic member).
	InstanceID string `yaml:"instance_id"`
}

// TLS is enabled as soon as one of its files is set. cert_file and key_file
// (client authentication) go together; ca_file alone verifies the brokers
// against a private CA.
type TLS struct {
	CAFile   string `yaml:"ca_file"`
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
}

// Enabled reports whether any TLS setting is present.
func (t TLS) Enabled() bool { return t.CAFile != "" || t.CertFile != "" || t.KeyFile != "" }

// SASL authenticates to the brokers. An empty mechanism means no SASL; with a
// mechanism, username and password are required.
type SASL struct {
	Mechanism string `yaml:"mechanism"` // "", PLAIN, SCRAM-SHA-256, SCRAM-SHA-512
	Username  string `yaml:"username"`
	Password  string `yaml:"password"` // secret: use ${ENV}
}

// SchemaRegistry is required by debezium-avro and flat-avro inputs and by outputs.format avro.
type SchemaRegistry struct {
	URL string `yaml:"url"` // http:// or https://; default none
}

// State is where the embedded Badger store lives.
type State struct {
	Dir string `yaml:"dir"` // default ./recon-data
}

// HTTP serves /metrics, /healthz, /readyz and /api/v1/. The first three are
// open; the API answers only requests bearing one of Tokens, so with none
// configured it answers 401 to everything.
type HTTP struct {
	Listen string      `yaml:"listen"` // host:port; default 127.0.0.1:8080
	Tokens []HTTPToken `yaml:"tokens"` // API bearer tokens; default none (the API refuses every request)
	TLS    HTTPTLS     `yaml:"tls"`
}

// Roles of an API token, each allowed what the one before it is, and more.
const (
	RoleViewer   = "viewer"   // reads divergences, keys, repairs and the audit log
	RoleApprover = "approver" // also approves, rejects and reverts repairs
	RoleAdmin    = "admin"    // everything
)

// Roles lists the roles of API tokens, weakest first.
func Roles() []string { return []string{RoleViewer, RoleApprover, RoleAdmin} }

// HTTPToken is one API bearer token, stored as the SHA-256 of the token so
// that the config holds no secret. Name is the actor recorded in the audit
// log and in approved_by when the token's holder decides a repair.
type HTTPToken struct {
	Name   string `yaml:"name"`   // required, unique; ^[A-Za-z0-9][A-Za-z0-9_.@+-]*$
	SHA256 string `yaml:"sha256"` // required: 64 hex digits, the SHA-256 of the token (printf %s "$TOKEN" | sha256sum)
	Role   string `yaml:"role"`   // required: viewer | approver | admin
}

// HTTPTLS serves the listener over TLS when both files are set.
type HTTPTLS struct {
	CertFile string `yaml:"cert_file"` // PEM certificate chain
	KeyFile  string `yaml:"key_file"`  // PEM private key
}

// Enabled reports whether the listener serves TLS.
func (t HTTPTLS) Enabled() bool { return t.CertFile != "" || t.KeyFile != "" }

// Digest keys the row digest, so that digests in published events reveal
// nothing about low-entropy values.
type Digest struct {
	Key string `yaml:"key"` // required, at least 16 bytes; all instances share it; secret: use ${RECON_DIGEST_KEY}
}

// Outputs are recon's own topics. They must be distinct and no input topic.
type Outputs struct {
	Divergences string `yaml:"divergences"` // default recon.divergences
	Repairs     string `yaml:"repairs"`     // default recon.repairs
	DLQ         string `yaml:"dlq"`         // default recon.dlq
	Audit       string `yaml:"audit"`       // mirror of the audit log, JSON; default "" (no mirror)
	Format      string `yaml:"format"`      // json (default) | avro (needs schema_registry.url)
}

// Outbox bounds what waits in the state dir to be published while the
// brokers refuse it (the output circuit breaker is open).
type Outbox struct {
	// MaxBytes pauses consumption while the outbox holds more than this
	// many bytes, until the publisher drains it below 90% of it; default
	// 256 MiB, at least 64 KiB.
	MaxBytes int64 `yaml:"max_bytes"`
}

// Dataset is one logical table: one authoritative source and the targets that copy it.
type Dataset struct {
	Name           string   `yaml:"name"`            // required; ^[a-z0-9][a-z0-9_.-]*$ (it appears in record keys and metric labels)
	Key            []string `yaml:"key"`             // required; dataset column names, after rename
	Window         Duration `yaml:"window"`          // how long a target may disagree before it is flagged; default 30s
	SourceComplete bool     `yaml:"source_complete"` // the source topic holds every live key (compacted and read from the start, or snapshotted); default false
	Source         System   `yaml:"source"`
	Targets        []System `yaml:"targets"` // at least one
	Compare        Compare  `yaml:"compare"`
	Repair         Repair   `yaml:"repair"`
}

// System is a source or a target: one Kafka topic with its format and mapping.
// A topic belongs to one system only, across the whole config.
type System struct {
	Name    string            `yaml:"name"`    // required; unique within the dataset; same pattern as dataset names
	Topic   string            `yaml:"topic"`   // required
	Format  string            `yaml:"format"`  // required: debezium-json | debezium-avro | flat-json | flat-avro (the avro ones need schema_registry.url)
	Version string            `yaml:"version"` // required: lsn | position | field:<name> | offset
	Lineage string            `yaml:"lineage"` // targets only: "" (none) | field:<name>
	Rename  map[string]string `yaml:"rename"`  // this system's column name -> dataset column name
}

// Compare says how rows are normalized before they are digested. Field names
// are dataset column names (after rename).
type Compare struct {
	Ignore         []string          `yaml:"ignore"`          // columns left out of the digest; never a key field
	Types          map[string]string `yaml:"types"`           // decimal(S) | timestamp | timestamp_s | timestamp_ms | timestamp_us | timestamp_ns | int | string | bool | float | uuid
	FloatTolerance float64           `yaml:"float_tolerance"` // >= 0; default 0 (exact)
	// CaseInsensitive matches column names (after rename) whatever their case:
	// key, rename, ignore and types names and every row's columns are folded
	// to lower case; default false.
	CaseInsensitive bool `yaml:"case_insensitive"`
}

// Repair is the repair policy of a dataset (DESIGN §5).
type Repair struct {
	Mode         string   `yaml:"mode"`           // off | dry-run | approve | auto; default dry-run
	AutoKinds    []string `yaml:"auto_kinds"`     // kinds repaired at once in auto mode: missing | lagging | orphan | conflict; default [missing, lagging, orphan]
	Payload      string   `yaml:"payload"`        // full (the source row) | reference; default full
	MaxPerMinute int      `yaml:"max_per_minute"` // blast-radius guard: automatic repairs per minute before approval is asked; 0 means the default, 600
	// MaxDivergentRatio is the blast-radius guard's other trigger: automatic
	// repairs pause while more than this fraction of the dataset's keys have
	// an open divergence (0..1; absent means the default, 0.1; 0 disables it).
	MaxDivergentRatio *float64 `yaml:"max_divergent_ratio"`
}

// Duration is a time.Duration written as "30s", "1m30s" or "500ms" in YAML.
// A bare number is rejected: it has no unit.
type Duration time.Duration

// D returns d as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

// String formats d as time.Duration does ("30s", "1m30s").
func (d Duration) String() string { return time.Duration(d).String() }

// ApplyDefaults fills every absent or zero setting that has a default (see
// the field comments and the package documentation). It is idempotent.
func (c *Config) ApplyDefaults() {
	if len(c.Kafka.Brokers) == 0 {
		c.Kafka.Brokers = []string{DefaultBroker}
	}
	setDefault(&c.RulesVersion, DefaultRulesVersion)
	setDefault(&c.Kafka.Group, DefaultGroup)
	setDefault(&c.Kafka.ClientID, DefaultClientID)
	if c.Kafka.MaxRecordBytes == 0 {
		c.Kafka.MaxRecordBytes = DefaultMaxRecordBytes
	}
	setDefault(&c.State.Dir, DefaultStateDir)
	if c.ShutdownTimeout == 0 {
		c.ShutdownTimeout = Duration(DefaultShutdownTimeout)
	}
	setDefault(&c.HTTP.Listen, DefaultListen)
	setDefault(&c.Outputs.Divergences, DefaultDivergences)
	setDefault(&c.Outputs.Repairs, DefaultRepairs)
	setDefault(&c.Outputs.DLQ, DefaultDLQ)
	setDefault(&c.Outputs.Format, DefaultOutputFormat)
	if c.Outbox.MaxBytes == 0 {
		c.Outbox.MaxBytes = DefaultOutboxMaxBytes
	}
	for i := range c.Datasets {
		ds := &c.Datasets[i]
		if ds.Window == 0 {
			ds.Window = Duration(DefaultWindow)
		}
		setDefault(&ds.Repair.Mode, DefaultRepairMode)
		setDefault(&ds.Repair.Payload, DefaultPayload)
		if ds.Repair.AutoKinds == nil {
			ds.Repair.AutoKinds = DefaultAutoKinds()
		}
		if ds.Repair.MaxPerMinute == 0 {
			ds.Repair.MaxPerMinute = DefaultMaxPerMinute
		}
		if ds.Repair.MaxDivergentRatio == nil {
			r := DefaultMaxDivergentRatio
			ds.Repair.MaxDivergentRatio = &r
		}
	}
}

func setDefault(s *string, def string) {
	if *s == "" {
		*s = def
	}
}

// Dataset returns the dataset called name.
func (c *Config) Dataset(name string) (*Dataset, bool) {
	for i := range c.Datasets {
		if c.Datasets[i].Name == name {
			return &c.Datasets[i], true
		}
	}
	return nil, false
}

// Target returns the target called name; the source is not a target.
func (d *Dataset) Target(name string) (*System, bool) {
	for i := range d.Targets {
		if d.Targets[i].Name == name {
			return &d.Targets[i], true
		}
	}
	return nil, false
}

// TopicOwner returns the dataset and the system (source or target) that read
// topic. A valid config has at most one.
func (c *Config) TopicOwner(topic string) (*Dataset, *System, bool) {
	for i := range c.Datasets {
		ds := &c.Datasets[i]
		if ds.Source.Topic == topic {
			return ds, &ds.Source, true
		}
		for j := range ds.Targets {
			if ds.Targets[j].Topic == topic {
				return ds, &ds.Targets[j], true
			}
		}
	}
	return nil, nil, false
}

// InputTopics lists every source and target topic, in config order.
func (c *Config) InputTopics() []string {
	var topics []string
	for _, ds := range c.Datasets {
		topics = append(topics, ds.Source.Topic)
		for _, t := range ds.Targets {
			topics = append(topics, t.Topic)
		}
	}
	return topics
}

// Redacted returns a copy of c, fit to log or print, whose secrets (digest.key,
// kafka.sasl.password, a password in schema_registry.url) are masked. The copy
// shares c's datasets, which hold no secrets.
func (c *Config) Redacted() *Config {
	r := *c
	const hidden = "<redacted>"
	if r.Digest.Key != "" {
		r.Digest.Key = hidden
	}
	if r.Kafka.SASL.Password != "" {
		r.Kafka.SASL.Password = hidden
	}
	r.SchemaRegistry.URL = redactURL(r.SchemaRegistry.URL)
	return &r
}

// IsAvroFormat reports whether an input format is Avro in the Confluent wire
// format, read with writer schemas from schema_registry.
func IsAvroFormat(format string) bool { return format == "debezium-avro" || format == "flat-avro" }
