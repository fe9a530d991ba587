package cache_test

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/secinfra/secinfra/sdk-go/internal/cache"
)

func TestParseCacheControl(t *testing.T) {
	tests := []struct {
		name   string
		values []string
		want   cache.Directives
	}{
		{"secret policy", []string{"private, max-age=60, stale-if-error=300"}, cache.Directives{MaxAge: 60 * time.Second, StaleIfError: 300 * time.Second}},
		{"case and quotes", []string{`Max-Age="5", PUBLIC`}, cache.Directives{MaxAge: 5 * time.Second}},
		{"first occurrence wins", []string{"max-age=5", "max-age=100"}, cache.Directives{MaxAge: 5 * time.Second}},
		{"invalid max-age is zero", []string{"max-age=1.5, stale-if-error=-2"}, cache.Directives{}},
		{"no-cache means revalidate", []string{"max-age=60, no-cache"}, cache.Directives{NoCache: true}},
		{"no-store", []string{"no-store"}, cache.Directives{NoStore: true}},
		{"huge delta capped", []string{"max-age=99999999999999"}, cache.Directives{MaxAge: cache.MaxDeltaSeconds * time.Second}},
		{"unknown ignored", []string{"immutable, max-age=3"}, cache.Directives{MaxAge: 3 * time.Second}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := cache.ParseCacheControl(tt.values); got != tt.want {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestKeyIsCanonicalAndCollisionFree(t *testing.T) {
	a, _ := cache.Key("s/Check", map[string]any{"user": "a#b", "relation": "c"})
	b, _ := cache.Key("s/Check", map[string]any{"relation": "c", "user": "a#b"})
	c, _ := cache.Key("s/Check", map[string]any{"user": "a", "relation": "b#c"})
	if a != b {
		t.Fatalf("member order must not matter: %s vs %s", a, b)
	}
	if a == c {
		t.Fatal("different requests must have different keys")
	}
	if a != `{"method":"s/Check","request":{"relation":"c","user":"a#b"}}` {
		t.Fatalf("not canonical: %s", a)
	}
}

func store(c *cache.Cache, key, family, resourceKey, rev, cc string, at time.Time) {
	h := http.Header{}
	if cc != "" {
		h.Set("Cache-Control", cc)
	}
	h.Set("ETag", `"e-`+key+`"`)
	c.Store(cache.StoreInput{Key: key, Body: []byte(key), Header: h, Family: family, ResourceKey: resourceKey,
		Revision: rev, Generation: c.Generation(family), Received: at})
}

func TestFreshStaleAndUsableOnError(t *testing.T) {
	c, _ := cache.New(10)
	t0 := time.Now()
	store(c, "k", "secret", "a", "", "max-age=60, stale-if-error=300", t0)
	for _, tt := range []struct {
		at            time.Duration
		fresh, usable bool
	}{{30 * time.Second, true, true}, {61 * time.Second, false, true}, {400 * time.Second, false, false}} {
		hit := c.Lookup("k", t0.Add(tt.at))
		if hit == nil || hit.Fresh != tt.fresh || hit.UsableOnError != tt.usable || hit.ETag != `"e-k"` {
			t.Fatalf("at %v: %+v", tt.at, hit)
		}
	}
	h := http.Header{"Cache-Control": {"max-age=60"}, "Etag": {`"e-k"`}}
	c.Refresh("k", h, t0.Add(400*time.Second))
	if hit := c.Lookup("k", t0.Add(401*time.Second)); hit == nil || !hit.Fresh {
		t.Fatalf("a 304 must make the entry fresh again: %+v", hit)
	}
}

func TestLRUEvictsLeastRecentlyUsed(t *testing.T) {
	c, _ := cache.New(2)
	now := time.Now()
	store(c, "a", "f", "", "", "max-age=60", now)
	store(c, "b", "f", "", "", "max-age=60", now)
	c.Lookup("a", now) // a is now the most recently used
	store(c, "c", "f", "", "", "max-age=60", now)
	if c.Lookup("b", now) != nil || c.Lookup("a", now) == nil || c.Lookup("c", now) == nil {
		t.Fatal("b should have been evicted")
	}
	if _, err := cache.New(0); err == nil {
		t.Fatal("a zero-size cache must be rejected")
	}
}

func TestNoStoreDropsAndUselessIsNotStored(t *testing.T) {
	c, _ := cache.New(10)
	now := time.Now()
	store(c, "k", "f", "", "", "max-age=60", now)
	store(c, "k", "f", "", "", "no-store", now)
	if c.Lookup("k", now) != nil {
		t.Fatal("no-store must drop the entry")
	}
	c.Store(cache.StoreInput{Key: "u", Body: []byte("x"), Header: http.Header{}, Family: "f", Received: now})
	if c.Len() != 0 {
		t.Fatal("an answer that could never be used must not be stored")
	}
}

func TestInvalidationAndGeneration(t *testing.T) {
	c, _ := cache.New(10)
	now := time.Now()
	store(c, "a1", "secret", "a", "", "max-age=60", now)
	store(c, "a2", "secret", "a", "", "max-age=60", now)
	store(c, "b", "secret", "b", "", "max-age=60", now)
	gen := c.Generation("secret")
	c.Invalidate("secret", "a", false)
	if c.Lookup("a1", now) != nil || c.Lookup("a2", now) != nil || c.Lookup("b", now) == nil {
		t.Fatal("only the written resource's entries go")
	}
	// An answer to a request sent before the write is not stored.
	c.Store(cache.StoreInput{Key: "a1", Body: []byte("old"), Header: http.Header{"Cache-Control": {"max-age=60"}},
		Family: "secret", ResourceKey: "a", Generation: gen, Received: now})
	if c.Lookup("a1", now) != nil {
		t.Fatal("a response that may predate the write must not be stored")
	}
	c.Invalidate("secret", "", true)
	if c.Len() != 0 {
		t.Fatal("a whole-family invalidation drops every entry")
	}
}

func TestRevisionWriteMarks(t *testing.T) {
	c, _ := cache.New(10)
	now := time.Now()
	store(c, "old", "authz", "", "00000000000000000041", "max-age=10", now)
	c.RecordWriteRevision("authz", "00000000000000000042")
	if c.Lookup("old", now) != nil {
		t.Fatal("an entry older than the write mark is bypassed")
	}
	store(c, "older", "authz", "", "41", "max-age=10", now)
	store(c, "new", "authz", "", "42", "max-age=10", now)
	if c.Lookup("older", now) != nil || c.Lookup("new", now) == nil {
		t.Fatal("only answers at the mark or above are stored")
	}
	c.RecordWriteRevision("authz", "7") // lower: the mark stays
	store(c, "mid", "authz", "", "10", "max-age=10", now)
	if c.Lookup("mid", now) != nil {
		t.Fatal("the mark keeps its highest value")
	}
	c.Clear()
	store(c, "after-clear", "authz", "", "41", "max-age=10", now)
	if c.Lookup("after-clear", now) != nil {
		t.Fatal("the write mark outlives entries")
	}
}

func TestCompareRevisions(t *testing.T) {
	for _, tt := range []struct {
		a, b string
		want int
	}{{"0042", "42", 0}, {"100", "99", 1}, {"00000000000000000041", "42", -1}} {
		if got := cache.CompareRevisions(tt.a, tt.b); got != tt.want {
			t.Errorf("Compare(%s, %s) = %d, want %d", tt.a, tt.b, got, tt.want)
		}
	}
}

func TestEntryStringHidesTheValue(t *testing.T) {
	c, _ := cache.New(10)
	c.Store(cache.StoreInput{Key: "k", Body: []byte("hunter2"), Header: http.Header{"Cache-Control": {"max-age=60"}},
		Family: "secret", Received: time.Now()})
	if s := fmt.Sprint(c); strings.Contains(s, "hunter2") {
		t.Fatalf("the cache's string form shows a value: %s", s)
	}
}
