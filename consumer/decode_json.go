package consumer

import (
	"bytes"
	"encoding/json"
	"fmt"

	gojson "github.com/goccy/go-json"
)

// unmarshalNumbers decodes exactly one JSON value from data into v, numbers in
// interfaces as json.Number: a float64 would corrupt LSNs, ts_ns and bigint ids.
func unmarshalNumbers(data []byte, v any) error { return stdUnmarshal(data, v) }

func stdUnmarshal(data []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	if err := dec.Decode(v); err != nil {
		return err
	}
	return onlySpaceAfter(data, dec.InputOffset())
}

func goccyUnmarshal(data []byte, v any) error {
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
