package vendoroauth

import (
	"bytes"
	"context"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/vault/sdk/helper/consts"
	"github.com/hashicorp/vault/sdk/logical"

	"github.com/vendoroauth/vault-plugin-secrets-vendoroauth/internal/standin"
)

// testEnv is a backend on in-memory storage with a stand-in vendor and a
// log that tests can search for secrets.
type testEnv struct {
	b       *vendorBackend
	storage *logical.InmemStorage
	system  *logical.StaticSystemView
	vendors *standin.Server
	url     string
	logs    *syncBuffer
}

type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.buf.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.buf.String()
}

func newTestEnv(t testing.TB) *testEnv {
	t.Helper()
	logs := &syncBuffer{}
	conf := logical.TestBackendConfig()
	conf.Logger = hclog.New(&hclog.LoggerOptions{Level: hclog.Trace, Output: logs})
	sys := &logical.StaticSystemView{DefaultLeaseTTLVal: 24 * 3600e9, MaxLeaseTTLVal: 48 * 3600e9}
	conf.System = sys
	storage := &logical.InmemStorage{}
	conf.StorageView = storage
	lb, err := Factory("v0.0.0-test")(context.Background(), conf)
	if err != nil {
		t.Fatal(err)
	}
	vendors := standin.New()
	srv := httptest.NewServer(vendors)
	t.Cleanup(srv.Close)
	return &testEnv{b: lb.(*vendorBackend), storage: storage, system: sys, vendors: vendors, url: srv.URL, logs: logs}
}

func (e *testEnv) request(t testing.TB, op logical.Operation, path string, data map[string]interface{}) (*logical.Response, error) {
	t.Helper()
	return e.b.HandleRequest(context.Background(), &logical.Request{
		Operation: op,
		Path:      path,
		Data:      data,
		Storage:   e.storage,
	})
}

// write creates or updates config/<name> and fails the test on any error.
func (e *testEnv) write(t testing.TB, name string, data map[string]interface{}) {
	t.Helper()
	op := logical.CreateOperation
	if ok, _ := e.b.configExists(context.Background(), &logical.Request{Storage: e.storage}, fieldData(name)); ok {
		op = logical.UpdateOperation
	}
	resp, err := e.request(t, op, "config/"+name, data)
	if err != nil || resp.IsError() {
		t.Fatalf("write config/%s: %v %v", name, err, resp)
	}
}

func (e *testEnv) setReadOnly() {
	e.system.ReplicationStateVal = consts.ReplicationPerformanceStandby
}

// assertNoSecrets fails if any secret shows up in s.
func assertNoSecrets(t testing.TB, where, s string, secrets ...string) {
	t.Helper()
	for _, sec := range secrets {
		if sec != "" && strings.Contains(s, sec) {
			t.Errorf("%s contains the secret %q", where, sec)
		}
	}
}
