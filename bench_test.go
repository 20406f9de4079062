package vendoroauth

import (
	"context"
	"testing"

	"github.com/hashicorp/vault/sdk/logical"

	"github.com/vendoroauth/vault-plugin-secrets-vendoroauth/bench/nullbackend"
	"github.com/vendoroauth/vault-plugin-secrets-vendoroauth/internal/standin"
)

// Benchmarks of a cached token read as the plugin handles it, without
// Vault: the framework's routing and field parsing, the handler, the
// manager and the building of the leased response, on in-memory storage.
// BenchmarkNullRead is the same request to the benchmark's null backend, so
// the difference is what the plugin's own code adds. Run with
//
//	go test -run '^$' -bench . -benchmem .
//
// Through the real plugin protocol a read also pays gRPC, and Vault's
// request handling and lease bookkeeping: bench/cmd/vendoroauth-bench
// measures that.

// benchTokenEnv returns a backend with a generic credential named "bench"
// whose token has been fetched once, so reads are served from the cache.
func benchTokenEnv(b *testing.B) *testEnv {
	b.Helper()
	env := newTestEnv(b)
	v := env.vendors.Vendor(standin.VendorGeneric)
	v.AddClient(standin.Client{ID: "bench-client", Secret: "bench-secret"})
	env.write(b, "bench", map[string]interface{}{
		"token_url":     env.url + v.TokenPath(),
		"client_id":     "bench-client",
		"client_secret": "bench-secret",
	})
	readOK(b, env.b, env.storage, "token/bench")
	if st := v.Stats(); st.Grants != 1 {
		b.Fatalf("warming up made %d grants, want 1", st.Grants)
	}
	return env
}

func readOK(b *testing.B, lb logical.Backend, s logical.Storage, path string) *logical.Response {
	resp, err := lb.HandleRequest(context.Background(), &logical.Request{
		Operation: logical.ReadOperation,
		Path:      path,
		Storage:   s,
	})
	if err != nil || resp == nil || resp.IsError() || resp.Secret == nil {
		b.Fatalf("read %s: %v %v", path, resp, err)
	}
	return resp
}

// BenchmarkTokenRead is a cached read of token/<name> end to end inside the
// plugin: routing, handler, cache lookup, response and lease building.
func BenchmarkTokenRead(b *testing.B) {
	env := benchTokenEnv(b)
	b.ReportAllocs()
	for b.Loop() {
		readOK(b, env.b, env.storage, "token/bench")
	}
}

// BenchmarkTokenReadParallel is BenchmarkTokenRead from every core at once.
func BenchmarkTokenReadParallel(b *testing.B) {
	env := benchTokenEnv(b)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			readOK(b, env.b, env.storage, "token/bench")
		}
	})
}

// BenchmarkNullRead is the same request to the null backend (a fixed
// secret under a lease, bench/nullbackend) on the same SDK: the floor.
func BenchmarkNullRead(b *testing.B) {
	ctx := context.Background()
	nb := nullbackend.New()
	conf := logical.TestBackendConfig()
	if err := nb.Setup(ctx, conf); err != nil {
		b.Fatal(err)
	}
	s := &logical.InmemStorage{}
	b.ReportAllocs()
	for b.Loop() {
		readOK(b, nb, s, "token/bench")
	}
}

// BenchmarkTokenResponse builds the leased response from a cached result:
// the handler's share after the lookup.
func BenchmarkTokenResponse(b *testing.B) {
	env := benchTokenEnv(b)
	res, err := env.b.creds.Token(context.Background(), env.storage, "bench", func() bool { return true })
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if resp := env.b.tokenResponse("vendoroauth/", "bench", res); resp.Secret == nil {
			b.Fatal("no lease")
		}
	}
}
