package vendoroauth

import (
	"testing"

	"github.com/hashicorp/vault/sdk/framework"
)

// localOperations may run on a standby: they only read storage, and their
// answers carry no lease. Everything else either writes storage, may call
// a vendor, or returns a lease, none of which a standby can do: OpenBao's
// standbys and Vault Enterprise's performance standbys serve requests
// themselves unless an operation asks to be forwarded to the active node.
var localOperations = map[string]bool{
	"config/" + credentialName + " read": true,
	"config/?$ list":                     true,
	"config/" + appName + "/?$ list":     true,
	"apps/" + appName + " read":          true,
	"apps/?$ list":                       true,
	"jwks/" + credentialName + " read":   true,
	"apps/" + appName + "/jwks read":     true,
}

// TestEveryOperationThatNeedsTheActiveNodeIsForwarded checks every path
// and operation, so a new one cannot forget.
func TestEveryOperationThatNeedsTheActiveNodeIsForwarded(t *testing.T) {
	t.Parallel()
	env := newTestEnv(t)
	seen := 0
	for _, p := range env.b.Paths {
		for op, h := range p.Operations {
			key := p.Pattern + " " + string(op)
			po, ok := h.(*framework.PathOperation)
			if !ok {
				t.Errorf("%s: not a *framework.PathOperation; cannot check its forwarding", key)
				continue
			}
			seen++
			local := localOperations[key]
			if local && (po.ForwardPerformanceStandby || po.ForwardPerformanceSecondary) {
				t.Errorf("%s only reads storage but is forwarded", key)
			}
			if !local && (!po.ForwardPerformanceStandby || !po.ForwardPerformanceSecondary) {
				t.Errorf("%s may write storage, call a vendor or return a lease, but is not forwarded from standbys and secondaries", key)
			}
		}
	}
	if seen < 10 {
		t.Errorf("checked %d operations; the paths were not found", seen)
	}
}
