package doctest

import (
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"testing"
)

func TestOutputPattern(t *testing.T) {
	t.Parallel()
	tests := []struct {
		shown, printed string
		match          bool
	}{
		{"lease_id           vendoroauth/token/officernd-demo/…", "lease_id           vendoroauth/token/officernd-demo/abc123", true},
		{"lease_duration     …m…s", "lease_duration     57m43s", true},
		{"expires_at         …Z", "expires_at         2026-11-23T10:29:59Z", true},
		{"access_token       …", "access_token       eyJhbGci", true},
		{"scope              officernd.api.read officernd.api.write", "scope    officernd.api.read officernd.api.write", true},
		{"scope              officernd.api.read officernd.api.write", "scope    officernd.api.read", false},
		{"token_type         Bearer", "token_type         bearer", false},
		{"true", "false", false},
		{"http://127.0.0.1:…/revoke", "http://127.0.0.1:4242/revoke", true},
		{"http://127.0.0.1:…/revoke", "http://127.0.0.1:4242/token", false},
	}
	for _, tc := range tests {
		re := regexp.MustCompile(OutputPattern(tc.shown))
		if got := re.MatchString("before\n" + tc.printed + "\nafter"); got != tc.match {
			t.Errorf("%q against %q: match %v, want %v (%s)", tc.shown, tc.printed, got, tc.match, re)
		}
	}
}

func TestSplitPrompted(t *testing.T) {
	t.Parallel()
	script, out, ok := SplitPrompted("$ vault write x \\\n    a=b\n$ vault read y\nkey   value\n\n# not a prompt\n")
	if !ok || script != "vault write x \\\n    a=b\nvault read y\n" || strings.Join(out, "|") != "key   value|# not a prompt" {
		t.Errorf("script %q, output %q, ok %v", script, out, ok)
	}
	if _, _, ok := SplitPrompted("vault read y\n"); ok {
		t.Error("a plain script read as a terminal session")
	}
}

func TestParseBlocksMarkers(t *testing.T) {
	t.Parallel()
	md := "text\n\n<!-- doc-test: skip: real vendor -->\n```sh\necho a\n```\n\n```json\n{}\n```\n"
	bs := ParseBlocks(md)
	if len(bs) != 2 || bs[0].marker != "skip: real vendor" || bs[0].lang != "sh" || bs[0].text != "echo a\n" || bs[1].marker != "" || bs[1].lang != "json" {
		t.Errorf("blocks: %+v", bs)
	}
}

// TestDocsClassified: every block of the project's documents is run or
// checked by the end-to-end test, none is left out unclassified.
func TestDocsClassified(t *testing.T) {
	t.Parallel()
	_, file, _, _ := runtime.Caller(0)
	root := filepath.Join(filepath.Dir(file), "..", "..")
	script, err := Script(root, Docs)
	if err != nil {
		t.Fatal(err)
	}
	for _, doc := range Docs {
		raw, err := os.ReadFile(filepath.Join(root, doc))
		if err != nil {
			t.Fatal(err)
		}
		for _, b := range ParseBlocks(string(raw)) {
			if !strings.Contains(script, doc+":"+itoa(b.line)) {
				t.Errorf("%s:%d is not in the script", doc, b.line)
			}
		}
	}
	if !strings.Contains(script, "make dev") {
		t.Error("the script does not start make dev")
	}
}

func itoa(n int) string { return strconv.Itoa(n) }
