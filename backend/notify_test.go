package backend

import (
	"context"
	"errors"
	"testing"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/vault/sdk/logical"

	"github.com/vendoroauth/vault-plugin-secrets-vendoroauth/backend/model"
	"github.com/vendoroauth/vault-plugin-secrets-vendoroauth/backend/store"
	"github.com/vendoroauth/vault-plugin-secrets-vendoroauth/backend/tokenclient"
)

func (n *notifier) running() bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.stop != nil
}

// The delivery loop belongs to the backend's lifetime and to the node that
// can write: a tick on a node that cannot stops it, the next tick that can
// starts it again, and Close ends it for good.
func TestNotifierRunsOnlyOnTheWritableNode(t *testing.T) {
	t.Parallel()
	m := NewManager(hclog.NewNullLogger(), tokenclient.New())
	s := &logical.InmemStorage{}
	for _, c := range []struct {
		name string
		do   func()
		want bool
	}{
		{"a tick on the active node starts it", func() { m.TickNotify(s, true) }, true},
		{"a tick on a standby stops it", func() { m.TickNotify(s, false) }, false},
		{"a tick on the active node again", func() { m.TickNotify(s, true) }, true},
		{"Close ends it", func() { m.Close(s) }, false},
		{"and nothing starts it after", func() { m.TickNotify(s, true) }, false},
	} {
		c.do()
		if got := m.notifier.running(); got != c.want {
			t.Errorf("%s: running %v, want %v", c.name, got, c.want)
		}
	}
}

// failingPuts fails every write: the node lost leadership.
type failingPuts struct{ logical.InmemStorage }

func (f *failingPuts) Put(context.Context, *logical.StorageEntry) error {
	return errors.New("not the leader")
}

// A pass that cannot prove with a probe write that its node can still
// write sends nothing and stops the loop: the node may have lost
// leadership, and the new active node delivers.
func TestDeliveryStopsWhenTheNodeCannotWrite(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	m := NewManager(hclog.NewNullLogger(), tokenclient.New())
	s := &failingPuts{}
	a := &model.App{Config: model.Config{Provider: "generic"}, NotifyURL: "http://127.0.0.1:1/hook", NotifySecret: "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw2Tm2sMTEbyI="}
	a.BindNotify()
	if err := store.Of(&s.InmemStorage).PutApp(ctx, "p", a); err != nil {
		t.Fatal(err)
	}
	ev := model.NewEvent(model.EventConnected, "p/a", "p", nil, m.now())
	ev.Seq = 1
	if err := store.Of(&s.InmemStorage).PutEvent(ctx, "p", ev); err != nil {
		t.Fatal(err)
	}
	err := m.DeliverNow(ctx, s)
	if !errors.Is(err, store.ErrWrite) {
		t.Fatalf("a pass on a node that cannot write: %v, want a failed write", err)
	}
}
