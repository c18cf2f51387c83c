package api

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/recon-dev/recon/reconcile"
	"github.com/recon-dev/recon/state"
)

// postJSON expects 200 from a POST and decodes its body.
func (s *testServer) postJSON(path, secret, body string, v any) {
	s.t.Helper()
	status, _, out := s.do("POST", path, secret, body)
	if status != http.StatusOK {
		s.t.Fatalf("POST %s: %d %s", path, status, out)
	}
	if err := json.Unmarshal([]byte(out), v); err != nil {
		s.t.Fatalf("POST %s: %v in %s", path, err, out)
	}
}

// auditActions lists the audit log's records of repair id as actor:action.
func auditActions(t *testing.T, store *state.Store, id string) []string {
	t.Helper()
	recs, err := store.AuditRecords(0, 0)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, r := range recs {
		if r.RepairID == id {
			out = append(out, r.Actor+":"+r.Action)
		}
	}
	return out
}

// Approve, reject and revert need an approver; a viewer gets 403 and
// changes nothing. The token's name is the actor, in the record, the event
// (approved_by) and the audit log. A repair in the wrong state is 409 with
// the repair as it stands.
func TestRepairDecisions(t *testing.T) {
	f := newFixture(t, "approve")
	s := serve(t, f.options(testTokens(t)))
	one, two := f.missing(1), f.missing(2)

	status, _, body := s.do("POST", "/api/v1/repairs/"+one.ID+"/approve", viewerSecret, "")
	wantError(t, "viewer approves", status, body, http.StatusForbidden, "token vera has role viewer; POST /api/v1/repairs/{id}/approve needs approver")
	if r, _ := f.store.Repair(one.ID); r.State != state.RepairPending {
		t.Fatalf("a refused approval changed the repair: %+v", r)
	}

	var rep reconcile.RepairView
	s.postJSON("/api/v1/repairs/"+one.ID+"/approve", approverSecret, "", &rep)
	if rep.ID != one.ID || rep.State != state.RepairPublished || rep.Actor != "alice" || rep.Mode != "approved" || rep.PublishedAt.IsZero() {
		t.Errorf("approved repair %+v", rep)
	}
	var ev struct {
		ApprovedBy string `json:"approved_by"`
		Mode       string `json:"mode"`
	}
	if err := json.Unmarshal(rep.Event, &ev); err != nil || ev.ApprovedBy != "alice" || ev.Mode != "approved" {
		t.Errorf("approved event %s: %v", rep.Event, err)
	}
	if got := strings.Join(auditActions(t, f.store, one.ID), " "); !strings.Contains(got, "alice:approved recon:published") {
		t.Errorf("audit of the approved repair: %s", got)
	}

	// A second approval is a conflict: the body says so and shows the repair.
	status, _, body = s.do("POST", "/api/v1/repairs/"+one.ID+"/approve", adminSecret, "")
	wantError(t, "approve twice", status, body, http.StatusConflict, "only a pending repair can be approved")
	var conflict ErrorBody
	if json.Unmarshal([]byte(body), &conflict); conflict.Repair == nil || conflict.Repair.State != state.RepairPublished {
		t.Errorf("409 body %s", body)
	}

	// Reject with a reason; the body is strict.
	status, _, body = s.do("POST", "/api/v1/repairs/"+two.ID+"/reject", approverSecret, `{"reason":"x","force":true}`)
	wantError(t, "unknown body field", status, body, http.StatusBadRequest, `unknown field "force"`)
	status, _, body = s.do("POST", "/api/v1/repairs/"+two.ID+"/reject", approverSecret, `{"reason":"`+strings.Repeat("x", MaxReasonBytes+1)+`"}`)
	wantError(t, "long reason", status, body, http.StatusBadRequest, "reason: at most 1024 bytes")
	s.postJSON("/api/v1/repairs/"+two.ID+"/reject", approverSecret, `{"reason":"the warehouse is being rebuilt"}`, &rep)
	if rep.State != state.RepairRejected || rep.Actor != "alice" || rep.Reason != "the warehouse is being rebuilt" {
		t.Errorf("rejected repair %+v", rep)
	}
	if got := auditActions(t, f.store, two.ID); got[len(got)-1] != "alice:rejected" {
		t.Errorf("audit of the rejected repair: %v", got)
	}
	status, _, body = s.do("POST", "/api/v1/repairs/"+two.ID+"/revert", approverSecret, "")
	wantError(t, "revert a rejected repair", status, body, http.StatusConflict, "it was never published")

	// Revert the published repair once: the answer is the compensating
	// repair; twice is refused.
	f.after(time.Second)
	var comp reconcile.RepairView
	s.postJSON("/api/v1/repairs/"+one.ID+"/revert", adminSecret, "{}", &comp)
	if comp.Reverts != one.ID || comp.State != state.RepairPublished || comp.Actor != "root" || comp.Action != "delete" {
		t.Errorf("compensating repair %+v", comp)
	}
	if r, _ := f.store.Repair(one.ID); r.State != state.RepairReverted || r.RevertedBy != comp.ID {
		t.Errorf("reverted repair %+v", r)
	}
	status, _, body = s.do("POST", "/api/v1/repairs/"+one.ID+"/revert", adminSecret, "")
	wantError(t, "revert twice", status, body, http.StatusConflict, "it was reverted already, by repair "+comp.ID)
	status, _, body = s.do("POST", "/api/v1/repairs/"+comp.ID+"/revert", adminSecret, "")
	wantError(t, "revert a revert", status, body, http.StatusConflict, "a compensating repair is not reverted")

	status, _, body = s.do("POST", "/api/v1/repairs/no-such-repair/approve", approverSecret, "")
	wantError(t, "unknown repair", status, body, http.StatusNotFound, `repair "no-such-repair": not found`)
	status, hdr, body := s.do("GET", "/api/v1/repairs/"+one.ID+"/approve", approverSecret, "")
	wantError(t, "GET approve", status, body, http.StatusMethodNotAllowed, "method GET not allowed")
	if hdr.Get("Allow") != "POST" {
		t.Errorf("Allow %q", hdr.Get("Allow"))
	}
}
