package compare

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
)

// ErrMissingKeyField is wrapped by Key and KeyFromRow when a key field is
// absent, null or unavailable: such a record cannot be matched to any key.
var ErrMissingKeyField = errors.New("missing key field")

// Rules normalizes the rows of one system (source or target) of a dataset.
// Its settings are immutable after NewRules; under CaseInsensitive it also
// learns how the system spells its column names, for SystemRow. Safe for
// concurrent use.
type Rules struct {
	key []string // dataset column names, configured order
	// keyCol is the system column that holds each key field.
	keyCol []string
	rename map[string]string // system column -> dataset column
	// onto is rename inverted: dataset column -> the system column renamed onto it.
	// A system row that also has an unrenamed column of that name is ambiguous.
	onto   map[string]string
	ignore map[string]struct{}
	types  map[string]FieldType
	tol    float64
	// fold lower-cases every column name, configured or received.
	fold bool
	// Under fold: how the system spells its columns (see SystemRow), as
	// received and as configured in rename (folded -> spelling).
	spell    *spellings
	renameAs map[string]string
}

// RulesOpt tunes NewRules beyond its required settings.
type RulesOpt struct{ apply func(*rulesOptions) }

type rulesOptions struct{ fold bool }

// CaseInsensitive(true) makes column names match whatever their case, as
// compare.case_insensitive asks: the configured key, rename, ignore and types
// names and every column of every row are folded to lower case, so Rows, Keys
// and Columns carry lower-case names. For targets whose engine folds or keeps
// identifiers differently (MySQL on Windows, Snowflake upper case, Postgres
// lower case). Default false: names are compared byte for byte.
func CaseInsensitive(on bool) RulesOpt { return RulesOpt{func(o *rulesOptions) { o.fold = on }} }

