package consumer

import (
	"bytes"
	"encoding/json"
	"fmt"

	gojson "github.com/goccy/go-json"
)

// JSON decoding for the Debezium decoder. goccy/go-json decodes the sample
// events about twice as fast as encoding/json (BenchmarkDebeziumJSONLibraries)
// and matches it on every table test and under differential fuzzing.
//
// Numbers inside interfaces must stay json.Number: a float64 corrupts LSNs,
// ts_ns (~1.7e18) and bigint ids. goccy exports UseNumber only on its stream
// Decoder, which copies each record into a fresh buffer (three times the
// allocations of Unmarshal here). Its Unmarshal honours the same flag through
// DecodeOption.Flags, whose bit is unexported, so goccyUseNumber probes the
// bit once and is nil if a goccy release has moved it; then the Decoder is used.

// goccyUseNumberBit is decoder.UseNumberOption in goccy/go-json v0.12.0.
const goccyUseNumberBit = 1 << 3

var goccyUseNumber = probeGoccyUseNumber()

func probeGoccyUseNumber() gojson.DecodeOptionFunc {
	opt := func(o *gojson.DecodeOption) { o.Flags |= goccyUseNumberBit }
	var v any
	if err := gojson.UnmarshalWithOption([]byte(`9007199254740993`), &v, opt); err != nil {
		return nil
	}
	if n, ok := v.(json.Number); !ok || n != "9007199254740993" {
		return nil
	}
	return opt
}

// unmarshalNumbers decodes exactly one JSON value from data into v, with
// numbers in interfaces as json.Number.
func unmarshalNumbers(data []byte, v any) error {
	if goccyUseNumber != nil {
		return gojson.UnmarshalWithOption(data, v, goccyUseNumber)
	}
	return goccyDecoderUnmarshal(data, v)
}

// goccyDecoderUnmarshal is unmarshalNumbers through goccy's public UseNumber.
func goccyDecoderUnmarshal(data []byte, v any) error {
	dec := gojson.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	if err := dec.Decode(v); err != nil {
		return err
	}
	return onlySpaceAfter(data, dec.InputOffset())
}

// onlySpaceAfter rejects data after the first value: a Decoder reads a
// stream and would otherwise accept `{…} garbage`.
func onlySpaceAfter(data []byte, off int64) error {
	if off < 0 || off > int64(len(data)) {
		return fmt.Errorf("decoder offset %d outside %d bytes", off, len(data))
	}
	if rest := bytes.TrimLeft(data[off:], jsonSpace); len(rest) != 0 {
		return fmt.Errorf("invalid character %q after top-level value at offset %d", rest[0], len(data)-len(rest))
	}
	return nil
}
