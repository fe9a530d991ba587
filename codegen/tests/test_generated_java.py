"""The generated kitchen-sink Java: it compiles with javac, its Javadoc passes doclint
with warnings as errors, and its records round-trip the wire JSON (run with java).

The Java toolchain (javac, javadoc, java) and Maven (for Jackson on the classpath)
must be installed; without them these tests are skipped with the reason.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
from codegen_testlib import GOLDEN_LAYOUT, REPO

from secinfra_codegen.targets import Output
from secinfra_codegen.targets.java import REFERENCE_PAGE

SDK = REPO / "sdk-java"
# Generated code depends on the rpc contract only (its Javadoc names the error types).
RUNTIME_SOURCES = (
    "dev/secinfra/rpc",
    "dev/secinfra/errors",
)
TOOLS = ("javac", "javadoc", "java", "mvn")

ROUND_TRIP = """
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.secinfra.gen.*;

public final class RoundTrip {
  public static void main(String[] args) throws Exception {
    ObjectMapper mapper = new ObjectMapper();
    JsonNode input = mapper.readTree(new java.io.File(args[0]));
    Thing thing = Thing.fromJson(input, true);
    System.out.println(thing.toJson().toString());
    System.out.println(thing.toString());
  }
}
"""

THING = {
    "name": "team/app/db",
    "scalars": {
        "int32_value": -(2**31),
        "int64_value": str(2**63 - 1),
        "uint32_value": 2**32 - 1,
        "uint64_value": str(2**64 - 1),
        "sint32_value": -5,
        "sint64_value": str(-(2**63)),
        "fixed32_value": 7,
        "fixed64_value": str(2**64 - 1),
        "sfixed32_value": -9,
        "sfixed64_value": "-10",
        "double_value": 1.5,
        "float_value": -0.25,
        "bool_value": True,
        "string_value": "héllo 🔐",
        "bytes_value": "AAEC/w==",
        "color": "dark_green",
        "maybe_int64": "0",
        "maybe_string": "",
        "maybe_color": "unspecified",
        "maybe_bool": False,
    },
    "container": {
        "tags": ["a", "b"],
        "counts": ["1", "-2"],
        "items": [{"name": "i", "kind": "large"}],
        "colors": ["red", "blue"],
        "items_by_name": {"k": {"name": "k", "kind": "small"}},
        "names_by_id": {"-1": "minus one", "7": "seven"},
        "colors_by_name": {"x": "red"},
        "created_at": "2026-11-22T08:00:00.123Z",
        "attributes": {"nested": {"list": [1, "two", None]}},
        "seen_at": ["2026-11-22T08:00:00Z"],
        "label": "a label",
        "primary": {"name": "p", "kind": "unspecified"},
        "blobs": ["aGk="],
        "default_kind": "small",
    },
    "keywords": {"class": "c", "import": "i", "package": "p", "interface": "f", "end": "e"},
    "tree": {"value": "root", "children": [{"value": "leaf", "children": []}]},
}


def _have_tools() -> str | None:
    missing = [tool for tool in TOOLS if shutil.which(tool) is None]
    return f"needs {', '.join(missing)} on PATH" if missing else None


@pytest.fixture(scope="module")
def jackson_classpath(tmp_path_factory: pytest.TempPathFactory) -> str:
    reason = _have_tools()
    if reason:
        pytest.skip(reason)
    out = tmp_path_factory.mktemp("java-cp") / "classpath.txt"
    proc = subprocess.run(
        [
            "mvn",
            "-B",
            "-ntp",
            "-q",
            "-f",
            str(SDK / "pom.xml"),
            "dependency:build-classpath",
            "-Dmdep.includeScope=runtime",
            f"-Dmdep.outputFile={out}",
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    return out.read_text(encoding="utf-8").strip()


@pytest.fixture(scope="module")
def kitchen_java(kitchen_outputs: list[Output], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The kitchen sink's generated Java plus the SDK's runtime contract, as sources."""
    root = tmp_path_factory.mktemp("kitchen-java")
    src = root / "src"
    out = next(o for o in kitchen_outputs if o.directory == GOLDEN_LAYOUT.sdk_java)
    package = src / "dev" / "secinfra" / "gen"
    package.mkdir(parents=True)
    for name, text in out.files.items():
        (package / name).write_text(text, encoding="utf-8")
    for rel in RUNTIME_SOURCES:
        source = SDK / "src" / "main" / "java" / rel
        target = src / rel
        if source.is_dir():
            shutil.copytree(source, target)
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(source, target)
    return root


