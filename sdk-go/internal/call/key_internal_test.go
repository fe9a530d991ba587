package call

import (
	"math/rand"
	"reflect"
	"testing"
	"time"

	"github.com/secinfra/secinfra/sdk-go/gen/secinfrav1"
	"github.com/secinfra/secinfra/sdk-go/internal/cache"
	"github.com/secinfra/secinfra/sdk-go/rpc"
)

// slowKey is the key as the pipeline stores entries under it.
func slowKey(t *testing.T, d *rpc.Descriptor, msg any) (string, bool) {
	t.Helper()
	req, err := EncodeRequest("", d, msg)
	if err != nil {
		return "", false
	}
	key, err := cache.Key(d.FullName(), req.Fields)
	if err != nil {
		t.Fatal(err)
	}
	return key, true
}

// Strings that JSON writes as is, and ones it escapes (HTML characters
// included: the request's first encoding escapes them, the key's does not).
var keyStrings = []string{"", "a", "payments/db/password", "workload:spiffe://secinfra.local/w", "a b", "<>&",
	`quote"`, `back\slash`, "tab\t", "\x00", "é", "\u2028", "\xff", "folder:x/", "~!#$%^*()=+[]{}|;:',.?"}

// fill sets v (settable) to random values, strings from keyStrings.
func fill(r *rand.Rand, v reflect.Value, depth int) {
	switch v.Kind() {
	case reflect.String:
		v.SetString(keyStrings[r.Intn(len(keyStrings))])
	case reflect.Bool:
		v.SetBool(r.Intn(2) == 0)
	case reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64, reflect.Int:
		switch r.Intn(4) {
		case 0:
			v.SetInt(0)
		case 1:
			v.SetInt(int64(r.Intn(3))) // enum values
		case 2:
			v.SetInt(-int64(r.Intn(1000)))
		default:
			v.SetInt(r.Int63n(1 << 31))
		}
	case reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uint:
		v.SetUint(uint64(r.Intn(300)))
	case reflect.Pointer:
		if depth > 3 || r.Intn(4) == 0 {
			return
		}
		p := reflect.New(v.Type().Elem())
		fill(r, p.Elem(), depth+1)
		v.Set(p)
	case reflect.Slice:
		if depth > 3 || r.Intn(4) == 0 {
			return // nil
		}
		n := r.Intn(3)
		s := reflect.MakeSlice(v.Type(), n, n)
		for i := 0; i < n; i++ {
			fill(r, s.Index(i), depth+1)
		}
		v.Set(s)
	case reflect.Struct:
		if v.Type() == reflect.TypeFor[time.Time]() {
			v.Set(reflect.ValueOf(time.Unix(r.Int63n(1<<32), 0)))
			return
		}
		for i := 0; i < v.NumField(); i++ {
			if v.Type().Field(i).IsExported() {
				fill(r, v.Field(i), depth+1)
			}
		}
	}
}

// kitchen holds what generated requests hold, and more.
type kitchen struct {
	B       bool                   `json:"b"`
	U       uint16                 `json:"u,omitempty"`
	Raw     []byte                 `json:"raw"`
	E       secinfrav1.Consistency `json:"e,omitempty"`
	P       *secinfrav1.TupleKey   `json:"p"`
	L       []string               `json:"l"`
	Z       []int64                `json:"z,omitempty"`
	skipped string
	Dash    int `json:"-"`
	NoTag   string
	A_b     string `json:"a_b"` //nolint:revive // sorts after "a" as a member name
	A       string `json:"a"`
}

