package vendoroauth

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/vault/sdk/logical"

	"github.com/vendoroauth/vault-plugin-secrets-vendoroauth/backend"
	"github.com/vendoroauth/vault-plugin-secrets-vendoroauth/backend/store"
)

// The regression tests of issue 19 ("Hardening, second round"), one or
// more per item; each failed on the code before its fix.

// jwksRead reads an unauthenticated JWKS path as Vault routes one: no
// token, a read.
func (e *testEnv) jwksRead(t testing.TB, path string) (*logical.Response, error) {
	t.Helper()
	return e.b.HandleRequest(context.Background(), &logical.Request{
		Operation: logical.ReadOperation, Path: path, Storage: e.storage, MountPoint: e.mount, Unauthenticated: true,
	})
}

// Item 1: an unauthenticated JWKS read of a name that does not exist
// remembered a negative app snapshot per name, forever, in a process that
// serves every mount. Now nothing is remembered, and the answer for a
// name that does not exist is the same 404 as before.
func TestJWKSOfUnknownNamesCachesNothing(t *testing.T) {
	t.Parallel()
	env := newTestEnv(t)
	for i := range 2000 {
		for _, path := range []string{fmt.Sprintf("apps/nope-%d/jwks", i), fmt.Sprintf("jwks/nope-%d", i), fmt.Sprintf("jwks/nope/a-%d", i)} {
			resp, err := env.jwksRead(t, path)
			if err != nil || resp != nil {
				t.Fatalf("%s: want a 404 (nil response), got %v %v", path, resp, err)
			}
		}
	}
	if entries, apps := env.b.creds.CacheSizes(); entries != 0 || apps != 0 {
		t.Errorf("after 6,000 JWKS reads of unknown names the manager holds %d entries and %d apps, want none", entries, apps)
	}
}

// Item 1: names have a length cap, checked before anything is looked up:
// a JWKS read of a longer name is the 404 of any unknown name and reads
// no storage; an authenticated request says what the cap is.
func TestLongNamesAreRefusedBeforeAnyLookup(t *testing.T) {
	t.Parallel()
	env := newTestEnv(t)
	long := strings.Repeat("x", 4096)
	var reads atomic.Int32
	env.storage.setFailGet(func(key string) bool {
		if strings.Contains(key, long[:maxNameLen+1]) {
			reads.Add(1)
		}
		return false
	})
	for _, path := range []string{"jwks/" + long, "apps/" + long + "/jwks", "jwks/app/" + long} {
		resp, err := env.jwksRead(t, path)
		if err != nil || resp != nil {
			t.Errorf("%s: want a 404 (nil response), got %v %v", path[:20], resp, err)
		}
	}
	resp, err := env.request(t, logical.ReadOperation, "token/"+long[:300], nil)
	mustErr(t, resp, err, "at most 128 characters")
	resp, err = env.request(t, logical.UpdateOperation, "config/app/"+long[:300], map[string]interface{}{"refresh_token": "x"})
	mustErr(t, resp, err, "at most 128 characters")
	if n := reads.Load(); n != 0 {
		t.Errorf("%d storage reads of keys holding the long name", n)
	}
	// The cap is per segment: an account of 128 characters in an app of
	// 128 is a name.
	name := strings.Repeat("a", maxNameLen) + "/" + strings.Repeat("b", maxNameLen)
	if resp, err := env.request(t, logical.ReadOperation, "config/"+name, nil); err != nil || resp != nil {
		t.Errorf("a name at the cap: %v %v", resp, err)
	}
}

// Item 1: the JWKS is served from the stored public halves: the private
// key is not decoded (an RSA-4096 key took 0.75 ms a read). Proved by
// breaking the stored private key: the JWKS is still served, and signing
// is what fails.
func TestJWKSDecodesNoPrivateKey(t *testing.T) {
	t.Parallel()
	env := newTestEnv(t)
	pkjwtClient(t, env, "config/svc", false)
	resp, err := env.request(t, logical.UpdateOperation, "rotate-key/svc", map[string]interface{}{"algorithm": "RS256"})
	if err != nil || resp.IsError() {
		t.Fatal(err, resp)
	}
	kid := resp.Data["kid"].(string)
	key := store.KeysPrefix + "cred/svc"
	raw, err := env.storage.InmemStorage.Get(context.Background(), key)
	if err != nil || raw == nil {
		t.Fatal(err)
	}
	var stored map[string]any
	if err := json.Unmarshal(raw.Value, &stored); err != nil {
		t.Fatal(err)
	}
	cur := stored["current"].(map[string]any)
	cur["private_pkcs8"] = "AAAA" // no private key at all
	raw.Value, _ = json.Marshal(stored)
	if err := env.storage.InmemStorage.Put(context.Background(), raw); err != nil {
		t.Fatal(err)
	}
	resp, err = env.jwksRead(t, "jwks/svc")
	if err != nil || resp == nil {
		t.Fatalf("the JWKS with a broken private key: %v %v", resp, err)
	}
	if body, _ := resp.Data[logical.HTTPRawBody].([]byte); !strings.Contains(string(body), kid) {
		t.Errorf("the JWKS does not publish %s: %s", kid, body)
	}
}

