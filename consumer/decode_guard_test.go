package consumer

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/recon-dev/recon/compare"
	"github.com/recon-dev/recon/state"
)

func nested(n int) string { return strings.Repeat("[", n) + strings.Repeat("]", n) }

// TestCheckJSON: the pre-scan refuses nesting past maxJSONDepth and bytes
// that are not UTF-8, and nothing else.
func TestCheckJSON(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		want     string // reason, "" for accepted
	}{
		{"a plain envelope", `{"op":"c","after":{"id":1,"tags":["a",{"b":[1]}]}}`, ""},
		{"exactly the bound", nested(maxJSONDepth), ""},
		{"one past the bound", nested(maxJSONDepth + 1), ReasonTooDeep},
		{"objects count too", strings.Repeat(`{"a":`, maxJSONDepth+1) + "1" + strings.Repeat("}", maxJSONDepth+1), ReasonTooDeep},
		{"100k levels", nested(100_000), ReasonTooDeep},
		// Brackets inside strings are text, escaped quotes do not end them.
		{"brackets in a string", `{"s":"` + strings.Repeat("[{", 1000) + `"}`, ""},
		{"escaped quote then brackets", `{"s":"\"` + strings.Repeat("[", 100) + `"}`, ""},
		{"escaped backslash ends the string", `{"s":"\\",` + `"t":` + nested(maxJSONDepth) + `}`, ReasonTooDeep},
		// Many shallow siblings are fine: depth, not count.
		{"wide", "[" + strings.Repeat(nested(10)+",", 10_000) + "1]", ""},
		{"multibyte UTF-8", `{"s":"é€😀"}`, ""},
		{"invalid byte in a string", "{\"s\":\"a\xffb\"}", ReasonInvalidUTF8},
		{"overlong encoding", "{\"s\":\"\xc0\x80\"}", ReasonInvalidUTF8},
		{"surrogate encoded as UTF-8", "{\"s\":\"\xed\xa0\x80\"}", ReasonInvalidUTF8},
		{"cut mid-rune", "{\"s\":\"\xe2\x82", ReasonInvalidUTF8},
		// A lone-surrogate escape is valid JSON text: the decoder's business.
		{"surrogate escape", `{"s":"\ud800"}`, ""},
		// Unterminated: left to the decoder, which says malformed.
		{"unterminated string", `{"s":"[[[`, ""},
		{"empty", "", ""},
	} {
		derr := checkJSON("value", []byte(tc.in))
		got := ""
		if derr != nil {
			got = derr.Reason
		}
		if got != tc.want {
			t.Errorf("%s: got %q (%v), want %q", tc.name, got, derr, tc.want)
		}
	}
	if derr := checkJSON("key", []byte("{\"id\":\"x\xfe\"}")); derr == nil || derr.Error() != "invalid_utf8: key: byte 0xfe at offset 8 is not UTF-8" {
		t.Errorf("the error names the part, byte and offset: %v", derr)
	}
}

