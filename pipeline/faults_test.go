package pipeline

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/recon-dev/recon/broker"
	"github.com/recon-dev/recon/compare"
	"github.com/recon-dev/recon/repair"
	"github.com/recon-dev/recon/state"
)

// The broker-fault suite. Each test names the fault it injects, with kfake's
// faults and controls or by stopping the broker, and proves that nothing was
// lost: every verdict comes out once, with the id it must have, no false
// one appears, and Kafka commits never run ahead of the state store.

var outage = flag.Duration("fault.outage", 30*time.Second, "how long TestFaultBrokerGone keeps the whole broker down")

const faultWindow = 500 * time.Millisecond

// newFaultHarness is the harness with the blast-radius guard off (half the
// keys of a fault test go missing on purpose) and bopts for the broker.
func newFaultHarness(t *testing.T, bopts broker.Options) *harness {
	t.Helper()
	h := newHarnessOn(t, bopts, faultWindow, "auto", "debezium-json", "position")
	off := 0.0
	h.cfg.Datasets[0].Repair.MaxDivergentRatio = &off
	return h
}

// faultOptions shortens the publisher's and the clients' waits so that a
// fault plays out in seconds; produceTimeout bounds one publish attempt.
func faultOptions(produceTimeout time.Duration) Options {
	return Options{
		Publisher: repair.PublisherOptions{
			BreakerTimeout: 300 * time.Millisecond,
			MaxBackoff:     100 * time.Millisecond,
			Poll:           100 * time.Millisecond,
			ProduceTimeout: produceTimeout,
		},
		// A refused produce is retried after a metadata refresh, which
		// waits out the metadata's min age: the default 5s would make
		// the producer take a minute to give up a chunk.
		ExtraKafka: []kgo.Opt{
			kgo.RetryBackoffFn(func(int) time.Duration { return 50 * time.Millisecond }),
			kgo.MetadataMinAge(100 * time.Millisecond),
		},
	}
}

// faultBatch produces keys [from, to) on the source, and the even ones on
// the target too, in sync; it returns the odd keys, missing on the target.
func (h *harness) faultBatch(from, to int64) []int64 {
	h.t.Helper()
	var missing []int64
	for id := from; id < to; id++ {
		r := row{ID: id, Amount: fmt.Sprintf("%d.50", id), Status: "new", Created: created}
		h.source("c", id*10, r)
		if id%2 == 0 {
			h.target("c", id, id*10, r)
		} else {
			missing = append(missing, id)
		}
	}
	return missing
}

// verdicts are the output events a test expects, by id: record key by id.
type verdicts struct {
	divs, reps map[string]string
}

// missingVerdicts are the divergence and repair recon must publish for keys
// missing on the target: their ids are derived from content, so they are
// known before recon runs.
func missingVerdicts(keys ...[]int64) verdicts {
	v := verdicts{divs: map[string]string{}, reps: map[string]string{}}
	for _, ks := range keys {
		for _, id := range ks {
			key, lsn := strconv.FormatInt(id, 10), strconv.FormatInt(id*10, 10)
			rk := "orders/warehouse/" + key
			v.divs[repair.ID("divergence", "orders", "warehouse", key, "missing", lsn, "")] = rk
			v.reps[repair.ID("orders", "warehouse", key, lsn, repair.ActionUpsert, compare.Digest{}.String())] = rk
		}
	}
	return v
}

// settle waits until recon's outbox is empty and the reader has read every
// record of the output topics: whatever recon published by then is in
// h.outputs.
func (h *harness) settle(p *Pipeline) {
	h.t.Helper()
	waitFor(h.t, 30*time.Second, "an empty outbox", func() bool { n, _ := p.Store().OutboxDepth(); return n == 0 })
	adm := kadm.NewClient(h.prod)
	topics := []string{h.cfg.Outputs.Divergences, h.cfg.Outputs.Repairs, h.cfg.Outputs.DLQ}
	waitFor(h.t, 20*time.Second, "the reader to reach the outputs' ends", func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		ends, err := adm.ListEndOffsets(ctx, topics...)
		if err != nil || ends.Error() != nil {
			return false
		}
		read := true
		ends.Each(func(o kadm.ListedOffset) { read = read && int64(len(h.outputs(o.Topic))) >= o.Offset })
		return read
	})
}

