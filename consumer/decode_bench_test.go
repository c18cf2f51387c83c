package consumer

import (
	"testing"

	"github.com/recon-dev/recon/compare"
)

// benchRecords are a 10-column Postgres update (~660 bytes of envelope),
// plain and with JsonConverter's schema wrapper (~4 KB: the schema repeats in
// every record).
func benchRecords(b *testing.B) map[string][2][]byte {
	return map[string][2][]byte{
		"wrapped":   {readTestdata(b, "pg_orders_key_wrapped.json"), readTestdata(b, "pg_orders_update_wrapped.json")},
		"unwrapped": {readTestdata(b, "pg_orders_key.json"), readTestdata(b, "pg_orders_update.json")},
	}
}

func benchDecode(b *testing.B, d *DebeziumJSON, key, value []byte) {
	b.SetBytes(int64(len(key) + len(value)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := d.Decode(key, value, meta); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDebeziumJSON(b *testing.B) {
	recs := benchRecords(b)
	for _, shape := range []string{"wrapped", "unwrapped"} {
		b.Run(shape, func(b *testing.B) {
			d := NewDebeziumJSON(compare.VersionSpec{Kind: compare.VersionLSN}, compare.VersionSpec{})
			benchDecode(b, d, recs[shape][0], recs[shape][1])
		})
	}
}

// BenchmarkDebeziumJSONLibraries compares the ways to decode JSON with
// numbers kept as json.Number, on the same records: encoding/json's and
// goccy's Decoder.UseNumber, and goccy's Unmarshal with the same flag (the
// one Decode uses).
func BenchmarkDebeziumJSONLibraries(b *testing.B) {
	recs := benchRecords(b)
	libs := []struct {
		name string
		fn   func([]byte, any) error
	}{{"encoding-json-decoder", stdUnmarshal}, {"goccy-decoder", goccyDecoderUnmarshal}, {"goccy-unmarshal", unmarshalNumbers}}
	for _, lib := range libs {
		for _, shape := range []string{"wrapped", "unwrapped"} {
			b.Run(lib.name+"/"+shape, func(b *testing.B) {
				d := NewDebeziumJSON(compare.VersionSpec{Kind: compare.VersionLSN}, compare.VersionSpec{})
				d.unmarshal = lib.fn
				benchDecode(b, d, recs[shape][0], recs[shape][1])
			})
		}
	}
}