// Item 7: rotate-key took the keys' lock but not the credential's: a
// delete between reading the credential and storing the new key left
// keys/cred/<name> behind, for a credential written later under the same
// name to sign with. Now the key operation holds the credential's lock,
// so the delete comes after it and takes the new key with it.
func TestKeyRotationRacingADeleteLeavesNoKeys(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ name, path, base, del, keys string }{
		{"credential rotate-key", "rotate-key/svc", "config/svc", "config/svc", "cred/svc"},
		{"credential import-key", "import-key/svc", "config/svc", "config/svc", "cred/svc"},
		{"app rotate-key", "apps/svc/rotate-key", "apps/svc", "apps/svc", "app/svc"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			env := newTestEnv(t)
			pkjwtClient(t, env, tc.base, false)
			data := map[string]interface{}{}
			if strings.HasPrefix(tc.path, "import-key") {
				data["signing_key"] = writersKey(t)
			}
			deleted := make(chan struct{})
			var first atomic.Bool
			env.b.creds.SetTestHooks(backend.TestHooks{BeforeLock: func(op, name string) {
				if op != "keys" {
					return
				}
				if !first.CompareAndSwap(false, true) {
					return // the delete's own
				}
				// The delete runs now; if it can, it finishes before the
				// key is stored.
				go func() {
					defer close(deleted)
					if resp, err := env.request(t, logical.DeleteOperation, tc.del, nil); err != nil || resp.IsError() {
						t.Errorf("delete: %v %v", err, resp)
					}
				}()
				select {
				case <-deleted:
				case <-time.After(300 * time.Millisecond):
				}
			}})
			resp, err := env.request(t, logical.UpdateOperation, tc.path, data)
			if err != nil {
				t.Fatal(err)
			}
			_ = resp // made before the delete, or refused after it
			<-deleted
			if raw, err := env.storage.InmemStorage.Get(context.Background(), store.KeysPrefix+tc.keys); err != nil || raw != nil {
				t.Errorf("keys/%s outlived its owner's delete (%v)", tc.keys, err)
			}
		})
	}
}

// Item 7: keys a deleted credential left behind (by the race above, on an
// earlier release) are not a new credential's: creating config/<name>
// deletes them.
func TestNewCredentialDoesNotInheritLeftoverKeys(t *testing.T) {
	t.Parallel()
	env := newTestEnv(t)
	pkjwtClient(t, env, "config/svc", false)
	cfg, err := env.request(t, logical.ReadOperation, "config/svc", nil)
	if err != nil || cfg.IsError() {
		t.Fatal(err, cfg)
	}
	raw, _ := env.storage.InmemStorage.Get(context.Background(), store.KeysPrefix+"cred/svc")
	if resp, err := env.request(t, logical.DeleteOperation, "config/svc", nil); err != nil || resp.IsError() {
		t.Fatal(err, resp)
	}
	if err := env.storage.InmemStorage.Put(context.Background(), raw); err != nil { // left behind
		t.Fatal(err)
	}
	// The same client, written again.
	resp, err := env.request(t, logical.CreateOperation, "config/svc", map[string]interface{}{
		"token_url": cfg.Data["token_url"], "client_id": "svc", "auth_style": "private_key_jwt", "grant_type": "client_credentials"})
	if err != nil || resp.IsError() {
		t.Fatal(err, resp)
	}
	if raw, _ := env.storage.InmemStorage.Get(context.Background(), store.KeysPrefix+"cred/svc"); raw != nil {
		t.Error("the new credential kept the deleted one's keys")
	}
	if resp, err := env.jwksRead(t, "jwks/svc"); err != nil || resp != nil {
		t.Errorf("the new credential publishes the deleted one's keys: %v %v", resp, err)
	}
}