// expectExactly waits for want, lets everything published arrive, and
// checks that the outputs are want exactly: every id once, no other event,
// nothing in the DLQ.
func (h *harness) expectExactly(p *Pipeline, want verdicts) {
	h.t.Helper()
	h.waitOutputs(h.cfg.Outputs.Divergences, len(want.divs))
	h.waitOutputs(h.cfg.Outputs.Repairs, len(want.reps))
	h.settle(p)
	check := func(topic string, want map[string]string) {
		h.t.Helper()
		seen := map[string]int{}
		for _, e := range h.outputs(topic) {
			id, _ := e.Body["id"].(string)
			seen[id]++
			switch rk, ok := want[id]; {
			case !ok:
				h.t.Errorf("%s: unexpected event %s %v", topic, e.Key, e.Body)
			case seen[id] > 1:
				h.t.Errorf("%s: %s (%s) published %d times", topic, id, rk, seen[id])
			case e.Key != rk || e.Headers["recon-id"] != id:
				h.t.Errorf("%s: %s has key %s, header id %s; want key %s", topic, id, e.Key, e.Headers["recon-id"], rk)
			}
		}
		for id, rk := range want {
			if seen[id] == 0 {
				h.t.Errorf("%s: %s (%s) lost", topic, id, rk)
			}
		}
	}
	check(h.cfg.Outputs.Divergences, want.divs)
	check(h.cfg.Outputs.Repairs, want.reps)
	if dlq := h.outputs(h.cfg.Outputs.DLQ); len(dlq) > 0 {
		h.t.Errorf("%d records in the DLQ: %v", len(dlq), kindsOf(dlq))
	}
}

// topicNamer names the topics of requests that carry topic ids rather than
// names (newer Produce and OffsetCommit versions).
func topicNamer(c *kfake.Cluster, topics ...string) func(name string, id [16]byte) string {
	ids := map[[16]byte]string{}
	for _, t := range topics {
		if ti := c.TopicInfo(t); ti != nil {
			ids[ti.TopicID] = t
		}
	}
	return func(name string, id [16]byte) string {
		if name != "" {
			return name
		}
		return ids[id]
	}
}

// commitWatch checks every offset commit of recon's group against the
// offsets the state store holds at that moment: a commit may never run
// ahead of what is durable, or a crash after it would skip records.
type commitWatch struct {
	mu      sync.Mutex
	commits int
	ahead   []string
}

// watchCommits installs the check on c; install it again on a restarted
// broker. store must stay open while recon's group commits.
func watchCommits(c *kfake.Cluster, group string, store *state.Store) *commitWatch {
	w := &commitWatch{}
	w.install(c, group, store)
	return w
}

func (w *commitWatch) install(c *kfake.Cluster, group string, store *state.Store) {
	name := topicNamer(c, srcTopic, tgtTopic)
	c.ControlKey(int16(kmsg.OffsetCommit), func(kr kmsg.Request) (kmsg.Response, error, bool) {
		req := kr.(*kmsg.OffsetCommitRequest)
		if req.Group != group {
			return nil, nil, false
		}
		stored, err := store.Offsets()
		w.mu.Lock()
		defer w.mu.Unlock()
		if err != nil {
			w.ahead = append(w.ahead, fmt.Sprintf("reading stored offsets: %v", err))
			return nil, nil, false
		}
		for _, t := range req.Topics {
			topic := name(t.Topic, t.TopicID)
			for _, p := range t.Partitions {
				w.commits++
				if durable, ok := stored[topic][p.Partition]; p.Offset > 0 && (!ok || p.Offset > durable) {
					w.ahead = append(w.ahead, fmt.Sprintf("%s[%d] committed at %d, durable up to %d", topic, p.Partition, p.Offset, durable))
				}
			}
		}
		return nil, nil, false // observe only: the broker answers as usual
	})
}

func (w *commitWatch) check(t *testing.T) {
	t.Helper()
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.commits == 0 {
		t.Error("no offset commit was observed")
	}
	for _, a := range w.ahead {
		t.Errorf("commit ahead of the state store: %s", a)
	}
}

