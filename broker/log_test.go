package broker

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/kfake"
)

func TestBrokerLogBridge(t *testing.T) {
	var buf bytes.Buffer
	l := &logBridge{log: slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))}

	l.Logf(kfake.LogLevelInfo, "request %d", 1)
	l.Logf(kfake.LogLevelWarn, "late heartbeat")
	l.Logf(kfake.LogLevelError, "broken %s", "invariant")
	out := buf.String()
	for _, want := range []string{
		`level=DEBUG msg="request 1"`,
		`level=DEBUG msg="late heartbeat"`,
		`level=ERROR msg="broken invariant"`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("log lacks %q:\n%s", want, out)
		}
	}

	// While closing, errors are kept for Close to return, not logged.
	buf.Reset()
	l.capture()
	l.Logf(kfake.LogLevelError, "persist to disk: %v", "disk full")
	l.Logf(kfake.LogLevelDebug, "still chatter")
	if err := l.captured(); err == nil || err.Error() != "persist to disk: disk full" {
		t.Errorf("captured = %v, want the persist error", err)
	}
	if strings.Contains(buf.String(), "disk full") {
		t.Errorf("a captured error was logged too:\n%s", buf.String())
	}

	// A nil logger discards, and must not panic.
	(&logBridge{}).Logf(kfake.LogLevelError, "nowhere")
}
