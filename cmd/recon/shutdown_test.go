package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/recon-dev/recon/broker"
	"github.com/recon-dev/recon/state"
)

// childEnv makes the test binary behave as the recon command, so that a
// test can run `recon run` as a separate process and signal it.
const childEnv = "RECON_TEST_AS_RECON"

func TestMain(m *testing.M) {
	if os.Getenv(childEnv) == "1" {
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
		stop()
		os.Exit(code)
	}
	os.Exit(m.Run())
}

// reconProcess starts `recon run -c cfg` as a child process.
func reconProcess(t *testing.T, cfg string, stderr io.Writer) (*exec.Cmd, <-chan error) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "run", "-c", cfg, "--log-format", "text", "--log-level", "warn")
	cmd.Env = append(os.Environ(), childEnv+"=1")
	cmd.Stdout, cmd.Stderr = io.Discard, stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
			<-exited
		}
	})
	return cmd, exited
}

// outputReader reads recon's divergence and repair topics from the start.
type outputReader struct {
	cl     *kgo.Client
	adm    *kadm.Client
	events map[string][]map[string]any // by topic, in order
	next   map[string]map[int32]int64
}

func newOutputReader(t *testing.T, brokerAddr string, topics ...string) *outputReader {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokerAddr), kgo.ConsumeTopics(topics...),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchMaxWait(100*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return &outputReader{cl: cl, adm: kadm.NewClient(cl), events: map[string][]map[string]any{}, next: map[string]map[int32]int64{}}
}

// poll reads what is there now.
func (o *outputReader) poll(t *testing.T) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	o.cl.PollFetches(ctx).EachRecord(func(r *kgo.Record) {
		var ev map[string]any
		if err := json.Unmarshal(r.Value, &ev); err != nil {
			t.Errorf("%s offset %d: %v", r.Topic, r.Offset, err)
		}
		o.events[r.Topic] = append(o.events[r.Topic], ev)
		if o.next[r.Topic] == nil {
			o.next[r.Topic] = map[int32]int64{}
		}
		o.next[r.Topic][r.Partition] = r.Offset + 1
	})
}

// caughtUp reports whether everything published so far was read.
func (o *outputReader) caughtUp(t *testing.T, topics ...string) bool {
	ends, err := o.adm.ListEndOffsets(context.Background(), topics...)
	if err != nil || ends.Error() != nil {
		return false
	}
	done := true
	ends.Each(func(l kadm.ListedOffset) {
		if l.Offset > o.next[l.Topic][l.Partition] {
			done = false
		}
	})
	return done
}

