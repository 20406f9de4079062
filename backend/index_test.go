package backend

import (
	"slices"
	"testing"

	"github.com/vendoroauth/vault-plugin-secrets-vendoroauth/backend/model"
	"github.com/vendoroauth/vault-plugin-secrets-vendoroauth/backend/store"
)

func TestMergeSorted(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ a, b, want []string }{
		{nil, []string{"a", "b"}, []string{"a", "b"}},
		{[]string{"b"}, nil, []string{"b"}},
		{[]string{"a", "c", "e"}, []string{"b", "c", "d", "f"}, []string{"a", "b", "c", "d", "e", "f"}},
	} {
		if got := mergeSorted(tc.a, tc.b); !slices.Equal(got, tc.want) {
			t.Errorf("mergeSorted(%v, %v) = %v", tc.a, tc.b, got)
		}
	}
}

// What the load after a start finds meets what writes and deletes did
// meanwhile: a write's record wins over the stored one, a delete is not
// undone, a name the stored index lacks is to be read, and nothing is
// written to the stored index before the load is complete (it would drop
// the names not loaded yet).
func TestIndexLoadMeetsWritesAndDeletes(t *testing.T) {
	t.Parallel()
	x := newIndex()
	x.put("app/written", &model.Entry{Status: model.Status{NeedsReauthorization: true}}, nil)
	x.put("app/deleted", &model.Entry{}, nil)
	x.remove("app/deleted")
	if d := x.takeDirty(); d != nil {
		t.Errorf("the stored index was written before the load: %v", d)
	}
	stored := map[string]store.IndexRecord{
		"app/written": {}, "app/deleted": {}, "app/kept": {KeepAlive: 42}, "app/gone-from-storage": {},
	}
	missing := x.loaded(map[string][]string{"app": {"app/deleted", "app/kept", "app/new", "app/written"}}, stored)
	if !slices.Equal(missing, []string{"app/new"}) {
		t.Errorf("to read: %v", missing)
	}
	x.markComplete()
	if p, _ := x.pageOf("app", "", 0); !slices.Equal(p.Keys, []string{"app/kept", "app/written"}) {
		t.Errorf("names: %v", p.Keys)
	}
	if _, ok := x.reauth["app/written"]; !ok {
		t.Error("the write's record lost to the stored one")
	}
	dirty := x.takeDirty()
	recs := dirty[store.IndexShardOf("app/gone-from-storage")]
	if _, ok := recs["app/gone-from-storage"]; ok || recs == nil {
		t.Errorf("the shard of a name storage no longer lists is not written without it: %v", dirty)
	}
}