def _sources(root: Path) -> list[str]:
    return sorted(str(p) for p in (root / "src").rglob("*.java"))


def _run(cmd: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, capture_output=True, text=True, check=False, timeout=300)


def test_kitchen_sink_compiles_without_warnings(kitchen_java: Path, jackson_classpath: str) -> None:
    classes = kitchen_java / "classes"
    proc = _run(
        [
            "javac",
            "-Xlint:all",
            "-Werror",
            "--release",
            "17",
            "-encoding",
            "UTF-8",
            "-cp",
            jackson_classpath,
            "-d",
            str(classes),
            *_sources(kitchen_java),
        ]
    )
    assert proc.returncode == 0, proc.stderr[-6000:]


def test_kitchen_sink_javadoc_passes_doclint(kitchen_java: Path, jackson_classpath: str) -> None:
    proc = _run(
        [
            "javadoc",
            "-Xdoclint:all",
            "-Werror",
            "-quiet",
            "-encoding",
            "UTF-8",
            "-cp",
            jackson_classpath,
            "-d",
            str(kitchen_java / "apidocs"),
            *_sources(kitchen_java),
        ]
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-6000:]


def test_kitchen_sink_round_trips_the_wire_json(kitchen_java: Path, jackson_classpath: str) -> None:
    classes = kitchen_java / "classes-rt"
    main = kitchen_java / "RoundTrip.java"
    main.write_text(ROUND_TRIP, encoding="utf-8")
    proc = _run(
        [
            "javac",
            "--release",
            "17",
            "-encoding",
            "UTF-8",
            "-cp",
            jackson_classpath,
            "-d",
            str(classes),
            str(main),
            *_sources(kitchen_java),
        ]
    )
    assert proc.returncode == 0, proc.stderr[-6000:]
    data = kitchen_java / "thing.json"
    data.write_text(json.dumps(THING), encoding="utf-8")
    proc = _run(
        [
            "java",
            "-Dfile.encoding=UTF-8",
            "-cp",
            f"{classes}:{jackson_classpath}",
            "RoundTrip",
            str(data),
        ]
    )
    assert proc.returncode == 0, proc.stderr[-6000:]
    encoded, shown = proc.stdout.splitlines()[:2]
    back = json.loads(encoded)
    assert back["scalars"]["int64_value"] == str(2**63 - 1)
    assert back["scalars"]["uint64_value"] == str(2**64 - 1)
    assert back["scalars"]["fixed64_value"] == str(2**64 - 1)
    assert back["scalars"]["uint32_value"] == 2**32 - 1
    assert back["scalars"]["bytes_value"] == "AAEC/w=="
    assert back["scalars"]["maybe_int64"] == "0", "a set optional keeps its presence"
    assert back["scalars"]["color"] == "dark_green"
    assert back["container"]["names_by_id"] == {"-1": "minus one", "7": "seven"}
    assert back["container"]["created_at"] == "2026-11-22T08:00:00.123Z"
    assert back["container"]["attributes"] == THING["container"]["attributes"]
    assert back["container"]["label"] == "a label"
    assert "radius" not in back["container"], "unset oneof members are left out"
    assert back["keywords"]["class"] == "c"
    assert back["tree"]["children"][0]["value"] == "leaf"
    assert "AAEC" not in shown, "toString never shows bytes"


def test_keywords_become_underscored_components(kitchen_outputs: list[Output]) -> None:
    out = next(o for o in kitchen_outputs if o.directory == GOLDEN_LAYOUT.sdk_java)
    keywords = out.files["Keywords.java"]
    for name in ("class_", "import_", "package_", "interface_"):
        assert f"String {name}" in keywords
    assert "String type," in keywords, "not a Java keyword: kept"


def test_every_rpc_is_in_the_reference_page(kitchen_outputs: list[Output]) -> None:
    folder, _, page = REFERENCE_PAGE.rpartition("/")
    out = next(o for o in kitchen_outputs if o.directory == folder and page in o.files)
    text = out.files[page]
    assert text.startswith("<!-- Code generated by secinfra codegen. DO NOT EDIT. -->\n")
    for signature in (
        "Thing thing().getThing(GetThingRequest request[, CallOptions options])",
        "PingResponse ping().time(PingRequest request[, CallOptions options])",
    ):
        assert signature in text
    assert "`GET /v1/things/{name=**}`" in text
    assert "| `class_` | `class` | `String` |" in text
