// Package compare holds recon's pure data logic: the values a decoder hands over,
// their normalization (rename, ignore, types), the canonical key, the keyed row
// digest, versions, and the classification of a (key, target) pair.
//
// It does no I/O, reads no clock and starts no goroutines: callers pass `now`.
//
// # Cross-format equality
//
// A column typed in compare.types normalizes to one text however a system
// sends it, so the same row digests the same from Debezium JSON with or
// without the schema wrapper, Debezium Avro, or flat JSON from a MySQL-style
// target (crossformat_test.go proves it shape by shape):
//
//   - decimal(S): Connect Decimal (bytes + scale), its bare base64 when the
//     schema is missing, a VariableScaleDecimal object, *big.Rat, decimal
//     text, JSON numbers and doubles (rounded half away from zero to S).
//     Exact inputs that do not fit S are errors, never rounded.
//   - timestamp: time.Time, ISO-8601 with or without a zone and with 0 to 9
//     fraction digits (zone-less is UTC, as Debezium encodes it), and epoch
//     numbers or numeric text whose unit is read from the magnitude;
//     timestamp_s, _ms, _us and _ns fix the unit instead.
//   - bool: true/false, 0/1, and the words true, t, yes, 1 (any case).
//   - uuid: any case, with or without dashes, braces or urn:uuid:, or 16 bytes.
//   - int: numbers and numeric text; float: the same, quantized by
//     float_tolerance; string: any scalar as its canonical text.
//
// Untyped columns keep their Go kind: Int 42 and String "42" are different
// values in a row (keys ignore kinds). Column names can be matched without
// regard to case (CaseInsensitive). A conflict's rationale names the columns
// that exist on one side only and those whose values differ (columnDiff).
package compare