// checkOffsets, once recon has stopped, checks that the offsets stored with
// the state and the group's commits both stand at the end of every input:
// all was read, made durable, and committed, nothing skipped.
func (h *harness) checkOffsets() {
	h.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	adm := kadm.NewClient(h.prod)
	ends, err := adm.ListEndOffsets(ctx, srcTopic, tgtTopic)
	if err != nil {
		h.t.Fatalf("listing input end offsets: %v", err)
	}
	committed, err := adm.FetchOffsets(ctx, h.cfg.Kafka.Group)
	if err != nil {
		h.t.Fatalf("fetching the group's offsets: %v", err)
	}
	st, err := state.Open(h.cfg.State.Dir, state.Options{})
	if err != nil {
		h.t.Fatalf("reopening the state: %v", err)
	}
	stored, err := st.Offsets()
	st.Close()
	if err != nil {
		h.t.Fatal(err)
	}
	ends.Each(func(o kadm.ListedOffset) {
		if got := stored[o.Topic][o.Partition]; got != o.Offset {
			h.t.Errorf("%s[%d]: state stores offset %d, the partition ends at %d", o.Topic, o.Partition, got, o.Offset)
		}
		c, ok := committed.Lookup(o.Topic, o.Partition)
		if !ok || c.At != o.Offset {
			h.t.Errorf("%s[%d]: group committed %v (found %v), the partition ends at %d", o.Topic, o.Partition, c.At, ok, o.Offset)
		}
	})
}

// readyz fetches /readyz: its status and body.
func readyz(t *testing.T, p *Pipeline) (int, string) {
	t.Helper()
	return httpGet(t, p.URL()+"/readyz")
}

func httpGet(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("reading %s: %v", url, err)
	}
	return resp.StatusCode, string(body)
}

// waitReadyz waits until /readyz answers status with a line starting with
// each of lines, and returns the body.
func waitReadyz(t *testing.T, p *Pipeline, status int, lines ...string) string {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		code, body := readyz(t, p)
		if code == status && hasLines(body, lines...) {
			return body
		}
		if time.Now().After(deadline) {
			t.Fatalf("/readyz answered %d:\n%swant %d with lines starting %q", code, body, status, lines)
		}
		<-tick.C
	}
}

func hasLines(body string, prefixes ...string) bool {
	lines := strings.Split(body, "\n")
	for _, p := range prefixes {
		found := false
		for _, l := range lines {
			found = found || strings.HasPrefix(l, p)
		}
		if !found {
			return false
		}
	}
	return true
}

// holdProduces makes the broker sit on every produce to topics until the
// returned release is called: a broker too slow to acknowledge. The held
// requests are then answered as usual.
func holdProduces(c *kfake.Cluster, topics ...string) (release func()) {
	name := topicNamer(c, topics...)
	want := map[string]bool{}
	for _, t := range topics {
		want[t] = true
	}
	ch := make(chan struct{})
	var released atomic.Bool
	c.ControlKey(int16(kmsg.Produce), func(kr kmsg.Request) (kmsg.Response, error, bool) {
		if released.Load() {
			c.DropControl()
			return nil, nil, false
		}
		for _, t := range kr.(*kmsg.ProduceRequest).Topics {
			if want[name(t.Topic, t.TopicID)] {
				c.SleepControl(func() { <-ch })
				break
			}
		}
		return nil, nil, false
	})
	var once sync.Once
	return func() { once.Do(func() { released.Store(true); close(ch) }) }
}

// failProduces makes the broker refuse every produce to recon's outputs
// with err until the handle is removed.
func failProduces(h *harness, err *kerr.Error) *kfake.FaultHandle {
	c := h.broker.Cluster()
	return c.Fault(
		kfake.Fault{Keys: []kmsg.Key{kmsg.Produce}, Topic: h.cfg.Outputs.Divergences, Err: err, Count: -1},
		kfake.Fault{Keys: []kmsg.Key{kmsg.Produce}, Topic: h.cfg.Outputs.Repairs, Err: err, Count: -1},
	)
}

func breakerState(t *testing.T, p *Pipeline) float64 {
	return metricValue(t, p, "recon_breaker_state", nil)
}

