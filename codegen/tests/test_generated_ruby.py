"""The generated kitchen-sink Ruby: parses with ``ruby -wc``, round-trips JSON, clients.

The Ruby checks run in a real Ruby (Debian's, installed by
scripts/ensure-ruby.sh when missing) with nothing of the SDK loaded but its
errors and its rpc contract (sdk-ruby/lib/secinfra/rpc.rb): generated code
depends on the contract only, never on the runtime behind it.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
from codegen_testlib import GOLDEN_LAYOUT, REPO

from secinfra_codegen.targets import Output
from secinfra_codegen.targets.ruby import DOCS_DIR, DOCS_PAGE, attr_name, module_path, string

SDK = REPO / "sdk-ruby" / "lib" / "secinfra"
RUBY_TIMEOUT = 120


@pytest.fixture(scope="module")
def ruby() -> str:
    found = shutil.which("ruby")
    if found is None:
        subprocess.run(["bash", str(REPO / "scripts" / "ensure-ruby.sh")], check=True, timeout=600)
        found = shutil.which("ruby")
    assert found is not None, "ruby is missing and scripts/ensure-ruby.sh did not install it"
    return found


@pytest.fixture(scope="module")
def ruby_gen(kitchen_outputs: list[Output], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The kitchen sink's generated Ruby files, written to a temp folder."""
    out = next(o for o in kitchen_outputs if o.directory == GOLDEN_LAYOUT.sdk_ruby)
    folder = tmp_path_factory.mktemp("ruby-gen")
    for name, text in out.files.items():
        (folder / name).write_text(text, encoding="utf-8")
    return folder


