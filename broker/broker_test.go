package broker

import (
	"context"
	"errors"
	"fmt"
	"net"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func start(t *testing.T, opts Options) *Broker {
	t.Helper()
	b, err := Start(opts)
	if err != nil {
		t.Fatalf("start broker: %v", err)
	}
	t.Cleanup(func() {
		if err := b.Close(); err != nil {
			t.Errorf("close broker: %v", err)
		}
	})
	return b
}

func client(t *testing.T, addr string, opts ...kgo.Opt) *kgo.Client {
	t.Helper()
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(addr)}, opts...)...)
	if err != nil {
		t.Fatalf("new client: %v", err)
	}
	t.Cleanup(cl.Close)
	return cl
}

func testCtx(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func produce(ctx context.Context, t *testing.T, cl *kgo.Client, topic string, kvs ...string) {
	t.Helper()
	var rs []*kgo.Record
	for i := 0; i+1 < len(kvs); i += 2 {
		rs = append(rs, &kgo.Record{Topic: topic, Key: []byte(kvs[i]), Value: []byte(kvs[i+1])})
	}
	if err := cl.ProduceSync(ctx, rs...).FirstErr(); err != nil {
		t.Fatalf("produce to %s: %v", topic, err)
	}
}

// consume polls until n records arrived and returns them as "key=value".
func consume(ctx context.Context, t *testing.T, cl *kgo.Client, n int) []string {
	t.Helper()
	var got []string
	for len(got) < n {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("consumed %d of %d records before the deadline: %v", len(got), n, got)
		}
		fs.EachError(func(topic string, p int32, err error) {
			t.Fatalf("fetch %s/%d: %v", topic, p, err)
		})
		fs.EachRecord(func(r *kgo.Record) {
			got = append(got, string(r.Key)+"="+string(r.Value))
		})
	}
	return got
}

func equal(a, b []string) bool {
	return fmt.Sprint(a) == fmt.Sprint(b)
}

func TestBrokerProduceConsumeGroupCommit(t *testing.T) {
	ctx := testCtx(t)
	b := start(t, Options{})

	host, _, err := net.SplitHostPort(b.Addr())
	if err != nil || host != "127.0.0.1" {
		t.Fatalf("Addr() = %q, want 127.0.0.1:PORT", b.Addr())
	}

	// The topic does not exist: producing must create it, with one partition.
	produce(ctx, t, client(t, b.Addr(), kgo.AllowAutoTopicCreation()), "orders", "1", "a", "2", "b", "3", "c")

	cons := client(t, b.Addr(),
		kgo.ConsumerGroup("g"),
		kgo.ConsumeTopics("orders"),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.DisableAutoCommit(),
	)
	got := consume(ctx, t, cons, 3)
	if want := []string{"1=a", "2=b", "3=c"}; !equal(got, want) {
		t.Fatalf("consumed %v, want %v in produce order", got, want)
	}
	if err := cons.CommitUncommittedOffsets(ctx); err != nil {
		t.Fatalf("commit: %v", err)
	}

	adm := kadm.NewClient(client(t, b.Addr()))
	topics, err := adm.ListTopics(ctx, "orders")
	if err != nil {
		t.Fatalf("list topics: %v", err)
	}
	if n := len(topics["orders"].Partitions); n != 1 {
		t.Errorf("auto-created topic has %d partitions, want the default 1", n)
	}
	offs, err := adm.FetchOffsets(ctx, "g")
	if err != nil {
		t.Fatalf("fetch offsets: %v", err)
	}
	if o, ok := offs.Lookup("orders", 0); !ok || o.At != 3 {
		t.Errorf("committed offset of orders/0 = %+v (found %v), want 3", o, ok)
	}
}

