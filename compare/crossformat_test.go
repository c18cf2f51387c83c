package compare

import (
	"encoding/base64"
	"encoding/json"
	"maps"
	"math/big"
	"testing"
	"time"
)

// The logical row of the matrix, one column per kind of trouble:
//
//	id 42, tenant_id 7, amount 1234.50 (decimal(2)), created_at
//	2024-06-15T12:30:00.123Z (millisecond precision, so that epoch millis can
//	hold it), active true, ref 3f2504e0-4f89-11d3-9a0c-0305e82c3301, qty 3,
//	note "héllo, wörld", ratio 0.3 (a double).
var crossTypes = map[string]string{
	"id": "int", "tenant_id": "int", "amount": "decimal(2)", "created_at": "timestamp",
	"active": "bool", "ref": "uuid", "qty": "int", "note": "string", "ratio": "float",
}

// crossTolerance absorbs the binary noise of a double computed on the other
// side (0.1+0.2 = 0.30000000000000004), far below any real difference.
const crossTolerance = 1e-9

var (
	crossInstant = time.Date(2024, 6, 15, 12, 30, 0, 123e6, time.UTC)
	// doubleNoise is 0.1+0.2 computed at run time (constant arithmetic in Go
	// is exact): 0.30000000000000004, as a double column computed elsewhere.
	doubleNoise = func(a, b float64) float64 { return a + b }(0.1, 0.2)
	crossUUID   = [16]byte{0x3f, 0x25, 0x04, 0xe0, 0x4f, 0x89, 0x11, 0xd3, 0x9a, 0x0c, 0x03, 0x05, 0xe8, 0x2c, 0x33, 0x01}
)

// crossShape is one way a system hands the logical row to Normalize: the raw
// map a decoder builds, in that system's column names.
type crossShape struct {
	name   string
	rename map[string]string // the system's names -> dataset names
	raw    map[string]any
}

// crossShapes are the row as each decoder hands it over. The Go types follow
// consumer/decode_logical.go for JSON (json.Number for every number, schema
// logical types converted: Decimal, time.Time; without a schema nothing is
// converted, so a Decimal stays base64 text and a MicroTimestamp a number), and
// goavro's documented types for Avro (long -> int64, decimal -> *big.Rat,
// timestamp-millis -> time.Time, Debezium's own time types raw int64).
func crossShapes() []crossShape {
	n := func(s string) json.Number { return json.Number(s) }
	return []crossShape{
		{name: "debezium-json with schema (Postgres: Decimal bytes + scale, MicroTimestamp, Uuid)", raw: map[string]any{
			"id": n("42"), "tenant_id": n("7"), "amount": Decimal{Unscaled: big.NewInt(123450), Scale: 2},
			"created_at": time.UnixMicro(1718454600123000).UTC(), "active": true,
			"ref": "3f2504e0-4f89-11d3-9a0c-0305e82c3301", "qty": n("3"), "note": "héllo, wörld", "ratio": n("0.3"),
		}},
		{name: "debezium-json with schema, decimal.format=NUMERIC and VariableScaleDecimal at scale 1", raw: map[string]any{
			"id": n("42"), "tenant_id": n("7"), "amount": Decimal{Unscaled: big.NewInt(12345), Scale: 1},
			"created_at": time.UnixMilli(1718454600123).UTC(), "active": true,
			"ref": "3f2504e0-4f89-11d3-9a0c-0305e82c3301", "qty": n("3"), "note": "héllo, wörld", "ratio": n("0.3"),
		}},
		{name: "debezium-json without schema (Decimal as base64 AeI6, MicroTimestamp as epoch µs)", raw: map[string]any{
			"id": n("42"), "tenant_id": n("7"), "amount": "AeI6",
			"created_at": n("1718454600123000"), "active": true,
			"ref": "3f2504e0-4f89-11d3-9a0c-0305e82c3301", "qty": n("3"), "note": "héllo, wörld", "ratio": n("0.3"),
		}},
		{name: "debezium-json without schema, VariableScaleDecimal object, ZonedTimestamp with 4 fraction digits", raw: map[string]any{
			"id": n("42"), "tenant_id": n("7"),
			"amount":     map[string]any{"scale": n("1"), "value": base64.StdEncoding.EncodeToString(big.NewInt(12345).Bytes())},
			"created_at": "2024-06-15T12:30:00.1230Z", "active": true,
			"ref": "3f2504e0-4f89-11d3-9a0c-0305e82c3301", "qty": n("3"), "note": "héllo, wörld", "ratio": n("0.3"),
		}},
		{name: "debezium-avro via goavro (long, bytes.decimal as *big.Rat, MicroTimestamp as raw long, int32)", raw: map[string]any{
			"id": int64(42), "tenant_id": int32(7), "amount": big.NewRat(2469, 2),
			"created_at": int64(1718454600123000), "active": true,
			"ref": "3f2504e0-4f89-11d3-9a0c-0305e82c3301", "qty": int32(3), "note": "héllo, wörld", "ratio": float64(0.3),
		}},
		{name: "debezium-avro, Connect Timestamp as timestamp-millis (time.Time), float column as Avro float", raw: map[string]any{
			"id": int64(42), "tenant_id": int64(7), "amount": Decimal{Unscaled: big.NewInt(123450), Scale: 2},
			"created_at": time.UnixMilli(1718454600123).UTC(), "active": true,
			"ref": "3f2504e0-4f89-11d3-9a0c-0305e82c3301", "qty": int32(3), "note": "héllo, wörld", "ratio": float32(0.3),
		}},
		{name: "flat-json MySQL: decimal as string, DATETIME text without zone, TINYINT(1), upper-case CHAR(36), renamed key", rename: map[string]string{"order_id": "id"}, raw: map[string]any{
			"order_id": n("42"), "tenant_id": "7", "amount": "1234.50",
			"created_at": "2024-06-15 12:30:00.123", "active": n("1"),
			"ref": "3F2504E0-4F89-11D3-9A0C-0305E82C3301", "qty": "3", "note": "héllo, wörld", "ratio": "0.3",
		}},
		{name: "flat-json MySQL: decimal as double, epoch millis, bool as \"true\", UUID without dashes, double noise", rename: map[string]string{"order_id": "id"}, raw: map[string]any{
			"order_id": n("42"), "tenant_id": n("7"), "amount": n("1234.5"),
			"created_at": n("1718454600123"), "active": "true",
			"ref": "3F2504E04F8911D39A0C0305E82C3301", "qty": n("3.0"), "note": "héllo, wörld", "ratio": n("0.30000000000000004"),
		}},
		{name: "flat-json read without UseNumber: float64 everywhere, ISO with offset and fraction, braced UUID", raw: map[string]any{
			"id": float64(42), "tenant_id": float64(7), "amount": float64(1234.5),
			"created_at": "2024-06-15T14:30:00.123000+02:00", "active": "TRUE",
			"ref": "{3F2504E0-4F89-11D3-9A0C-0305E82C3301}", "qty": float64(3), "note": "héllo, wörld", "ratio": doubleNoise,
		}},
		{name: "flat-json: BINARY(16) UUID as base64, epoch millis as text, bool as 1 in text, numeric strings", raw: map[string]any{
			"id": "42", "tenant_id": "007", "amount": "1234.5",
			"created_at": "1718454600123", "active": "1",
			"ref": base64.StdEncoding.EncodeToString(crossUUID[:]), "qty": "+3", "note": "héllo, wörld", "ratio": "3e-1",
		}},
		{name: "avro fixed(16) UUID as bytes, NanoTimestamp as a raw long", raw: map[string]any{
			"id": n("42"), "tenant_id": n("7"), "amount": "1234.50",
			"created_at": int64(1718454600123000000), "active": true,
			"ref": crossUUID[:], "qty": n("3"), "note": "héllo, wörld", "ratio": n("0.3"),
		}},
	}
}

