package consumer

import (
	"strings"
	"testing"

	"github.com/recon-dev/recon/compare"
)

// FuzzFlatJSON decodes arbitrary key/value bytes as flat-json with every
// version spec. Seeds are in testdata/fuzz/FuzzFlatJSON: unwrapped records of
// both shapes. It checks that decoding never panics, that every error is a
// *DecodeError with a known reason, that results are well formed with no
// metadata left in the row, that a second decode (which may take the
// cached-schema fast path) agrees with the first, and that goccy agrees with
// encoding/json.
func FuzzFlatJSON(f *testing.F) {
	f.Add([]byte(`{"id":42}`), []byte(`{"id":42,"status":"paid","__op":"u","__source_ts_ms":1718454600123,"__deleted":"false"}`))
	settings := []string{"lsn", "position", "field:version", "field:__source_txId", "offset|field:_src_lsn"}
	var decoders []*FlatJSON
	// Shared across inputs, so that schemas cached by one input meet the next.
	for _, sp := range fuzzSpecs(f, settings...) {
		decoders = append(decoders, NewFlatJSON(sp[0], sp[1]))
	}
	reference := NewFlatJSON(compare.VersionSpec{Kind: compare.VersionField, Field: "version"}, compare.VersionSpec{})
	reference.dj.unmarshal = stdUnmarshal
	f.Fuzz(func(t *testing.T, key, value []byte) {
		want, wantErr := reference.Decode(key, value, meta)
		for i, d := range decoders {
			first, err1 := d.Decode(key, value, meta)
			checkFuzzResult(t, settings[i], first, err1)
			for name := range first.Row {
				if strings.HasPrefix(name, "__") {
					t.Fatalf("%s: metadata %q left in the row", settings[i], name)
				}
			}
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
