package pipeline

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/recon-dev/recon/api"
	"github.com/recon-dev/recon/reconcile"
	"github.com/recon-dev/recon/state"
)

// pendingRepairs waits until the API lists n pending repairs, and returns
// them.
func (c *apiClient) pendingRepairs(n int) []reconcile.RepairView {
	c.t.Helper()
	var page api.RepairPage
	waitFor(c.t, 20*time.Second, "pending repairs", func() bool {
		c.ok("GET", "/api/v1/repairs?state=pending", viewerSecret, nil, &page)
		return len(page.Items) >= n
	})
	if len(page.Items) != n {
		c.t.Fatalf("%d pending repairs, want %d: %+v", len(page.Items), n, page.Items)
	}
	return page.Items
}

// repairState waits until repair id is in state want.
func (c *apiClient) repairState(id, want string) reconcile.RepairView {
	c.t.Helper()
	var r reconcile.RepairView
	waitFor(c.t, 20*time.Second, "repair "+id+" "+want, func() bool {
		c.ok("GET", "/api/v1/repairs/"+id, viewerSecret, nil, &r)
		return r.State == want
	})
	return r
}

// repairEvents returns the repair events on Kafka with id.
// auditTrail reads the audit log and returns it with the records of one
// repair as "actor:action ...".
func (c *apiClient) auditTrail(repairID string) (api.AuditPage, string) {
	var page api.AuditPage
	c.ok("GET", "/api/v1/audit?limit=1000", viewerSecret, nil, &page)
	var trail []string
	for _, r := range page.Items {
		if r.RepairID == repairID {
			trail = append(trail, r.Actor+":"+r.Action)
		}
	}
	return page, strings.Join(trail, " ")
}

func (h *harness) repairEvents(id string) []outEvent {
	var out []outEvent
	for _, e := range h.outputs(h.cfg.Outputs.Repairs) {
		if e.Body["id"] == id {
			out = append(out, e)
		}
	}
	return out
}

// The approve flow through HTTP on a real broker: a row the target never
// gets is listed as an open divergence with a pending repair; a viewer may
// not approve it; approver alice does; the repair event on Kafka carries
// approved_by alice; once the target holds the row, the repair is verified;
// the audit log names alice and verifies.
func TestApproveFlowOverHTTP(t *testing.T) {
	h := newHarness(t, time.Second, "approve")
	h.withTokens()
	p, _ := h.start()
	c := newAPIClient(t, p)

	miss := row{ID: 1, Amount: "12.50", Status: "new", Created: created}
	h.source("c", 100, miss)
	rep := c.pendingRepairs(1)[0]
	if rep.Key != "1" || rep.Kind != "missing" || rep.Action != "upsert" || rep.Dataset != "orders" || rep.Target != "warehouse" {
		t.Fatalf("pending repair %+v", rep)
	}
	var divs api.DivergencePage
	c.ok("GET", "/api/v1/divergences?state=open&dataset=orders", viewerSecret, nil, &divs)
	if len(divs.Items) != 1 || divs.Items[0].Key != "1" || divs.Items[0].RepairID != rep.ID || divs.Items[0].Kind != "missing" {
		t.Fatalf("open divergences %+v", divs)
	}
	var x struct {
		Targets []struct {
			Name string                    `json:"name"`
			Open *reconcile.OpenDivergence `json:"open_divergence"`
		} `json:"targets"`
		Repairs []reconcile.RepairView `json:"repairs"`
	}
	c.ok("GET", "/api/v1/keys/orders/1", viewerSecret, nil, &x)
	if len(x.Targets) != 1 || x.Targets[0].Open == nil || x.Targets[0].Open.RepairID != rep.ID || len(x.Repairs) != 1 {
		t.Fatalf("key 1 explained: %+v", x)
	}
	if evs := h.repairEvents(rep.ID); len(evs) != 0 {
		t.Fatalf("a pending repair was published: %v", evs)
	}

	c.fails("POST", "/api/v1/repairs/"+rep.ID+"/approve", viewerSecret, nil, http.StatusForbidden, "needs approver")
	var approved reconcile.RepairView
	c.ok("POST", "/api/v1/repairs/"+rep.ID+"/approve", approverSecret, nil, &approved)
	if approved.State != state.RepairPublished || approved.Actor != "alice" {
		t.Fatalf("approved repair %+v", approved)
	}
	waitFor(t, 20*time.Second, "the approved repair on Kafka", func() bool { return len(h.repairEvents(rep.ID)) > 0 })
	ev := h.repairEvents(rep.ID)[0]
	if ev.Body["approved_by"] != "alice" || ev.Body["mode"] != "approved" || ev.Body["action"] != "upsert" ||
		field(ev.Body, "after", "status") != "new" || ev.Headers["recon-id"] != rep.ID {
		t.Errorf("repair event %v %v", ev.Headers, ev.Body)
	}

	// A repair consumer applies it: the target now holds the source's row.
	h.target("c", 10, 100, miss)
	verified := c.repairState(rep.ID, state.RepairVerified)
	if verified.DecidedAt.IsZero() || verified.Actor != "alice" {
		t.Errorf("verified repair %+v", verified)
	}
	c.ok("GET", "/api/v1/divergences?state=resolved", viewerSecret, nil, &divs)
	if len(divs.Items) != 1 || divs.Items[0].ID != x.Targets[0].Open.ID {
		t.Errorf("resolved divergences %+v", divs)
	}

	page, trail := c.auditTrail(rep.ID)
	if trail != "recon:repair_planned alice:approved recon:published recon:resolved recon:verified" {
		t.Errorf("audit trail of the repair: %s", trail)
	}
	var v api.AuditVerification
	c.ok("GET", "/api/v1/audit/verify", viewerSecret, nil, &v)
	if !v.OK || v.Records != uint64(len(page.Items)) {
		t.Errorf("audit verification %+v over %d records", v, len(page.Items))
	}
}

