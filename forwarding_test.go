package vendoroauth

import (
	"context"
	"sync/atomic"
	"testing"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/logical"
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
	"apps/?$ list":                       true,
	"jwks/" + credentialName + " read":   true,
	"apps/" + appName + "/jwks read":     true,
	"events/?$ read":                     true,
	"events/" + appName + " read":        true,
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

// countingSystemView counts LocalMount calls, each a gRPC round trip to
// Vault in a plugin process.
type countingSystemView struct {
	logical.SystemView
	localMount atomic.Int32
}

func (v *countingSystemView) LocalMount() bool {
	v.localMount.Add(1)
	return v.SystemView.LocalMount()
}

// TestCachedReadsDoNotAskWhetherTheMountIsLocal: the SDK asks on every
// request to an operation marked ForwardPerformanceSecondary; the backend
// asks Vault once (a mount's locality is fixed), so a cached token read
// costs no extra round trip.
func TestCachedReadsDoNotAskWhetherTheMountIsLocal(t *testing.T) {
	t.Parallel()
	env := newTestEnv(t)
	counting := &countingSystemView{SystemView: env.system}
	conf := logical.TestBackendConfig()
	conf.System = counting
	conf.StorageView = env.storage
	conf.Logger = hclog.NewNullLogger()
	lb, err := Factory("v0.0.0-test")(context.Background(), conf)
	if err != nil {
		t.Fatal(err)
	}
	env.b = lb.(*vendorBackend)
	env.officernd(t, "o", nil)
	for i := 0; i < 5; i++ {
		env.readToken(t, "o")
	}
	if n := counting.localMount.Load(); n > 1 {
		t.Errorf("a config write and 5 token reads asked Vault %d times whether the mount is local, want at most once", n)
	}
}