// SIGTERM in the middle of a stream: recon finishes the batch, flushes its
// outbox, closes Badger and exits 0 within shutdown_timeout; the state dir
// opens again, and the next start carries on from the stored offsets
// without publishing any verdict a second time and without losing one.
func TestSIGTERMMidStreamResumesWithoutReplay(t *testing.T) {
	if testing.Short() {
		t.Skip("runs recon as a child process twice")
	}
	b, err := broker.Start(broker.Options{Topics: []string{"pg.orders", "rp.orders"}})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	t.Setenv("TEST_DIGEST_KEY", "cmd-test-digest-key-0123456789")
	listen := freeAddr(t)
	const timeout = 5 * time.Second
	cfg := writeConfig(t, b.Addr(), listen, fmt.Sprintf("shutdown_timeout: %s\n", timeout))
	stateDir := filepath.Join(filepath.Dir(cfg), "state")
	divTopic, repTopic := "recon.divergences", "recon.repairs"

	prod, err := kgo.NewClient(kgo.SeedBrokers(b.Addr()))
	if err != nil {
		t.Fatal(err)
	}
	defer prod.Close()
	// Every third key never reaches the replica: a missing divergence each.
	const n = 600
	change := func(topic string, id int) {
		now := time.Now().UnixMilli()
		value := fmt.Sprintf(`{"before":null,"after":{"id":%d,"status":"new"},"source":{"connector":"postgresql","ts_ms":%d,"lsn":%d},"op":"c","ts_ms":%d}`,
			id, now, 100+id, now)
		prod.Produce(context.Background(), &kgo.Record{Topic: topic, Key: []byte(fmt.Sprintf(`{"id":%d}`, id)), Value: []byte(value)},
			func(_ *kgo.Record, err error) {
				if err != nil {
					t.Errorf("producing %s %d: %v", topic, id, err)
				}
			})
	}
	metric := func(name string) (float64, bool) {
		resp, err := http.Get("http://" + listen + "/metrics")
		if err != nil {
			return 0, false
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		for _, line := range strings.Split(string(body), "\n") {
			if rest, ok := strings.CutPrefix(line, name+" "); ok {
				v, err := strconv.ParseFloat(rest, 64)
				return v, err == nil
			}
		}
		return 0, false
	}
	consumed := func() bool {
		v, ok := metric(`recon_events_consumed_total{dataset="orders",op="upsert",system="postgres"}`)
		return ok && v > 0
	}

	logs := newSyncBuffer()
	first, exited := reconProcess(t, cfg, logs)
	waitUntil(t, "the first recon ready", func() bool {
		resp, err := http.Get("http://" + listen + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
	var produced atomic.Int64
	stream := make(chan struct{})
	signalled := make(chan struct{}) // the second half of the stream waits for the SIGTERM
	var release sync.Once
	t.Cleanup(func() { release.Do(func() { close(signalled) }) })
	go func() {
		defer close(stream)
		tick := time.NewTicker(5 * time.Millisecond)
		defer tick.Stop()
		for id := 1; id <= n; id++ {
			if id == n/2+1 {
				<-signalled
			}
			<-tick.C
			change("pg.orders", id)
			if id%3 != 0 {
				change("rp.orders", id)
			}
			produced.Store(int64(id))
		}
	}()

	waitUntil(t, "the first recon to consume part of the stream", func() bool { return produced.Load() >= n/3 && consumed() })
	began, atSignal := time.Now(), produced.Load()
	err = first.Process.Signal(syscall.SIGTERM)
	release.Do(func() { close(signalled) })
	if err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-exited:
		if err != nil {
			t.Fatalf("recon exited with %v after SIGTERM; stderr:\n%s", err, logs)
		}
	case <-time.After(timeout + 10*time.Second):
		t.Fatalf("recon still running %s after SIGTERM (shutdown_timeout %s)", time.Since(began), timeout)
	}
	if atSignal == n {
		t.Fatal("the stream ended before the SIGTERM: not a mid-stream stop")
	}

	st, err := state.Open(stateDir, state.Options{})
	if err != nil {
		t.Fatalf("reopening the state dir after SIGTERM: %v", err)
	}
	offs, err := st.Offsets()
	depth, _ := st.OutboxDepth()
	if cerr := st.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		t.Fatal(err)
	}
	if offs["pg.orders"][0] == 0 || depth != 0 {
		t.Fatalf("after a graceful stop: stored offsets %v, %d records left in the outbox; want progress and an empty outbox", offs, depth)
	}
	out := newOutputReader(t, b.Addr(), divTopic, repTopic)
	for !out.caughtUp(t, divTopic) {
		out.poll(t)
	}
	before := len(out.events[divTopic])

	<-stream
	second, exited := reconProcess(t, cfg, logs)
	want := n / 3 // the missing keys
	waitUntil(t, "a verdict on every missing key", func() bool {
		out.poll(t)
		return len(out.events[divTopic]) >= want
	})
	waitUntil(t, "an empty outbox", func() bool { v, ok := metric("recon_outbox_records"); return ok && v == 0 })
	if err := second.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := <-exited; err != nil {
		t.Fatalf("the second recon exited with %v; stderr:\n%s", err, logs)
	}
	waitUntil(t, "every output read", func() bool { out.poll(t); return out.caughtUp(t, divTopic, repTopic) })

	ids := map[string]int{}
	keys := map[string]int{}
	for _, ev := range out.events[divTopic] {
		if ev["event"] != "opened" || ev["kind"] != "missing" {
			t.Errorf("unexpected divergence event %v", ev)
			continue
		}
		ids[fmt.Sprint(ev["id"])]++
		keys[fmt.Sprint(ev["key"])]++
	}
	for id, c := range ids {
		if c != 1 {
			t.Errorf("divergence %s published %d times", id, c)
		}
	}
	var lost []int
	for id := 3; id <= n; id += 3 {
		if keys[fmt.Sprintf("map[id:%d]", id)] == 0 {
			lost = append(lost, id)
		}
	}
	if len(lost) > 0 {
		t.Errorf("no divergence for missing keys %v (the first recon stopped at %v)", lost, offs)
	}
	if len(out.events[divTopic]) != want || len(keys) != want {
		t.Errorf("%d divergence events on %d keys (%d before the SIGTERM), want %d, one per missing key",
			len(out.events[divTopic]), len(keys), before, want)
	}
	repairs := map[string]int{}
	for _, ev := range out.events[repTopic] {
		repairs[fmt.Sprint(ev["id"])]++
	}
	if len(out.events[repTopic]) != want || len(repairs) != want {
		t.Errorf("%d repair events with %d ids, want %d, each once", len(out.events[repTopic]), len(repairs), want)
	}
	if t.Failed() {
		t.Logf("recon's logs:\n%s", logs)
	}
}
