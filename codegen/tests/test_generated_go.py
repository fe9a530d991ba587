"""The generated kitchen-sink Go: gofmt-clean, compiles, vets, and round-trips.

The kitchen-sink package is placed in a throwaway Go module next to a copy of
the SDK's runtime contract (sdk-go/rpc), then checked with the real Go
toolchain: ``gofmt -l``, ``go vet`` and ``go test`` of a Go test (below) that
encodes and decodes every field type, checks the wire forms the spec fixes
(int64 as strings, base64 bytes, enum wire names, UTC timestamps), forward
compatibility (unknown fields and enum strings), the redacted String form,
and that each client method hands the right descriptor to its Invoker.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
from codegen_testlib import GOLDEN_LAYOUT, REPO

from secinfra_codegen.errors import CodegenError
from secinfra_codegen.model import Api
from secinfra_codegen.targets import Output, go

GO = shutil.which("go")
pytestmark = pytest.mark.skipif(GO is None, reason="the Go toolchain is not installed")

GO_TEST = r"""
package kitchensinkv1

import (
	"context"
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/secinfra/secinfra/sdk-go/rpc"
)

func ptr[T any](v T) *T { return &v }

func fullThing() *Thing {
	item := &ContainerItem{Name: "a", Kind: ContainerItemKindLarge}
	created := time.Date(2024, 5, 1, 14, 0, 0, 250000000, time.FixedZone("CEST", 2*3600))
	return &Thing{
		Name: "team/app/db",
		Scalars: &Scalars{
			Int32Value: -1 << 31, Int64Value: 1<<63 - 1, Uint32Value: 1<<32 - 1, Uint64Value: 1<<64 - 1,
			Sint32Value: -5, Sint64Value: -1 << 63, Fixed32Value: 7, Fixed64Value: 1<<64 - 1,
			Sfixed32Value: -9, Sfixed64Value: -10, DoubleValue: 1.5, FloatValue: -0.25, BoolValue: true,
			StringValue: "quote \" backslash \\ unicode 日本語", BytesValue: []byte("\x00\xff binary"),
			Color: ColorDarkGreen, MaybeInt64: ptr(int64(0)), MaybeString: ptr(""),
			MaybeColor: ptr(ColorBlue), MaybeBool: ptr(false),
		},
		Container: &Container{
			Tags: []string{"x", "y"}, Counts: Int64s{1, -1 << 63}, Items: []*ContainerItem{item},
			Colors: []Color{ColorRed, ColorBlue}, ItemsByName: map[string]*ContainerItem{"a": item},
			NamesByID: map[int32]string{1: "one", -2: "minus two"}, ColorsByName: map[string]Color{"sky": ColorBlue},
			CreatedAt: &created, Attributes: map[string]any{"nested": map[string]any{"list": []any{1.0, "two", nil}}},
			SeenAt: []time.Time{time.Date(2024, 5, 1, 0, 0, 0, 0, time.UTC)}, Square: item,
			Primary: &ContainerItem{Name: "p"}, Blobs: [][]byte{{}, []byte("abc")},
			DefaultKind: ContainerItemKindSmall,
		},
		Keywords: &Keywords{Class: "c", Type: "t", From: "f", Import: "i", Def: "d", End: "e",
			Package: "p", Interface: "n", Func: "u", Range: "r"},
		Tree: &Node{Value: "root", Children: []*Node{{Value: "leaf"}}},
	}
}

func TestRoundTripEveryType(t *testing.T) {
	thing := fullThing()
	data, err := json.Marshal(thing)
	if err != nil {
		t.Fatal(err)
	}
	var back Thing
	if err := json.Unmarshal(data, &back); err != nil {
		t.Fatal(err)
	}
	// Timestamps come back in UTC: compare instants, then the rest.
	if !back.Container.CreatedAt.Equal(*thing.Container.CreatedAt) {
		t.Fatalf("created_at: %v != %v", back.Container.CreatedAt, thing.Container.CreatedAt)
	}
	back.Container.CreatedAt = thing.Container.CreatedAt
	if !reflect.DeepEqual(&back, thing) {
		t.Fatalf("round trip changed the message:\n got %#v\nwant %#v", back, *thing)
	}
}