// Reject keeps a repair off Kafka for good; revert publishes a compensating
// repair once, and a second revert is 409.
func TestRejectAndRevertOverHTTP(t *testing.T) {
	h := newHarness(t, time.Second, "approve")
	h.withTokens()
	p, _ := h.start()
	c := newAPIClient(t, p)

	h.source("c", 100, row{ID: 1, Amount: "1.00", Status: "new", Created: created})
	h.source("c", 200, row{ID: 2, Amount: "2.00", Status: "new", Created: created})
	pending := c.pendingRepairs(2)
	byKey := map[string]reconcile.RepairView{}
	for _, r := range pending {
		byKey[r.Key] = r
	}
	rejectID, keepID := byKey["1"].ID, byKey["2"].ID

	var rejected reconcile.RepairView
	c.ok("POST", "/api/v1/repairs/"+rejectID+"/reject", approverSecret, api.RejectRequest{Reason: "row 1 is being migrated"}, &rejected)
	if rejected.State != state.RepairRejected || rejected.Actor != "alice" || rejected.Reason != "row 1 is being migrated" {
		t.Fatalf("rejected repair %+v", rejected)
	}
	c.fails("POST", "/api/v1/repairs/"+rejectID+"/approve", adminSecret, nil, http.StatusConflict, "only a pending repair can be approved")

	c.ok("POST", "/api/v1/repairs/"+keepID+"/approve", adminSecret, nil, nil)
	waitFor(t, 20*time.Second, "the approved repair on Kafka", func() bool { return len(h.repairEvents(keepID)) > 0 })

	var comp reconcile.RepairView
	c.ok("POST", "/api/v1/repairs/"+keepID+"/revert", approverSecret, nil, &comp)
	if comp.Reverts != keepID || comp.Action != "delete" || comp.State != state.RepairPublished || comp.Actor != "alice" {
		t.Fatalf("compensating repair %+v", comp)
	}
	waitFor(t, 20*time.Second, "the compensating repair on Kafka", func() bool { return len(h.repairEvents(comp.ID)) > 0 })
	ev := h.repairEvents(comp.ID)[0]
	if ev.Body["reverts"] != keepID || ev.Body["action"] != "delete" || ev.Body["approved_by"] != "alice" {
		t.Errorf("compensating event %v", ev.Body)
	}
	c.repairState(keepID, state.RepairReverted)
	status, body := c.do("POST", "/api/v1/repairs/"+keepID+"/revert", approverSecret, nil)
	var e api.ErrorBody
	if err := json.Unmarshal(body, &e); err != nil || status != http.StatusConflict || e.Repair == nil ||
		e.Repair.State != state.RepairReverted || !strings.Contains(e.Error, "reverted already, by repair "+comp.ID) {
		t.Errorf("second revert: %d %s", status, body)
	}

	// The rejected repair never reached Kafka.
	if evs := h.repairEvents(rejectID); len(evs) != 0 {
		t.Errorf("a rejected repair was published: %v", evs)
	}
	var v api.AuditVerification
	c.ok("GET", "/api/v1/audit/verify", viewerSecret, nil, &v)
	if !v.OK {
		t.Errorf("audit verification %+v", v)
	}
}

// Supersede on kfake: a repair waiting for approval is closed as superseded,
// never published, when the target converges on its own; approving it then
// is refused.
func TestSupersedeOverHTTP(t *testing.T) {
	h := newHarness(t, time.Second, "approve")
	h.withTokens()
	p, _ := h.start()
	c := newAPIClient(t, p)

	r := row{ID: 1, Amount: "1.00", Status: "new", Created: created}
	h.source("c", 100, r)
	id := c.pendingRepairs(1)[0].ID
	h.target("c", 1, 100, r) // the replica catches up by itself
	closed := c.repairState(id, state.RepairSuperseded)
	if !strings.Contains(closed.Reason, "no longer needed") || !closed.PublishedAt.IsZero() {
		t.Errorf("superseded repair: reason %q, published at %v", closed.Reason, closed.PublishedAt)
	}
	divs := h.waitOutputs(h.cfg.Outputs.Divergences, 2)
	if divs[0].Body["event"] != "opened" || divs[1].Body["event"] != "resolved" {
		t.Errorf("divergence events %v, %v", divs[0].Body, divs[1].Body)
	}
	c.fails("POST", "/api/v1/repairs/"+id+"/approve", approverSecret, nil, http.StatusConflict, "only a pending repair can be approved")
	if evs := h.outputs(h.cfg.Outputs.Repairs); len(evs) != 0 {
		t.Errorf("a superseded repair was published: %v", evs)
	}
	if _, trail := c.auditTrail(id); trail != "recon:repair_planned recon:resolved recon:superseded" {
		t.Errorf("audit trail of the repair: %s", trail)
	}
}
