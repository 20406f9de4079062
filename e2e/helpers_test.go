//go:build e2e

package e2e

import (
	"encoding/base64"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/vault/api"
)

var vaultReloadInput = api.ReloadPluginInput{Plugin: "vendoroauth"}

// waitForMount polls until the mount answers again after a plugin reload.
func waitForMount(t *testing.T) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		status, _, _ := call(t, "LIST", mount+"/config", nil)
		if status == 200 || status == 404 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the mount did not answer after a reload (HTTP %d)", status)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func parseBasic(h string) (user, pass string, ok bool) {
	const prefix = "Basic "
	if !strings.HasPrefix(h, prefix) {
		return "", "", false
	}
	raw, err := base64.StdEncoding.DecodeString(h[len(prefix):])
	if err != nil {
		return "", "", false
	}
	user, pass, ok = strings.Cut(string(raw), ":")
	return user, pass, ok
}
