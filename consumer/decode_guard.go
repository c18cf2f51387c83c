package consumer

import (
	"bytes"
	"errors"
	"unicode/utf8"
)

// maxJSONDepth bounds how deeply a JSON key or value may nest objects and
// arrays. Debezium's envelopes nest a handful of levels (wrapper, payload,
// after, a struct or array column, the schema's fields of fields); JSON and
// JSONB columns arrive as strings. 64 leaves room for any real table while
// keeping recursive decoding, normalization and the row's re-encoding in
// repair events (and in whatever reads them) shallow. goccy/go-json stops at
// 10,000 levels by itself, but a row 9,999 levels deep would still travel on.
const maxJSONDepth = 64

var openBrace, openBracket = []byte{'{'}, []byte{'['}

// checkJSON is a single pass over a JSON key or value, before any parsing,
// that refuses what the JSON library would accept at a cost or silently
// alter: nesting deeper than maxJSONDepth (too_deeply_nested), and bytes that
// are not UTF-8 (invalid_utf8). RFC 8259 requires UTF-8, and Kafka Connect's
// JsonConverter fails on such bytes too; the JSON library would replace them
// with U+FFFD, so two different corrupted values would digest the same (a
// divergence hidden) and a repair could write the replacement characters
// into a target. The DLQ keeps the original bytes. what is "key" or "value".
//
// It costs one read of the bytes and allocates nothing unless it refuses.
// Escapes such as \ud800 (a lone surrogate) are valid JSON text and are left
// to the decoder, which replaces them as encoding/json does.
func checkJSON(what string, b []byte) *DecodeError { return checkJSONAt(what, b, 0, 0) }

// checkWrapped is checkJSON of a value whose schema wrapper matched a cached
// schema text (splitWrapped): that text passed checkJSON when it was first
// seen, in a wrapper like this one, so only the payload is scanned, one
// level down, and offsets are reported as in the whole value. JsonConverter
// repeats the schema, several KiB, in every record.
func checkWrapped(e *schemaEntry, payload []byte) *DecodeError {
	return checkJSONAt("value", payload, 1, len(wrapHead)+len(e.raw)+len(wrapMid))
}

// checkJSONAt is checkJSON of b found at offset off of the key or value, at
// nesting depth depth.
func checkJSONAt(what string, b []byte, depth, off int) *DecodeError {
	if !utf8.Valid(b) {
		at := firstInvalidUTF8(b)
		return decodeErr(ReasonInvalidUTF8, "%s: byte 0x%02x at offset %d is not UTF-8", what, b[at], off+at)
	}
	// A record cannot nest deeper than it has brackets: counting them is
	// vectorized and skips the byte-by-byte walk for nearly every record.
	if depth+bytes.Count(b, openBrace)+bytes.Count(b, openBracket) <= maxJSONDepth {
		return nil
	}
	for i := 0; i < len(b); i++ {
		switch b[i] {
		case '"':
			// Skip the string: brackets inside it are text. An unterminated
			// string ends the scan; the decoder reports it.
			i = stringEnd(b, i+1)
		case '{', '[':
			depth++
			if depth > maxJSONDepth {
				return decodeErr(ReasonTooDeep, "%s: nested deeper than %d levels at offset %d", what, maxJSONDepth, off+i)
			}
		case '}', ']':
			depth--
		}
	}
	return nil
}

// errInvalidUTF8 marks an Avro string that is not UTF-8, which the Avro
// spec requires; Avro decoders do not check it. Refused for the reasons
// checkJSON gives.
var errInvalidUTF8 = errors.New("string is not UTF-8")

// stringEnd is the index of the quote that closes the string whose text
// starts at b[i], or len(b). It jumps from quote to quote (IndexByte is
// vectorized) and counts the backslashes before each: an odd run escapes it.
func stringEnd(b []byte, i int) int {
	for {
		q := bytes.IndexByte(b[i:], '"')
		if q < 0 {
			return len(b)
		}
		q += i
		n := 0
		for q-1-n >= i && b[q-1-n] == '\\' {
			n++
		}
		if n%2 == 0 {
			return q
		}
		i = q + 1
	}
}

// firstInvalidUTF8 is the offset of the first byte of b that does not start
// a valid UTF-8 sequence; len(b) if there is none.
func firstInvalidUTF8(b []byte) int {
	for i := 0; i < len(b); {
		r, n := utf8.DecodeRune(b[i:])
		if r == utf8.RuneError && n <= 1 {
			return i
		}
		i += n
	}
	return len(b)
}