func crossRules(t testing.TB, rename map[string]string, tol float64) *Rules {
	t.Helper()
	return mustRules(t, []string{"tenant_id", "id"}, rename, nil, crossTypes, tol)
}

// One logical row in every shape yields one row, one key and one digest.
func TestCrossFormatDigestMatrix(t *testing.T) {
	h := NewHasher(testDigestKey)
	want := Row{
		"id": v(KindInt, "42"), "tenant_id": v(KindInt, "7"), "amount": v(KindDecimal, "1234.50"),
		"created_at": v(KindTime, "2024-06-15T12:30:00.123Z"), "active": v(KindBool, "true"),
		"ref": v(KindUUID, "3f2504e0-4f89-11d3-9a0c-0305e82c3301"), "qty": v(KindInt, "3"),
		"note": v(KindString, "héllo, wörld"), "ratio": v(KindFloat, "0.3"),
	}
	wantDigest := h.RowDigest(want)
	for _, s := range crossShapes() {
		t.Run(s.name, func(t *testing.T) {
			r := crossRules(t, s.rename, crossTolerance)
			row, _, err := r.Normalize(s.raw)
			if err != nil {
				t.Fatal(err)
			}
			for col, w := range want {
				if got := row[col]; got != w {
					t.Errorf("%s = %v %q, want %v %q", col, got.Kind, got.Text, w.Kind, w.Text)
				}
			}
			if len(row) != len(want) {
				t.Errorf("row has %d columns, want %d: %v", len(row), len(want), row)
			}
			if d := h.RowDigest(row); d != wantDigest {
				t.Errorf("digest %s, want %s", d, wantDigest)
			}
			k, err := r.Key(s.raw)
			if err != nil || k.String() != "7,42" {
				t.Errorf("key %q, %v; want \"7,42\"", k.String(), err)
			}
		})
	}
}

