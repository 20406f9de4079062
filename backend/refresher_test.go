package backend

import (
	"testing"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/vault/sdk/logical"

	"github.com/vendoroauth/vault-plugin-secrets-vendoroauth/backend/tokenclient"
)

// TestRefresherExitStopsOnlyItsOwnRun: a refresher loop halted by a tick
// that found the node read-only can still be finishing a refresh when the
// next writable tick starts a new loop; when the old loop then exits it
// must leave the new one running (else no background refresh happens
// until the tick after).
func TestRefresherExitStopsOnlyItsOwnRun(t *testing.T) {
	t.Parallel()
	m := NewManager(hclog.NewNullLogger(), tokenclient.New())
	var s logical.Storage = &logical.InmemStorage{}
	defer m.Close(s)
	r := m.refresher
	r.run(m, s)
	r.mu.Lock()
	first := r.gen
	r.mu.Unlock()
	r.halt(m) // a tick on a node that cannot write
	r.run(m, s)
	r.haltRun(m, first) // the first loop exits late
	r.mu.Lock()
	running := r.stop != nil
	r.mu.Unlock()
	if !running {
		t.Fatal("the first loop's exit stopped the refresher the next tick started")
	}
}
