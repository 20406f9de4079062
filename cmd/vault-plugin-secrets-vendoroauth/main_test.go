package main

import (
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestVersionFlag builds the binary as make build does, with a version
// stamped in, and checks that --version prints exactly that version: the
// README's install snippet registers what it prints.
func TestVersionFlag(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("builds the plugin binary")
	}
	const want = "v1.2.3-test"
	bin := filepath.Join(t.TempDir(), "plugin")
	build := exec.Command("go", "build", "-ldflags", "-X main.version="+want, "-o", bin, ".")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	for _, flag := range []string{"--version", "-version"} {
		out, err := exec.Command(bin, flag).CombinedOutput()
		if err != nil {
			t.Fatalf("%s: %v\n%s", flag, err, out)
		}
		if got := strings.TrimSpace(string(out)); got != want {
			t.Errorf("%s printed %q, want %q", flag, got, want)
		}
	}
}
