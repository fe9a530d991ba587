package call_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/secinfra/secinfra/sdk-go/gen/secinfrav1"
	"github.com/secinfra/secinfra/sdk-go/rpc"
)

var secretRead = &rpc.Descriptor{Service: "secinfra.v1.SecretsService", Name: "GetSecret",
	HTTPMethod: "GET", Path: "/v1/secrets/{name=**}", PathParams: []string{"name"}, QueryParams: []string{"version"},
	Idempotency: rpc.ReadOnly, Auth: rpc.AuthNone, Cache: &rpc.CachePolicy{Resource: "secret", KeyField: "name"}}

// Every cache hit gets a value of its own, as a decode of the answer
// would: changing (or zeroing) one changes no other, nor the entry.
func TestCacheHitsShareNoMemory(t *testing.T) {
	sender := &scripted{steps: []step{{status: 200, header: map[string]string{"Cache-Control": "max-age=60"},
		body: `{"name":"a","version":1,"value":"aHVudGVyMg==","create_time":"2026-12-06T01:02:03Z"}`}}}
	p := observed(t, sender, nil)
	get := func() (*secinfrav1.Secret, rpc.Meta) {
		t.Helper()
		var meta rpc.Meta
		got := &secinfrav1.Secret{}
		if err := p.Invoke(context.Background(), secretRead, &secinfrav1.GetSecretRequest{Name: "a"}, got, rpc.WithMeta(&meta)); err != nil {
			t.Fatal(err)
		}
		return got, meta
	}
	first, _ := get()
	second, meta := get()
	if !meta.FromCache || sender.attempts != 1 || string(second.Value) != "hunter2" || second.CreateTime == nil {
		t.Fatalf("second call: %v %+v after %d attempts", second, meta, sender.attempts)
	}
	for _, s := range []*secinfrav1.Secret{first, second} {
		clear(s.Value)
		s.Name = "changed"
	}
	third, meta := get()
	if !meta.FromCache || string(third.Value) != "hunter2" || third.Name != "a" || third.CreateTime.Year() != 2026 {
		t.Fatalf("third call: %v %+v", third, meta)
	}
	// A response that is not zero is decoded into, as before: members the
	// answer has replace, the others stay.
	merged := map[string]any{"extra": true}
	if err := p.Invoke(context.Background(), secretRead, &secinfrav1.GetSecretRequest{Name: "a"}, &merged); err != nil {
		t.Fatal(err)
	}
	if merged["extra"] != true || merged["name"] != "a" {
		t.Fatalf("decoded into: %v", merged)
	}
}

// A cache hit in the pipeline alone (the package benchmarks in sdk-go time
// it through the client, against the reference server).
func BenchmarkCacheHit(b *testing.B) {
	sender := &scripted{steps: []step{{status: 200, header: map[string]string{"Cache-Control": "max-age=3600"},
		body: `{"name":"a","version":1,"value":"aHVudGVyMg==","create_time":"2026-12-06T01:02:03Z"}`}}}
	p := observed(b, sender, nil)
	ctx := context.Background()
	req := &secinfrav1.GetSecretRequest{Name: "payments/db/password"}
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		if err := p.Invoke(ctx, secretRead, req, &secinfrav1.Secret{}); err != nil {
			b.Fatal(err)
		}
	}
	if sender.attempts != 1 {
		b.Fatalf("%d attempts, want 1", sender.attempts)
	}
}

// The least any cache hit does, for reading BenchmarkCacheHit on a busy
// machine: the clock, a locked map lookup of a key of the same length and
// a fresh response.
func BenchmarkCacheHitFloor(b *testing.B) {
	key := []byte(`{"method":"secinfra.v1.SecretsService/GetSecret","request":{"name":"payments/db/password","version":0}}`)
	var mu sync.Mutex
	entries := map[string]*secinfrav1.Secret{string(key): {Name: "a"}}
	b.ReportAllocs()
	var sink *secinfrav1.Secret
	for i := 0; i < b.N; i++ {
		_ = time.Now()
		mu.Lock()
		e := entries[string(key)]
		mu.Unlock()
		out := &secinfrav1.Secret{}
		*out = *e
		sink = out
	}
	_ = sink
}