func TestBrokerPersistsAcrossRestart(t *testing.T) {
	ctx := testCtx(t)
	dir := t.TempDir()

	b1, err := Start(Options{DataDir: dir, Partitions: 2, Topics: []string{"orders"}})
	if err != nil {
		t.Fatalf("first start: %v", err)
	}
	cl := client(t, b1.Addr(), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	// All on partition 1, so the records keep their order and partition 0
	// proves the partition count survived too.
	var rs []*kgo.Record
	for _, v := range []string{"a", "b", "c"} {
		rs = append(rs, &kgo.Record{Topic: "orders", Partition: 1, Value: []byte(v)})
	}
	if err := cl.ProduceSync(ctx, rs...).FirstErr(); err != nil {
		t.Fatalf("produce: %v", err)
	}
	adm := kadm.NewClient(cl)
	commit := kadm.Offsets{}
	commit.Add(kadm.Offset{Topic: "orders", Partition: 1, At: 2, LeaderEpoch: -1})
	if err := adm.CommitAllOffsets(ctx, "g", commit); err != nil {
		t.Fatalf("commit group offset: %v", err)
	}
	cl.Close()
	if err := b1.Close(); err != nil {
		t.Fatalf("first close: %v", err)
	}

	// A new port on purpose: nothing of the old listener may be needed. A
	// topic added to Topics since the last run must be created too.
	b2 := start(t, Options{DataDir: dir, Partitions: 2, Topics: []string{"orders", "added"}})
	if b2.Addr() == b1.Addr() {
		t.Logf("restarted on the same address %s by chance", b2.Addr())
	}

	cons := client(t, b2.Addr(), kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{
		"orders": {1: kgo.NewOffset().AtStart()},
	}))
	got := consume(ctx, t, cons, 3)
	if want := []string{"=a", "=b", "=c"}; !equal(got, want) {
		t.Fatalf("after restart consumed %v, want %v", got, want)
	}

	adm2 := kadm.NewClient(client(t, b2.Addr()))
	offs, err := adm2.FetchOffsets(ctx, "g")
	if err != nil {
		t.Fatalf("fetch offsets after restart: %v", err)
	}
	if o, ok := offs.Lookup("orders", 1); !ok || o.At != 2 {
		t.Errorf("committed offset after restart = %+v (found %v), want 2", o, ok)
	}
	topics, err := adm2.ListTopics(ctx, "orders", "added")
	if err != nil {
		t.Fatalf("list topics: %v", err)
	}
	for _, name := range []string{"orders", "added"} {
		if n := len(topics[name].Partitions); n != 2 {
			t.Errorf("topic %s has %d partitions after restart, want 2", name, n)
		}
	}
}

func TestBrokerListenHonoured(t *testing.T) {
	// 127.0.0.2 is loopback on Linux but not bound everywhere; kfake on its
	// own would always listen on 127.0.0.1, so this proves the host is used.
	ln, err := net.Listen("tcp", "127.0.0.2:0")
	if err != nil {
		t.Skipf("127.0.0.2 not usable here: %v", err)
	}
	addr := ln.Addr().String()
	if err := ln.Close(); err != nil {
		t.Fatal(err)
	}

	b := start(t, Options{Listen: addr})
	if b.Addr() != addr {
		t.Fatalf("Addr() = %s, want %s", b.Addr(), addr)
	}
	ctx := testCtx(t)
	// Metadata must advertise the same address, or the client could not
	// produce after bootstrapping.
	produce(ctx, t, client(t, addr, kgo.AllowAutoTopicCreation()), "t", "k", "v")
}

func TestBrokerListenErrors(t *testing.T) {
	for _, listen := range []string{"9092", "localhost", "127.0.0.1:kafka", "127.0.0.1:70000", "[::1"} {
		_, err := Start(Options{Listen: listen})
		if !errors.Is(err, ErrBadListen) {
			t.Errorf("Listen %q: err = %v, want ErrBadListen", listen, err)
		}
	}

	b := start(t, Options{})
	_, err := Start(Options{Listen: b.Addr()})
	if !errors.Is(err, syscall.EADDRINUSE) {
		t.Fatalf("second broker on %s: err = %v, want address in use", b.Addr(), err)
	}
	t.Logf("port in use reads: %v", err)
}

func TestBrokerDataDirInUse(t *testing.T) {
	dir := t.TempDir()
	b, err := Start(Options{DataDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Start(Options{DataDir: dir}); !errors.Is(err, ErrDataDirInUse) {
		t.Fatalf("second broker on %s: err = %v, want ErrDataDirInUse", dir, err)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if err := b.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	// Closing released the lock.
	start(t, Options{DataDir: dir})
}
