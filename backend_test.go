package vendoroauth

import (
	"bytes"
	"context"
	"errors"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
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
	storage *faultStorage
	system  *logical.StaticSystemView
	vendors *standin.Server
	url     string
	logs    *syncBuffer
	// mount is the request's mount point, "vendoroauth/" unless a test
	// mounts elsewhere.
	mount string
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
	storage := &faultStorage{InmemStorage: &logical.InmemStorage{}}
	conf.StorageView = storage
	lb, err := Factory("v0.0.0-test")(context.Background(), conf)
	if err != nil {
		t.Fatal(err)
	}
	vendors := standin.New()
	srv := httptest.NewServer(vendors)
	t.Cleanup(srv.Close)
	return &testEnv{b: lb.(*vendorBackend), storage: storage, system: sys, vendors: vendors, url: srv.URL, logs: logs, mount: "vendoroauth/"}
}

func (e *testEnv) request(t testing.TB, op logical.Operation, path string, data map[string]interface{}) (*logical.Response, error) {
	t.Helper()
	return e.b.HandleRequest(context.Background(), &logical.Request{
		Operation:  op,
		Path:       path,
		Data:       data,
		Storage:    e.storage,
		MountPoint: e.mount,
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

// faultStorage is in-memory storage that can fail the next puts, fail or
// hold the reads of chosen keys, so tests can prove nothing is lost when
// storage misbehaves.
type faultStorage struct {
	*logical.InmemStorage
	failPuts atomic.Int32 // the next n puts fail
	// failDeletes: the next n deletes fail.
	failDeletes atomic.Int32
	mu          sync.Mutex
	failGet     func(key string) bool // reads of keys it picks fail
	gate        chan struct{}         // if set, reads wait until it is closed
}

var errInjected = errors.New("injected storage failure")

func (s *faultStorage) Get(ctx context.Context, key string) (*logical.StorageEntry, error) {
	s.mu.Lock()
	fail, gate := s.failGet, s.gate
	s.mu.Unlock()
	if gate != nil {
		select {
		case <-gate:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	if fail != nil && fail(key) {
		return nil, errInjected
	}
	return s.InmemStorage.Get(ctx, key)
}

func (s *faultStorage) Put(ctx context.Context, e *logical.StorageEntry) error {
	if s.failPuts.Add(-1) >= 0 {
		return errInjected
	}
	s.failPuts.Store(0)
	return s.InmemStorage.Put(ctx, e)
}

func (s *faultStorage) Delete(ctx context.Context, key string) error {
	if s.failDeletes.Add(-1) >= 0 {
		return errInjected
	}
	s.failDeletes.Store(0)
	return s.InmemStorage.Delete(ctx, key)
}

func (s *faultStorage) setFailGet(f func(key string) bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.failGet = f
}

func (s *faultStorage) setGate(g chan struct{}) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.gate = g
}
