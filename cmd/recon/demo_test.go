package main

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

// TestDemoCommand runs a short demo through the command, in each format, and
// checks its contract: progress and the report on stdout, and an exit status
// that says what the report says. Whether recon itself passes is sim's
// TestDemoSmall.
func TestDemoCommand(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a broker and recon for several seconds")
	}
	for _, c := range []struct {
		format string
		want   []string
	}{
		{"json", []string{"debezium-json → debezium-json, json events", "partitions, format json"}},
		{"avro", []string{"schema registry at http://127.0.0.1:", "debezium-avro → flat-json, avro events", "partitions, format avro"}},
	} {
		t.Run(c.format, func(t *testing.T) {
			var out, errb bytes.Buffer
			err := cmdDemo(t.Context(), []string{"--keys", "60", "--rate", "150", "--duration", "2s", "--window", "500ms", "--seed", "5", "--format", c.format}, &out, &errb)
			got := out.String()
			for _, want := range append([]string{"recon demo: broker 127.0.0.1:", "60 keys, 150 changes/s for 2s, window 500ms, seed 5", "\nt=1s ",
				"divergences       injected  detected", "keys converged", "detection delay"}, c.want...) {
				if !strings.Contains(got, want) {
					t.Errorf("stdout lacks %q:\n%s", want, got)
				}
			}
			switch {
			case err == nil && !strings.Contains(got, "\nOK: "):
				t.Errorf("exit 0 without an OK report:\n%s", got)
			case errors.Is(err, errExitSilently) && !strings.Contains(got, "\nFAILED: "):
				t.Errorf("exit 1 without a FAILED report:\n%s", got)
			case err != nil && !errors.Is(err, errExitSilently):
				t.Errorf("demo: %v\nstderr:\n%s", err, errb.String())
			}
		})
	}
}

func TestDemoFlags(t *testing.T) {
	for _, args := range [][]string{
		{"--keys", "1"},
		{"--window", "10ms"},
		{"--lagging-rate", "0.7", "--conflict-rate", "0.7"},
		{"--log-level", "loud"},
		{"--format", "protobuf"},
		{"--chaos", "--kills", "0"},
		{"--chaos", "--crash-at", "lunch=0.5"},
		{"extra"},
	} {
		var out, errb bytes.Buffer
		if err := cmdDemo(t.Context(), args, &out, &errb); err == nil || errors.Is(err, errExitSilently) {
			t.Errorf("demo %v: got %v, want a usage error", args, err)
		}
	}
}
