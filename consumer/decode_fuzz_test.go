package consumer

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/recon-dev/recon/compare"
)

var decodeReasons = Reasons()

// FuzzDebeziumJSON decodes arbitrary key/value bytes with every version spec.
// Seeds are in testdata/fuzz/FuzzDebeziumJSON: connector-shaped records of
// both shapes. It checks that decoding never panics, that every error is a
// *DecodeError with a known reason, that results are well formed, and that a
// second decode (which may take the cached-schema fast path) agrees with the first.
func FuzzDebeziumJSON(f *testing.F) {
	f.Add([]byte(`{"id":42}`), []byte(pgEvent("u", `{"id":42,"status":"new"}`, `{"id":42,"status":"paid"}`)))
	settings := []string{"lsn", "position", "field:version", "field:updated_at", "offset|field:_src_lsn"}
	var decoders []*DebeziumJSON
	// Shared across inputs, so that schemas cached by one input meet the next.
	for _, sp := range fuzzSpecs(f, settings...) {
		decoders = append(decoders, NewDebeziumJSON(sp[0], sp[1]))
	}
	// encoding/json is the reference: the production library must agree with it.
	reference := NewDebeziumJSON(compare.VersionSpec{Kind: compare.VersionField, Field: "version"}, compare.VersionSpec{})
	reference.unmarshal = stdUnmarshal
	f.Fuzz(func(t *testing.T, key, value []byte) {
		want, wantErr := reference.Decode(key, value, meta)
		for i, d := range decoders {
			first, err1 := d.Decode(key, value, meta)
			checkFuzzResult(t, settings[i], first, err1)
			second, err2 := d.Decode(key, value, meta)
			checkFuzzResult(t, settings[i], second, err2)
			if (err1 == nil) != (err2 == nil) || (err1 != nil && err1.Error() != err2.Error()) {
				t.Fatalf("%s: decodes disagree: %v / %v", settings[i], err1, err2)
			}
			if err1 == nil && !sameDecoded(first, second) {
				t.Fatalf("%s: decodes disagree:\n%s\n%s", settings[i], showDecoded(first), showDecoded(second))
			}
			if settings[i] == "field:version" && !sameOutcome(first, err1, want, wantErr) {
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

// fuzzSpecs parses "version" or "version|lineage" settings for fuzz targets.
func fuzzSpecs(f *testing.F, settings ...string) [][2]compare.VersionSpec {
	f.Helper()
	out := make([][2]compare.VersionSpec, 0, len(settings))
	for _, s := range settings {
		version, lineage, _ := strings.Cut(s, "|")
		v, err := compare.ParseVersionSpec(version)
		if err != nil {
			f.Fatal(err)
		}
		l, err := compare.ParseLineageSpec(lineage)
		if err != nil {
			f.Fatal(err)
		}
		out = append(out, [2]compare.VersionSpec{v, l})
	}
	return out
}