// appendKey gives the very bytes of cache.Key over the encoded request,
// or declines; for plain strings it never declines.
func TestAppendKeyIsCacheKey(t *testing.T) {
	d := func(service, name string) *rpc.Descriptor {
		return &rpc.Descriptor{Service: service, Name: name, HTTPMethod: "POST", Path: "/x"}
	}
	messages := []struct {
		d   *rpc.Descriptor
		msg func() any
	}{
		{&rpc.Descriptor{Service: "secinfra.v1.SecretsService", Name: "GetSecret", HTTPMethod: "GET",
			Path: "/v1/secrets/{name=**}", PathParams: []string{"name"}, QueryParams: []string{"version"}},
			func() any { return &secinfrav1.GetSecretRequest{} }},
		{d("secinfra.v1.AuthzService", "Check"), func() any { return &secinfrav1.CheckRequest{} }},
		{d("secinfra.v1.AuthzService", "BatchCheck"), func() any { return &secinfrav1.BatchCheckRequest{} }},
		{d("secinfra.v1.AuthzService", "ListObjects"), func() any { return &secinfrav1.ListObjectsRequest{} }},
		{d("secinfra.v1.AuthzService", "WriteTuples"), func() any { return &secinfrav1.WriteTuplesRequest{} }},
		{d("secinfra.v1.SecretsService", "PutSecret"), func() any { return &secinfrav1.PutSecretRequest{} }},
		{d("secinfra.v1.SecretsService", "DeleteSecret"), func() any { return &secinfrav1.DeleteSecretRequest{} }},
		{d("secinfra.v1.IdentityService", "GetTrustBundle"), func() any { return &secinfrav1.GetTrustBundleRequest{} }},
		{d("secinfra.v1.IdentityService", "IssueCertificate"), func() any { return &secinfrav1.IssueCertificateRequest{} }},
		{d("test.Service", "Kitchen"), func() any { return &kitchen{} }},
	}
	r := rand.New(rand.NewSource(1))
	for _, m := range messages {
		fast := 0
		for i := 0; i < 3000; i++ {
			msg := m.msg()
			fill(r, reflect.ValueOf(msg).Elem(), 0)
			want, encodes := slowKey(t, m.d, msg)
			got, ok := appendKey(nil, m.d, msg)
			if !ok {
				continue
			}
			fast++
			if !encodes {
				t.Fatalf("%s: appendKey made a key for a request that does not encode: %#v", m.d.Name, msg)
			}
			if string(got) != want {
				t.Fatalf("%s: %#v\nappendKey %s\ncache.Key %s", m.d.Name, msg, got, want)
			}
		}
		if fast == 0 {
			t.Errorf("%s: appendKey declined every request", m.d.Name)
		}
	}
	plain := []any{
		&secinfrav1.GetSecretRequest{Name: "payments/db/password"},
		&secinfrav1.GetSecretRequest{Name: "a", Version: 3},
		&secinfrav1.CheckRequest{TupleKey: &secinfrav1.TupleKey{User: "workload:x", Relation: "reader", Object: "secret:y"}},
		&secinfrav1.CheckRequest{Consistency: secinfrav1.ConsistencyAtLeastAsFresh, Revision: "12",
			ContextualTuples: []*secinfrav1.TupleKey{{User: "u:1", Relation: "r", Object: "o:2"}, nil}},
		&secinfrav1.BatchCheckRequest{Checks: []*secinfrav1.BatchCheckItem{{CorrelationID: "1"}}},
		&secinfrav1.GetTrustBundleRequest{},
	}
	for _, msg := range plain {
		desc := d("s", "m")
		want, _ := slowKey(t, desc, msg)
		got, ok := appendKey(nil, desc, msg)
		if !ok || string(got) != want {
			t.Errorf("%#v: appendKey %q, %v; want %q", msg, got, ok, want)
		}
	}
}

