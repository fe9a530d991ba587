"""The file sink: atomic snapshots, modes, one writer per directory, no leftovers.

No server: identities are self-signed X509-SVIDs made here.
"""

from __future__ import annotations

import os
import stat
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

import secinfra._identity._file_sink as sink_module
from secinfra import FileSink, RotationEvent, RotationKind, TrustBundle, X509Identity
from secinfra._identity._file_sink import SinkError, read_identity_dir

BUNDLE = TrustBundle(
    pem="-----BEGIN CERTIFICATE-----\nMA==\n-----END CERTIFICATE-----\n",
    sequence=1,
    refresh_hint=300,
)


def make_identity(serial: int) -> X509Identity:
    """A self-signed X509-SVID and its key (enough for the sink: it never verifies)."""
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.now(UTC)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test")])
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(serial)
        .not_valid_before(now - timedelta(seconds=60))
        .not_valid_after(now + timedelta(hours=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.UniformResourceIdentifier("spiffe://secinfra.local/test")]
            ),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    return X509Identity(
        spiffe_id="spiffe://secinfra.local/test",
        chain_pem=cert.public_bytes(serialization.Encoding.PEM),
        key_pem=key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ),
        serial=f"{serial:x}",
        not_before=now - timedelta(seconds=60),
        not_after=now + timedelta(hours=1),
        issued_at=now,
    )


def matches(cert_pem: bytes, key_pem: bytes) -> bool:
    leaf = x509.load_pem_x509_certificates(cert_pem)[0]
    key = serialization.load_pem_private_key(key_pem, password=None)
    return key.public_key() == leaf.public_key()


def mode(path: Path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)  # follows the symlinks, as readers do


def leftovers(directory: Path) -> list[str]:
    return [
        str(p.relative_to(directory))
        for p in directory.rglob("*")
        if p.name.startswith(sink_module.TEMP_PREFIX)
    ]


class FakeSource:
    """Just what the sink reads from a client's identity source."""

    def __init__(self, identity: X509Identity | None, bundle: TrustBundle = BUNDLE) -> None:
        self.current = identity
        self.trust = bundle

    def identity(self) -> X509Identity | None:
        return self.current

    def bundle(self) -> TrustBundle:
        return self.trust


@pytest.fixture(scope="module")
def identities() -> list[X509Identity]:
    return [make_identity(n) for n in range(1, 9)]


def test_write_makes_the_layout_with_the_right_modes(
    tmp_path: Path, identities: list[X509Identity]
) -> None:
    out = tmp_path / "out"
    with FileSink(out) as sink:
        assert sink.write(identities[0], BUNDLE)

    assert mode(out) == 0o700  # created by the sink
    assert (out / "cert.pem").read_bytes() == identities[0].chain_pem
    assert (out / "key.pem").read_bytes() == identities[0].key_pem
    assert (out / "bundle.pem").read_text() == BUNDLE.pem
    assert (mode(out / "cert.pem"), mode(out / "key.pem"), mode(out / "bundle.pem")) == (
        0o600,
        0o600,
        0o644,
    )
    for name in ("cert.pem", "key.pem", "bundle.pem"):
        assert os.readlink(out / name) == f"current/{name}"
    assert os.readlink(out / "current").startswith(".snapshots/")
    assert leftovers(out) == []


def test_an_unchanged_snapshot_is_not_written_again(
    tmp_path: Path, identities: list[X509Identity]
) -> None:
    with FileSink(tmp_path) as sink:
        assert sink.write(identities[0], BUNDLE)
        current = os.readlink(tmp_path / "current")
        assert not sink.write(identities[0], BUNDLE)
        assert os.readlink(tmp_path / "current") == current
        assert sink.write(
            identities[0], TrustBundle(pem=BUNDLE.pem * 2, sequence=2, refresh_hint=1)
        )
        assert os.readlink(tmp_path / "current") != current


def test_only_the_current_and_previous_snapshots_are_kept(
    tmp_path: Path, identities: list[X509Identity]
) -> None:
    with FileSink(tmp_path) as sink:
        for identity in identities:
            sink.write(identity, BUNDLE)
            previous = os.readlink(tmp_path / "current")
        assert len(list((tmp_path / ".snapshots").iterdir())) == 2
        assert (tmp_path / previous).is_dir()


#: The swap race test's bounds: swaps at least, reads at least, swaps at most.
MIN_SWAPS, MIN_READS, MAX_SWAPS = 200, 100, 50_000


