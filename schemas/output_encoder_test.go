package schemas

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"net/http"
	"reflect"
	"strings"
	"testing"

	"github.com/linkedin/goavro/v2"
	"github.com/twmb/franz-go/pkg/sr"
	"github.com/twmb/franz-go/pkg/sr/srfake"

	"github.com/recon-dev/recon/repair"
)

var testTopics = OutputTopics{Divergences: "recon.divergences", Repairs: "recon.repairs"}

func srClient(t *testing.T, url string) *sr.Client {
	t.Helper()
	cl, err := sr.NewClient(sr.URLs(url))
	if err != nil {
		t.Fatal(err)
	}
	return cl
}

// The schemas land under <topic>-value, a restart gets the same ids back, and
// events go out as magic byte, the subject's id and Avro that the registered
// schema decodes.
func TestRegisterOutputsTopicNameStrategy(t *testing.T) {
	reg := srfake.New()
	defer reg.Close()
	ctx := context.Background()
	enc, err := RegisterOutputs(ctx, srClient(t, reg.URL()), testTopics)
	if err != nil {
		t.Fatal(err)
	}
	again, err := RegisterOutputs(ctx, srClient(t, reg.URL()), testTopics)
	if err != nil {
		t.Fatal(err)
	}
	events := map[string]any{
		"recon.divergences": outputEvents()[0].event,
		"recon.repairs":     repairEvent(repair.ActionUpsert),
	}
	for topic, ev := range events {
		subject := topic + "-value"
		ss, ok := reg.GetSchema(subject, 1)
		id, known := enc.SchemaID(topic)
		if !ok || !known || ss.ID != id {
			t.Fatalf("subject %s: %+v, %v; encoder has id %d, %v", subject, ss, ok, id, known)
		}
		if id2, _ := again.SchemaID(topic); id2 != id {
			t.Errorf("%s: registering again gave id %d, want %d", subject, id2, id)
		}
		if _, ok := reg.GetSchema(subject, 2); ok {
			t.Errorf("%s: registering the same schema again made a version 2", subject)
		}

		js, _ := repair.Marshal(ev)
		b, err := enc.EncodeValue(topic, js)
		if err != nil {
			t.Fatal(err)
		}
		if b[0] != 0 || int(binary.BigEndian.Uint32(b[1:5])) != id {
			t.Fatalf("%s: header % x, want magic 0 and id %d", topic, b[:5], id)
		}
		// A consumer: the id names the writer schema in the registry.
		s, err := srClient(t, reg.URL()).SchemaByID(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		codec, err := goavro.NewCodec(s.Schema)
		if err != nil {
			t.Fatal(err)
		}
		native, rest, err := codec.NativeFromBinary(b[5:])
		if err != nil || len(rest) != 0 {
			t.Fatalf("%s: decoding with the registered schema: %v, %d bytes left", topic, err, len(rest))
		}
		if rec := native.(map[string]any); rec["id"] != decodeJSON(t, js)["id"] {
			t.Errorf("%s: decoded id %v", topic, rec["id"])
		}
		back, err := enc.DecodeValue(topic, b)
		if err != nil {
			t.Fatal(err)
		}
		assertSameJSON(t, reflect.TypeOf(ev), js, back)
	}
}

// The DLQ and any other topic keep their bytes.
func TestOutputEncoderPassesOtherTopics(t *testing.T) {
	reg := srfake.New()
	defer reg.Close()
	enc, err := RegisterOutputs(context.Background(), srClient(t, reg.URL()), testTopics)
	if err != nil {
		t.Fatal(err)
	}
	raw := []byte("not json \x00")
	if b, err := enc.EncodeValue("recon.dlq", raw); err != nil || string(b) != string(raw) {
		t.Errorf("EncodeValue(dlq) = %q, %v; want the bytes unchanged", b, err)
	}
	if _, ok := enc.SchemaID("recon.dlq"); ok {
		t.Error("the DLQ has a schema id")
	}
	if _, err := enc.EncodeValue("recon.divergences", raw); err == nil {
		t.Error("EncodeValue of bytes that are no event succeeded")
	}
	if _, err := enc.DecodeValue("recon.divergences", []byte{1, 0, 0, 0, 1, 2}); err == nil {
		t.Error("DecodeValue with magic byte 1 succeeded")
	}
}

// A registry that refuses a schema (incompatible with the subject's versions)
// fails registration with the subject and the registry's reason.
func TestRegisterOutputsRefused(t *testing.T) {
	reg := srfake.New()
	defer reg.Close()
	reg.Intercept(func(w http.ResponseWriter, r *http.Request) bool {
		if r.Method != http.MethodPost || !strings.Contains(r.URL.Path, "/subjects/recon.repairs-value/versions") {
			return false
		}
		w.Header().Set("Content-Type", "application/vnd.schemaregistry.v1+json")
		w.WriteHeader(http.StatusConflict)
		json.NewEncoder(w).Encode(sr.ResponseError{ErrorCode: 409, Message: "Schema being registered is incompatible with an earlier schema for subject \"recon.repairs-value\""})
		return true
	})
	_, err := RegisterOutputs(context.Background(), srClient(t, reg.URL()), testTopics)
	if err == nil || !strings.Contains(err.Error(), "registering dev.recon.Repair under subject recon.repairs-value: Schema being registered is incompatible") {
		t.Fatalf("RegisterOutputs = %v", err)
	}
}

func TestRegisterOutputsUnreachable(t *testing.T) {
	reg := srfake.New()
	url := reg.URL()
	reg.Close()
	if _, err := RegisterOutputs(context.Background(), srClient(t, url), testTopics); err == nil || !strings.Contains(err.Error(), "recon.divergences-value") {
		t.Fatalf("RegisterOutputs with the registry down = %v", err)
	}
}