func TestWireForms(t *testing.T) {
	data, err := json.Marshal(fullThing())
	if err != nil {
		t.Fatal(err)
	}
	text := string(data)
	for _, want := range []string{
		`"int64_value":"9223372036854775807"`, `"uint64_value":"18446744073709551615"`,
		`"sint64_value":"-9223372036854775808"`, `"int32_value":-2147483648`,
		`"bytes_value":"AP8gYmluYXJ5"`, `"color":"dark_green"`, `"maybe_color":"blue"`,
		`"maybe_int64":"0"`, `"maybe_string":""`, `"maybe_bool":false`,
		`"counts":["1","-9223372036854775808"]`, `"names_by_id":{"-2":"minus two","1":"one"}`,
		`"created_at":"2024-05-01T12:00:00.25Z"`, `"seen_at":["2024-05-01T00:00:00Z"]`,
		`"blobs":["","YWJj"]`, `"default_kind":"small"`, `"class":"c"`, `"range":"r"`,
	} {
		if !strings.Contains(text, want) {
			t.Errorf("encoding lacks %s:\n%s", want, text)
		}
	}
	// Unset fields with presence are left out, never sent as null.
	empty, _ := json.Marshal(&Scalars{})
	if strings.Contains(string(empty), "null") || strings.Contains(string(empty), "maybe_") {
		t.Errorf("unset optional fields must be omitted: %s", empty)
	}
}

func TestForwardCompatibleDecoding(t *testing.T) {
	tests := []struct {
		name  string
		input string
		check func(*Scalars) bool
	}{
		{"unknown field is ignored", `{"string_value":"s","new_field":{"x":1}}`, func(s *Scalars) bool { return s.StringValue == "s" }},
		{"unknown enum is unspecified", `{"color":"ultraviolet"}`, func(s *Scalars) bool { return s.Color == ColorUnspecified }},
		{"int64 as a string", `{"int64_value":"-42"}`, func(s *Scalars) bool { return s.Int64Value == -42 }},
		{"absent optional is nil", `{}`, func(s *Scalars) bool { return s.MaybeInt64 == nil && s.MaybeColor == nil }},
		{"optional zero is set", `{"maybe_int64":"0"}`, func(s *Scalars) bool { return s.MaybeInt64 != nil && *s.MaybeInt64 == 0 }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var s Scalars
			if err := json.Unmarshal([]byte(tt.input), &s); err != nil {
				t.Fatal(err)
			}
			if !tt.check(&s) {
				t.Errorf("decoded %+v", s)
			}
		})
	}
}

func TestStringRedactsBytes(t *testing.T) {
	s := &Scalars{StringValue: "visible", BytesValue: []byte("hunter2")}
	for _, format := range []string{"%v", "%+v", "%s", "%#v"} {
		out := fmt.Sprintf(format, s)
		if strings.Contains(out, "hunter2") || !strings.Contains(out, "7 bytes redacted") {
			t.Errorf("%s shows the bytes: %s", format, out)
		}
	}
}

func TestEnumText(t *testing.T) {
	if ColorDarkGreen.String() != "dark_green" || Color(99).String() != "99" {
		t.Fatal("enum String")
	}
	if _, err := Color(99).MarshalText(); err == nil {
		t.Fatal("an enum value without a name must not encode")
	}
	if !KnownColor("blue") || KnownColor("BLUE") {
		t.Fatal("KnownColor")
	}
}

type recorder struct {
	d    *rpc.Descriptor
	req  any
	opts int
}

func (r *recorder) Invoke(_ context.Context, d *rpc.Descriptor, req, resp any, opts ...rpc.CallOption) error {
	r.d, r.req, r.opts = d, req, len(opts)
	return json.Unmarshal([]byte(`{"name":"answer"}`), resp)
}