// A real difference in any column, in any shape, yields another digest: the
// normalization that makes encodings agree must not make data agree.
func TestCrossFormatDigestMatrixDifferences(t *testing.T) {
	h := NewHasher(testDigestKey)
	shapes := crossShapes()
	ref := crossRules(t, nil, crossTolerance)
	refRow, _, err := ref.Normalize(shapes[0].raw)
	if err != nil {
		t.Fatal(err)
	}
	wantDigest := h.RowDigest(refRow)
	flat := shapes[6] // flat-json MySQL, decimals as strings
	cases := []struct {
		shape crossShape
		col   string
		val   any // nil with drop: the column is absent
		drop  bool
		tol   float64
		why   string
	}{
		{flat, "amount", "1234.51", false, crossTolerance, "one cent"},
		{flat, "amount", "-1234.50", false, crossTolerance, "the sign"},
		{shapes[2], "amount", "AeI7", false, crossTolerance, "one unit in the last base64 digit: 1234.51"},
		{shapes[2], "amount", "/h3G", false, crossTolerance, "cdc-formats.md: /h3G is -1234.50"},
		{flat, "created_at", "2024-06-15 12:30:00.124", false, crossTolerance, "one millisecond"},
		{flat, "created_at", "2024-06-15 14:30:00.123", false, crossTolerance, "local wall-clock time sent as if UTC: two hours off"},
		{shapes[2], "created_at", json.Number("1718454600123456"), false, crossTolerance, "µs the target's millis cannot hold: a real precision loss, reported"},
		{shapes[7], "created_at", json.Number("1718454600124"), false, crossTolerance, "epoch millis one off"},
		{flat, "active", json.Number("0"), false, crossTolerance, "false"},
		{flat, "ref", "3F2504E0-4F89-11D3-9A0C-0305E82C3302", false, crossTolerance, "another UUID"},
		{flat, "qty", "4", false, crossTolerance, "another quantity"},
		{flat, "note", "Héllo, wörld", false, crossTolerance, "strings keep their case"},
		{flat, "note", "héllo, wörld ", false, crossTolerance, "and their spaces"},
		{flat, "ratio", "0.31", false, crossTolerance, "a real float difference is above the tolerance"},
		{shapes[7], "ratio", json.Number("0.30000000000000004"), false, 0, "without float_tolerance, double noise is a difference"},
		{flat, "note", nil, false, crossTolerance, "null is not a value"},
		{flat, "note", nil, true, crossTolerance, "an absent column is not a null one"},
		{flat, "discount", nil, false, crossTolerance, "a new column on one side only, even null"},
	}
	for _, c := range cases {
		t.Run(c.why, func(t *testing.T) {
			raw := maps.Clone(c.shape.raw)
			if c.drop {
				delete(raw, c.col)
			} else {
				raw[c.col] = c.val
			}
			row, _, err := crossRules(t, c.shape.rename, c.tol).Normalize(raw)
			if err != nil {
				t.Fatal(err)
			}
			if d := h.RowDigest(row); d == wantDigest {
				t.Errorf("%s = %v gives the reference digest: a real difference was hidden", c.col, c.val)
			}
		})
	}
}

// float_tolerance quantizes to a grid, in every format: values closer than
// the step usually meet, but never across a grid midpoint, however close.
func TestFloatToleranceAcrossFormats(t *testing.T) {
	h := NewHasher(testDigestKey)
	digest := func(tol float64, val any) Digest {
		t.Helper()
		row, _, err := mustRules(t, []string{"id"}, nil, nil, map[string]string{"ratio": "float"}, tol).
			Normalize(map[string]any{"id": 1, "ratio": val})
		if err != nil {
			t.Fatal(err)
		}
		return h.RowDigest(row)
	}
	cases := []struct {
		tol  float64
		a, b any
		same bool
		why  string
	}{
		{0, json.Number("0.25"), "0.25", true, "exact: JSON number and text"},
		{0, 0.25, float32(0.25), true, "exact: double and Avro float"},
		{0, json.Number("0.1"), float32(0.1), true, "Avro float 0.1 widens through its shortest text"},
		{0, json.Number("0.3"), doubleNoise, false, "no tolerance: binary noise is a difference"},
		{1e-9, json.Number("0.3"), doubleNoise, true, "tolerance absorbs the noise"},
		{1e-9, "0.3", json.Number("0.3"), true, "a 1e-9 grid point prints as 0.3, not 0.30000000000000004"},
		{0.01, 1.234, "1.2341", true, "same grid point 1.23"},
		{0.01, json.Number("-1.234"), "-1.2339", true, "negative values too"},
		{0.01, 1.2349, 1.2351, false, "0.0002 apart but on either side of the midpoint 1.235: a quantization, not a distance"},
		{0.01, 1.23, 1.25, false, "two steps apart"},
		{0.5, int64(3), "3.2", true, "integers are floats on the same grid"},
	}
	for _, c := range cases {
		if same := digest(c.tol, c.a) == digest(c.tol, c.b); same != c.same {
			t.Errorf("tol %v: %v vs %v: same digest %v, want %v (%s)", c.tol, c.a, c.b, same, c.same, c.why)
		}
	}
}