// TestDecodersRefuseHostileJSON: both JSON decoders refuse deep nesting and
// invalid UTF-8 in keys and values with their own reasons, and a tombstone
// whose key is not a key goes to the DLQ instead of being skipped.
func TestDecodersRefuseHostileJSON(t *testing.T) {
	lsn := compare.VersionSpec{Kind: compare.VersionLSN}
	decoders := map[string]Decoder{"debezium-json": NewDebeziumJSON(lsn, compare.VersionSpec{}), "flat-json": NewFlatJSON(lsn, compare.VersionSpec{})}
	goodValue := map[string]string{
		"debezium-json": pgEvent("c", "null", `{"id":1,"x":%s}`),
		"flat-json":     `{"id":1,"x":%s,"__op":"c","__lsn":5}`,
	}
	for name, d := range decoders {
		value := func(x string) []byte { return []byte(strings.Replace(goodValue[name], "%s", x, 1)) }
		for _, tc := range []struct {
			what       string
			key, value []byte
			want       string // reason; "" decodes, "tombstone" is one
		}{
			{"good", []byte(`{"id":1}`), value(`"s"`), ""},
			{"a nested column within bounds", []byte(`{"id":1}`), value(nested(20)), ""},
			{"100k-deep column", []byte(`{"id":1}`), value(nested(100_000)), ReasonTooDeep},
			{"100k-deep key", []byte(`{"id":` + nested(100_000) + `}`), value(`"s"`), ReasonTooDeep},
			{"invalid UTF-8 in a column", []byte(`{"id":1}`), value("\"a\xffb\""), ReasonInvalidUTF8},
			{"invalid UTF-8 in the key", []byte("{\"id\":\"\xff\"}"), value(`"s"`), ReasonInvalidUTF8},
			{"tombstone", []byte(`{"id":1}`), nil, "tombstone"},
			{"tombstone with a null key", nil, nil, "tombstone"},
			{"tombstone with a garbage key", []byte("\x00\x01garbage"), nil, ReasonMalformed},
			{"tombstone with an invalid UTF-8 key", []byte("{\"id\":\"\xff\"}"), nil, ReasonInvalidUTF8},
			{"tombstone with a deep key", []byte(nested(1000)), nil, ReasonTooDeep},
		} {
			got, err := d.Decode(tc.key, tc.value, meta)
			var reason string
			var de *DecodeError
			switch {
			case errors.As(err, &de):
				reason = de.Reason
			case err != nil:
				t.Fatalf("%s %s: %T %v is no DecodeError", name, tc.what, err, err)
			case got.Tombstone:
				reason = "tombstone"
			}
			if reason != tc.want {
				t.Errorf("%s %s: got %q (%v), want %q", name, tc.what, reason, err, tc.want)
			}
		}
	}
}

// allocatedPerRun is the heap bytes fn allocates, averaged over runs, after
// a first call that warms the decoders' schema caches.
func allocatedPerRun(runs int, fn func()) uint64 {
	fn()
	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	for range runs {
		fn()
	}
	runtime.ReadMemStats(&after)
	return (after.TotalAlloc - before.TotalAlloc) / uint64(runs)
}

// TestHostileRecordsBoundedMemory: what hostile records cost is bounded by
// their size, and refused records cost next to nothing whatever their size:
// the pre-scan and the max_record_bytes check refuse before any parsing.
// Memory, not time, is asserted: it does not depend on the machine.
func TestHostileRecordsBoundedMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("allocates a few hundred MiB in total")
	}
	const maxRecord = 1 << 20
	rules, err := compare.NewRules([]string{"id"}, nil, nil, nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	c := &Consumer{
		routes: map[string]*Route{"t": {Dataset: "orders", System: "pg", Topic: "t", Rules: rules,
			Decoder: NewDebeziumJSON(compare.VersionSpec{Kind: compare.VersionLSN}, compare.VersionSpec{})}},
		opts: Options{MaxRecordBytes: maxRecord, DLQMaxBytes: DefaultDLQMaxBytes, DLQTopic: "dlq"},
		log:  slog.New(slog.DiscardHandler),
	}
	key := []byte(`{"id":1}`)
	// A value of exactly n bytes with one string column padded to fit.
	sized := func(n int, fill string) []byte {
		v := pgEvent("c", "null", `{"id":1,"s":"%s"}`)
		pad := n - (len(v) - 2) - len(key)
		return []byte(strings.Replace(v, "%s", strings.Repeat(fill, pad/len(fill)), 1))
	}
	decode := func(value []byte) (reconcile string) {
		it, err := c.decode(context.Background(), &kgo.Record{Topic: "t", Key: key, Value: value})
		switch {
		case err != nil:
			t.Fatal(err)
		case it.Reject != nil:
			return it.Reject.Reason
		case it.Event == nil:
			t.Fatal("neither an event nor a reject")
		}
		return ""
	}
	for _, tc := range []struct {
		name     string
		value    []byte
		reason   string
		maxBytes uint64 // per decode
	}{
		// Refused: a few hundred bytes for the error and DLQ headers, not
		// proportional to the input.
		{"100k levels of [", []byte(nested(100_000)), ReasonTooDeep, 4 << 10},
		{"1M levels of [, over max_record_bytes", []byte(nested(1_000_000)), ReasonOversized, 4 << 10},
		{"900 KiB string ending in invalid UTF-8", append(sized(900<<10, "a")[:900<<10-10], "\xff\"}}"...), ReasonInvalidUTF8, 4 << 10},
		{"one byte over max_record_bytes", sized(maxRecord+1, "a"), ReasonOversized, 4 << 10},
		// Accepted: a small multiple of the input (the value is decoded
		// into a string, normalized and hashed).
		{"900 KiB string column", sized(900<<10, "a"), "", 4 * (900 << 10)},
		{"exactly max_record_bytes", sized(maxRecord, "é"), "", 4 * maxRecord},
	} {
		var reason string
		got := allocatedPerRun(5, func() { reason = decode(tc.value) })
		if reason != tc.reason {
			t.Errorf("%s: reason %q, want %q", tc.name, reason, tc.reason)
		}
		if got > tc.maxBytes {
			t.Errorf("%s (%d bytes): %d bytes allocated per decode, want at most %d", tc.name, len(tc.value), got, tc.maxBytes)
		}
		t.Logf("%s: %d bytes in, %d bytes allocated", tc.name, len(tc.value), got)
	}
}

