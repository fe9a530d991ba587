// Package cache is the client's in-memory response cache (spec 7): an LRU
// of encoded answers with Cache-Control freshness, ETag revalidation,
// stale-if-error, own-write invalidation and revision write marks, plus
// single-flight for concurrent misses. Values live in process memory only.
package cache

import (
	"bytes"
	"container/list"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
)

// DefaultMaxEntries is the default capacity (spec 7.13).
const DefaultMaxEntries = 1024

// MaxDeltaSeconds caps delta-seconds values (RFC 9111 §1.2.2).
const MaxDeltaSeconds = 2147483648

// Directives is what a Cache-Control header says.
type Directives struct {
	MaxAge       time.Duration
	StaleIfError time.Duration
	NoStore      bool
	NoCache      bool
}

// ParseCacheControl reads Cache-Control values (spec 7.4): names matched
// case-insensitively, values quoted or not, the first occurrence wins,
// invalid delta-seconds read as 0.
func ParseCacheControl(values []string) Directives {
	var d Directives
	seen := map[string]bool{}
	for _, value := range values {
		for _, part := range splitDirectives(value) {
			name, arg, _ := strings.Cut(part, "=")
			name = strings.ToLower(strings.TrimSpace(name))
			arg = strings.Trim(strings.TrimSpace(arg), `"`)
			if name == "" || seen[name] {
				continue
			}
			seen[name] = true
			switch name {
			case "max-age":
				d.MaxAge = deltaSeconds(arg)
			case "stale-if-error":
				d.StaleIfError = deltaSeconds(arg)
			case "no-store":
				d.NoStore = true
			case "no-cache":
				d.NoCache = true
			}
		}
	}
	if d.NoCache {
		d.MaxAge = 0
	}
	return d
}

func splitDirectives(value string) []string {
	var out []string
	var cur strings.Builder
	quoted := false
	for _, r := range value {
		switch {
		case r == '"':
			quoted = !quoted
			cur.WriteRune(r)
		case r == ',' && !quoted:
			out = append(out, cur.String())
			cur.Reset()
		default:
			cur.WriteRune(r)
		}
	}
	return append(out, cur.String())
}

func deltaSeconds(s string) time.Duration {
	if s == "" {
		return 0
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0
		}
	}
	n, err := strconv.ParseUint(s, 10, 64)
	if err != nil || n > MaxDeltaSeconds {
		n = MaxDeltaSeconds
	}
	return time.Duration(n) * time.Second
}

// Key is the canonical JSON of {"method": method, "request": request} with
// object members sorted (spec 7.3); request is the request's JSON value.
func Key(method string, request any) (string, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	// encoding/json sorts map keys, so a map gives canonical member order.
	if err := enc.Encode(map[string]any{"method": method, "request": request}); err != nil {
		return "", fmt.Errorf("secinfra: cache: cannot build the cache key: %w", err)
	}
	return strings.TrimSuffix(buf.String(), "\n"), nil
}

// Entry is one stored answer.
type Entry struct {
	Body        []byte
	ETag        string
	value       any // Body decoded, never handed out (see StoreInput.Value)
	family      string
	resourceKey string
	revision    string
	stored      time.Time // when received, less its Age
	maxAge      time.Duration
	staleIfErr  time.Duration
}

// String never shows the body (it may hold a secret value).
func (e *Entry) String() string {
	return fmt.Sprintf("cache.Entry{family:%s, %d bytes redacted}", e.family, len(e.Body))
}

// Hit is a lookup's result.
type Hit struct {
	Body []byte
	// Value is StoreInput.Value: the caller's to copy, never to hand out.
	Value         any
	ETag          string
	Fresh         bool
	UsableOnError bool
}

// Cache is an LRU of answers; safe for concurrent use.
type Cache struct {
	mu         sync.Mutex
	max        int
	order      *list.List // front: most recently used
	items      map[string]*list.Element
	generation map[string]uint64 // per family, bumped by invalidation
	marks      map[string]string // per family: highest write revision
}

type item struct {
	key   string
	entry *Entry
}

// New returns an empty cache holding at most maxEntries (at least 1).
func New(maxEntries int) (*Cache, error) {
	if maxEntries < 1 {
		return nil, fmt.Errorf("secinfra: cache: cache_max_entries must be at least 1, got %d", maxEntries)
	}
	return &Cache{max: maxEntries, order: list.New(), items: map[string]*list.Element{},
		generation: map[string]uint64{}, marks: map[string]string{}}, nil
}

// String shows the size only.
func (c *Cache) String() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return fmt.Sprintf("cache.Cache{%d of %d entries}", c.order.Len(), c.max)
}

// Len is the number of entries.
func (c *Cache) Len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.order.Len()
}

// Generation is the family's invalidation counter; pass it to Store.
func (c *Cache) Generation(family string) uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.generation[family]
}

// Lookup finds the entry for key at time now; nil when there is none, it
// is useless, or the family's write mark makes it outdated.
func (c *Cache) Lookup(key string, now time.Time) *Hit {
	hit, ok := c.LookupBytes([]byte(key), now)
	if !ok {
		return nil
	}
	return &hit
}

