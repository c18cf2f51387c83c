package consumer

import (
	"errors"
	"slices"
	"testing"

	"github.com/recon-dev/recon/compare"
)

var decodeReasons = []string{
	ReasonMalformed, ReasonUnknownOp, ReasonMissingVersion, ReasonBadValue,
	ReasonOversized, ReasonMissingKey, ReasonUnknownSchema,
}

// FuzzDebeziumJSON decodes arbitrary key/value bytes with every version spec.
// Seeds are in testdata/fuzz/FuzzDebeziumJSON: connector-shaped records of
// both shapes. It checks that decoding never panics, that every error is a
// *DecodeError with a known reason, that results are well formed, and that a
// second decode (which may take the cached-schema fast path) agrees with the first.
func FuzzDebeziumJSON(f *testing.F) {
	f.Add([]byte(`{"id":42}`), []byte(pgEvent("u", `{"id":42,"status":"new"}`, `{"id":42,"status":"paid"}`)))
	specs := []struct{ version, lineage string }{
		{"lsn", ""}, {"position", ""}, {"field:version", ""}, {"field:updated_at", ""}, {"offset", "field:_src_lsn"},
	}
	decoders := make([]*DebeziumJSON, len(specs))
	for i, s := range specs {
		v, err := compare.ParseVersionSpec(s.version)
		if err != nil {
			f.Fatal(err)
		}
		l, err := compare.ParseLineageSpec(s.lineage)
		if err != nil {
			f.Fatal(err)
		}
		// Shared across inputs, so that schemas cached by one input meet the next.
		decoders[i] = NewDebeziumJSON(v, l)
	}
	// encoding/json is the reference: the production library must agree with it.
	reference := NewDebeziumJSON(compare.VersionSpec{Kind: compare.VersionField, Field: "version"}, compare.VersionSpec{})
	reference.unmarshal = stdUnmarshal
	f.Fuzz(func(t *testing.T, key, value []byte) {
		want, wantErr := reference.Decode(key, value, meta)
		for i, d := range decoders {
			first, err1 := d.Decode(key, value, meta)
			checkFuzzResult(t, specs[i].version, first, err1)
			second, err2 := d.Decode(key, value, meta)
			checkFuzzResult(t, specs[i].version, second, err2)
			if (err1 == nil) != (err2 == nil) || (err1 != nil && err1.Error() != err2.Error()) {
				t.Fatalf("%s: decodes disagree: %v / %v", specs[i].version, err1, err2)
			}
			if err1 == nil && !sameDecoded(first, second) {
				t.Fatalf("%s: decodes disagree:\n%s\n%s", specs[i].version, showDecoded(first), showDecoded(second))
			}
			if specs[i].version == "field:version" && !sameOutcome(first, err1, want, wantErr) {
				t.Fatalf("goccy and encoding/json disagree:\n%s %v\n%s %v", showDecoded(first), err1, showDecoded(want), wantErr)
			}
		}
	})
}

// sameOutcome: the same result, or errors with the same reason (messages
// may word syntax errors differently).
func sameOutcome(a Decoded, aErr error, b Decoded, bErr error) bool {
	if aErr != nil || bErr != nil {
		var ae, be *DecodeError
		return errors.As(aErr, &ae) && errors.As(bErr, &be) && ae.Reason == be.Reason
	}
	return sameDecoded(a, b)
}

func checkFuzzResult(t *testing.T, spec string, got Decoded, err error) {
	t.Helper()
	if err != nil {
		var de *DecodeError
		if !errors.As(err, &de) {
			t.Fatalf("%s: error %v is %T, not *DecodeError", spec, err, err)
		}
		if !slices.Contains(decodeReasons, de.Reason) || de.Err == nil {
			t.Fatalf("%s: bad DecodeError %#v", spec, de)
		}
		if got.Tombstone || got.Skip != "" || got.Op != 0 || got.Key != nil || got.Row != nil ||
			!got.Version.IsZero() || !got.Lineage.IsZero() || !got.EventTime.IsZero() {
			t.Fatalf("%s: error %v with a result: %s", spec, err, showDecoded(got))
		}
		return
	}
	switch {
	case got.Tombstone:
		if got.Skip != "" || got.Op != 0 || got.Key != nil || got.Row != nil || !got.EventTime.IsZero() {
			t.Fatalf("%s: tombstone with fields: %s", spec, showDecoded(got))
		}
	case got.Skip != "":
		if (got.Skip != SkipTruncate && got.Skip != SkipMessage) || got.Op != 0 || got.Row != nil {
			t.Fatalf("%s: bad skip: %s", spec, showDecoded(got))
		}
	case got.Op == compare.OpUpsert:
		if got.Row == nil {
			t.Fatalf("%s: upsert without row", spec)
		}
	case got.Op != compare.OpDelete:
		t.Fatalf("%s: no op: %s", spec, showDecoded(got))
	}
	if err := noFloats(got.Row); err != nil {
		t.Fatalf("%s: row: %v", spec, err)
	}
	if err := noFloats(got.Key); err != nil {
		t.Fatalf("%s: key: %v", spec, err)
	}
}