// heldInOutbox produces keys 1 to 12 (the odd ones missing on the target)
// while the outputs fail, and waits until the breaker is open and the outbox
// holds every verdict; it returns the verdicts and how many records they are.
func (h *harness) heldInOutbox(p *Pipeline) (want verdicts, held int) {
	h.t.Helper()
	want = missingVerdicts(h.faultBatch(1, 13))
	held = len(want.divs) + len(want.reps)
	waitFor(h.t, 20*time.Second, "the breaker to open", func() bool { return breakerState(h.t, p) == 2 })
	waitFor(h.t, 20*time.Second, "every verdict in the outbox", func() bool {
		return metricValue(h.t, p, "recon_outbox_records", nil) == float64(held)
	})
	return want, held
}

// Produce errors: the broker refuses every produce to the output topics
// (NOT_ENOUGH_REPLICAS, an ISR too small). The breaker opens, the verdicts
// wait in the outbox and /readyz says so; when the broker recovers, the
// breaker half-opens (held there by a slow first answer, so that the state
// gauge is seen in each state), closes, and the outbox drains: every verdict
// once, none lost.
func TestFaultProduceErrors(t *testing.T) {
	h := newFaultHarness(t, broker.Options{})
	p, stop := h.startWith(faultOptions(5 * time.Second))
	commits := watchCommits(h.broker.Cluster(), h.cfg.Kafka.Group, p.Store())
	refuse := failProduces(h, kerr.NotEnoughReplicas)

	want, held := h.heldInOutbox(p)
	body := waitReadyz(t, p, http.StatusServiceUnavailable, "fail breaker: open, not closed since ", "ok kafka", "ok fetch",
		fmt.Sprintf("ok outbox: %d records", held))
	if !strings.Contains(body, "NOT_ENOUGH_REPLICAS") {
		t.Errorf("/readyz should name the failure:\n%s", body)
	}
	if n := len(h.outputs(h.cfg.Outputs.Divergences)) + len(h.outputs(h.cfg.Outputs.Repairs)); n != 0 {
		t.Fatalf("%d events got out through a broker refusing every produce", n)
	}
	if v := metricValue(t, p, "recon_publish_failures_total", nil); v < 3 {
		t.Errorf("recon_publish_failures_total = %v, want at least the 3 that open the breaker", v)
	}

	// The broker recovers, slowly: the first produce is held until the
	// half-open state has been seen.
	release := holdProduces(h.broker.Cluster(), h.cfg.Outputs.Divergences, h.cfg.Outputs.Repairs)
	defer release()
	refuse.Remove()
	waitFor(t, 20*time.Second, "the breaker to half-open", func() bool { return breakerState(t, p) == 1 })
	waitReadyz(t, p, http.StatusServiceUnavailable, "fail breaker: half-open (trying the brokers again), not closed since ")
	release()
	waitFor(t, 20*time.Second, "the breaker to close", func() bool { return breakerState(t, p) == 0 })
	h.expectExactly(p, want)
	waitReadyz(t, p, http.StatusOK, "ok breaker: closed", "ok outbox: 0 records")

	stop()
	commits.check(t)
	h.checkOffsets()
}

// Produce timeouts, a broker too slow to answer: every produce to the
// outputs is held unanswered. Each publish attempt times out with its chunk
// still in the producer's hands; the breaker opens and the outbox keeps
// every verdict. Once the broker answers, the late chunk completes (and is
// not sent again), the breaker half-opens and closes, and every verdict
// comes out exactly once.
func TestFaultProduceTimeoutSlowBroker(t *testing.T) {
	h := newFaultHarness(t, broker.Options{})
	p, stop := h.startWith(faultOptions(300 * time.Millisecond))
	commits := watchCommits(h.broker.Cluster(), h.cfg.Kafka.Group, p.Store())
	release := holdProduces(h.broker.Cluster(), h.cfg.Outputs.Divergences, h.cfg.Outputs.Repairs)
	defer release()

	want, _ := h.heldInOutbox(p)
	body := waitReadyz(t, p, http.StatusServiceUnavailable, "fail breaker: open, not closed since ", "ok kafka")
	if !strings.Contains(body, "no acknowledgement within 300ms") {
		t.Errorf("/readyz should say the broker did not answer:\n%s", body)
	}
	if n := len(h.outputs(h.cfg.Outputs.Divergences)) + len(h.outputs(h.cfg.Outputs.Repairs)); n != 0 {
		t.Fatalf("%d events got out through a broker answering no produce", n)
	}

	release()
	waitFor(t, 20*time.Second, "the breaker to close", func() bool { return breakerState(t, p) == 0 })
	h.expectExactly(p, want)
	waitReadyz(t, p, http.StatusOK, "ok breaker: closed")
	stop()
	commits.check(t)
	h.checkOffsets()
}