// LookupBytes is Lookup for a key held as bytes, without allocating.
func (c *Cache) LookupBytes(key []byte, now time.Time) (Hit, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	el, ok := c.items[string(key)]
	if !ok {
		return Hit{}, false
	}
	e := el.Value.(*item).entry
	if mark, ok := c.marks[e.family]; ok && !atLeast(e.revision, mark) {
		c.remove(el)
		return Hit{}, false
	}
	age := now.Sub(e.stored)
	fresh := age < e.maxAge
	usable := age < e.maxAge+e.staleIfErr
	if !fresh && !usable && e.ETag == "" {
		c.remove(el)
		return Hit{}, false
	}
	c.order.MoveToFront(el)
	return Hit{Body: e.Body, Value: e.value, ETag: e.ETag, Fresh: fresh, UsableOnError: usable}, true
}

// StoreInput describes an answer to store.
type StoreInput struct {
	Key  string
	Body []byte
	// Value is Body decoded, optional: a value of the cache's own, which
	// hits return for the caller to copy (never to hand out or change).
	Value       any
	Header      http.Header
	Family      string
	ResourceKey string
	Revision    string
	Generation  uint64 // Generation(family) before the request was sent
	Received    time.Time
}

// Store keeps a 2xx answer as spec 7.4 allows, and drops the key's entry on
// no-store.
func (c *Cache) Store(in StoreInput) {
	d := ParseCacheControl(in.Header.Values("Cache-Control"))
	etag := in.Header.Get("ETag")
	c.mu.Lock()
	defer c.mu.Unlock()
	if d.NoStore {
		if el, ok := c.items[in.Key]; ok {
			c.remove(el)
		}
		return
	}
	if c.generation[in.Family] != in.Generation {
		return // an own write happened meanwhile: this answer may predate it
	}
	if mark, ok := c.marks[in.Family]; ok && !atLeast(in.Revision, mark) {
		return
	}
	if d.MaxAge == 0 && d.StaleIfError == 0 && etag == "" {
		return
	}
	e := &Entry{Body: in.Body, value: in.Value, ETag: etag, family: in.Family, resourceKey: in.ResourceKey,
		revision: in.Revision, stored: in.Received.Add(-age(in.Header)), maxAge: d.MaxAge, staleIfErr: d.StaleIfError}
	if el, ok := c.items[in.Key]; ok {
		el.Value.(*item).entry = e
		c.order.MoveToFront(el)
		return
	}
	for c.order.Len() >= c.max {
		c.remove(c.order.Back())
	}
	c.items[in.Key] = c.order.PushFront(&item{key: in.Key, entry: e})
}

// Refresh applies a 304 to the key's entry (spec 7.5.3).
func (c *Cache) Refresh(key string, header http.Header, received time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	el, ok := c.items[key]
	if !ok {
		return
	}
	e := el.Value.(*item).entry
	cc := header.Values("Cache-Control")
	d := ParseCacheControl(cc)
	if d.NoStore {
		c.remove(el)
		return
	}
	if etag := header.Get("ETag"); etag != "" && etag != e.ETag {
		return
	}
	fresh := *e
	fresh.stored = received.Add(-age(header))
	if len(cc) > 0 {
		fresh.maxAge, fresh.staleIfErr = d.MaxAge, d.StaleIfError
	}
	el.Value.(*item).entry = &fresh
	c.order.MoveToFront(el)
}

// Invalidate drops the family's entries for resourceKey and those without
// a resource key; an empty resourceKey drops the whole family.
func (c *Cache) Invalidate(family, resourceKey string, whole bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.generation[family]++
	for el := c.order.Front(); el != nil; {
		next := el.Next()
		e := el.Value.(*item).entry
		if e.family == family && (whole || e.resourceKey == resourceKey || e.resourceKey == "") {
			c.remove(el)
		}
		el = next
	}
}

// RecordWriteRevision keeps the family's highest write mark (spec 7.10.2).
func (c *Cache) RecordWriteRevision(family, token string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	held, ok := c.marks[family]
	if !ok || !validRevision(token) || !validRevision(held) || CompareRevisions(token, held) > 0 {
		c.marks[family] = token
	}
}

// Clear drops every entry (write marks stay, spec 7.10.5).
func (c *Cache) Clear() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.order.Init()
	c.items = map[string]*list.Element{}
	for f := range c.generation {
		c.generation[f]++
	}
}

func (c *Cache) remove(el *list.Element) {
	c.order.Remove(el)
	delete(c.items, el.Value.(*item).key)
}

func age(h http.Header) time.Duration {
	v := strings.TrimSpace(h.Get("Age"))
	if v == "" {
		return 0
	}
	return deltaSeconds(v)
}

func validRevision(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// CompareRevisions orders two valid revision tokens as decimal integers.
func CompareRevisions(a, b string) int {
	a, b = strings.TrimLeft(a, "0"), strings.TrimLeft(b, "0")
	if len(a) != len(b) {
		if len(a) < len(b) {
			return -1
		}
		return 1
	}
	return strings.Compare(a, b)
}

// atLeast: revision rev is present, parses and is not below mark. An
// unparsable mark makes every entry outdated.
func atLeast(rev, mark string) bool {
	if !validRevision(rev) || !validRevision(mark) {
		return false
	}
	return CompareRevisions(rev, mark) >= 0
}