def run_ruby(ruby: str, gen: Path, script: str) -> str:
    """Runs ``script`` with the rpc contract and the generated kitchen sink loaded."""
    prelude = "\n".join(f'require "{SDK / name}"' for name in ("version", "errors", "rpc"))
    proc = subprocess.run(
        [
            ruby,
            "-w",
            "-e",
            f'{prelude}\nrequire "{gen / "all.rb"}"\nKS = Secinfra::KitchensinkV1\n{script}',
        ],
        capture_output=True,
        text=True,
        timeout=RUBY_TIMEOUT,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == "", f"ruby warnings:\n{proc.stderr}"
    return proc.stdout


def test_every_file_parses_without_warnings(ruby: str, ruby_gen: Path) -> None:
    files = sorted(ruby_gen.glob("*.rb"))
    assert {f.name for f in files} == {"all.rb", "kitchen_sink.rb", "kitchen_sink_client.rb"}
    for path in files:
        proc = subprocess.run(
            [ruby, "-wc", str(path)],
            capture_output=True,
            text=True,
            timeout=RUBY_TIMEOUT,
            check=False,
        )
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout.strip() == "Syntax OK"
        assert proc.stderr == "", f"{path.name}: {proc.stderr}"


def test_sdk_generated_files_parse(ruby: str) -> None:
    files = sorted((REPO / "sdk-ruby" / "lib" / "secinfra" / "gen").glob("*.rb"))
    assert files, "run python -m secinfra_codegen first"
    proc = subprocess.run(
        [ruby, "-wc", *map(str, files)],
        capture_output=True,
        text=True,
        timeout=RUBY_TIMEOUT,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr


FULL_THING = r"""
item = KS::ContainerItem.new(name: "a", kind: KS::ContainerItemKind::LARGE)
thing = KS::Thing.new(
  name: "team/app/db",
  scalars: KS::Scalars.new(
    int32_value: -(2**31), int64_value: 2**63 - 1, uint32_value: 2**32 - 1, uint64_value: 2**64 - 1,
    sint32_value: -5, sint64_value: -(2**63), fixed32_value: 7, fixed64_value: 2**64 - 1,
    sfixed32_value: -9, sfixed64_value: -10, double_value: 1.5, float_value: -0.25,
    bool_value: true,
    string_value: "quote \" backslash \\ unicode \u65e5\u672c", bytes_value: "\x00\xff binary".b,
    color: KS::Color::DARK_GREEN, maybe_int64: 0, maybe_string: "", maybe_color: KS::Color::BLUE,
    maybe_bool: false
  ),
  container: KS::Container.new(
    tags: %w[x y], counts: [1, -(2**63)], items: [item], colors: [KS::Color::RED, KS::Color::BLUE],
    items_by_name: { "a" => item }, names_by_id: { 1 => "one", -2 => "minus two" },
    colors_by_name: { "sky" => KS::Color::BLUE }, created_at: Time.utc(2024, 5, 1, 12, 0, 0.25r),
    attributes: { "nested" => { "list" => [1, "two", nil] } }, seen_at: [Time.utc(2024, 5, 1)],
    label: "round", primary: item, blobs: ["\x01".b], default_kind: KS::ContainerItemKind::SMALL
  ),
  keywords: KS::Keywords.new(class_: "c", def_: "d", end_: "e"),
  tree: KS::Node.new(value: "root", children: [KS::Node.new(value: "leaf")])
)
"""


def test_full_message_round_trips(ruby: str, ruby_gen: Path) -> None:
    out = run_ruby(
        ruby,
        ruby_gen,
        FULL_THING
        + """
wire = JSON.parse(JSON.generate(thing.to_h))
back = KS::Thing.from_h(wire, strict: true)
raise "round trip changed the message" unless back == thing
puts JSON.generate(wire)
""",
    )
    wire = json.loads(out)
    scalars = wire["scalars"]
    assert scalars["int64_value"] == str(2**63 - 1)
    assert scalars["uint64_value"] == str(2**64 - 1)
    assert scalars["sint64_value"] == str(-(2**63))
    assert scalars["int32_value"] == -(2**31)
    assert scalars["bytes_value"] == "AP8gYmluYXJ5"
    assert scalars["color"] == "dark_green"
    assert scalars["maybe_int64"] == "0"  # presence: sent at its default
    assert scalars["maybe_bool"] is False
    container = wire["container"]
    assert container["counts"] == ["1", str(-(2**63))]
    assert container["names_by_id"] == {"1": "one", "-2": "minus two"}
    assert container["created_at"] == "2024-05-01T12:00:00.250Z"
    assert container["seen_at"] == ["2024-05-01T00:00:00Z"]
    assert container["label"] == "round"
    assert "radius" not in container
    assert "square" not in container
    assert wire["keywords"]["class"] == "c"
    assert wire["keywords"]["end"] == "e"
    assert wire["tree"]["children"][0]["value"] == "leaf"
    assert "parent" not in wire["tree"]


def test_unset_presence_fields_are_left_out(ruby: str, ruby_gen: Path) -> None:
    out = run_ruby(ruby, ruby_gen, "puts JSON.generate(KS::Scalars.new.to_h)")
    wire = json.loads(out)
    for name in ("maybe_int64", "maybe_string", "maybe_color", "maybe_bool"):
        assert name not in wire
    assert wire["int64_value"] == "0"
    assert wire["color"] == "unspecified"


@pytest.mark.parametrize(
    ("case", "document", "fragment"),
    [
        ("unknown field", '{"name": "x", "nope": 1}', 'unknown field "nope"'),
        ("wrong type", '{"name": 5}', "name: expected a string"),
        ("int out of range", '{"scalars": {"int32_value": 2147483648}}', "out of range"),
        ("bad base64", '{"scalars": {"bytes_value": "%%%"}}', "invalid base64"),
        ("bad timestamp", '{"container": {"created_at": "yesterday"}}', "RFC 3339"),
        ("two oneof members", '{"container": {"label": "a", "radius": 1}}', "oneof shape"),
        ("unknown enum when strict", '{"scalars": {"color": "purple"}}', "unknown enum value"),
    ],
)
def test_strict_decoding_rejects(
    ruby: str, ruby_gen: Path, case: str, document: str, fragment: str
) -> None:
    out = run_ruby(
        ruby,
        ruby_gen,
        f"""
begin
  KS::Thing.from_h(JSON.parse({string(document)}), strict: true)
  puts "accepted"
rescue Secinfra::RPC::DecodeError => e
  puts e.message
end
""",
    )
    assert fragment in out, f"{case}: {out}"


def test_lenient_decoding_ignores_unknowns(ruby: str, ruby_gen: Path) -> None:
    out = run_ruby(
        ruby,
        ruby_gen,
        """
doc = {"name" => "x", "future" => 1, "scalars" => {"color" => "purple", "int64_value" => 7}}
t = KS::Thing.from_h(doc)
puts [t.name, t.scalars.color, t.scalars.int64_value, t.container.inspect].join(",")
""",
    )
    assert out.strip() == "x,unspecified,7,nil"


def test_inspect_hides_bytes(ruby: str, ruby_gen: Path) -> None:
    out = run_ruby(ruby, ruby_gen, 'puts KS::Scalars.new(bytes_value: "hunter2").inspect')
    assert "hunter2" not in out
    assert "REDACTED 7 bytes" in out


def test_client_methods_build_requests_from_keywords(ruby: str, ruby_gen: Path) -> None:
    out = run_ruby(
        ruby,
        ruby_gen,
        """
class Recorder
  include Secinfra::RPC::Invoker
  attr_reader :calls
  def initialize = @calls = []
  def invoke(method, request, response_class, options)
    @calls << [method, request, response_class, options]
    response_class.new
  end
end
rec = Recorder.new
things = KS::ThingClient.new(rec)
things.touch_thing(name: "a/b", shard: 3)
KS::PingClient.new(rec).ping(payload: "hi", class_: "k")
d, req, resp, _ = rec.calls[0]
d2, req2, = rec.calls[1]
puts JSON.generate({
  "name" => d.name, "path" => d.path, "path_params" => d.path_params, "idem" => d.idempotency,
  "auth" => d.auth, "req" => req.to_h, "resp" => resp.name, "ping_auth" => d2.auth,
  "ping_req" => req2.to_h, "get_cache" => KS::ThingClient::GET_THING.cache.to_h,
  "put_inv" => KS::ThingClient::PUT_THING.invalidates.to_h,
  "delete_admin" => KS::ThingClient::DELETE_THING.admin?
})
""",
    )
    got = json.loads(out)
    assert got["name"] == "TouchThing"
    assert got["path"] == "/v1/shards/{shard}/things/{name=**}:touch"
    assert got["path_params"] == ["shard", "name"]
    assert got["idem"] == "non_idempotent"
    assert got["auth"] == "mtls"
    assert got["req"] == {"name": "a/b", "shard": 3}
    assert got["resp"] == "Secinfra::KitchensinkV1::Thing"
    assert got["ping_auth"] == "none"
    assert got["ping_req"] == {"payload": "hi", "class": "k"}
    assert got["get_cache"] == {"resource": "thing", "key_field": "name"}
    assert got["put_inv"] == {"resource": "thing", "key_field": "name"}
    assert got["delete_admin"] is True


def test_reference_page(kitchen_outputs: list[Output]) -> None:
    out = next(o for o in kitchen_outputs if o.directory == DOCS_DIR and DOCS_PAGE in o.files)
    assert not out.exclusive
    page = out.files[DOCS_PAGE]
    assert page.startswith("<!-- Code generated by secinfra codegen. DO NOT EDIT. -->\n")
    for rpc in (
        "get_thing",
        "put_thing",
        "delete_thing",
        "list_things",
        "touch_thing",
        "ping",
        "time",
    ):
        assert f"### `thing.{rpc}`" in page or f"### `ping.{rpc}`" in page
    assert "client.thing.get_thing(name:, version: 0, fields: [], color: " in page
    assert "| HTTP | `GET /v1/things/{name=**}` |" in page
    assert "cacheable (family `thing`, key `name`)" in page
    assert "### `Secinfra::KitchensinkV1::Scalars`" in page


@pytest.mark.parametrize(
    ("field", "expected"),
    [("class", "class_"), ("end", "end_"), ("hash", "hash_"), ("send", "send_"), ("name", "name")],
)
def test_attr_names(field: str, expected: str) -> None:
    assert attr_name(field) == expected


def test_module_path() -> None:
    assert module_path("secinfra.v1") == ["Secinfra", "V1"]
    assert module_path("secinfra.kitchensink.v1") == ["Secinfra", "KitchensinkV1"]


def test_string_literal_escapes_interpolation() -> None:
    assert string('a "b" #{x} \\') == '"a \\"b\\" \\#{x} \\\\"'


def test_generated_code_names_only_the_rpc_contract(kitchen_outputs: list[Output]) -> None:
    out = next(o for o in kitchen_outputs if o.directory == GOLDEN_LAYOUT.sdk_ruby)
    sdk = {p.name: p.read_text(encoding="utf-8") for p in (SDK / "gen").glob("*.rb")}
    for name, text in {**out.files, **sdk}.items():
        assert "Secinfra::Runtime" not in text, f"{name} names the runtime; use Secinfra::RPC"
