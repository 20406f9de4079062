package vaulttest

import (
	"os"
	"path/filepath"
	"testing"
)

// TestClusterLifecycle checks the cluster helper itself: three Raft nodes
// come up with the plugin enabled, the active node can be stopped and
// restarted, and a new leader takes over. It starts real Vault servers, so
// it runs only when VAULTTEST_CLUSTER=1 (the e2e cluster test covers the
// same ground in `make e2e`).
func TestClusterLifecycle(t *testing.T) {
	if os.Getenv("VAULTTEST_CLUSTER") != "1" {
		t.Skip("set VAULTTEST_CLUSTER=1 to start a 3-node Vault cluster")
	}
	dir := t.TempDir()
	plugins := filepath.Join(dir, "plugins")
	if err := os.MkdirAll(plugins, 0o755); err != nil {
		t.Fatal(err)
	}
	sha, err := BuildPlugin(plugins, "v0.1.0-cluster")
	if err != nil {
		t.Fatal(err)
	}
	c, err := StartCluster(ClusterOptions{Dir: dir, PluginDir: plugins, PluginVersion: "v0.1.0-cluster", PluginSHA256: sha, Logf: t.Logf})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Stop()

	for i := range c.Nodes() {
		// Every node, standby or not, answers for the mount.
		if _, err := c.Client(i).Logical().List(PluginName + "/config"); err != nil {
			t.Errorf("LIST through node %d: %v", i, err)
		}
	}
	_, old := c.Leader()
	if old < 0 {
		t.Fatal("no leader")
	}
	if err := c.StopNode(old); err != nil {
		t.Fatal(err)
	}
	next, err := c.WaitLeader(old)
	if err != nil {
		t.Fatal(err)
	}
	if next == old {
		t.Fatalf("the stopped node %d is still the leader", old)
	}
	if err := c.StartNode(old); err != nil {
		t.Fatal(err)
	}
	if err := c.WaitHealthy(); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Client(old).Logical().List(PluginName + "/config"); err != nil {
		t.Errorf("LIST through the restarted node %d: %v", old, err)
	}
}
