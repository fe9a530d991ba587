package call_test

import (
	"testing"

	"github.com/secinfra/secinfra/sdk-go/internal/call"
	"github.com/secinfra/secinfra/sdk-go/rpc"
)

// The URL rules of spec 2.2 and 2.3.
func TestEncodeRequest(t *testing.T) {
	tests := []struct {
		name     string
		d        rpc.Descriptor
		req      any
		wantURL  string
		wantBody string
	}{
		{
			name:    "multi-segment path keeps slashes, encodes the rest",
			d:       rpc.Descriptor{HTTPMethod: "GET", Path: "/v1/secrets/{name=**}", PathParams: []string{"name"}, QueryParams: []string{"version"}},
			req:     map[string]any{"name": "payments/db password", "version": 0},
			wantURL: "https://h:1/v1/secrets/payments/db%20password?version=0",
		},
		{
			name:    "single segment encodes slashes upper-case",
			d:       rpc.Descriptor{HTTPMethod: "DELETE", Path: "/v1/join-tokens/{id}", PathParams: []string{"id"}},
			req:     map[string]any{"id": "a/b:c~d"},
			wantURL: "https://h:1/v1/join-tokens/a%2Fb%3Ac~d",
		},
		{
			name:    "repeated query field, in proto order, form-encoded",
			d:       rpc.Descriptor{HTTPMethod: "DELETE", Path: "/v1/secrets/{name=**}", PathParams: []string{"name"}, QueryParams: []string{"versions", "note"}},
			req:     map[string]any{"name": "app/db", "versions": []int{3, 4}, "note": "a b&c"},
			wantURL: "https://h:1/v1/secrets/app/db?versions=3&versions=4&note=a+b%26c",
		},
		{
			name:     "post body without the path fields",
			d:        rpc.Descriptor{HTTPMethod: "POST", Path: "/v1/secrets/{name=**}:undelete", PathParams: []string{"name"}, BodyFields: []string{"versions"}},
			req:      map[string]any{"name": "app/db", "versions": []int{3}},
			wantURL:  "https://h:1/v1/secrets/app/db:undelete",
			wantBody: `{"versions":[3]}`,
		},
		{
			name:     "empty body is an empty object",
			d:        rpc.Descriptor{HTTPMethod: "POST", Path: "/v1/ca:activate"},
			req:      map[string]any{},
			wantURL:  "https://h:1/v1/ca:activate",
			wantBody: `{}`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := call.EncodeRequest("https://h:1", &tt.d, tt.req)
			if err != nil {
				t.Fatal(err)
			}
			if r.URL != tt.wantURL || string(r.Body) != tt.wantBody {
				t.Fatalf("got %s %q, want %s %q", r.URL, r.Body, tt.wantURL, tt.wantBody)
			}
		})
	}
}
