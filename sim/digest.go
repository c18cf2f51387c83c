package sim

import (
	"errors"
	"fmt"

	"github.com/recon-dev/recon/compare"
	"github.com/recon-dev/recon/config"
	"github.com/recon-dev/recon/consumer"
	"github.com/recon-dev/recon/pipeline"
	"github.com/recon-dev/recon/schemas"
)

// system decodes and normalizes one system's records the way recon does.
// The simulator digests rows through their own CDC records, so a row is
// "equal" here exactly when recon would find it equal.
type system struct {
	dec   consumer.Decoder
	rules *compare.Rules
}

// newSystem builds the decoder and rules of s exactly as the pipeline does;
// reg is the schema registry of the Avro formats (nil for JSON).
func newSystem(d config.Dataset, s config.System, reg *schemas.Registry) (*system, error) {
	rules, err := pipeline.SystemRules(d, s)
	if err != nil {
		return nil, fmt.Errorf("system %s: %w", s.Name, err)
	}
	dec, err := pipeline.SystemDecoder(s, reg)
	if err != nil {
		return nil, fmt.Errorf("system %s: %w", s.Name, err)
	}
	return &system{dec: dec, rules: rules}, nil
}

// change is one record decoded and normalized.
type change struct {
	Key     compare.Key
	Op      compare.Op
	Version compare.Version
	Lineage compare.Version
	Row     compare.Row // nil for deletes
}

// normalize decodes and normalizes one record of this system.
func (s *system) normalize(key, value []byte) (change, error) {
	d, err := s.dec.Decode(key, value, consumer.Meta{})
	if err != nil {
		return change{}, err
	}
	if d.Tombstone || d.Skip != "" {
		return change{}, errors.New("not a row change")
	}
	src := d.Key
	if src == nil {
		src = d.Row
	}
	k, err := s.rules.Key(src)
	if err != nil {
		return change{}, err
	}
	c := change{Key: k, Op: d.Op, Version: d.Version, Lineage: d.Lineage}
	if d.Op == compare.OpUpsert {
		row, unchanged, err := s.rules.Normalize(d.Row)
		if err != nil {
			return change{}, err
		}
		if len(unchanged) > 0 {
			return change{}, fmt.Errorf("columns %v sent as unchanged", unchanged)
		}
		c.Row = row
	}
	return c, nil
}

// digester computes the digests recon would compute for the simulator's rows,
// which it renders in the run's formats.
type digester struct {
	src, tgt *system
	f        formatPair
	hasher   *compare.Hasher
}

// newDigester builds the digester of a run's config. reg reads the Avro
// formats' writer schemas (nil when the run has none); f renders the rows.
func newDigester(cfg *config.Config, reg *schemas.Registry, f formatPair) (*digester, error) {
	if len(cfg.Datasets) != 1 || len(cfg.Datasets[0].Targets) != 1 {
		return nil, errors.New("the simulator runs one dataset with one target")
	}
	d := cfg.Datasets[0]
	src, err := newSystem(d, d.Source, reg)
	if err != nil {
		return nil, err
	}
	tgt, err := newSystem(d, d.Targets[0], reg)
	if err != nil {
		return nil, err
	}
	return &digester{src: src, tgt: tgt, f: f, hasher: compare.NewHasher([]byte(cfg.Digest.Key))}, nil
}

// sourceRow normalizes a live source row, read as a snapshot record.
func (g *digester) sourceRow(o Order) (compare.Row, error) {
	key, err := g.f.src.key(o.ID)
	if err != nil {
		return nil, err
	}
	value, err := g.f.src.value(Change{Op: 'r', LSN: 1, At: o.UpdatedAt, Row: o})
	if err != nil {
		return nil, err
	}
	c, err := g.src.normalize(key, value)
	return c.Row, err
}

// targetRow normalizes a live replica row, read as a snapshot record.
func (g *digester) targetRow(r Row) (compare.Row, error) {
	c, err := g.tgt.normalize(g.f.tgt.key(r.ID), g.f.tgt.value('r', r, 4, r.LoadedAt))
	return c.Row, err
}

// targetDigest is the digest text recon publishes for a live replica row,
// the one a repair's previous_digest names.
func (g *digester) targetDigest(r Row) (string, error) {
	row, err := g.targetRow(r)
	if err != nil {
		return "", err
	}
	return g.hasher.RowDigest(row).String(), nil
}

// same reports whether the source's and the replica's rows of a key hold the
// same data after normalization (both absent counts as the same).
func (g *digester) same(src *Order, tgt *Row) (bool, error) {
	if src == nil || tgt == nil {
		return src == nil && tgt == nil, nil
	}
	a, err := g.sourceRow(*src)
	if err != nil {
		return false, fmt.Errorf("source row %d: %w", src.ID, err)
	}
	b, err := g.targetRow(*tgt)
	if err != nil {
		return false, fmt.Errorf("replica row %d: %w", tgt.ID, err)
	}
	return g.hasher.RowDigest(a) == g.hasher.RowDigest(b), nil
}
