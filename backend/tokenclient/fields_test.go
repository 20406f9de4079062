package tokenclient

import (
	"context"
	"fmt"
	"net/http"
	"reflect"
	"strings"
	"testing"
)

func TestResponseFields(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("x", MaxResponseFieldBytes+1)
	tests := []struct {
		name string
		body string
		keep []string
		// wantValues are the kept fields' JSON.
		wantValues  map[string]string
		wantOmitted []string
		wantNil     bool
	}{
		{
			name:       "Salesforce's instance_url and id",
			body:       `{"access_token":"a","instance_url":"https://na1.salesforce.com","id":"https://login.salesforce.com/id/00D/005","issued_at":"1278448832702","signature":"x"}`,
			keep:       []string{"instance_url", "id"},
			wantValues: map[string]string{"instance_url": `"https://na1.salesforce.com"`, "id": `"https://login.salesforce.com/id/00D/005"`},
		},
		{
			name:       "numbers keep their JSON text, booleans stay booleans",
			body:       `{"access_token":"a","uid":12345678901234567890,"ratio":1.50,"active":true,"off":false}`,
			keep:       []string{"uid", "ratio", "active", "off"},
			wantValues: map[string]string{"uid": "12345678901234567890", "ratio": "1.50", "active": "true", "off": "false"},
		},
		{
			name:       "id_token and access_token may be named",
			body:       `{"access_token":"a","id_token":"eyJ.x.y"}`,
			keep:       []string{"id_token", "access_token"},
			wantValues: map[string]string{"id_token": `"eyJ.x.y"`, "access_token": `"a"`},
		},
		{
			name:        "objects, arrays and null are kept as they came; oversize values are omitted and named",
			body:        `{"access_token":"a","obj":{"k":1,"b":[true,"x"]},"arr":[1],"nul":null,"big":"` + long + `","ok":"v"}`,
			keep:        []string{"obj", "arr", "nul", "big", "ok", "absent", "ok"},
			wantValues:  map[string]string{"ok": `"v"`, "obj": `{"b":[true,"x"],"k":1}`, "arr": `[1]`, "nul": `null`},
			wantOmitted: []string{"big"},
		},
		{name: "nothing named: nil", body: `{"access_token":"a","uid":"u"}`, wantNil: true},
		{name: "form-encoded responses too", body: "access_token=a&uid=u", keep: []string{"uid"}, wantValues: map[string]string{"uid": `"u"`}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ct := "application/json"
			if !strings.HasPrefix(tc.body, "{") {
				ct = "application/x-www-form-urlencoded"
			}
			v := newFakeVendor(t, replyWith(200, map[string]string{"Content-Type": ct}, tc.body))
			tok, err := New().Exchange(context.Background(), Request{TokenURL: v.URL, GrantType: "client_credentials", ClientID: "c", ResponseFields: tc.keep})
			if err != nil {
				t.Fatal(err)
			}
			if tc.wantNil {
				if tok.Extra != nil {
					t.Errorf("Extra = %v, want nil", tok.Extra)
				}
				return
			}
			got := map[string]string{}
			for k, v := range tok.Extra.Values {
				got[k] = string(v)
			}
			if !reflect.DeepEqual(got, tc.wantValues) {
				t.Errorf("Values = %v, want %v", tok.Extra.Values, tc.wantValues)
			}
			if !reflect.DeepEqual(tok.Extra.Omitted, tc.wantOmitted) {
				t.Errorf("Omitted = %v, want %v", tok.Extra.Omitted, tc.wantOmitted)
			}
			for _, verb := range []string{"%v", "%+v", "%#v"} {
				s := fmt.Sprintf(verb, tok)
				for _, val := range tc.wantValues {
					if len(val) > 2 && strings.Contains(s, val) {
						t.Errorf("%s of the token shows extra value %q: %s", verb, val, s)
					}
				}
			}
		})
	}
	var none *ExtraFields
	if _, ok := none.Get("x"); ok {
		t.Error("Get on nil")
	}
	if err := CheckResponseFields([]string{"a\x00"}); err == nil {
		t.Error("control character accepted")
	}
	if err := CheckResponseFields([]string{strings.Repeat("n", MaxResponseFieldName+1)}); err == nil {
		t.Error("long name accepted")
	}
}

// TestResponseFieldsDoNotChangeTokens checks that keeping fields leaves
// the token itself as it was.
func TestResponseFieldsDoNotChangeTokens(t *testing.T) {
	t.Parallel()
	v := newFakeVendor(t, replyJSON(http.StatusOK, okBody))
	plain, err := New().Exchange(context.Background(), Request{TokenURL: v.URL, GrantType: "client_credentials", ClientID: "c"})
	if err != nil {
		t.Fatal(err)
	}
	kept, err := New().Exchange(context.Background(), Request{TokenURL: v.URL, GrantType: "client_credentials", ClientID: "c", ResponseFields: []string{"scope"}})
	if err != nil {
		t.Fatal(err)
	}
	withoutExtra := *kept
	withoutExtra.Extra = nil
	if withoutExtra != *plain || string(kept.Extra.Values["scope"]) != `"read write"` {
		t.Errorf("plain %v, kept %v", plain, kept)
	}
}