// NewRules builds the normalization of one system. key lists the dataset key
// fields (dataset column names); rename maps this system's column names to
// dataset column names; ignore lists dataset columns dropped before digesting;
// types maps dataset columns to type specs (see ParseFieldType); floatTolerance
// quantizes floats (see quantize). Every bad setting is reported, each named.
func NewRules(key []string, rename map[string]string, ignore []string, types map[string]string, floatTolerance float64, opts ...RulesOpt) (*Rules, error) {
	var o rulesOptions
	for _, opt := range opts {
		opt.apply(&o)
	}
	var errs []error
	var renameAs map[string]string
	if o.fold {
		renameAs = renameSpellings(rename)
		key, rename, ignore, types, errs = foldSettings(key, rename, ignore, types)
	}
	r := &Rules{
		fold:     o.fold,
		spell:    &spellings{},
		renameAs: renameAs,
		key:      slices.Clone(key),
		keyCol:   make([]string, len(key)),
		rename:   make(map[string]string, len(rename)),
		onto:     make(map[string]string, len(rename)),
		ignore:   make(map[string]struct{}, len(ignore)),
		types:    make(map[string]FieldType, len(types)),
		tol:      floatTolerance,
	}
	targets := make(map[string]string, len(rename)) // dataset column -> first system column onto it
	// Sorted so that the same bad config always yields the same message.
	for _, from := range sortedKeys(rename) {
		to := rename[from]
		if from == "" || to == "" {
			errs = append(errs, fmt.Errorf("rename %q: %q: column names must not be empty", from, to))
			continue
		}
		if prev, dup := targets[to]; dup {
			errs = append(errs, fmt.Errorf("rename: %q and %q both map to %q", prev, from, to))
			continue
		}
		targets[to] = from
		r.rename[from] = to
		if from != to {
			r.onto[to] = from
		}
	}
	for _, c := range ignore {
		if c == "" {
			errs = append(errs, errors.New("ignore: column names must not be empty"))
		}
		r.ignore[c] = struct{}{}
	}
	for _, col := range sortedKeys(types) {
		ft, err := ParseFieldType(types[col])
		if err != nil {
			errs = append(errs, fmt.Errorf("types: column %q: %w", col, err))
			continue
		}
		r.types[col] = ft
	}
	errs = append(errs, r.resolveKey()...)
	if math.IsNaN(floatTolerance) || math.IsInf(floatTolerance, 0) || floatTolerance < 0 {
		errs = append(errs, fmt.Errorf("float_tolerance: %v: want a finite number >= 0", floatTolerance))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return r, nil
}

// resolveKey checks the key fields and finds the system column of each.
func (r *Rules) resolveKey() []error {
	var errs []error
	if len(r.key) == 0 {
		errs = append(errs, errors.New("key: at least one field is required"))
	}
	seen := make(map[string]bool, len(r.key))
	for i, f := range r.key {
		switch {
		case f == "":
			errs = append(errs, errors.New("key: field names must not be empty"))
		case seen[f]:
			errs = append(errs, fmt.Errorf("key: field %q listed twice", f))
		}
		seen[f] = true
		if _, ok := r.ignore[f]; ok {
			errs = append(errs, fmt.Errorf("key: field %q is also ignored", f))
		}
		if src, ok := r.onto[f]; ok {
			r.keyCol[i] = src
		} else if to, ok := r.rename[f]; ok && to != f {
			errs = append(errs, fmt.Errorf("key: field %q is renamed to %q and no column is renamed onto it", f, to))
		} else {
			r.keyCol[i] = f
		}
	}
	return errs
}

// Normalize maps a raw decoded row (system column names) to a Row in dataset
// column names: rename, drop ignored columns, normalize each value. Columns sent
// as Unavailable (or as Debezium's literal placeholder) are left out of the Row
// and listed, sorted, in unchanged: the caller keeps their previous values.
func (r *Rules) Normalize(raw map[string]any) (row Row, unchanged []string, err error) {
	row = make(Row, len(raw))
	unchanged, err = r.normalize(raw, func(col string, v Value) { row[col] = v })
	if err != nil {
		return nil, nil, err
	}
	return row, unchanged, nil
}

// NormalizeColumns is Hasher.Columns(Normalize(raw)) for callers that keep
// only the column hashes, as for a target's rows: it builds no Row.
func (r *Rules) NormalizeColumns(raw map[string]any) (cols Columns, unchanged []string, err error) {
	cols = make(Columns, 0, len(raw))
	unchanged, err = r.normalize(raw, func(col string, v Value) { cols = append(cols, Column{col, ColumnHash(v)}) })
	if err != nil {
		return nil, nil, err
	}
	slices.SortFunc(cols, func(a, b Column) int { return strings.Compare(a.Name, b.Name) })
	return cols, unchanged, nil
}

// normalize hands each kept column's normalized value to put and returns
// the unchanged (TOAST) columns, sorted.
func (r *Rules) normalize(raw map[string]any, put func(col string, v Value)) (unchanged []string, err error) {
	if raw, err = r.foldRow(raw); err != nil {
		return nil, err
	}
	for name, v := range raw {
		col := name
		if to, ok := r.rename[name]; ok {
			col = to
		} else if src, ok := r.onto[name]; ok {
			if _, both := raw[src]; both {
				if _, drop := r.ignore[col]; !drop {
					return nil, fmt.Errorf("column %q: both %q (renamed) and %q map to it", col, src, name)
				}
			}
		}
		if _, drop := r.ignore[col]; drop {
			continue
		}
		if isUnavailable(v) {
			unchanged = append(unchanged, col)
			continue
		}
		val, err := r.NormalizeValue(col, v)
		if err != nil {
			return nil, err
		}
		put(col, val)
	}
	slices.Sort(unchanged)
	return unchanged, nil
}

// isUnavailable also accepts the placeholder text itself, so a decoder that
// forgets to translate it cannot make an unchanged TOAST column look changed.
func isUnavailable(v any) bool {
	switch v := v.(type) {
	case Unavailable:
		return true
	case string:
		return v == UnavailablePlaceholder
	case []byte:
		return string(v) == UnavailablePlaceholder
	}
	return false
}

// NormalizeValue normalizes one raw value of dataset column col: with the
// column's configured type when it has one, else by the value's Go type.
func (r *Rules) NormalizeValue(col string, raw any) (Value, error) {
	if raw == nil {
		return Value{}, nil
	}
	if r.fold && hasUpper(col) {
		col = strings.ToLower(col)
	}
	ft, typed := r.types[col]
	if !typed {
		v, err := infer(raw, r.tol, 0)
		if err != nil {
			return Value{}, fmt.Errorf("column %q: %w", col, err)
		}
		return v, nil
	}
	v, err := convert(ft, raw, r.tol)
	if err != nil {
		return Value{}, fmt.Errorf("column %q: %s: %w", col, ft, err)
	}
	return v, nil
}

// Key builds the canonical key from a raw map in system column names (a
// record's key struct or a row). Key.Fields is shared by every key of these
// Rules and must not be modified.
func (r *Rules) Key(raw map[string]any) (Key, error) {
	raw, err := r.foldRow(raw)
	if err != nil {
		return Key{}, err
	}
	k := Key{Fields: r.key, Values: make([]Value, len(r.key))}
	for i, f := range r.key {
		v, ok := raw[r.keyCol[i]]
		if !ok || v == nil || isUnavailable(v) {
			return Key{}, fmt.Errorf("key field %q: %w", f, ErrMissingKeyField)
		}
		val, err := r.NormalizeValue(f, v)
		if err != nil {
			return Key{}, fmt.Errorf("key field %q: %w", f, err)
		}
		k.Values[i] = val
	}
	return k, nil
}

// KeyFromRow builds the key from an already normalized Row (dataset column
// names). Key.Fields is shared as in Key.
func (r *Rules) KeyFromRow(row Row) (Key, error) {
	k := Key{Fields: r.key, Values: make([]Value, len(r.key))}
	for i, f := range r.key {
		v, ok := row[f]
		if !ok || v.Kind == KindNull {
			return Key{}, fmt.Errorf("key field %q: %w", f, ErrMissingKeyField)
		}
		k.Values[i] = v
	}
	return k, nil
}

// KeyFields returns the dataset key fields in configured order (lower case
// under CaseInsensitive).
func (r *Rules) KeyFields() []string { return slices.Clone(r.key) }

func sortedKeys[V any](m map[string]V) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return ks
}
