package bench

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// Topics of the generated workload: a Postgres source and a Postgres replica
// of the same orders table, co-partitioned (same key bytes, same partition
// count, the default partitioner) as DESIGN §7 asks.
const (
	SourceTopic = "bench.pg.public.orders"
	TargetTopic = "bench.replica.public.orders"
)

// workload is what was produced: the end offsets tell a pass when it has
// read everything.
type workload struct {
	source, target int   // records produced to each topic
	bytes          int64 // keys and values of every record
	ends           map[string]map[int32]int64
}

func (w *workload) records() int { return w.source + w.target }

// change returns the key and the version (1, 2, …) of the i-th source change:
// changes go round the keys, so each key changes records/2/keys times.
func change(i, keys int) (id, version int64) {
	return int64(i%keys) + 1, int64(i/keys) + 1
}

var (
	statuses   = [...]string{"new", "paid", "packed", "shipped", "delivered"}
	currencies = [...]string{"EUR", "USD", "GBP", "CHF"}
	notes      = [...]string{
		"leave the parcel at the door, ring twice",
		"gift wrap, no invoice in the box please",
		"call the customer before delivery, 9-17h",
	}
)

// gen renders the records. Every value is a function of (key, version) and
// the base instant, so the replica's row for a version is byte for byte the
// source's row for it and the two digests match.
type gen struct {
	base time.Time
}

// appendRow renders the 10 columns of the orders row of id at version, as
// JsonConverter writes them without schemas: amount is a decimal as a string
// (decimal.handling.mode=string), created_at MicroTimestamp, updated_at
// ZonedTimestamp, ship_date a Date (days since the epoch).
func (g gen) appendRow(b []byte, id, version int64) []byte {
	created := g.base.Add(-time.Duration(id) * time.Second)
	updated := g.base.Add(time.Duration(version)*time.Minute + time.Duration(id)*time.Millisecond)
	cents := (id*7919 + version*104729) % 10_000_000
	b = append(b, `{"id":`...)
	b = strconv.AppendInt(b, id, 10)
	b = append(b, `,"customer_id":`...)
	b = strconv.AppendInt(b, 1+(id*31)%250_000, 10)
	b = append(b, `,"status":"`...)
	b = append(b, statuses[version%int64(len(statuses))]...)
	b = append(b, `","amount":"`...)
	b = strconv.AppendInt(b, cents/100, 10)
	b = append(b, '.', byte('0'+cents%100/10), byte('0'+cents%10))
	b = append(b, `","currency":"`...)
	b = append(b, currencies[id%int64(len(currencies))]...)
	b = append(b, `","created_at":`...)
	b = strconv.AppendInt(b, created.UnixMicro(), 10)
	b = append(b, `,"updated_at":"`...)
	b = updated.UTC().AppendFormat(b, "2006-01-02T15:04:05.000000Z")
	b = append(b, `","ship_date":`...)
	b = strconv.AppendInt(b, updated.Unix()/86400+int64(version%5), 10)
	b = append(b, `,"note":"`...)
	b = append(b, notes[(id+version)%int64(len(notes))]...)
	b = append(b, `","version":`...)
	b = strconv.AppendInt(b, version, 10)
	return append(b, '}')
}

// appendValue renders one Debezium change event of the orders row: a create
// for the first version, an update after (REPLICA IDENTITY DEFAULT, so no
// before image). server is the connector's topic prefix; lsn the position of
// the change in that server's WAL.
func (g gen) appendValue(b []byte, server string, lsn, id, version int64, at time.Time) []byte {
	op := "u"
	if version == 1 {
		op = "c"
	}
	ms, us, ns := at.UnixMilli(), at.UnixMicro(), at.UnixNano()
	b = append(b, `{"before":null,"after":`...)
	b = g.appendRow(b, id, version)
	b = append(b, `,"source":{"version":"2.7.0.Final","connector":"postgresql","name":"`...)
	b = append(b, server...)
	b = append(b, `","ts_ms":`...)
	b = strconv.AppendInt(b, ms, 10)
	b = append(b, `,"snapshot":"false","db":"shop","sequence":"[\"`...)
	b = strconv.AppendInt(b, lsn-56, 10)
	b = append(b, `\",\"`...)
	b = strconv.AppendInt(b, lsn, 10)
	b = append(b, `\"]","ts_us":`...)
	b = strconv.AppendInt(b, us, 10)
	b = append(b, `,"ts_ns":`...)
	b = strconv.AppendInt(b, ns, 10)
	b = append(b, `,"schema":"public","table":"orders","txId":`...)
	b = strconv.AppendInt(b, 700+lsn/64, 10)
	b = append(b, `,"lsn":`...)
	b = strconv.AppendInt(b, lsn, 10)
	b = append(b, `,"xmin":null},"op":"`...)
	b = append(b, op...)
	b = append(b, `","ts_ms":`...)
	b = strconv.AppendInt(b, ms+3, 10)
	b = append(b, `,"transaction":null}`...)
	return b
}