// A copy shares no memory with what it was copied from, and keeps nil
// apart from empty.
func TestCopyIntoIsDeep(t *testing.T) {
	at := time.Date(2026, 12, 6, 1, 2, 3, 4, time.UTC)
	src := &secinfrav1.Secret{Name: "n", Version: 2, Value: []byte("hunter2"), CreateTime: &at}
	kept := &decoded{ptr: reflect.ValueOf(src), cp: copierFor(reflect.TypeFor[secinfrav1.Secret]())}
	got := &secinfrav1.Secret{}
	if !copyInto(got, kept) || !reflect.DeepEqual(got, src) {
		t.Fatalf("copy %v, want %v", got, src)
	}
	got.Value[0] = 'X'
	*got.CreateTime = time.Time{}
	if string(src.Value) != "hunter2" || !src.CreateTime.Equal(at) {
		t.Fatal("the copy shares memory with the kept value")
	}
	if copyInto(&secinfrav1.Secret{Name: "set"}, kept) {
		t.Fatal("a copy into a non-zero value must decline (a decode merges)")
	}
	if copyInto(&secinfrav1.CheckResponse{}, kept) {
		t.Fatal("a copy into another type must decline")
	}
	bundle := &secinfrav1.TrustBundle{Keys: []*secinfrav1.Jwk{{Use: "x509-svid", X5c: []string{"a"}}, nil}}
	empty := &secinfrav1.TrustBundle{Keys: []*secinfrav1.Jwk{}}
	for _, v := range []*secinfrav1.TrustBundle{bundle, empty, {}} {
		out := &secinfrav1.TrustBundle{}
		if !copyInto(out, &decoded{ptr: reflect.ValueOf(v), cp: copierFor(reflect.TypeFor[secinfrav1.TrustBundle]())}) ||
			!reflect.DeepEqual(out, v) || (v.Keys == nil) != (out.Keys == nil) {
			t.Fatalf("copy %#v, want %#v", out, v)
		}
		if len(v.Keys) > 0 && (out.Keys[0] == v.Keys[0] || &out.Keys[0].X5c[0] == &v.Keys[0].X5c[0]) {
			t.Fatal("the copy shares memory")
		}
	}
	if copierFor(reflect.TypeFor[map[string]any]()) != nil {
		t.Fatal("interfaces are decoded, not copied")
	}
}

// A request with a context (a string-keyed map) takes cache.Key's path, so its
// key holds the context, members sorted: requests that differ only in context
// never share a key, and the same context in any map order gives one key
// (spec 7.3.5). An empty context keeps the fast path.
func TestContextIsPartOfTheKey(t *testing.T) {
	desc := &rpc.Descriptor{Service: "secinfra.v1.AuthzService", Name: "Check", HTTPMethod: "POST", Path: "/x"}
	tuple := &secinfrav1.TupleKey{User: "workload:x", Relation: "viewer", Object: "document:1"}
	key := func(ctx map[string]any) string {
		msg := &secinfrav1.CheckRequest{TupleKey: tuple, Context: ctx}
		if got, ok := appendKey(nil, desc, msg); ok {
			return string(got)
		}
		want, encodes := slowKey(t, desc, msg)
		if !encodes {
			t.Fatalf("%#v does not encode", msg)
		}
		return want
	}
	if _, ok := appendKey(nil, desc, &secinfrav1.CheckRequest{TupleKey: tuple, Context: map[string]any{}}); !ok {
		t.Errorf("an empty context left the fast path")
	}
	if _, ok := appendKey(nil, desc, &secinfrav1.CheckRequest{TupleKey: tuple, Context: map[string]any{"ip": "10.0.0.1"}}); ok {
		t.Errorf("a context took the fast path")
	}
	inside := key(map[string]any{"ip": "10.0.0.1", "n": 1})
	if inside != key(map[string]any{"n": 1, "ip": "10.0.0.1"}) {
		t.Errorf("one context gave two keys")
	}
	for _, other := range []map[string]any{nil, {"ip": "10.0.0.2", "n": 1}, {"ip": "10.0.0.1", "n": "1"}, {"ip": "10.0.0.1"}} {
		if key(other) == inside {
			t.Errorf("context %v shares the key of %v", other, inside)
		}
	}
}
