package schemas

import (
	"context"
	"fmt"

	"github.com/twmb/franz-go/pkg/sr"
)

// OutputTopics are the topics whose events go out in Avro: the divergences
// and repairs topics. The DLQ is not one of them: it keeps the bytes of the
// records it quarantines.
type OutputTopics struct {
	Divergences string
	Repairs     string
}

// OutputSubject is the subject of topic's values under the topic-name
// strategy, the serializers' default: <topic>-value.
func OutputSubject(topic string) string { return topic + "-value" }

// OutputEncoder writes the JSON form of output events as Avro in the
// Confluent wire format (magic 0, 4-byte big-endian schema id, Avro binary),
// with the ids the registry gave the output schemas. Safe for concurrent use.
type OutputEncoder struct {
	topics map[string]outputTopic
}

type outputTopic struct {
	id    int
	codec *OutputCodec
}

// RegisterOutputs registers the output event schemas in the schema registry
// under <topic>-value and returns an encoder that writes their ids. The
// registry answers an existing id for a schema it already holds, and refuses
// one that is incompatible with the subject's versions: recon must not start
// writing events its consumers cannot read.
func RegisterOutputs(ctx context.Context, cl *sr.Client, topics OutputTopics) (*OutputEncoder, error) {
	e := &OutputEncoder{topics: make(map[string]outputTopic, 2)}
	for _, o := range []struct{ topic, schema string }{
		{topics.Divergences, divergenceAvsc},
		{topics.Repairs, repairAvsc},
	} {
		codec, err := NewOutputCodec(o.schema)
		if err != nil {
			return nil, err
		}
		subject := OutputSubject(o.topic)
		id, err := cl.RegisterSchema(ctx, subject, sr.Schema{Schema: o.schema, Type: sr.TypeAvro}, -1, -1)
		if err != nil {
			return nil, fmt.Errorf("registering %s under subject %s: %w", codec.Name(), subject, err)
		}
		e.topics[o.topic] = outputTopic{id: id, codec: codec}
	}
	return e, nil
}

// SchemaID is the registry id of topic's schema, and whether topic is one
// that the encoder writes in Avro.
func (e *OutputEncoder) SchemaID(topic string) (int, bool) {
	t, ok := e.topics[topic]
	return t.id, ok
}

// EncodeValue turns the JSON form of an event bound for topic into the
// Confluent wire format. A value bound for any other topic comes back as it
// is: the DLQ keeps the original bytes.
func (e *OutputEncoder) EncodeValue(topic string, value []byte) ([]byte, error) {
	t, ok := e.topics[topic]
	if !ok {
		return value, nil
	}
	var h sr.ConfluentHeader
	b, _ := h.AppendEncode(make([]byte, 0, 5+len(value)), t.id, nil) // never fails without indexes
	b, err := t.codec.AppendBinary(b, value)
	if err != nil {
		return nil, fmt.Errorf("topic %s: %w", topic, err)
	}
	return b, nil
}

// DecodeValue reverses EncodeValue: the JSON form of an event read from
// topic. It knows only the schema ids it registered.
func (e *OutputEncoder) DecodeValue(topic string, b []byte) ([]byte, error) {
	t, ok := e.topics[topic]
	if !ok {
		return b, nil
	}
	var h sr.ConfluentHeader
	id, payload, err := h.DecodeID(b)
	if err != nil {
		return nil, fmt.Errorf("topic %s: %w", topic, err)
	}
	if id != t.id {
		return nil, fmt.Errorf("topic %s: schema id %d, want %d (%s)", topic, id, t.id, OutputSubject(topic))
	}
	return t.codec.FromBinary(payload)
}