def test_readers_of_the_resolved_snapshot_never_see_a_mismatched_pair(
    tmp_path: Path, identities: list[X509Identity]
) -> None:
    """A writer swaps snapshots as fast as it can while readers read."""
    stop = threading.Event()
    problems: list[str] = []
    reads = [0]

    with FileSink(tmp_path) as sink:
        sink.write(identities[0], BUNDLE)

        def read() -> None:
            while not stop.is_set():
                try:
                    cert, key, _ = read_identity_dir(tmp_path)
                except Exception as exc:
                    problems.append(repr(exc))
                    return
                if not matches(cert, key):
                    problems.append("mismatch")
                reads[0] += 1

        readers = [threading.Thread(target=read) for _ in range(2)]
        for reader in readers:
            reader.start()
        # Bounded by counts, not by time: at least MIN_SWAPS swaps, and on
        # until the readers have read MIN_READS times (at most MAX_SWAPS).
        n = 0
        while n < MAX_SWAPS and not problems and (n < MIN_SWAPS or reads[0] < MIN_READS):
            sink.write(identities[n % len(identities)], BUNDLE)
            n += 1
        stop.set()
        for reader in readers:
            reader.join(5)

    assert problems == []
    assert n >= MIN_SWAPS
    assert reads[0] >= MIN_READS, f"readers read {reads[0]} times in {n} swaps"
    assert leftovers(tmp_path) == []


def test_a_second_sink_on_the_same_directory_is_refused(tmp_path: Path) -> None:
    with FileSink(tmp_path), pytest.raises(SinkError, match="another secinfra agent"):
        FileSink(tmp_path)
    FileSink(tmp_path).close()  # released on close


def test_what_a_crashed_writer_left_is_swept(
    tmp_path: Path, identities: list[X509Identity]
) -> None:
    with FileSink(tmp_path) as sink:
        sink.write(identities[0], BUNDLE)
    (tmp_path / ".snapshots" / ".tmp-crashed").mkdir()
    (tmp_path / ".snapshots" / ".tmp-crashed" / "key.pem").write_bytes(b"half")
    os.symlink(".snapshots/nowhere", tmp_path / ".tmp-current-crashed")

    with FileSink(tmp_path) as sink:
        assert leftovers(tmp_path) == []
        assert sink.write(identities[1], BUNDLE)
    assert (tmp_path / "cert.pem").read_bytes() == identities[1].chain_pem


def test_a_failed_write_leaves_the_old_snapshot_and_no_temporary_files(
    tmp_path: Path, identities: list[X509Identity], monkeypatch: pytest.MonkeyPatch
) -> None:
    with FileSink(tmp_path) as sink:
        sink.write(identities[0], BUNDLE)
        real = sink_module._write_new

        def failing(path: Path, data: bytes, mode: int) -> None:
            if path.name == "key.pem":
                raise OSError(28, "No space left on device")
            real(path, data, mode)

        monkeypatch.setattr(sink_module, "_write_new", failing)
        with pytest.raises(OSError, match="No space"):
            sink.write(identities[1], BUNDLE)
        assert leftovers(tmp_path) == []
        assert (tmp_path / "cert.pem").read_bytes() == identities[0].chain_pem

        monkeypatch.setattr(sink_module, "_write_new", real)
        assert sink.write(identities[1], BUNDLE)  # the next attempt writes it
    assert (tmp_path / "key.pem").read_bytes() == identities[1].key_pem


def test_plain_files_from_another_tool_are_replaced_by_links(
    tmp_path: Path, identities: list[X509Identity]
) -> None:
    for name in ("cert.pem", "key.pem", "bundle.pem"):
        (tmp_path / name).write_text("old")
    with FileSink(tmp_path) as sink:
        sink.write(identities[0], BUNDLE)
    assert (tmp_path / "cert.pem").is_symlink()
    assert read_identity_dir(tmp_path)[0] == identities[0].chain_pem


def test_read_identity_dir_reads_plain_files_too(
    tmp_path: Path, identities: list[X509Identity]
) -> None:
    (tmp_path / "cert.pem").write_bytes(identities[0].chain_pem)
    (tmp_path / "key.pem").write_bytes(identities[0].key_pem)
    (tmp_path / "bundle.pem").write_text(BUNDLE.pem)
    assert read_identity_dir(tmp_path)[1] == identities[0].key_pem

    (tmp_path / "key.pem").write_bytes(identities[1].key_pem)
    with pytest.raises(ValueError, match="does not match"):
        read_identity_dir(tmp_path)


@pytest.mark.parametrize(
    ("kind", "writes"),
    [
        (RotationKind.ENROLLED, True),
        (RotationKind.RENEWED, True),
        (RotationKind.BUNDLE_UPDATED, True),
        (RotationKind.RENEWAL_FAILED, False),
        (RotationKind.EXPIRED, False),
    ],
)
def test_the_sink_as_a_subscriber_writes_the_sources_current_snapshot(
    tmp_path: Path, identities: list[X509Identity], kind: RotationKind, writes: bool
) -> None:
    written: list[str] = []
    source = FakeSource(identities[0])
    with FileSink(tmp_path, source, on_write=lambda i: written.append(i.serial)) as sink:
        assert sink.sync()
        source.current = identities[1]
        # The event's payload is stale on purpose: the sink reads the source.
        sink(RotationEvent(kind, identities[0], BUNDLE))
    assert written == (["1", "2"] if writes else ["1"])


def test_sync_without_an_identity_writes_nothing(tmp_path: Path) -> None:
    with FileSink(tmp_path, FakeSource(None)) as sink:
        assert not sink.sync()
    assert not (tmp_path / "current").exists()
