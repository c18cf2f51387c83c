package repair

// Actions of audit records (state.AuditRecord.Action): every decision about a
// divergence or a repair, and the config it was made under.
const (
	AuditOpened        = "opened"         // a divergence was opened
	AuditResolved      = "resolved"       // a divergence was resolved
	AuditRepairPlanned = "repair_planned" // a repair was planned; its detail says published, pending, dry-run or guarded
	AuditApproved      = "approved"       // a person approved a pending repair
	AuditRejected      = "rejected"       // a person rejected a pending repair
	AuditPublished     = "published"      // a repair (automatic, approved or compensating) was published
	AuditVerified      = "verified"       // the target converged after a repair
	AuditFailed        = "failed"         // the target did not converge after a repair
	AuditReverted      = "reverted"       // a person reverted a repair: its compensating repair was published
	AuditSuperseded    = "superseded"     // a pending repair was closed as no longer needed
	AuditGuardTripped  = "guard_tripped"  // the blast-radius guard paused automatic repairs
	AuditGuardCleared  = "guard_cleared"  // the blast-radius guard let automatic repairs go again
	AuditConfigChanged = "config_changed" // a dataset's rules version or effective config changed
)

// AuditActor is the actor of the decisions recon makes by itself.
const AuditActor = "recon"