// Produce timeouts after the append: the broker writes every produce to the
// outputs but answers REQUEST_TIMED_OUT, so recon cannot know the records
// are in. The producer keeps the chunk and retries it with the same
// sequence numbers; the breaker opens and the outbox keeps the records even
// though Kafka has some. When the broker answers again the retry is
// recognized as a duplicate: every verdict is in Kafka exactly once.
func TestFaultProduceTimeoutAfterAppend(t *testing.T) {
	h := newFaultHarness(t, broker.Options{})
	p, stop := h.startWith(faultOptions(300 * time.Millisecond))
	commits := watchCommits(h.broker.Cluster(), h.cfg.Kafka.Group, p.Store())
	timeouts := failProduces(h, kerr.RequestTimedOut)

	want, _ := h.heldInOutbox(p)
	waitFor(t, 20*time.Second, "the broker to hold a chunk it said timed out", func() bool {
		return len(h.outputs(h.cfg.Outputs.Divergences))+len(h.outputs(h.cfg.Outputs.Repairs)) > 0
	})
	waitReadyz(t, p, http.StatusServiceUnavailable, "fail breaker: open, not closed since ")

	timeouts.Remove()
	waitFor(t, 20*time.Second, "the breaker to close", func() bool { return breakerState(t, p) == 0 })
	h.expectExactly(p, want)
	stop()
	commits.check(t)
	h.checkOffsets()
}

// Fetch errors: the broker fails every fetch of the target topic with
// UNKNOWN_SERVER_ERROR while the source flows. The windows of every key
// expire with the target unread, and wait: recon's own inability to read
// must not look like a divergence. /readyz names the partition. Once fetches
// succeed again, the verdicts are exactly those of the keys really missing.
func TestFaultFetchErrors(t *testing.T) {
	h := newFaultHarness(t, broker.Options{})
	p, stop := h.startWith(faultOptions(2 * time.Second))
	commits := watchCommits(h.broker.Cluster(), h.cfg.Kafka.Group, p.Store())
	fetchFails := h.broker.Cluster().Fault(kfake.Fault{Keys: []kmsg.Key{kmsg.Fetch}, Topic: tgtTopic, Err: kerr.UnknownServerError, Count: -1})

	missing := h.faultBatch(1, 13)
	waitFor(t, 20*time.Second, "every window to expire and wait for the target", func() bool {
		return metricValue(t, p, "recon_windows_waiting_watermark", nil) == 12
	})
	body := waitReadyz(t, p, http.StatusServiceUnavailable, "fail fetch: "+tgtTopic+"[0] failing since ", "ok kafka", "ok breaker")
	if !strings.Contains(body, "UNKNOWN_SERVER_ERROR") {
		t.Errorf("/readyz should name the fetch error:\n%s", body)
	}
	if n := len(h.outputs(h.cfg.Outputs.Divergences)); n != 0 {
		t.Fatalf("%d divergences while the target could not be read", n)
	}

	fetchFails.Remove()
	h.expectExactly(p, missingVerdicts(missing))
	waitReadyz(t, p, http.StatusOK, "ok fetch")
	stop()
	commits.check(t)
	h.checkOffsets()
}

// moveCoordinator moves the group's coordinator to another node of c.
func moveCoordinator(t *testing.T, c *kfake.Cluster, group string) {
	t.Helper()
	from := c.CoordinatorFor(group)
	for range 64 {
		c.RehashCoordinators()
		if c.CoordinatorFor(group) != from {
			return
		}
	}
	t.Fatalf("the coordinator of %s stayed on node %d", group, from)
}

// joinGroup adds a second member to recon's group, subscribed to the same
// inputs: the group rebalances, and the member may take recon's partitions
// until it leaves. It never commits. leave makes it leave the group.
func joinGroup(t *testing.T, h *harness) (leave func()) {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(h.broker.Addr()),
		kgo.ConsumerGroup(h.cfg.Kafka.Group), kgo.ConsumeTopics(srcTopic, tgtTopic),
		kgo.Balancers(kgo.RangeBalancer()), kgo.DisableAutoCommit(),
		kgo.ClientID("intruder"))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { // a member must poll for its client to take part in the group
		defer close(done)
		for ctx.Err() == nil {
			cl.PollFetches(ctx)
		}
	}()
	var once sync.Once
	leave = func() {
		once.Do(func() {
			cancel()
			<-done
			cl.Close()
		})
	}
	t.Cleanup(leave)
	return leave
}

