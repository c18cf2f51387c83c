package consumer

import (
	"errors"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
)

func fetchesOf(parts ...kgo.FetchTopic) kgo.Fetches { return kgo.Fetches{{Topics: parts}} }

func part(topic string, p int32, err error, records int) kgo.FetchTopic {
	fp := kgo.FetchPartition{Partition: p, Err: err}
	for i := range records {
		fp.Records = append(fp.Records, &kgo.Record{Topic: topic, Partition: p, Offset: int64(i)})
	}
	return kgo.FetchTopic{Topic: topic, Partitions: []kgo.FetchPartition{fp}}
}

// Readiness learns from the polls which partitions fail, since when, and
// when they recover; the client's group errors are kept apart.
func TestFetchErrorsFromPolls(t *testing.T) {
	t0 := time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)
	now := t0
	c := &Consumer{progress: NewProgress(func() time.Time { return now }), fetchErrs: make(map[topicPartition]*FetchError)}
	const fresh = 10 * time.Second

	c.noteFetches(fetchesOf(part("t", 0, kerr.UnknownServerError, 0), part("t", 1, nil, 3)))
	now = t0.Add(2 * time.Second)
	c.noteFetches(fetchesOf(part("t", 0, kerr.UnknownServerError, 0)))
	fes := c.FetchErrors(fresh)
	if len(fes) != 1 || fes[0].Topic != "t" || fes[0].Partition != 0 || !fes[0].Since.Equal(t0) ||
		!fes[0].Last.Equal(now) || !errors.Is(fes[0].Err, kerr.UnknownServerError) {
		t.Fatalf("fetch errors %+v: want t[0] failing since t0, last now", fes)
	}

	// The partition delivers again: recovered.
	c.noteFetches(fetchesOf(part("t", 0, nil, 1)))
	if fes := c.FetchErrors(fresh); len(fes) != 0 {
		t.Fatalf("fetch errors %+v after the partition delivered records", fes)
	}

	// An idle partition whose errors stopped is forgotten after fresh.
	c.noteFetches(fetchesOf(part("t", 1, kerr.UnknownServerError, 0)))
	now = now.Add(fresh + time.Second)
	if fes := c.FetchErrors(fresh); len(fes) != 0 {
		t.Fatalf("fetch errors %+v: a failure older than fresh with nothing newer", fes)
	}

	// Group errors come without a topic: they are the group's, not a
	// partition's, and partitions being assigned clears them.
	c.noteFetches(fetchesOf(part("", -1, errors.New("unable to join group session"), 0)))
	if fes := c.FetchErrors(fresh); len(fes) != 0 {
		t.Fatalf("a group error counted as a partition's: %+v", fes)
	}
	if ge, ok := c.GroupError(fresh); !ok || !ge.Since.Equal(now) {
		t.Fatalf("group error %+v %v: want failing since now", ge, ok)
	}
	c.clearGroupError()
	if _, ok := c.GroupError(fresh); ok {
		t.Fatal("group error still reported after an assignment")
	}
}
