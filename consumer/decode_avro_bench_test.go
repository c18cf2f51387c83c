package consumer

import (
	"testing"

	"github.com/recon-dev/recon/compare"
)

// BenchmarkDebeziumAvro decodes an orders update (Avro key and envelope)
// with its schemas cached, as in steady state.
func BenchmarkDebeziumAvro(b *testing.B) {
	f := newAvroFixture(b)
	key := f.encode(b, idKey, map[string]any{"id": int64(42)})
	value := f.encode(b, idEnvV1, envelopeNative("pg.public.orders.Value", "u", orderV1("new"), orderV1("paid"), pgSourceAvro(pgLSN)))
	d := NewDebeziumAvro(f.reg, compare.VersionSpec{Kind: compare.VersionLSN}, compare.VersionSpec{})
	if _, err := d.Decode(key, value, meta); err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(key) + len(value)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := d.Decode(key, value, meta); err != nil {
			b.Fatal(err)
		}
	}
}
