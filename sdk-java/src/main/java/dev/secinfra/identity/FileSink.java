package dev.secinfra.identity;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.DirectoryStream;
import java.nio.file.Files;
import java.nio.file.LinkOption;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.nio.file.StandardOpenOption;
import java.nio.file.attribute.FileAttribute;
import java.nio.file.attribute.PosixFilePermission;
import java.nio.file.attribute.PosixFilePermissions;
import java.util.Comparator;
import java.util.Set;
import java.util.function.Consumer;
import java.util.stream.Stream;

/**
 * Keeps the identity and the trust bundle in files for software that reads PEM files (spec 9.9),
 * as the Kubernetes AtomicWriter does: each change is a complete, synced snapshot directory, and
 * one {@code rename} of the {@code current} symlink publishes it; {@code cert.pem}, {@code
 * key.pem} and {@code bundle.pem} are symlinks through {@code current}. The key file is 0600 from
 * the moment it is created. Writes always take the source's current snapshot, so files never go
 * backwards; a failed write is logged and retried at the next change, and never stops rotation.
 *
 * <p>Off unless the application asks: {@code SecinfraClient.Builder.fileSink(directory)}.
 */
public final class FileSink implements Consumer<RotationEvent> {
  /** The certificate chain file (PEM, leaf first). */
  public static final String CERT_FILE = "cert.pem";
  /** The private key file (PEM, PKCS #8, unencrypted, mode 0600). */
  public static final String KEY_FILE = "key.pem";
  /** The bundle file (PEM CA certificates). */
  public static final String BUNDLE_FILE = "bundle.pem";
  /** The symlink to the current snapshot directory. */
  public static final String CURRENT = "current";

  private static final System.Logger LOG = System.getLogger("dev.secinfra.identity");
  private static final FileAttribute<Set<PosixFilePermission>> OWNER_ONLY =
      PosixFilePermissions.asFileAttribute(PosixFilePermissions.fromString("rw-------"));
  private static final FileAttribute<Set<PosixFilePermission>> READABLE =
      PosixFilePermissions.asFileAttribute(PosixFilePermissions.fromString("rw-r--r--"));
  private static final FileAttribute<Set<PosixFilePermission>> DIRECTORY =
      PosixFilePermissions.asFileAttribute(PosixFilePermissions.fromString("rwx------"));

  private final Path directory;
  private final IdentitySource source;
  private long written;

  /**
   * A sink writing {@code source}'s identity into {@code directory}.
   *
   * @param directory where to write (created when missing)
   * @param source the identity source whose current snapshot is written
   */
  public FileSink(Path directory, IdentitySource source) {
    this.directory = directory;
    this.source = source;
  }

  /**
   * Writes on every change of identity or bundle.
   *
   * @param event the rotation event
   */
  @Override
  public void accept(RotationEvent event) {
    if (event.kind() != RotationEvent.Kind.RENEWAL_FAILED
        && event.kind() != RotationEvent.Kind.EXPIRED) {
      write();
    }
  }

  /**
   * Writes the current snapshot now.
   *
   * @return true when the files were written
   */
  public synchronized boolean write() {
    IdentitySnapshot snapshot = source.snapshot();
    X509Bundle bundle = source.bundle();
    if (snapshot == null) {
      return false;
    }
    try {
      Files.createDirectories(directory);
      String name = "..snapshot-" + System.currentTimeMillis() + "-" + (++written);
      Path snap = Files.createDirectory(directory.resolve(name), DIRECTORY);
      writeFile(snap.resolve(KEY_FILE), Pem.encode("PRIVATE KEY", snapshot.key().getEncoded()), OWNER_ONLY);
      writeFile(snap.resolve(CERT_FILE), Pem.encodeCertificates(snapshot.chain()), READABLE);
      writeFile(snap.resolve(BUNDLE_FILE), bundle.toPem(), READABLE);
      sync(snap);
      Path link = directory.resolve(CURRENT + ".tmp");
      Files.deleteIfExists(link);
      Files.createSymbolicLink(link, Path.of(name));
      Files.move(link, directory.resolve(CURRENT), StandardCopyOption.ATOMIC_MOVE);
      for (String file : new String[] {CERT_FILE, KEY_FILE, BUNDLE_FILE}) {
        Path well = directory.resolve(file);
        if (!Files.isSymbolicLink(well)) {
          Files.deleteIfExists(well);
          Files.createSymbolicLink(well, Path.of(CURRENT, file));
        }
      }
      sync(directory);
      removeOld(name);
      return true;
    } catch (IOException | RuntimeException e) {
      LOG.log(System.Logger.Level.WARNING, "secinfra: identity: file sink write failed: {0}", e.toString());
      return false;
    }
  }

  private static void writeFile(Path path, String text, FileAttribute<Set<PosixFilePermission>> mode)
      throws IOException {
    try (FileChannel channel =
        FileChannel.open(
            path, Set.of(StandardOpenOption.CREATE_NEW, StandardOpenOption.WRITE), mode)) {
      ByteBuffer bytes = ByteBuffer.wrap(text.getBytes(StandardCharsets.US_ASCII));
      while (bytes.hasRemaining()) {
        channel.write(bytes);
      }
      channel.force(true);
    }
  }

  private static void sync(Path folder) {
    try (FileChannel channel = FileChannel.open(folder, StandardOpenOption.READ)) {
      channel.force(true);
    } catch (IOException e) {
      // some file systems cannot sync a directory; the renames are still atomic
    }
  }

  private void removeOld(String keep) throws IOException {
    try (DirectoryStream<Path> entries = Files.newDirectoryStream(directory, "..snapshot-*")) {
      for (Path entry : entries) {
        if (!entry.getFileName().toString().equals(keep)
            && Files.isDirectory(entry, LinkOption.NOFOLLOW_LINKS)) {
          try (Stream<Path> files = Files.walk(entry)) {
            for (Path p : (Iterable<Path>) files.sorted(Comparator.reverseOrder())::iterator) {
              Files.deleteIfExists(p);
            }
          }
        }
      }
    }
  }

  @Override
  public String toString() {
    return "FileSink{directory=" + directory + "}";
  }
}
