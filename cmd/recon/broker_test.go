package main

import (
	"bytes"
	"context"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// syncBuffer is written by the command's goroutine and read by the test.
// Every write closes changed, so a reader waits for output without sleeping.
type syncBuffer struct {
	mu      sync.Mutex
	buf     bytes.Buffer
	changed chan struct{}
}

func newSyncBuffer() *syncBuffer { return &syncBuffer{changed: make(chan struct{})} }

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	close(b.changed)
	b.changed = make(chan struct{})
	return b.buf.Write(p)
}

// snapshot returns the contents and a channel closed at the next write.
func (b *syncBuffer) snapshot() (string, <-chan struct{}) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String(), b.changed
}

func (b *syncBuffer) String() string {
	s, _ := b.snapshot()
	return s
}

var listeningLine = regexp.MustCompile(`(?m)^broker listening on (\S+) \((.+)\)$`)

// startBrokerCmd runs `recon broker args...` until cancel is called or the
// test ends, and waits for its listening line. code yields the exit code.
func startBrokerCmd(t *testing.T, args ...string) (addr, where string, out, errb *syncBuffer, cancel context.CancelFunc, code <-chan int) {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	out, errb = newSyncBuffer(), newSyncBuffer()
	codec := make(chan int, 1)
	exited := make(chan struct{})
	go func() {
		defer close(exited)
		codec <- run(ctx, append([]string{"broker"}, args...), out, errb)
	}()
	t.Cleanup(func() {
		cancel()
		<-exited // never leave the broker running past the test
	})

	deadline := time.NewTimer(10 * time.Second)
	defer deadline.Stop()
	for {
		s, changed := out.snapshot()
		if m := listeningLine.FindStringSubmatch(s); m != nil {
			return m[1], m[2], out, errb, cancel, codec
		}
		select {
		case <-changed:
		case <-exited:
			t.Fatalf("recon broker exited %d before listening; stderr: %s", <-codec, errb.String())
		case <-deadline.C:
			t.Fatalf("no listening line within 10s; stdout: %q stderr: %q", s, errb.String())
		}
	}
}

func TestBrokerCommand(t *testing.T) {
	dir := t.TempDir()
	addr, where, out, errb, cancel, code := startBrokerCmd(t, "--listen", "127.0.0.1:0", "--data-dir", dir)
	if where != "data dir "+dir {
		t.Errorf("listening line says (%s), want (data dir %s)", where, dir)
	}
	if strings.HasSuffix(addr, ":0") {
		t.Fatalf("listening line shows port 0, not the bound port: %s", addr)
	}

	ctx, stop := context.WithTimeout(t.Context(), 20*time.Second)
	defer stop()
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.AllowAutoTopicCreation(),
		kgo.ConsumeTopics("cli"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	if err := cl.ProduceSync(ctx, &kgo.Record{Topic: "cli", Key: []byte("k"), Value: []byte("v")}).FirstErr(); err != nil {
		t.Fatalf("produce: %v", err)
	}
	var got *kgo.Record
	for got == nil {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatal("no record consumed before the deadline")
		}
		fs.EachError(func(topic string, p int32, err error) { t.Fatalf("fetch %s/%d: %v", topic, p, err) })
		fs.EachRecord(func(r *kgo.Record) { got = r })
	}
	if string(got.Key) != "k" || string(got.Value) != "v" {
		t.Fatalf("consumed %s=%s, want k=v", got.Key, got.Value)
	}
	cl.Close()

	cancel()
	select {
	case c := <-code:
		if c != 0 {
			t.Fatalf("exit code %d, want 0; stderr: %s", c, errb.String())
		}
	case <-ctx.Done():
		t.Fatal("recon broker did not stop after its context was cancelled")
	}
	if want := "broker listening on " + addr + " (data dir " + dir + ")\nbroker stopped\n"; out.String() != want {
		t.Errorf("stdout = %q, want %q", out.String(), want)
	}
	if errb.String() != "" {
		t.Errorf("stderr = %q, want nothing", errb.String())
	}
}

func TestBrokerCommandInMemory(t *testing.T) {
	_, where, _, _, _, _ := startBrokerCmd(t, "--listen", "127.0.0.1:0")
	if where != "in memory" {
		t.Errorf("listening line says (%s), want (in memory)", where)
	}
}

func TestBrokerCommandErrors(t *testing.T) {
	// A port that is certainly taken: a running broker's.
	taken, _, _, _, _, _ := startBrokerCmd(t, "--listen", "127.0.0.1:0")

	for _, tc := range []struct {
		name string
		args []string
		want string // the one stderr line
	}{
		{"missing port", []string{"--listen", "9092"},
			`recon broker: invalid listen address "9092": missing port in address`},
		{"port not a number", []string{"--listen", "localhost:kafka"},
			`recon broker: invalid listen address "localhost:kafka": port "kafka" is not a number from 0 to 65535`},
		{"port in use", []string{"--listen", taken},
			"recon broker: listen tcp " + taken + ": bind: address already in use"},
		{"no partitions", []string{"--listen", "127.0.0.1:0", "--partitions", "0"},
			"recon broker: --partitions must be at least 1"},
		{"stray argument", []string{"--listen", "127.0.0.1:0", "extra"},
			`recon broker: unexpected argument "extra"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, errb := newSyncBuffer(), newSyncBuffer()
			code := run(t.Context(), append([]string{"broker"}, tc.args...), out, errb)
			if code != 1 {
				t.Errorf("exit code %d, want 1", code)
			}
			if got := errb.String(); got != tc.want+"\n" {
				t.Errorf("stderr = %q, want the one line %q", got, tc.want)
			}
			if out.String() != "" {
				t.Errorf("stdout = %q, want nothing", out.String())
			}
		})
	}
}