// TestFitDLQ: a DLQ copy never exceeds its limit; what does not fit is cut,
// value first, and says so; recon's own headers are always kept.
func TestFitDLQ(t *testing.T) {
	own := []state.Header{{Key: "recon-error", Value: []byte("malformed: value: x")}, {Key: "recon-source-offset", Value: []byte("7")}}
	size := func(k, v []byte, hs []state.Header) int {
		n := len(k) + len(v)
		for _, h := range hs {
			n += len(h.Key) + len(h.Value)
		}
		return n
	}
	header := func(hs []state.Header, key string) string {
		for _, h := range hs {
			if h.Key == key {
				return string(h.Value)
			}
		}
		return ""
	}
	big := func(n int) []byte { return bytes.Repeat([]byte("v"), n) }
	const limit = 10_000
	for _, tc := range []struct {
		name                 string
		key, value           []byte
		orig                 []state.Header
		cut                  bool
		keepKey, keepOrigHdr bool
	}{
		{"fits", []byte("k"), big(9000), []state.Header{{Key: "h", Value: []byte("1")}}, false, true, true},
		{"value cut", []byte("k"), big(50_000), []state.Header{{Key: "h", Value: []byte("1")}}, true, true, true},
		{"empty value, huge key", big(50_000), nil, nil, true, false, false},
		{"huge headers dropped", []byte("k"), []byte("v"), []state.Header{{Key: "h", Value: big(20_000)}}, true, true, false},
	} {
		k, v, hs, cut := fitDLQ(tc.key, tc.value, tc.orig, append([]state.Header(nil), own...), limit)
		if cut != tc.cut {
			t.Errorf("%s: cut %v, want %v", tc.name, cut, tc.cut)
		}
		if n := size(k, v, hs); n > limit {
			t.Errorf("%s: %d bytes, over the limit %d", tc.name, n, limit)
		}
		if header(hs, "recon-error") == "" || header(hs, "recon-source-offset") != "7" {
			t.Errorf("%s: recon's headers lost: %v", tc.name, hs)
		}
		if bytes.Equal(k, tc.key) != tc.keepKey || (header(hs, "h") != "") != tc.keepOrigHdr {
			t.Errorf("%s: key kept %v, original header kept %v", tc.name, bytes.Equal(k, tc.key), header(hs, "h") != "")
		}
		if !bytes.HasPrefix(tc.value, v) || !bytes.HasPrefix(tc.key, k) {
			t.Errorf("%s: the copy is not a prefix of the record", tc.name)
		}
		wantTrunc, wantSize := "", ""
		if tc.cut {
			wantTrunc, wantSize = "true", strconv.Itoa(len(tc.key)+len(tc.value))
		} else if len(v) != len(tc.value) {
			t.Errorf("%s: value cut without a reason", tc.name)
		}
		if header(hs, "recon-truncated") != wantTrunc || header(hs, "recon-original-size") != wantSize {
			t.Errorf("%s: recon-truncated %q recon-original-size %q, want %q %q", tc.name,
				header(hs, "recon-truncated"), header(hs, "recon-original-size"), wantTrunc, wantSize)
		}
	}
}

