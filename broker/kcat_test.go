package broker

import (
	"bytes"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"
)

// TestKcatInterop checks the broker against librdkafka, a client written
// independently of franz-go, in both directions: kfake and kgo share a
// codebase, so kgo alone could agree with a protocol bug in kfake.
func TestKcatInterop(t *testing.T) {
	kcat, err := exec.LookPath("kcat")
	if err != nil {
		if os.Getenv("RECON_REQUIRE_KCAT") == "1" {
			t.Fatalf("RECON_REQUIRE_KCAT=1 but kcat is not on PATH: %v", err)
		}
		t.Skip("kcat not on PATH (apt-get install kcat; RECON_REQUIRE_KCAT=1 makes this a failure)")
	}
	ctx := testCtx(t)
	b := start(t, Options{})

	run := func(stdin string, args ...string) string {
		t.Helper()
		cmd := exec.CommandContext(ctx, kcat, append([]string{"-b", b.Addr()}, args...)...)
		cmd.Stdin = strings.NewReader(stdin)
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		if err := cmd.Run(); err != nil {
			t.Fatalf("kcat %s: %v\nstderr: %s", strings.Join(args, " "), err, stderr.String())
		}
		return stdout.String()
	}
	read := func(topic string) string {
		t.Helper()
		return run("", "-C", "-t", topic, "-o", "beginning", "-e", "-q", "-f", `%k=%s\n`)
	}
	const want = "k1=v1\nk2=v2\nk3=v3\n"

	// kcat → broker → kcat. The producer's metadata request creates the topic.
	run("k1:v1\nk2:v2\nk3:v3\n", "-P", "-t", "from-kcat", "-K:")
	if got := read("from-kcat"); got != want {
		t.Fatalf("kcat read back %q, want %q", got, want)
	}

	// kcat → broker → kgo.
	cons := client(t, b.Addr(), kgo.ConsumeTopics("from-kcat"),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if got := strings.Join(consume(ctx, t, cons, 3), "\n") + "\n"; got != want {
		t.Fatalf("kgo read %q from kcat's records, want %q", got, want)
	}

	// kgo → broker → kcat.
	produce(ctx, t, client(t, b.Addr(), kgo.AllowAutoTopicCreation()), "from-kgo",
		"k1", "v1", "k2", "v2", "k3", "v3")
	if got := read("from-kgo"); got != want {
		t.Fatalf("kcat read %q from kgo's records, want %q", got, want)
	}
}