func waitGroup(t *testing.T, c *kfake.Cluster, group string, members int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := c.WaitGroupStable(ctx, group, members); err != nil {
		t.Fatalf("waiting for group %s to be stable with %d members: %v", group, members, err)
	}
}

// Coordinator moves and rebalances: with a second broker in the cluster,
// the group's coordinator moves between them, partition leaders move, the
// coordinator answers NOT_COORDINATOR to commits and heartbeats, and a
// second member joins the group (taking partitions from recon or not) and
// leaves it, each while changes flow. Every verdict comes out once; the
// commits never run ahead of the state and end at the inputs' ends.
func TestFaultCoordinatorMovesAndRebalances(t *testing.T) {
	h := newFaultHarness(t, broker.Options{})
	c := h.broker.Cluster()
	if _, _, err := c.AddNode(-1, 0); err != nil {
		t.Fatalf("adding a second broker: %v", err)
	}
	opts := faultOptions(2 * time.Second)
	// Heartbeats often enough that the NOT_COORDINATOR ones come soon.
	opts.ExtraKafka = append(opts.ExtraKafka, kgo.HeartbeatInterval(200*time.Millisecond))
	p, stop := h.startWith(opts)
	commits := watchCommits(c, h.cfg.Kafka.Group, p.Store())
	group := h.cfg.Kafka.Group

	var missing [][]int64
	batch := func(from int64) {
		missing = append(missing, h.faultBatch(from, from+6))
	}
	batch(1)
	moveCoordinator(t, c, group)
	c.ShufflePartitionLeaders()
	batch(11)

	notCoordinator := c.Fault(
		kfake.Fault{Keys: []kmsg.Key{kmsg.OffsetCommit}, Group: group, Err: kerr.NotCoordinator, Count: 2},
		kfake.Fault{Keys: []kmsg.Key{kmsg.Heartbeat}, Group: group, Err: kerr.NotCoordinator, Count: 2},
	)
	moveCoordinator(t, c, group)
	batch(21)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := notCoordinator.Wait(ctx, 4); err != nil {
		t.Fatalf("NOT_COORDINATOR answered %d of 4 times: %v", notCoordinator.Hits(), err)
	}

	leave := joinGroup(t, h)
	waitGroup(t, c, group, 2)
	batch(31) // read by whichever member owns the partitions now
	moveCoordinator(t, c, group)
	leave()
	waitGroup(t, c, group, 1)
	batch(41)

	h.expectExactly(p, missingVerdicts(missing...))
	waitReadyz(t, p, http.StatusOK, "ok consumer: member of group "+group+", 2 partitions assigned")
	stop()
	commits.check(t)
	h.checkOffsets()
}

// stopBroker closes the broker, which writes its data dir, and returns the
// address to start it again on.
func (h *harness) stopBroker() string {
	h.t.Helper()
	addr := h.broker.Addr()
	if err := h.broker.Close(); err != nil {
		h.t.Fatalf("closing the broker: %v", err)
	}
	return addr
}

// startBrokerAgain starts a broker on addr with the options of the first,
// so on its data dir: the topics, records and group offsets carry over. The
// clients, recon's and the harness's, find it on the same address.
func (h *harness) startBrokerAgain(addr string) {
	h.t.Helper()
	opts := h.brokerOpts
	opts.Listen = addr
	b, err := broker.Start(opts)
	if err != nil {
		h.t.Fatalf("starting the broker again on %s: %v", addr, err)
	}
	h.t.Cleanup(func() { b.Close() })
	h.broker = b
}