func appendKey(b []byte, id int64) []byte {
	b = append(b, `{"id":`...)
	b = strconv.AppendInt(b, id, 10)
	return append(b, '}')
}

// produce writes the workload: (records+1)/2 source changes, and the
// replica's copy of the first records/2 of them, in the same order. The
// replica applies change i a few milliseconds after the source made it.
func produce(ctx context.Context, addr string, records, keys int) (*workload, error) {
	cl, err := kgo.NewClient(
		kgo.SeedBrokers(addr),
		kgo.ClientID("recon-bench-producer"),
		// Uncompressed, so that the raw rate measures the client's fetch
		// path and not a codec: the ratio is then the conservative one.
		kgo.ProducerBatchCompression(kgo.NoCompression()),
		kgo.ProducerLinger(2*time.Millisecond),
		kgo.MaxBufferedRecords(50_000),
	)
	if err != nil {
		return nil, fmt.Errorf("building the producer: %w", err)
	}
	defer cl.Close()

	w := &workload{source: (records + 1) / 2, target: records / 2}
	var (
		mu       sync.Mutex
		firstErr error
	)
	promise := func(r *kgo.Record, err error) {
		if err != nil {
			mu.Lock()
			if firstErr == nil {
				firstErr = fmt.Errorf("producing to %s: %w", r.Topic, err)
			}
			mu.Unlock()
		}
	}
	g := gen{base: time.Now().Add(-time.Hour).Truncate(time.Millisecond)}
	const lsn0 = 24_023_040
	for i := range w.source {
		id, version := change(i, keys)
		at := g.base.Add(time.Duration(i) * time.Millisecond)
		key := appendKey(nil, id)
		src := &kgo.Record{Topic: SourceTopic, Key: key, Value: g.appendValue(nil, "pg", lsn0+int64(i)*64, id, version, at)}
		w.bytes += int64(len(src.Key) + len(src.Value))
		cl.Produce(ctx, src, promise)
		if i < w.target {
			tgt := &kgo.Record{Topic: TargetTopic, Key: key, Value: g.appendValue(nil, "replica", lsn0+int64(i)*72, id, version, at.Add(5*time.Millisecond))}
			w.bytes += int64(len(tgt.Key) + len(tgt.Value))
			cl.Produce(ctx, tgt, promise)
		}
		if err := ctx.Err(); err != nil {
			return nil, err
		}
	}
	if err := cl.Flush(ctx); err != nil {
		return nil, fmt.Errorf("flushing the producer: %w", err)
	}
	if firstErr != nil {
		return nil, firstErr
	}

	ends, err := kadm.NewClient(cl).ListEndOffsets(ctx, SourceTopic, TargetTopic)
	if err != nil {
		return nil, fmt.Errorf("listing end offsets: %w", err)
	}
	if err := ends.Error(); err != nil {
		return nil, fmt.Errorf("listing end offsets: %w", err)
	}
	w.ends = make(map[string]map[int32]int64)
	var total int64
	ends.Each(func(o kadm.ListedOffset) {
		if w.ends[o.Topic] == nil {
			w.ends[o.Topic] = make(map[int32]int64)
		}
		w.ends[o.Topic][o.Partition] = o.Offset
		total += o.Offset
	})
	if total != int64(w.records()) {
		return nil, errors.New("end offsets do not add up to the records produced: is the broker fresh?")
	}
	return w, nil
}
