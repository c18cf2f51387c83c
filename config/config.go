// Package config reads recon's YAML configuration (DESIGN §6): ${ENV} expansion,
// unknown fields rejected, defaults applied, and every problem reported.
package config

import (
	"time"
)

// Config is the whole of recon.yaml.
type Config struct {
	Kafka          Kafka          `yaml:"kafka"`
	SchemaRegistry SchemaRegistry `yaml:"schema_registry"`
	State          State          `yaml:"state"`
	HTTP           HTTP           `yaml:"http"`
	Digest         Digest         `yaml:"digest"`
	Outputs        Outputs        `yaml:"outputs"`
	Datasets       []Dataset      `yaml:"datasets"`
}

type Kafka struct {
	Brokers  []string `yaml:"brokers"`   // default [127.0.0.1:9092]
	Group    string   `yaml:"group"`     // default recon
	ClientID string   `yaml:"client_id"` // default recon
	TLS      TLS      `yaml:"tls"`
	SASL     SASL     `yaml:"sasl"`
}

type TLS struct {
	CAFile   string `yaml:"ca_file"`
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
}

// Enabled reports whether any TLS setting is present.
func (t TLS) Enabled() bool { return t.CAFile != "" || t.CertFile != "" || t.KeyFile != "" }

type SASL struct {
	Mechanism string `yaml:"mechanism"` // "", PLAIN, SCRAM-SHA-256, SCRAM-SHA-512
	Username  string `yaml:"username"`
	Password  string `yaml:"password"`
}

type SchemaRegistry struct {
	URL string `yaml:"url"`
}

type State struct {
	Dir string `yaml:"dir"` // default ./recon-data
}

type HTTP struct {
	Listen string `yaml:"listen"` // default 127.0.0.1:8080
}

type Digest struct {
	Key string `yaml:"key"` // required; all instances share it
}

type Outputs struct {
	Divergences string `yaml:"divergences"` // default recon.divergences
	Repairs     string `yaml:"repairs"`     // default recon.repairs
	DLQ         string `yaml:"dlq"`         // default recon.dlq
	Format      string `yaml:"format"`      // json (default) | avro
}

type Dataset struct {
	Name           string   `yaml:"name"`
	Key            []string `yaml:"key"`
	Window         Duration `yaml:"window"`          // default 30s
	SourceComplete bool     `yaml:"source_complete"` // default false
	Source         System   `yaml:"source"`
	Targets        []System `yaml:"targets"`
	Compare        Compare  `yaml:"compare"`
	Repair         Repair   `yaml:"repair"`
}

// System is a source or a target: one Kafka topic with its format and mapping.
type System struct {
	Name    string            `yaml:"name"`
	Topic   string            `yaml:"topic"`
	Format  string            `yaml:"format"`  // debezium-json | debezium-avro | flat-json
	Version string            `yaml:"version"` // lsn | position | field:<name> | offset
	Lineage string            `yaml:"lineage"` // "" | field:<name>
	Rename  map[string]string `yaml:"rename"`  // this system's column name -> dataset column name
}

type Compare struct {
	Ignore         []string          `yaml:"ignore"`
	Types          map[string]string `yaml:"types"` // decimal(S) | timestamp | int | string | bool | float
	FloatTolerance float64           `yaml:"float_tolerance"`
}

type Repair struct {
	Mode         string   `yaml:"mode"`       // off | dry-run | approve | auto (default dry-run)
	AutoKinds    []string `yaml:"auto_kinds"` // default [missing, lagging, orphan]
	Payload      string   `yaml:"payload"`    // full (default) | reference
	MaxPerMinute int      `yaml:"max_per_minute"`
}

// Duration is a time.Duration written as "30s" in YAML.
type Duration time.Duration

func (d Duration) D() time.Duration { return time.Duration(d) }
