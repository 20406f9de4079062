package vaulttest

import "testing"

func TestParseVersion(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		out     string
		want    Flavor
		wantErr bool
	}{
		{out: "Vault v1.21.0, built 2025-12-01T09:06:40Z\n", want: FlavorVault},
		{out: "Vault v1.21.0 (abcdef), built 2025-10-20T00:00:00Z\n", want: FlavorVault},
		{out: "OpenBao v2.6.2 (dd9c19c37a878cf4a81b18efb8d6f0599c7da923)\n", want: FlavorOpenBao},
		{out: "OpenBao v2.6.2 (dd9c19c)\nWARNING: something\n", want: FlavorOpenBao},
		{out: "", wantErr: true},
		{out: "Usage: true\n", wantErr: true},
	} {
		si, err := parseVersion(tc.out)
		switch {
		case tc.wantErr && err == nil:
			t.Errorf("parseVersion(%q) = %+v, want an error", tc.out, si)
		case !tc.wantErr && err != nil:
			t.Errorf("parseVersion(%q): %v", tc.out, err)
		case si.Flavor != tc.want:
			t.Errorf("parseVersion(%q) flavor %q, want %q", tc.out, si.Flavor, tc.want)
		}
	}
}

func TestFreePortsAreDistinct(t *testing.T) {
	ports, err := FreePorts(64)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[int]bool{}
	for _, p := range ports {
		if seen[p] {
			t.Fatalf("port %d given twice: %v", p, ports)
		}
		seen[p] = true
	}
}
