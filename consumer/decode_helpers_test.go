package consumer

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/recon-dev/recon/compare"
)

// stdUnmarshal is unmarshalNumbers with encoding/json, for the library
// benchmark and as a reference the production library must agree with.
func stdUnmarshal(data []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	if err := dec.Decode(v); err != nil {
		return err
	}
	return onlySpaceAfter(data, dec.InputOffset())
}

// Builders for made-up Debezium records. Schemas follow JsonConverter's
// rendering of Connect schemas (see cdc-formats.md §1.1).

// col is one column schema; name is its logical type, params its parameters.
func col(field, typ, name string, params ...string) string {
	s := `{"type":"` + typ + `","optional":true`
	if name != "" {
		s += `,"name":"` + name + `","version":1`
	}
	if len(params) > 0 {
		s += `,"parameters":{`
		for i := 0; i+1 < len(params); i += 2 {
			if i > 0 {
				s += ","
			}
			s += `"` + params[i] + `":"` + params[i+1] + `"`
		}
		s += `}`
	}
	return s + `,"field":"` + field + `"}`
}

func cols(c ...string) string { return strings.Join(c, ",") }

// envSchema is an envelope schema whose before/after rows have columns cs.
func envSchema(cs string) string {
	row := func(f string) string {
		return `{"type":"struct","fields":[` + cs + `],"optional":true,"name":"pg.public.t.Value","field":"` + f + `"}`
	}
	return `{"type":"struct","fields":[` + row("before") + `,` + row("after") +
		`,{"type":"struct","fields":[{"type":"int64","optional":false,"field":"ts_ms"},` +
		`{"type":"string","optional":true,"name":"io.debezium.data.Enum","field":"snapshot"},` +
		`{"type":"int64","optional":true,"field":"lsn"}],"optional":false,"name":"io.debezium.connector.postgresql.Source","field":"source"},` +
		`{"type":"string","optional":false,"field":"op"},{"type":"int64","optional":true,"field":"ts_ms"}],` +
		`"optional":false,"name":"pg.public.t.Envelope","version":2}`
}

// wrap renders a record with the schema wrapper (schemas.enable=true).
func wrap(schema, payload string) []byte {
	return []byte(`{"schema":` + schema + `,"payload":` + payload + `}`)
}

// pgEvent is a Postgres envelope at LSN 24023128, committed 2024-06-15T12:30:00.123Z.
func pgEvent(op, before, after string) string {
	return `{"before":` + before + `,"after":` + after +
		`,"source":{"version":"2.7.0.Final","connector":"postgresql","name":"pg","ts_ms":1718454600123,"snapshot":"false",` +
		`"db":"shop","schema":"public","table":"t","txId":771,"lsn":24023128,"xmin":null},"op":"` + op +
		`","ts_ms":1718454600456,"transaction":null}`
}

func num(s string) json.Number { return json.Number(s) }

func dec(unscaled string, scale int32) compare.Decimal {
	n, ok := new(big.Int).SetString(unscaled, 10)
	if !ok {
		panic("bad test decimal " + unscaled)
	}
	return compare.Decimal{Unscaled: n, Scale: scale}
}

func utc(s string) time.Time {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		panic(err)
	}
	return t
}

func readTestdata(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return bytes.TrimSpace(b)
}

// sameValue compares decoded values: exact numbers by text, decimals by
// unscaled value and scale, instants by instant and UTC location.
func sameValue(a, b any) bool {
	switch x := a.(type) {
	case compare.Decimal:
		y, ok := b.(compare.Decimal)
		return ok && x.Scale == y.Scale && x.Unscaled != nil && y.Unscaled != nil && x.Unscaled.Cmp(y.Unscaled) == 0
	case time.Time:
		y, ok := b.(time.Time)
		return ok && x.Equal(y) && x.Location() == time.UTC && y.Location() == time.UTC
	case []byte:
		y, ok := b.([]byte)
		return ok && bytes.Equal(x, y)
	case map[string]any:
		y, ok := b.(map[string]any)
		if !ok || len(x) != len(y) || (x == nil) != (y == nil) {
			return false
		}
		for k, v := range x {
			w, ok := y[k]
			if !ok || !sameValue(v, w) {
				return false
			}
		}
		return true
	case []any:
		y, ok := b.([]any)
		if !ok || len(x) != len(y) {
			return false
		}
		for i := range x {
			if !sameValue(x[i], y[i]) {
				return false
			}
		}
		return true
	}
	return a == b
}

// show renders a decoded value with its Go types, for failure messages.
func show(v any) string {
	switch x := v.(type) {
	case nil:
		return "nil"
	case json.Number:
		return "num(" + string(x) + ")"
	case string:
		return fmt.Sprintf("%q", x)
	case compare.Decimal:
		return fmt.Sprintf("dec(%ve-%d)", x.Unscaled, x.Scale)
	case time.Time:
		return "time(" + x.Format(time.RFC3339Nano) + " " + x.Location().String() + ")"
	case []byte:
		return fmt.Sprintf("bytes(%q)", x)
	case map[string]any:
		if x == nil {
			return "nil"
		}
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		parts := make([]string, len(keys))
		for i, k := range keys {
			parts[i] = k + ":" + show(x[k])
		}
		return "{" + strings.Join(parts, " ") + "}"
	case []any:
		parts := make([]string, len(x))
		for i := range x {
			parts[i] = show(x[i])
		}
		return "[" + strings.Join(parts, " ") + "]"
	}
	return fmt.Sprintf("%T(%v)", v, v)
}

func showDecoded(d Decoded) string {
	return fmt.Sprintf("tomb=%v skip=%q op=%v key=%s row=%s version=%v lineage=%v time=%s",
		d.Tombstone, d.Skip, d.Op, show(d.Key), show(d.Row), d.Version, d.Lineage, d.EventTime.Format(time.RFC3339Nano))
}

func sameDecoded(a, b Decoded) bool {
	return a.Tombstone == b.Tombstone && a.Skip == b.Skip && a.Op == b.Op &&
		a.Version == b.Version && a.Lineage == b.Lineage && a.EventTime.Equal(b.EventTime) &&
		sameValue(nilMap(a.Key), nilMap(b.Key)) && sameValue(nilMap(a.Row), nilMap(b.Row))
}

// nilMap keeps a nil map typed, so that sameValue compares it as a map.
func nilMap(m map[string]any) any { return m }

// noFloats fails if a float64 hides anywhere in v: numbers must stay exact.
func noFloats(v any) error {
	switch x := v.(type) {
	case float64, float32:
		return fmt.Errorf("float %v", x)
	case map[string]any:
		for k, e := range x {
			if err := noFloats(e); err != nil {
				return fmt.Errorf("%s: %w", k, err)
			}
		}
	case []any:
		for _, e := range x {
			if err := noFloats(e); err != nil {
				return err
			}
		}
	}
	return nil
}