// BenchmarkCheckJSON is the pre-scan's cost on a typical record (compare
// with BenchmarkDecode*) and on hostile ones.
func BenchmarkCheckJSON(b *testing.B) {
	for _, bc := range []struct {
		name  string
		value []byte
	}{
		{"typical", wrap(envSchema(cols(col("id", "int64", ""), col("status", "string", ""), col("amount", "bytes", "org.apache.kafka.connect.data.Decimal", "scale", "2"), col("note", "string", ""))), pgEvent("u", "null", `{"id":42,"status":"paid","amount":"AfQ=","note":"é"}`))},
		{"100k_nested", []byte(nested(100_000))},
		{"900KiB_string", []byte(`{"s":"` + strings.Repeat("a", 900<<10) + `"}`)},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.SetBytes(int64(len(bc.value)))
			b.ReportAllocs()
			for b.Loop() {
				_ = checkJSON("value", bc.value)
			}
		})
	}
}

// FuzzCheckJSON checks the pre-scan against references: it refuses as
// invalid_utf8 exactly what utf8.Valid refuses, at the first bad byte; on
// valid JSON it refuses as too_deeply_nested exactly what nests deeper than
// maxJSONDepth by encoding/json's tokens; and a wrapped value's payload,
// checked alone by checkWrapped, gets the same verdict and offset as the
// whole value.
func FuzzCheckJSON(f *testing.F) {
	for _, s := range []string{`{"a":[1,{"b":"[["}]}`, nested(maxJSONDepth), nested(maxJSONDepth + 1), "{\"s\":\"\xff\"}", `"\\\"["`, `[[["\\"]]]`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		derr := checkJSON("value", b)
		if !utf8.Valid(b) {
			at := firstInvalidUTF8(b)
			if derr == nil || derr.Reason != ReasonInvalidUTF8 || !strings.Contains(derr.Error(), " offset "+strconv.Itoa(at)+" ") {
				t.Fatalf("invalid UTF-8 at %d: got %v", at, derr)
			}
			return
		}
		if derr != nil && derr.Reason != ReasonTooDeep {
			t.Fatalf("valid UTF-8 refused as %v", derr)
		}
		if depth, ok := jsonDepth(b); ok && (depth > maxJSONDepth) != (derr != nil) {
			t.Fatalf("depth %d: got %v", depth, derr)
		}
		// The same bytes as a payload in a cached wrapper.
		e := &schemaEntry{raw: `{"type":"struct"}`}
		whole := []byte(wrapHead + e.raw + wrapMid + string(b) + "}")
		got, want := checkWrapped(e, b), checkJSON("value", whole)
		if (got == nil) != (want == nil) || (got != nil && got.Error() != want.Error()) {
			t.Fatalf("wrapped payload: %v, whole value: %v", got, want)
		}
	})
}

// jsonDepth is the deepest nesting of b by encoding/json's tokens; ok is
// false when b is not one valid JSON value.
func jsonDepth(b []byte) (depth int, ok bool) {
	if !json.Valid(b) {
		return 0, false
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	d := 0
	for {
		tok, err := dec.Token()
		if err != nil {
			return depth, err == io.EOF
		}
		switch tok {
		case json.Delim('{'), json.Delim('['):
			d++
			depth = max(depth, d)
		case json.Delim('}'), json.Delim(']'):
			d--
		}
	}
}
