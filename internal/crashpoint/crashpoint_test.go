package crashpoint

import (
	"strings"
	"testing"
)

func TestConfigure(t *testing.T) {
	defer current.Store(nil)
	for _, tc := range []struct{ spec, err string }{
		{"after-sync=0.5,mid-batch=1", ""},
		{"after-sync=2", "want name=probability"},
		{"after-sync", "want name=probability"},
		{"lunch=0.1", `unknown point "lunch"`},
	} {
		err := configure(tc.spec, 1, func() {})
		if (err == nil) != (tc.err == "") || (err != nil && !strings.Contains(err.Error(), tc.err)) {
			t.Errorf("configure(%q) = %v, want %q", tc.spec, err, tc.err)
		}
	}
}

// A point fires with its probability; an unnamed point never does, and an
// unarmed process never kills itself.
func TestHit(t *testing.T) {
	defer current.Store(nil)
	current.Store(nil)
	Hit(AfterSync) // unarmed: nothing happens
	kills := 0
	if err := configure("after-sync=1,mid-batch=0", 1, func() { kills++ }); err != nil {
		t.Fatal(err)
	}
	for range 10 {
		Hit(AfterSync)
		Hit(MidBatch)
		Hit(OutboxDrain)
	}
	if kills != 10 {
		t.Fatalf("%d kills, want 10: after-sync always, the others never", kills)
	}
}