func TestClientsPassTheirDescriptor(t *testing.T) {
	rec := &recorder{}
	things := NewThingClient(rec)
	got, err := things.GetThing(context.Background(), &GetThingRequest{Name: "a/b"}, rpc.WithMaxAttempts(1))
	if err != nil || got.Name != "answer" {
		t.Fatalf("GetThing: %v %v", got, err)
	}
	d := rec.d
	if d.FullName() != "secinfra.kitchensink.v1.ThingService/GetThing" || d.HTTPMethod != "GET" ||
		d.Path != "/v1/things/{name=**}" || d.Idempotency != rpc.ReadOnly || d.Auth != rpc.AuthMTLS ||
		d.Cache == nil || d.Cache.Resource != "thing" || d.Cache.KeyField != "name" || rec.opts != 1 {
		t.Fatalf("descriptor %+v", d)
	}
	if !reflect.DeepEqual(d.QueryParams, []string{"version", "fields", "color", "since"}) {
		t.Fatalf("query params %v", d.QueryParams)
	}
	if _, err := things.TouchThing(context.Background(), nil); err != nil {
		t.Fatal(err)
	}
	if rec.d.Name != "TouchThing" || rec.d.Idempotency != rpc.NonIdempotent ||
		!reflect.DeepEqual(rec.d.PathParams, []string{"shard", "name"}) {
		t.Fatalf("TouchThing descriptor %+v", rec.d)
	}
	if _, ok := rec.req.(*TouchThingRequest); !ok {
		t.Fatalf("a nil request is sent as the empty message, got %T", rec.req)
	}
	ping := NewPingClient(rec)
	if _, err := ping.Ping(context.Background(), &PingRequest{}); err != nil || rec.d.Auth != rpc.AuthNone {
		t.Fatalf("Ping: %v %+v", err, rec.d)
	}
	del := ThingDescriptors()[2]
	if del.Name != "DeleteThing" || !del.Admin || del.Invalidates == nil || del.Invalidates.KeyField != "" {
		t.Fatalf("DeleteThing descriptor %+v", del)
	}
}
"""  # noqa: E501 - Go source, formatted by gofmt rules


def _go_output(outputs: list[Output]) -> Output:
    return next(o for o in outputs if o.directory == GOLDEN_LAYOUT.sdk_go)


@pytest.fixture(scope="module")
def go_module(kitchen_api: Api, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A Go module holding the kitchen-sink package and the runtime contract."""
    outputs = go.generate(kitchen_api, GOLDEN_LAYOUT)
    root = tmp_path_factory.mktemp("go-kitchen")
    (root / "go.mod").write_text(f"module {go.MODULE}\n\ngo 1.22\n", encoding="utf-8")
    shutil.copytree(REPO / "sdk-go" / "rpc", root / "rpc")
    pkg = root / "gen" / "kitchensinkv1"
    pkg.mkdir(parents=True)
    for name, text in _go_output(outputs).files.items():
        (pkg / name).write_text(text, encoding="utf-8")
    (pkg / "kitchen_sink_test.go").write_text(GO_TEST, encoding="utf-8")
    return root


def _go(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "GOFLAGS": "-mod=mod", "GOTOOLCHAIN": "local"}
    assert GO is not None
    return subprocess.run(
        [GO, *args], cwd=root, capture_output=True, text=True, check=False, env=env, timeout=300
    )


def test_generated_go_is_gofmt_clean(go_module: Path) -> None:
    generated = sorted(
        str(p) for p in (go_module / "gen").rglob("*.go") if not p.name.endswith("_test.go")
    )
    proc = subprocess.run(
        [go.find_gofmt(), "-l", *generated], capture_output=True, text=True, check=False
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "", f"gofmt would reformat: {proc.stdout}"


def test_generated_go_vets(go_module: Path) -> None:
    proc = _go(go_module, "vet", "./...")
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_generated_go_round_trips_and_calls(go_module: Path) -> None:
    proc = _go(go_module, "test", "-count=1", "./gen/...")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "ok" in proc.stdout


def test_every_go_file_starts_with_the_marker(kitchen_api: Api) -> None:
    outputs = go.generate(kitchen_api, GOLDEN_LAYOUT)
    for name, text in _go_output(outputs).files.items():
        assert text.startswith("// Code generated by secinfra codegen. DO NOT EDIT.\n"), name
    page = next(o for o in outputs if o.directory == go.DOCS_DIR).files[go.DOCS_PAGE]
    assert page.startswith("<!-- Code generated by secinfra codegen. DO NOT EDIT. -->\n")


def test_reference_page_lists_every_rpc_and_message(kitchen_api: Api) -> None:
    outputs = go.generate(kitchen_api, GOLDEN_LAYOUT)
    page = next(o for o in outputs if o.directory == go.DOCS_DIR).files[go.DOCS_PAGE]
    for svc in kitchen_api.services:
        for meth in svc.methods:
            assert f"### {meth.name}\n" in page
            assert f"`{meth.http_method} {meth.path.template}`" in page
    for msg in kitchen_api.messages:
        assert f"### {go.type_name(msg.qualified_name)}\n" in page
    assert (
        "func (c *ThingClient) GetThing(ctx context.Context, req *kitchensinkv1.GetThingRequest, "
        "opts ...rpc.CallOption) (*kitchensinkv1.Thing, error)" in page
    )


@pytest.mark.parametrize(
    ("snake", "want"),
    [
        ("spiffe_id", "SpiffeID"),
        ("cert_chain_pem", "CertChainPEM"),
        ("x5c", "X5c"),
        ("bundle_refresh_hint", "BundleRefreshHint"),
        ("ca_id", "CAID"),
        ("int64_value", "Int64Value"),
    ],
)
def test_field_names(snake: str, want: str) -> None:
    assert go.camel(snake) == want


@pytest.mark.parametrize(
    ("package", "want"),
    [("secinfra.v1", "secinfrav1"), ("secinfra.kitchensink.v1", "kitchensinkv1"), ("foo", "foo")],
)
def test_package_names(package: str, want: str) -> None:
    assert go.package_name(package) == want


def test_keyword_package_is_rejected() -> None:
    with pytest.raises(CodegenError):
        go.package_name("acme.func")