// A broker restart with its data dir: the broker stops (flushing its data
// dir) and a new one starts on the same address and data dir. recon
// reconnects and carries on: what it published before is kept, what comes
// after is judged, every verdict once, offsets at the end.
func TestFaultBrokerRestartWithDataDir(t *testing.T) {
	h := newFaultHarness(t, broker.Options{DataDir: t.TempDir()})
	p, stop := h.startWith(faultOptions(2 * time.Second))
	commits := watchCommits(h.broker.Cluster(), h.cfg.Kafka.Group, p.Store())

	before := h.faultBatch(1, 13)
	h.expectExactly(p, missingVerdicts(before))
	h.startBrokerAgain(h.stopBroker())
	commits.install(h.broker.Cluster(), h.cfg.Kafka.Group, p.Store())

	after := h.faultBatch(21, 33)
	h.expectExactly(p, missingVerdicts(before, after))
	waitReadyz(t, p, http.StatusOK, "ok kafka", "ok consumer")
	stop()
	commits.check(t)
	h.checkOffsets()
}

// waitRead waits until the state store holds every input record produced so
// far: recon has read and checkpointed them.
func (h *harness) waitRead(p *Pipeline) {
	h.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ends, err := kadm.NewClient(h.prod).ListEndOffsets(ctx, srcTopic, tgtTopic)
	if err != nil {
		h.t.Fatalf("listing input end offsets: %v", err)
	}
	waitFor(h.t, 20*time.Second, "recon to read every input record", func() bool {
		stored, err := p.Store().Offsets()
		if err != nil {
			return false
		}
		read := true
		ends.Each(func(o kadm.ListedOffset) { read = read && stored[o.Topic][o.Partition] >= o.Offset })
		return read
	})
}

// The whole broker gone for a while (30s, -fault.outage): it is closed and
// started again on the same address and data dir. When it goes, the outbox
// holds verdicts the broker was refusing, and windows of changes already read
// are about to expire. recon stays up through the outage, /readyz says the
// broker is unreachable and the breaker open, nothing leaves the outbox
// without being published; afterwards every verdict is delivered once,
// including those whose windows expired while the broker was gone.
func TestFaultBrokerGone(t *testing.T) {
	h := newFaultHarness(t, broker.Options{DataDir: t.TempDir()})
	p, stop := h.startWith(faultOptions(2 * time.Second))
	commits := watchCommits(h.broker.Cluster(), h.cfg.Kafka.Group, p.Store())

	first := h.faultBatch(1, 7)
	h.expectExactly(p, missingVerdicts(first))
	failProduces(h, kerr.NotEnoughReplicas) // gone with this broker
	second := h.faultBatch(11, 17)
	held := 2 * len(second)
	waitFor(t, 20*time.Second, "the second batch's verdicts held in the outbox", func() bool {
		return breakerState(t, p) == 2 && metricValue(t, p, "recon_outbox_records", nil) == float64(held)
	})
	third := h.faultBatch(21, 27)
	h.waitRead(p)

	addr := h.stopBroker()
	back := time.Now().Add(*outage)
	t.Logf("broker at %s down for %v", addr, *outage)
	body := waitReadyz(t, p, http.StatusServiceUnavailable, "fail kafka: "+addr+" unreachable since ", "fail breaker: ")
	t.Logf("/readyz during the outage:\n%s", body)
	tick := time.NewTicker(500 * time.Millisecond)
	for time.Now().Before(back) {
		<-tick.C
		if code, _ := httpGet(t, p.URL()+"/healthz"); code != http.StatusOK {
			t.Fatalf("/healthz answered %d during the outage: recon must stay alive", code)
		}
		var code int
		if code, body = readyz(t, p); code != http.StatusServiceUnavailable || !hasLines(body, "fail kafka: ") {
			t.Fatalf("/readyz during the outage answered %d:\n%s", code, body)
		}
		if n := metricValue(t, p, "recon_outbox_records", nil); n < float64(held) {
			t.Fatalf("the outbox went down to %v records with the broker gone: %d were held", n, held)
		}
	}
	tick.Stop()
	t.Logf("/readyz at the end of the outage:\n%s", body)

	h.startBrokerAgain(addr)
	commits.install(h.broker.Cluster(), h.cfg.Kafka.Group, p.Store())
	fourth := h.faultBatch(31, 37)
	h.expectExactly(p, missingVerdicts(first, second, third, fourth))
	waitReadyz(t, p, http.StatusOK, "ok kafka", "ok breaker: closed", "ok consumer", "ok fetch")
	stop()
	commits.check(t)
	h.checkOffsets()
}
